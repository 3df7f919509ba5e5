"""Partner Central review-state rules: which opportunity fields may be written right now.

Source: docs/api-rules.md (AWS Partner Central developer guide, "Working with opportunity updates";
API reference for ``UpdateOpportunity`` and ``LifeCycle.ReviewStatus``):

- no updates while ``ReviewStatus`` is ``Submitted`` or ``In review`` -> deferred, retried later;
- in ``Action Required`` only :data:`ACTION_REQUIRED_EDITABLE` may change -> others deferred;
- after ``Approved`` the seven :data:`LOCKED_AFTER_APPROVAL` fields cannot change -> blocked;
- ``Rejected`` opportunities are read-only -> blocked.

Paths compare with list indexes stripped: ``Project.ExpectedCustomerSpend[0].Amount`` is governed by
``Project.ExpectedCustomerSpend.Amount``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cosell_sync.errors import ValidationError
from cosell_sync.pc_model import pc_enum, strip_indexes

__all__ = [
    "ACTION_REQUIRED_EDITABLE",
    "BLOCKED_REASONS",
    "DEFERRED_REASONS",
    "LOCKED_AFTER_APPROVAL",
    "UNKNOWN_REVIEW_STATUS",
    "GateDecision",
    "UnknownReviewStatusError",
    "gate",
]

#: Fields that may change while ReviewStatus is ``Action Required`` (docs/api-rules.md). The guide
#: writes ``EstimationURL``; the botocore member is ``EstimationUrl``, which is what paths carry.
ACTION_REQUIRED_EDITABLE: frozenset[str] = frozenset(
    {
        "Customer.Account.Address.City",
        "Customer.Account.Address.CountryCode",
        "Customer.Account.Address.PostalCode",
        "Customer.Account.Address.StateOrRegion",
        "Customer.Account.Address.StreetAddress",
        "Customer.Account.WebsiteUrl",
        "LifeCycle.TargetCloseDate",
        "Project.ExpectedCustomerSpend.Amount",
        "Project.ExpectedCustomerSpend.CurrencyCode",
        "Project.ExpectedCustomerSpend.EstimationUrl",
        "Project.ExpectedCustomerSpend.Frequency",
        "Project.ExpectedCustomerSpend.TargetCompany",
        "Project.CustomerBusinessProblem",
        "PartnerOpportunityIdentifier",
    }
)

#: The seven fields that cannot change once AWS has approved the opportunity (docs/api-rules.md).
LOCKED_AFTER_APPROVAL: frozenset[str] = frozenset(
    {
        "Customer.Account.Address.CountryCode",
        "Customer.Account.Address.PostalCode",
        "Customer.Account.Industry",
        "Customer.Account.WebsiteUrl",
        "Project.CustomerBusinessProblem",
        "PartnerOpportunityIdentifier",
        "Project.Title",
    }
)

REVIEW_IN_PROGRESS = "REVIEW_IN_PROGRESS"
NOT_EDITABLE_IN_ACTION_REQUIRED = "NOT_EDITABLE_IN_ACTION_REQUIRED"
LOCKED = "LOCKED_AFTER_APPROVAL"
REJECTED_READ_ONLY = "REJECTED_READ_ONLY"
#: Reason for a ReviewStatus outside the enum: the change is deferred and retried later.
UNKNOWN_REVIEW_STATUS = "UNKNOWN_REVIEW_STATUS"

#: Reasons that keep the change pending: the same change is retried on a later run.
DEFERRED_REASONS = frozenset({REVIEW_IN_PROGRESS, NOT_EDITABLE_IN_ACTION_REQUIRED})
#: Reasons that mean the change will never be accepted.
BLOCKED_REASONS = frozenset({LOCKED, REJECTED_READ_ONLY})


class UnknownReviewStatusError(ValidationError):
    """A ReviewStatus value outside the PC enum (values are exact: ``In review``, not ``In Review``)."""


@dataclass(frozen=True)
class GateDecision:
    """What may be written to an opportunity in its current review state.

    Attributes:
        allowed: paths (as given) that may be sent now.
        deferred: path -> reason code; keep the change and retry on a later run.
        blocked: path -> reason code; never send.
    """

    allowed: set[str] = field(default_factory=set)
    deferred: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)


def _reason(review_status: str | None, bare_path: str) -> str | None:
    if review_status in (None, "Pending Submission"):
        return None
    if review_status in ("Submitted", "In review"):
        return REVIEW_IN_PROGRESS
    if review_status == "Action Required":
        return None if bare_path in ACTION_REQUIRED_EDITABLE else NOT_EDITABLE_IN_ACTION_REQUIRED
    if review_status == "Approved":
        return LOCKED if bare_path in LOCKED_AFTER_APPROVAL else None
    if review_status == "Rejected":
        return REJECTED_READ_ONLY
    raise UnknownReviewStatusError(
        f"ReviewStatus {review_status!r} is not a Partner Central value "
        f"(valid: {', '.join(pc_enum('ReviewStatus'))})",
        code="UnknownReviewStatus",
    )


def gate_reason(review_status: str | None, pc_path: str) -> str | None:
    """The reason code that stops ``pc_path`` being written in ``review_status``, or ``None`` if allowed.

    Args:
        review_status: the opportunity's ``LifeCycle.ReviewStatus`` (``None``: not yet known/created).
        pc_path: an Opportunity path, list indexes allowed.

    Returns:
        ``None`` or one of the reason codes.

    Raises:
        UnknownReviewStatusError: ``review_status`` is not an exact PC enum value.
    """
    return _reason(review_status, strip_indexes(pc_path))


def gate(review_status: str | None, pc_paths: Iterable[str]) -> GateDecision:
    """Split Partner Central paths into allowed, deferred and blocked for a review status.

    Args:
        review_status: the opportunity's ``LifeCycle.ReviewStatus``; ``None`` means unknown or not
            yet submitted and allows everything (the writer re-gates on the fresh GetOpportunity).
        pc_paths: Opportunity paths the caller wants to write.

    Returns:
        The decision.

    Raises:
        UnknownReviewStatusError: ``review_status`` is not an exact PC enum value.
    """
    decision = GateDecision()
    paths = list(pc_paths)
    if not paths:
        _reason(review_status, "")  # still reject an unknown status
    for path in paths:
        reason = gate_reason(review_status, path)
        if reason is None:
            decision.allowed.add(path)
        elif reason in DEFERRED_REASONS:
            decision.deferred[path] = reason
        else:
            decision.blocked[path] = reason
    return decision
