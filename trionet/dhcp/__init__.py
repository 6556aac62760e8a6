"""Address autoconfiguration for guests without an agent: DHCPv4, router
advertisements and DHCPv6, as sans-IO answering logic the stack calls.

``config`` holds the ``dhcp`` section of :class:`trionet.NetworkConfig`;
``v4``, ``v6`` and ``router_adverts`` decide what to answer (parsed message
and the current time in, reply out). The stack frames the replies.
"""
