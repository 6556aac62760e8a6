"""The sans-IO TCP state machine (RFC 9293). Time is an argument, never read."""
