"""The opportunity record and the data of its business rules (no state, no HTTP).

Rules and their sources (see also docs/api-rules.md):

* UpdateOpportunity replaces the record: "include the entire payload with each request. If any field is
  omitted, the API assumes that the field is set to null" and requires the current ``LastModifiedDate``
  (developer guide, "Working with opportunity updates"; API reference ``UpdateOpportunity``).
* ``LifeCycle.ReviewStatus`` (API reference ``LifeCycle``): ``Submitted`` and ``In review`` are read-only,
  ``Action Required`` allows only a listed set of fields and "after updates, the opportunity re-enters the
  validation phase", ``Approved`` is editable except seven fields, ``Rejected`` is read-only.
* ``CreateOpportunity`` sets ``Pending Submission``; ``ClientToken`` makes creates idempotent (API reference).
* ``Origin`` ``AWS Referral`` is only accepted in the ``Sandbox`` catalog
  (API reference ``CreateOpportunity``).
* Submission (``SubmitOpportunity`` or ``StartEngagementFromOpportunityTask``) needs one to ten associated
  partner solutions, and ``LifeCycle.Stage`` ``Committed``/``Launched`` needs an associated solution, AWS
  product or AWS Marketplace offer (developer guide, "Associating, disassociating and assigning
  opportunities"; API reference ``RelatedEntityIdentifiers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulators.partner_central.exceptions import ValidationException, business_error
from emulators.partner_central.models.base import get_path, is_empty

# Fields the partner may change while ReviewStatus is "Action Required" (API reference,
# LifeCycle.ReviewStatus; docs/api-rules.md). ExpectedCustomerSpend is allowed as a whole (all its
# members are listed).
ACTION_REQUIRED_EDITABLE = frozenset(
    {
        "Customer.Account.Address.City",
        "Customer.Account.Address.CountryCode",
        "Customer.Account.Address.PostalCode",
        "Customer.Account.Address.StateOrRegion",
        "Customer.Account.Address.StreetAddress",
        "Customer.Account.WebsiteUrl",
        "LifeCycle.TargetCloseDate",
        "Project.ExpectedCustomerSpend",
        "Project.CustomerBusinessProblem",
        "PartnerOpportunityIdentifier",
    }
)
# Fields locked once ReviewStatus is "Approved" (API reference, LifeCycle.ReviewStatus; docs/api-rules.md).
APPROVED_LOCKED = frozenset(
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
# Fields the service requires before an opportunity can be submitted for review (API reference
# CreateOpportunity / "Creating an opportunity": these are the fields the ACE review needs; missing ones
# fail with BUSINESS_VALIDATION_FAILED).
SUBMISSION_REQUIRED = (
    "Customer.Account.CompanyName",
    "Customer.Account.Industry",
    "Customer.Account.WebsiteUrl",
    "Customer.Account.Address.CountryCode",
    "Customer.Account.Address.PostalCode",
    "Project.Title",
    "Project.CustomerBusinessProblem",
    "Project.ExpectedCustomerSpend",
    "LifeCycle.Stage",
    "LifeCycle.TargetCloseDate",
    "OpportunityType",
)
# Members of the opportunity the partner writes (UpdateOpportunityRequest minus the addressing members).
PARTNER_FIELDS = (
    "PrimaryNeedsFromAws",
    "NationalSecurity",
    "PartnerOpportunityIdentifier",
    "Customer",
    "Project",
    "OpportunityType",
    "Marketing",
    "SoftwareRevenue",
    "LifeCycle",
)
# LifeCycle members owned by AWS review, never taken from a partner request.
REVIEW_OWNED = ("ReviewStatus", "ReviewComments", "ReviewStatusReason", "NextStepsHistory")
READ_ONLY_STATUSES = ("Submitted", "In review")
# Associated partner solutions an opportunity needs before submission (developer guide, "Associating,
# disassociating and assigning opportunities"; docs/api-rules.md).
MIN_SOLUTIONS, MAX_SOLUTIONS = 1, 10
SOLUTIONS_RULE = "at least one and at most 10 partner solutions must be associated before submission"
# Stages that need an associated solution, AWS product or Marketplace offer; the entity types that count.
STAGES_NEEDING_OFFERING = ("Committed", "Launched")
OFFERING_TYPES = ("Solutions", "AwsProducts", "AwsMarketplaceOffers")


@dataclass
class OpportunityRecord:
    """One stored opportunity: typed access to the JSON-shaped dict kept in the catalog store.

    ``data`` is the stored dict itself, not a copy: it is what GetOpportunity and ListOpportunities return,
    what snapshots project and what ``dump`` persists, so response shaping is untouched. ``catalog`` and
    ``id`` never change; everything else is read (and ``last_modified`` written) through ``data``.
    """

    catalog: str
    id: str
    data: dict[str, Any]

    @classmethod
    def of(cls, data: dict[str, Any]) -> OpportunityRecord:
        """Wrap a stored opportunity dict."""
        return cls(catalog=data["Catalog"], id=data["Id"], data=data)

    @property
    def arn(self) -> str:
        """The opportunity ARN."""
        return str(self.data["Arn"])

    @property
    def last_modified(self) -> int:
        """``LastModifiedDate`` in epoch milliseconds."""
        return int(self.data["LastModifiedDate"])

    @last_modified.setter
    def last_modified(self, ms: int) -> None:
        self.data["LastModifiedDate"] = ms

    @property
    def review_status(self) -> str | None:
        """``LifeCycle.ReviewStatus``."""
        return get_path(self.data, "LifeCycle.ReviewStatus")

    @property
    def stage(self) -> str | None:
        """``LifeCycle.Stage``."""
        return get_path(self.data, "LifeCycle.Stage")

    @property
    def related(self) -> dict[str, list[str]]:
        """``RelatedEntityIdentifiers`` (empty when none were ever associated)."""
        return self.data.get("RelatedEntityIdentifiers") or {}


def has_offering(related: dict[str, Any]) -> bool:
    """Whether a solution, AWS product or AWS Marketplace offer is associated."""
    return any(related.get(kind) for kind in OFFERING_TYPES)


def require_offering_for_stage(record: dict[str, Any], related: dict[str, Any]) -> None:
    """``Committed``/``Launched`` need an associated solution, AWS product or Marketplace offer."""
    stage = get_path(record, "LifeCycle.Stage")
    if stage in STAGES_NEEDING_OFFERING and not has_offering(related):
        raise business_error(
            "LifeCycle.Stage",
            f"LifeCycle.Stage {stage} requires an associated partner solution, AWS product or AWS "
            "Marketplace offer (AssociateOpportunity with RelatedEntityType Solutions, AwsProducts or "
            "AwsMarketplaceOffers)",
            "INVALID_VALUE",
        )


def require_solutions(opp: dict[str, Any]) -> None:
    """Submission needs one to ten associated partner solutions."""
    count = len(get_path(opp, "RelatedEntityIdentifiers.Solutions") or [])
    if not MIN_SOLUTIONS <= count <= MAX_SOLUTIONS:
        raise ValidationException(
            f"Opportunity {opp['Id']} cannot be submitted: {SOLUTIONS_RULE} ({count} associated)",
            [
                {
                    "FieldName": "RelatedEntityIdentifiers.Solutions",
                    "Message": f"{SOLUTIONS_RULE[0].upper()}{SOLUTIONS_RULE[1:]}",
                    "Code": "NOT_ENOUGH_VALUES" if count < MIN_SOLUTIONS else "TOO_MANY_VALUES",
                }
            ],
            reason="BUSINESS_VALIDATION_FAILED",
        )


def require_submission_fields(record: dict[str, Any]) -> None:
    """The fields the ACE review needs; missing ones fail with ``BUSINESS_VALIDATION_FAILED``."""
    missing = [p for p in SUBMISSION_REQUIRED if is_empty(get_path(record, p))]
    if get_path(record, "Customer.Account.Industry") == "Other" and is_empty(
        get_path(record, "Customer.Account.OtherIndustry")
    ):
        missing.append("Customer.Account.OtherIndustry")
    if missing:
        raise ValidationException(
            f"Opportunity is missing fields required for submission: {', '.join(missing)}",
            [
                {
                    "FieldName": p,
                    "Message": f"{p} is required to submit",
                    "Code": "REQUIRED_FIELD_MISSING",
                }
                for p in missing
            ],
            reason="BUSINESS_VALIDATION_FAILED",
        )
