"""Frame transports that carry a guest's Ethernet frames: TAP, unix sockets, memory."""
