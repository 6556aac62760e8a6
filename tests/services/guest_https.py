"""A Python ``ssl`` client run inside the guest: ``python3 guest_https.py MODE CAFILE IP NAME``.

MODE ``get`` sends one GET with ``X-Key: $API_KEY``; MODE ``ws`` a WebSocket
upgrade with ``Authorization: Bearer $API_KEY``. Prints the status line, and
for ``ws`` waits for the first frame too.
"""

import os
import socket
import ssl
import sys

mode, cafile, ip, name = sys.argv[1:5]
key = os.environb[b"API_KEY"]
ctx = ssl.create_default_context(cafile=cafile)
tls = ctx.wrap_socket(socket.create_connection((ip, 443), timeout=10), server_hostname=name)
head = b"GET /%s HTTP/1.1\r\nHost: %s\r\n" % (mode.encode(), name.encode())
if mode == "ws":
    head += (
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Authorization: Bearer " + key + b"\r\n\r\n"
    )
else:
    head += b"X-Key: " + key + b"\r\nConnection: close\r\n\r\n"
tls.sendall(head)
data = b""
while b"\r\n\r\n" not in data or (mode == "ws" and not data.split(b"\r\n\r\n", 1)[1]):
    chunk = tls.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n")[0].decode())
