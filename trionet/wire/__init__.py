"""Wire codecs: parse and emit each protocol's bytes. Sans-IO, no state."""
