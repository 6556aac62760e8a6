"""Test helpers shared by the real-guest tests: network namespaces, guest setup."""
