"""Services on top of guest flows: DNS interception, published ports, TLS MITM."""
