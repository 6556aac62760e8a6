"""DNS interception (reference §7): the sans-IO side.

:mod:`trionet.dns.config` holds the ``dns`` section of the configuration;
the interceptor's answering logic lives beside it.
"""
