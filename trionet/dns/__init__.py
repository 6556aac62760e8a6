"""DNS interception (reference §7): the sans-IO side.

:mod:`trionet.dns.config` holds the ``dns`` section of the configuration;
:mod:`trionet.dns.intercept` the answering logic for one query,
:mod:`trionet.dns.framing` DNS-over-TCP's length prefix and
:mod:`trionet.dns.resolvconf` the host's resolvers. The Trio side that moves
the bytes is :mod:`trionet.services.dns_service`.
"""
