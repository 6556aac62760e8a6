"""Sans-IO TLS pieces: the ClientHello peek, certificate building, the ``tls`` config section.

Nothing here opens a socket, reads a file or a clock: bytes and the current
time come in as arguments. The Trio side (:mod:`trionet.services.tls_intercept`) does
the waiting and the file IO.
"""
