"""Secrets the guest never sees: config, eligibility, violation scanning (sans-IO).

The guest holds a placeholder; the real value is put into requests only on
their way to the hosts the secret is meant for (§11). Real values live in
:class:`~trionet.secrets.config.SecretValue`, whose ``repr`` and ``str`` are
redacted, so no log line, error or audit record can carry one by accident.
"""
