"""The Trio sides of the services built on guest flows.

Each takes flows from the engine (:mod:`trionet.engine`) and acts on them
with the sans-IO logic of its own package:

- :mod:`~trionet.services.dns_service`: DNS interception on UDP and TCP port
  53 to any address (decisions in :mod:`trionet.dns`);
- :mod:`~trionet.services.tls_intercept`: TLS interception, CONNECT tunnels,
  plain-HTTP secret checks and DNS over TLS (:mod:`trionet.tls`,
  :mod:`trionet.http`, :mod:`trionet.secrets`), with its file side in
  :mod:`~trionet.services.tls_files` and :mod:`~trionet.services.secret_sources`;
- :mod:`~trionet.services.ports`: published ports, host to guest
  (:mod:`trionet.ports`).

:mod:`trionet.network` wires them into one sandbox's network.
"""
