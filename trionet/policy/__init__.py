"""The policy core (sans-IO): rules, address groups, the DNS pin set, decisions, audit records.

Nothing here does I/O or reads a clock: the engine passes time in and acts on
the :class:`Decision` it gets back. See reference §10 and docs/policy.md.
"""

from trionet.policy.audit import AuditRecord
from trionet.policy.evaluate import Decision, PolicyEvaluator, PolicyVerdict
from trionet.policy.groups import Gateways, classify, is_rebind_private
from trionet.policy.model import (
    ANY,
    Action,
    AnyDestination,
    Cidr,
    Destination,
    Direction,
    Domain,
    DomainSuffix,
    Group,
    GroupDestination,
    NetworkPolicy,
    PortRange,
    Rule,
    canonical_domain,
)
from trionet.policy.pins import AnswerRecord, PinSet, answer_pins

__all__ = [
    "ANY",
    "Action",
    "AnswerRecord",
    "AnyDestination",
    "AuditRecord",
    "Cidr",
    "Decision",
    "Destination",
    "Direction",
    "Domain",
    "DomainSuffix",
    "Gateways",
    "Group",
    "GroupDestination",
    "NetworkPolicy",
    "PinSet",
    "PolicyEvaluator",
    "PolicyVerdict",
    "PortRange",
    "Rule",
    "answer_pins",
    "canonical_domain",
    "classify",
    "is_rebind_private",
]
