"""Partner Central state and business rules (no HTTP): opportunities, engagements, snapshots, tasks.

Timestamps are stored as integer epoch milliseconds; the response layer renders them as ISO-8601 with
milliseconds, so a ``LastModifiedDate`` a client read and sends back compares equal at millisecond precision.

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
* Engagement invitations expire 15 days after they are sent (API reference ``EngagementInvitationSummary``,
  developer guide "Engagement invitations"); expiry emits ``Engagement Invitation Expired``.
"""

from __future__ import annotations

import base64
import bisect
import copy
import datetime as dt
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from emulators.partner_central import shapes
from emulators.partner_central.events import EventBus
from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ValidationException,
    business_error,
)

ACCOUNT_ID = "123456789012"
AWS_ACCOUNT = "aws"  # how AWS appears as sender/member (matches the AwsAccount pattern \w{1,12})
REGION = "us-east-1"
CATALOGS = ("AWS", "Sandbox")
INVITATION_TTL_MS = 15 * 24 * 3600 * 1000
DEFAULT_TEMPLATE = "AWSOpportunitySummary"

# Fields the partner may change while ReviewStatus is "Action Required" (API reference,
# LifeCycle.ReviewStatus;
# docs/api-rules.md). ExpectedCustomerSpend is allowed as a whole (all its members are listed).
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


iso = shapes.iso_ms


def parse_ts(value: Any) -> int:
    """A request timestamp (epoch seconds as botocore sends them, or ISO-8601) as epoch milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value * 1000)
    text = str(value).replace("Z", "+00:00")
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return round(parsed.timestamp() * 1000)


def get_path(record: dict[str, Any] | None, path: str) -> Any:
    """Value at a dotted path, or None."""
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted path; lists are leaves; empty values are dropped (null == omitted)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    elif not _empty(value):
        out[prefix] = value
    return out


def changed_paths(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Dotted paths whose value differs between two records."""
    a, b = flatten(old), flatten(new)
    return {p for p in a.keys() | b.keys() if a.get(p) != b.get(p)}


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` merged into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def encode_token(payload: dict[str, Any]) -> str:
    """An opaque NextToken."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    """Decode a NextToken or fail the way AWS does (ValidationException on NextToken)."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError as err:
        raise ValidationException(
            "Invalid NextToken",
            [{"FieldName": "NextToken", "Message": "Invalid NextToken", "Code": "INVALID_VALUE"}],
        ) from err
    return payload


def paginate(items: list[Any], params: dict[str, Any], default_size: int) -> tuple[list[Any], str | None]:
    """Offset pagination for the small collections (engagements, invitations, tasks...)."""
    size = params.get("MaxResults") or default_size
    start = 0
    if params.get("NextToken"):
        start = int(decode_token(params["NextToken"]).get("o", 0))
    page = items[start : start + size]
    nxt = encode_token({"o": start + size}) if start + size < len(items) else None
    return page, nxt


def _new_store() -> dict[str, Any]:
    return {
        "opportunities": {},
        "aws_summaries": {},
        "engagements": {},
        "invitations": {},
        "snapshots": {},
        "snapshot_jobs": {},
        "tasks": {
            "EngagementFromOpportunity": {},
            "EngagementByAcceptingInvitation": {},
            "OpportunityFromEngagement": {},
            "ProspectingFromEngagement": {},
        },
        "solutions": {},
        "settings": {},
        "next_opp": 1_000_000,
    }


def _not_permitted(summary: str, paths: list[str], field_message: str) -> ValidationException:
    """The error AWS gives for fields the review state does not let a partner change."""
    return ValidationException(
        f"{summary}: {', '.join(paths)}",
        [{"FieldName": p, "Message": field_message, "Code": "ACTION_NOT_PERMITTED"} for p in paths],
        reason="BUSINESS_VALIDATION_FAILED",
    )


def _has_offering(related: dict[str, Any]) -> bool:
    return any(related.get(kind) for kind in OFFERING_TYPES)


def _require_offering_for_stage(record: dict[str, Any], related: dict[str, Any]) -> None:
    """``Committed``/``Launched`` need an associated solution, AWS product or Marketplace offer."""
    stage = get_path(record, "LifeCycle.Stage")
    if stage in STAGES_NEEDING_OFFERING and not _has_offering(related):
        raise business_error(
            "LifeCycle.Stage",
            f"LifeCycle.Stage {stage} requires an associated partner solution, AWS product or AWS "
            "Marketplace offer (AssociateOpportunity with RelatedEntityType Solutions, AwsProducts or "
            "AwsMarketplaceOffers)",
            "INVALID_VALUE",
        )


def _require_solutions(opp: dict[str, Any]) -> None:
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


class PartnerCentralBackend:
    """All Partner Central state for one partner account, thread-safe behind one re-entrant lock.

    Args:
        account_id: the partner's 12-digit AWS account id.
        region: region for ARNs and events.
    """

    def __init__(self, account_id: str = ACCOUNT_ID, region: str = REGION) -> None:
        self.account_id = account_id
        self.region = region
        self.lock = threading.RLock()
        self.events = EventBus(account_id, region)
        self.task_delay_ms = 200
        self.reset()

    # ----------------------------------------------------------------------------------------- plumbing
    def reset(self) -> None:
        """Forget everything (tags, idempotency tokens, events) and re-create the default solutions."""
        with self.lock:
            self.stores: dict[str, dict[str, Any]] = {c: _new_store() for c in CATALOGS}
            self.tags: dict[str, dict[str, str]] = {}
            self.idempotency: dict[str, tuple[str, Any]] = {}
            self.clock_offset_ms = 0
            self._last_ms = 0
            self._pending: list[tuple[int, str, str, str]] = []
            self._list_cache: dict[tuple[Any, ...], tuple[int, list[tuple[Any, str]]]] = {}
            self._version = 0
            self._rng = random.Random(7)  # ids only; deterministic so failures reproduce
            self.events.clear()
            for catalog in CATALOGS:
                self._seed_solutions(catalog)

    def now(self) -> int:
        """Current time in epoch ms, strictly increasing across calls (LastModifiedDate must always move)."""
        with self.lock:
            ms = int(time.time() * 1000) + self.clock_offset_ms
            self._last_ms = max(ms, self._last_ms + 1)
            return self._last_ms

    def peek_now(self) -> int:
        """Current time in epoch ms without consuming a tick."""
        return max(int(time.time() * 1000) + self.clock_offset_ms, self._last_ms)

    def store(self, catalog: str) -> dict[str, Any]:
        """The catalog's store; AWS and Sandbox are separate (API reference: ``Catalog``)."""
        if catalog not in self.stores:
            raise ValidationException(
                f"Catalog {catalog} is not valid",
                [
                    {
                        "FieldName": "Catalog",
                        "Message": "Catalog must be AWS or Sandbox",
                        "Code": "INVALID_VALUE",
                    }
                ],
            )
        return self.stores[catalog]

    def _rand_id(self, n: int) -> str:
        return "".join(self._rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(n))

    def _arn(self, catalog: str, kind: str, ident: str) -> str:
        return f"arn:aws:partnercentral:{self.region}:{self.account_id}:catalog/{catalog}/{kind}/{ident}"

    def _emit(self, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        self.events.emit(detail_type, detail, resources, iso(self.peek_now()))

    def _touch(self) -> None:
        self._version += 1

    def idempotent(
        self, catalog: str, operation: str, params: dict[str, Any], action: Callable[[], Any]
    ) -> Any:
        """Run ``action`` once per ClientToken (API reference, ``ClientToken``).

        The same token and body returns the first result; the same token with another body is a
        ``ConflictException``.
        """
        with self.lock:
            key = f"{catalog}|{operation}|{params['ClientToken']}"
            digest = _digest(params)
            if key in self.idempotency:
                seen_digest, result = self.idempotency[key]
                if seen_digest != digest:
                    raise ConflictException(
                        f"ClientToken {params['ClientToken']} was already used with a different request"
                    )
                return copy.deepcopy(result)
            result = action()
            self.idempotency[key] = (digest, copy.deepcopy(result))
            return result

    # -------------------------------------------------------------------------------- opportunities
    def opportunity(self, catalog: str, identifier: str) -> dict[str, Any]:
        """The stored opportunity or ``ResourceNotFoundException``."""
        opp = self.store(catalog)["opportunities"].get(identifier)
        if opp is None:
            raise ResourceNotFoundException(f"Opportunity {identifier} not found in catalog {catalog}")
        return opp

    def create_opportunity(self, params: dict[str, Any], *, origin_event: bool = True) -> dict[str, Any]:
        """CreateOpportunity: new record in ``Pending Submission``."""
        catalog = params["Catalog"]
        store = self.store(catalog)
        if params.get("Origin") == "AWS Referral" and catalog != "Sandbox":
            # API reference CreateOpportunity, Origin: AWS Referral is for Sandbox testing only.
            raise business_error(
                "Origin", "Origin 'AWS Referral' is only supported in the Sandbox catalog", "INVALID_VALUE"
            )
        # A new record has no associations yet, so Committed/Launched cannot be created directly.
        _require_offering_for_stage(params, {})

        def action() -> dict[str, Any]:
            with self.lock:
                store["next_opp"] += 1
                oid = f"O{store['next_opp']}"
                now = self.now()
                record = {k: copy.deepcopy(params[k]) for k in PARTNER_FIELDS if params.get(k) is not None}
                lifecycle = {k: v for k, v in record.get("LifeCycle", {}).items() if k not in REVIEW_OWNED}
                if params.get("Origin") != "AWS Referral":
                    lifecycle["ReviewStatus"] = "Pending Submission"
                if lifecycle.get("NextSteps"):
                    lifecycle["NextStepsHistory"] = [{"Value": lifecycle["NextSteps"], "Time": now}]
                record["LifeCycle"] = lifecycle
                record.update(
                    {
                        "Catalog": catalog,
                        "Id": oid,
                        "Arn": self._arn(catalog, "opportunity", oid),
                        "CreatedDate": now,
                        "LastModifiedDate": now,
                        "RelatedEntityIdentifiers": {},
                        "Origin": params.get("Origin", "Partner Referral"),
                    }
                )
                if params.get("OpportunityTeam"):
                    record["OpportunityTeam"] = copy.deepcopy(params["OpportunityTeam"])
                store["opportunities"][oid] = record
                if params.get("Tags"):
                    self.tags[record["Arn"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
                self._touch()
                if origin_event:
                    self._opportunity_event("Opportunity Created", record)
                return {
                    "Id": oid,
                    "PartnerOpportunityIdentifier": record.get("PartnerOpportunityIdentifier"),
                    "LastModifiedDate": now,
                }

        return self.idempotent(catalog, "CreateOpportunity", params, action)

    def _opportunity_event(self, detail_type: str, opp: dict[str, Any]) -> None:
        self._emit(
            detail_type,
            {"schemaVersion": "1", "catalog": opp["Catalog"], "opportunity": {"identifier": opp["Id"]}},
            [opp["Arn"]],
        )

    def _changed(self, opp: dict[str, Any]) -> None:
        """After any change: new LastModifiedDate, ``Opportunity Updated``, running snapshot jobs."""
        opp["LastModifiedDate"] = self.now()
        self._touch()
        self._opportunity_event("Opportunity Updated", opp)
        for job in self.store(opp["Catalog"])["snapshot_jobs"].values():
            if job["Status"] == "Running" and job["ResourceId"] == opp["Id"]:
                self._snapshot(
                    opp["Catalog"], job["EngagementId"], opp["Id"], job["ResourceSnapshotTemplateName"]
                )
                job["LastSuccessfulExecutionDate"] = self.peek_now()

    def update_opportunity(self, params: dict[str, Any]) -> dict[str, Any]:
        """UpdateOpportunity: whole-record replace, optimistic lock, review-status rules."""
        with self.lock:
            catalog = params["Catalog"]
            opp = self.opportunity(catalog, params["Identifier"])
            status = get_path(opp, "LifeCycle.ReviewStatus")
            if status in READ_ONLY_STATUSES or status == "Rejected":
                raise business_error(
                    "LifeCycle.ReviewStatus",
                    f"Opportunity {opp['Id']} cannot be updated while its ReviewStatus is {status}",
                    "INVALID_RESOURCE_STATE",
                )
            if parse_ts(params["LastModifiedDate"]) != opp["LastModifiedDate"]:
                raise ConflictException(
                    f"Opportunity {opp['Id']} was modified at {iso(opp['LastModifiedDate'])}; "
                    "fetch the latest version and retry"
                )
            new = {k: copy.deepcopy(params[k]) for k in PARTNER_FIELDS if params.get(k) is not None}
            new_lc = {k: v for k, v in new.get("LifeCycle", {}).items() if k not in REVIEW_OWNED}
            old_partner = {k: opp.get(k) for k in PARTNER_FIELDS}
            old_partner["LifeCycle"] = {
                k: v for k, v in (opp.get("LifeCycle") or {}).items() if k not in REVIEW_OWNED
            }
            new["LifeCycle"] = new_lc
            diff = changed_paths(old_partner, new)
            if status == "Action Required":
                denied = sorted(
                    p
                    for p in diff
                    if not any(p == a or p.startswith(a + ".") for a in ACTION_REQUIRED_EDITABLE)
                )
                if denied:
                    raise _not_permitted(
                        "Only a limited set of fields can be updated while ReviewStatus is Action Required",
                        denied,
                        "Field cannot be changed in Action Required",
                    )
            if status == "Approved":
                locked = sorted(p for p in diff if p in APPROVED_LOCKED)
                if locked:
                    raise _not_permitted(
                        "Fields cannot be changed after approval", locked, "Field is locked after approval"
                    )
            if status == "Action Required":
                self._require_submission_fields(new)
            _require_offering_for_stage(new, opp.get("RelatedEntityIdentifiers") or {})
            # Whole-record replace: omitted partner fields become null.
            lifecycle = opp.get("LifeCycle") or {}
            for k in REVIEW_OWNED:
                if k in lifecycle:
                    new_lc[k] = lifecycle[k]
            if new_lc.get("NextSteps") and new_lc.get("NextSteps") != lifecycle.get("NextSteps"):
                history = [
                    *lifecycle.get("NextStepsHistory", []),
                    {"Value": new_lc["NextSteps"], "Time": self.peek_now()},
                ]
                new_lc["NextStepsHistory"] = history[-50:]
            if status == "Action Required":
                # "After updates, the opportunity re-enters the validation phase" (LifeCycle.ReviewStatus).
                new_lc["ReviewStatus"] = "Submitted"
            for k in PARTNER_FIELDS:
                opp.pop(k, None)
            opp.update(new)
            self._changed(opp)
            return {"Id": opp["Id"], "LastModifiedDate": opp["LastModifiedDate"]}

    def _require_submission_fields(self, record: dict[str, Any]) -> None:
        missing = [p for p in SUBMISSION_REQUIRED if _empty(get_path(record, p))]
        if get_path(record, "Customer.Account.Industry") == "Other" and _empty(
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

    def _submit(self, opp: dict[str, Any], involvement: str, visibility: str | None) -> None:
        status = get_path(opp, "LifeCycle.ReviewStatus")
        if status != "Pending Submission":
            raise business_error(
                "LifeCycle.ReviewStatus",
                f"Opportunity {opp['Id']} can only be submitted from Pending Submission, not {status}",
                "INVALID_RESOURCE_STATE",
            )
        self._require_submission_fields(opp)
        _require_solutions(opp)
        opp["LifeCycle"]["ReviewStatus"] = "Submitted"
        self.store(opp["Catalog"])["aws_summaries"][opp["Id"]] = {
            "RelatedOpportunityId": opp["Id"],
            "Origin": opp.get("Origin", "Partner Referral"),
            "InvolvementType": involvement,
            "Visibility": visibility or "Full",
            "LifeCycle": {"Stage": "Not Started"},
        }
        self._changed(opp)

    def submit_opportunity(self, params: dict[str, Any]) -> None:
        """SubmitOpportunity: Pending Submission -> Submitted, after business validation."""
        with self.lock:
            opp = self.opportunity(params["Catalog"], params["Identifier"])
            self._submit(opp, params["InvolvementType"], params.get("Visibility"))

    def assign_opportunity(self, params: dict[str, Any]) -> None:
        """AssignOpportunity: the assignee becomes the opportunity owner (OpportunityTeam)."""
        with self.lock:
            opp = self.opportunity(params["Catalog"], params["Identifier"])
            if get_path(opp, "LifeCycle.ReviewStatus") == "Rejected":
                raise business_error(
                    "LifeCycle.ReviewStatus", "Rejected opportunities are read-only", "INVALID_RESOURCE_STATE"
                )
            a = params["Assignee"]
            member = {
                "Email": a["Email"],
                "FirstName": a["FirstName"],
                "LastName": a["LastName"],
                "BusinessTitle": a["BusinessTitle"],
            }
            if a.get("Phone"):
                member["Phone"] = a["Phone"]
            opp["OpportunityTeam"] = [member]
            self._changed(opp)

    def associate(self, params: dict[str, Any], associate: bool) -> None:
        """Associate/DisassociateOpportunity with a solution, AWS product or Marketplace entity.

        A solution must exist in the catalog (``ResourceNotFoundException``, like every unknown id here) and
        an opportunity holds at most 10 solutions; the last solution/product/offer of a ``Committed`` or
        ``Launched`` opportunity cannot be removed. A refused call leaves the record unchanged.
        """
        with self.lock:
            catalog = params["Catalog"]
            opp = self.opportunity(catalog, params["OpportunityIdentifier"])
            kind, ident = params["RelatedEntityType"], params["RelatedEntityIdentifier"]
            related = opp.get("RelatedEntityIdentifiers") or {}
            current = list(related.get(kind) or [])
            if associate:
                pattern = (
                    shapes.shape("RelatedEntityIdentifiers").members[kind].member.metadata.get("pattern")
                )
                if pattern and not shapes._regex(pattern).fullmatch(ident):
                    raise ValidationException(
                        f"RelatedEntityIdentifier is not a valid {kind} identifier",
                        [
                            {
                                "FieldName": "RelatedEntityIdentifier",
                                "Message": f"Must match {pattern}",
                                "Code": "INVALID_STRING_FORMAT",
                            }
                        ],
                    )
                if kind == "Solutions" and ident not in self.store(catalog)["solutions"]:
                    raise ResourceNotFoundException(f"Solution {ident} not found in catalog {catalog}")
                if kind == "Solutions" and ident not in current and len(current) >= MAX_SOLUTIONS:
                    raise business_error(
                        "RelatedEntityIdentifier",
                        f"Opportunity {opp['Id']} already has {len(current)} associated solutions; "
                        f"at most {MAX_SOLUTIONS} are allowed",
                        "TOO_MANY_VALUES",
                    )
                if ident not in current:
                    current.append(ident)
            else:
                if ident not in current:
                    raise ResourceNotFoundException(f"{kind} {ident} is not associated with {opp['Id']}")
                current.remove(ident)
                stage = get_path(opp, "LifeCycle.Stage")
                if stage in STAGES_NEEDING_OFFERING and not _has_offering({**related, kind: current}):
                    raise business_error(
                        "RelatedEntityIdentifier",
                        f"{ident} is the last solution, AWS product or AWS Marketplace offer of "
                        f"{opp['Id']}, which LifeCycle.Stage {stage} requires; associate another first",
                        "ACTION_NOT_PERMITTED",
                    )
            opp.setdefault("RelatedEntityIdentifiers", {})[kind] = current
            self._changed(opp)

    def aws_summary(self, catalog: str, identifier: str) -> dict[str, Any]:
        """GetAwsOpportunitySummary: AWS's view, which exists once the opportunity reached AWS."""
        with self.lock:
            opp = self.opportunity(catalog, identifier)
            summary = self.store(catalog)["aws_summaries"].get(identifier)
            if summary is None:
                raise ResourceNotFoundException(
                    f"No AWS opportunity summary for {identifier}: not submitted to AWS"
                )
            out = copy.deepcopy(summary)
            out["Catalog"] = catalog
            out.setdefault("Customer", {"Contacts": copy.deepcopy(get_path(opp, "Customer.Contacts") or [])})
            out.setdefault(
                "Project",
                {
                    "ExpectedCustomerSpend": copy.deepcopy(
                        get_path(opp, "Project.ExpectedCustomerSpend") or []
                    )
                },
            )
            return out

    def list_opportunities(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListOpportunities: filters, sort and cursor pagination.

        Default sort is LastModifiedDate DESCENDING (API reference ``OpportunitySort``); pages are O(page)
        after one sort per data version.
        """
        with self.lock:
            catalog = params["Catalog"]
            store = self.store(catalog)
            sort = params.get("Sort") or {"SortBy": "LastModifiedDate", "SortOrder": "DESCENDING"}
            filters = {
                k: params.get(k)
                for k in (
                    "Identifier",
                    "LifeCycleStage",
                    "LifeCycleReviewStatus",
                    "CustomerCompanyName",
                    "LastModifiedDate",
                    "CreatedDate",
                    "TargetCloseDate",
                )
            }
            fkey = json.dumps(filters, sort_keys=True, default=str)
            cache_key = (catalog, fkey, sort["SortBy"])
            cached = self._list_cache.get(cache_key)
            if cached is None or cached[0] != self._version:
                keyed = [
                    (self._sort_key(o, sort["SortBy"]), o["Id"])
                    for o in store["opportunities"].values()
                    if self._matches(o, filters)
                ]
                keyed.sort()
                cached = (self._version, keyed)
                if len(self._list_cache) > 64:
                    self._list_cache.clear()
                self._list_cache[cache_key] = cached
            keyed = cached[1]
            size = params.get("MaxResults") or 20
            descending = sort["SortOrder"] == "DESCENDING"
            if params.get("NextToken"):
                tok = decode_token(params["NextToken"])
                if tok.get("q") != _digest({"f": fkey, "s": sort}):
                    raise ValidationException(
                        "NextToken does not match the request",
                        [{"FieldName": "NextToken", "Message": "Invalid NextToken", "Code": "INVALID_VALUE"}],
                    )
                cursor = (tok["k"], tok["i"])
                pos = bisect.bisect_left(keyed, cursor) if descending else bisect.bisect_right(keyed, cursor)
            else:
                pos = len(keyed) if descending else 0
            if descending:
                page = keyed[max(0, pos - size) : pos][::-1]
                more = pos - size > 0
            else:
                page = keyed[pos : pos + size]
                more = pos + size < len(keyed)
            items = [store["opportunities"][i] for _, i in page]
            out: dict[str, Any] = {"OpportunitySummaries": items}
            if more and page:
                out["NextToken"] = encode_token(
                    {"k": page[-1][0], "i": page[-1][1], "q": _digest({"f": fkey, "s": sort})}
                )
            return out

    @staticmethod
    def _sort_key(opp: dict[str, Any], by: str) -> Any:
        if by == "LastModifiedDate":
            return opp["LastModifiedDate"]
        if by == "CreatedDate":
            return opp["CreatedDate"]
        if by == "Identifier":
            return int(opp["Id"][1:])
        if by == "CustomerCompanyName":
            return get_path(opp, "Customer.Account.CompanyName") or ""
        return get_path(opp, "LifeCycle.TargetCloseDate") or ""

    @staticmethod
    def _matches(opp: dict[str, Any], f: dict[str, Any]) -> bool:
        if f["Identifier"] and opp["Id"] not in f["Identifier"]:
            return False
        if f["LifeCycleStage"] and get_path(opp, "LifeCycle.Stage") not in f["LifeCycleStage"]:
            return False
        if (
            f["LifeCycleReviewStatus"]
            and get_path(opp, "LifeCycle.ReviewStatus") not in f["LifeCycleReviewStatus"]
        ):
            return False
        if (
            f["CustomerCompanyName"]
            and get_path(opp, "Customer.Account.CompanyName") not in f["CustomerCompanyName"]
        ):
            return False
        for name, field in (("LastModifiedDate", "LastModifiedDate"), ("CreatedDate", "CreatedDate")):
            rng = f[name] or {}
            after, before = rng.get(f"After{name}"), rng.get(f"Before{name}")
            # AfterLastModifiedDate is inclusive: "AWS only returns opportunities created or updated on or
            # after that date and time" (API reference ListOpportunities).
            if after is not None and opp[field] < parse_ts(after):
                return False
            if before is not None and opp[field] > parse_ts(before):
                return False
        tcd = f["TargetCloseDate"] or {}
        close = get_path(opp, "LifeCycle.TargetCloseDate")
        if tcd.get("AfterTargetCloseDate") and (not close or close < tcd["AfterTargetCloseDate"]):
            return False
        return not (tcd.get("BeforeTargetCloseDate") and (not close or close > tcd["BeforeTargetCloseDate"]))

    # ---------------------------------------------------------------------------- AWS-side simulation
    def simulate_review(
        self,
        catalog: str,
        identifier: str,
        review_status: str,
        comments: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """An AWS reviewer moves a submitted opportunity to In review/Approved/Action Required/Rejected."""
        allowed = ("In review", "Approved", "Action Required", "Rejected")
        if review_status not in allowed:
            raise ValueError(f"review_status must be one of {allowed}")
        with self.lock:
            opp = self.opportunity(catalog, identifier)
            current = get_path(opp, "LifeCycle.ReviewStatus")
            if current not in READ_ONLY_STATUSES:
                raise ConflictException(
                    f"Opportunity {identifier} is {current}; only submitted ones are reviewed"
                )
            lc = opp.setdefault("LifeCycle", {})
            lc["ReviewStatus"] = review_status
            for key, value in (("ReviewComments", comments), ("ReviewStatusReason", reason)):
                if value:
                    lc[key] = value
                else:
                    lc.pop(key, None)
            summary = self.store(catalog)["aws_summaries"].setdefault(
                identifier, {"RelatedOpportunityId": identifier}
            )
            if review_status == "Approved":
                summary["LifeCycle"] = {"Stage": "Prospect", "TargetCloseDate": lc.get("TargetCloseDate")}
                summary["OpportunityTeam"] = [
                    {
                        "Email": "aws.seller@amazon.com",
                        "FirstName": "Alex",
                        "LastName": "Seller",
                        "BusinessTitle": "AWSSalesRep",
                    }
                ]
            self._changed(opp)
            return {"identifier": identifier, "LastModifiedDate": iso(opp["LastModifiedDate"])}

    def simulate_aws_update(self, catalog: str, identifier: str, changes: dict[str, Any]) -> dict[str, Any]:
        """An AWS-side edit (console or AWS seller): deep-merged, validated against the model."""
        with self.lock:
            opp = self.opportunity(catalog, identifier)
            aws_part = changes.pop("AwsOpportunitySummary", None)
            merged = deep_merge(opp, changes)
            errors: list[dict[str, str]] = []
            out_shape = shapes.output_shape("GetOpportunity")
            shapes.validate(out_shape, shapes.project(out_shape, merged), "", errors, output=True)
            if errors:
                raise ValidationException("AWS-side update is not a valid opportunity", errors)
            opp.clear()
            opp.update(merged)
            if aws_part:
                summaries = self.store(catalog)["aws_summaries"]
                summaries[identifier] = deep_merge(
                    summaries.get(identifier, {"RelatedOpportunityId": identifier}), aws_part
                )
            self._changed(opp)
            return {"identifier": identifier, "LastModifiedDate": iso(opp["LastModifiedDate"])}

    def simulate_aws_referral(self, catalog: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """AWS sends this partner an opportunity invitation (an AWS referral)."""
        with self.lock:
            store = self.store(catalog)
            p = payload or {}
            customer = p.get("Customer") or {
                "Industry": "Software and Internet",
                "CompanyName": "Example Corp",
                "WebsiteUrl": "https://example.com",
                "CountryCode": "US",
            }
            project = p.get("Project") or {
                "Title": "Cloud migration",
                "BusinessProblem": "Customer needs to migrate on-premises workloads.",
                "TargetCompletionDate": (dt.date.today() + dt.timedelta(days=90)).isoformat(),
                "ExpectedCustomerSpend": [
                    {"Amount": "5000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}
                ],
            }
            now = self.now()
            eng = self._new_engagement(
                catalog,
                title=p.get("Title", project["Title"][:40]),
                created_by=AWS_ACCOUNT,
                description=p.get("Description", "AWS referral"),
            )
            eng["Members"].append(
                {
                    "CompanyName": "Amazon Web Services",
                    "WebsiteUrl": "https://aws.amazon.com",
                    "AccountId": AWS_ACCOUNT,
                }
            )
            inv_payload = {
                "OpportunityInvitation": {
                    "SenderContacts": p.get("SenderContacts")
                    or [
                        {
                            "Email": "aws.seller@amazon.com",
                            "FirstName": "Alex",
                            "LastName": "Seller",
                            "BusinessTitle": "AWS Sales",
                        }
                    ],
                    "ReceiverResponsibilities": p.get("ReceiverResponsibilities") or ["Services Partner"],
                    "Customer": customer,
                    "Project": project,
                }
            }
            inv = self._new_invitation(
                catalog,
                eng,
                inv_payload,
                sender=AWS_ACCOUNT,
                sender_name="Amazon Web Services",
                receiver=self.account_id,
                participant="RECEIVER",
                message=p.get("Message", "AWS would like to co-sell this opportunity with you"),
            )
            store["engagements"][eng["Id"]] = eng
            return {
                "engagement_id": eng["Id"],
                "invitation_id": inv["Id"],
                "invitation_arn": inv["Arn"],
                "invitation_date": iso(now),
            }

    # ----------------------------------------------------------------------------------- engagements
    def _new_engagement(
        self,
        catalog: str,
        title: str | None,
        created_by: str,
        description: str | None = None,
        contexts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        store = self.store(catalog)
        eid = f"eng-{self._rand_id(14)}"
        now = self.now()
        eng = {
            "Id": eid,
            "Arn": self._arn(catalog, "engagement", eid),
            "Title": title,
            "Description": description,
            "CreatedAt": now,
            "CreatedBy": created_by,
            "ModifiedAt": now,
            "ModifiedBy": created_by,
            "Contexts": [],
            "Members": [],
            "Catalog": catalog,
            "Resources": [],
        }
        if created_by == self.account_id:
            eng["Members"].append(self._me())
        for ctx in contexts or []:
            self._add_context(eng, ctx)
        store["engagements"][eid] = eng
        return eng

    def _me(self) -> dict[str, Any]:
        return {
            "CompanyName": "Example Partner",
            "WebsiteUrl": "https://partner.example.com",
            "AccountId": self.account_id,
        }

    def _add_context(self, eng: dict[str, Any], ctx: dict[str, Any]) -> str:
        if len(eng["Contexts"]) >= 5:
            raise ServiceQuotaExceededException(f"Engagement {eng['Id']} already has 5 contexts")
        cid = str(len(eng["Contexts"]) + 1)
        eng["Contexts"].append(
            {"Id": cid, "Type": ctx["Type"], "Payload": copy.deepcopy(ctx.get("Payload") or {})}
        )
        return cid

    def engagement(self, catalog: str, identifier: str) -> dict[str, Any]:
        """Engagement by id or ARN, or ``ResourceNotFoundException``."""
        eid = identifier.rsplit("/", 1)[-1]
        eng = self.store(catalog)["engagements"].get(eid)
        if eng is None:
            raise ResourceNotFoundException(f"Engagement {identifier} not found in catalog {catalog}")
        return eng

    def create_engagement(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateEngagement (idempotent on ClientToken)."""

        def action() -> dict[str, Any]:
            with self.lock:
                eng = self._new_engagement(
                    params["Catalog"],
                    params.get("Title"),
                    self.account_id,
                    params.get("Description"),
                    params.get("Contexts"),
                )
                return {"Id": eng["Id"], "Arn": eng["Arn"], "ModifiedAt": eng["ModifiedAt"]}

        return self.idempotent(params["Catalog"], "CreateEngagement", params, action)

    def create_engagement_context(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateEngagementContext: add a context (at most 5 per engagement, model ``EngagementContexts``)."""

        def action() -> dict[str, Any]:
            with self.lock:
                eng = self.engagement(params["Catalog"], params["EngagementIdentifier"])
                cid = self._add_context(eng, {"Type": params["Type"], "Payload": params["Payload"]})
                eng["ModifiedAt"], eng["ModifiedBy"] = self.now(), self.account_id
                return {
                    "EngagementId": eng["Id"],
                    "EngagementArn": eng["Arn"],
                    "EngagementLastModifiedAt": eng["ModifiedAt"],
                    "ContextId": cid,
                }

        return self.idempotent(params["Catalog"], "CreateEngagementContext", params, action)

    def update_engagement_context(self, params: dict[str, Any]) -> dict[str, Any]:
        """UpdateEngagementContext: optimistic lock on ``EngagementLastModifiedAt``."""
        with self.lock:
            eng = self.engagement(params["Catalog"], params["EngagementIdentifier"])
            if parse_ts(params["EngagementLastModifiedAt"]) != eng["ModifiedAt"]:
                raise ConflictException(f"Engagement {eng['Id']} was modified at {iso(eng['ModifiedAt'])}")
            ctx = next((c for c in eng["Contexts"] if c["Id"] == params["ContextIdentifier"]), None)
            if ctx is None:
                raise ResourceNotFoundException(
                    f"Context {params['ContextIdentifier']} not found in {eng['Id']}"
                )
            if ctx["Type"] != params["Type"]:
                raise business_error("Type", f"Context {ctx['Id']} is of type {ctx['Type']}", "INVALID_VALUE")
            payload = copy.deepcopy(params["Payload"])
            if "Lead" in payload:
                lead = payload["Lead"]
                old = ctx["Payload"].get("Lead", {})
                interactions = list(old.get("Interactions", []))
                if lead.get("Interaction"):
                    interactions.append(lead.pop("Interaction"))
                lead["Interactions"] = interactions[-10:]
            ctx["Payload"] = payload
            eng["ModifiedAt"], eng["ModifiedBy"] = self.now(), self.account_id
            return {
                "EngagementId": eng["Id"],
                "EngagementArn": eng["Arn"],
                "EngagementLastModifiedAt": eng["ModifiedAt"],
                "ContextId": ctx["Id"],
            }

    def get_engagement(self, catalog: str, identifier: str) -> dict[str, Any]:
        """GetEngagement."""
        with self.lock:
            eng = self.engagement(catalog, identifier)
            return {**eng, "MemberCount": len(eng["Members"])}

    def list_engagements(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagements with its filters and CreatedDate sort."""
        with self.lock:
            items = []
            for eng in self.store(params["Catalog"])["engagements"].values():
                types = {c["Type"] for c in eng["Contexts"]}
                if params.get("EngagementIdentifier") and eng["Id"] not in {
                    i.rsplit("/", 1)[-1] for i in params["EngagementIdentifier"]
                }:
                    continue
                if params.get("CreatedBy") and eng["CreatedBy"] not in params["CreatedBy"]:
                    continue
                if params.get("ExcludeCreatedBy") and eng["CreatedBy"] in params["ExcludeCreatedBy"]:
                    continue
                if params.get("ContextTypes") and not types & set(params["ContextTypes"]):
                    continue
                if params.get("ExcludeContextTypes") and types & set(params["ExcludeContextTypes"]):
                    continue
                items.append({**eng, "MemberCount": len(eng["Members"]), "ContextTypes": sorted(types)})
            order = (params.get("Sort") or {}).get("SortOrder", "DESCENDING")
            items.sort(key=lambda e: (e["CreatedAt"], e["Id"]), reverse=order == "DESCENDING")
            page, nxt = paginate(items, params, 20)
            return {"EngagementSummaryList": page, "NextToken": nxt}

    def list_engagement_members(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagementMembers (at most 10 a page, model ``MemberPageSize``)."""
        with self.lock:
            eng = self.engagement(params["Catalog"], params["Identifier"])
            page, nxt = paginate(list(eng["Members"]), params, 10)
            return {"EngagementMemberList": page, "NextToken": nxt}

    def list_engagement_resource_associations(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagementResourceAssociations."""
        with self.lock:
            items = []
            for eng in self.store(params["Catalog"])["engagements"].values():
                if params.get("EngagementIdentifier") and eng["Id"] != params["EngagementIdentifier"]:
                    continue
                for res in eng["Resources"]:
                    if params.get("ResourceIdentifier") and res["ResourceId"] != params["ResourceIdentifier"]:
                        continue
                    if params.get("CreatedBy") and res["CreatedBy"] != params["CreatedBy"]:
                        continue
                    items.append({"Catalog": params["Catalog"], "EngagementId": eng["Id"], **res})
            page, nxt = paginate(items, params, 100)
            return {"EngagementResourceAssociationSummaries": page, "NextToken": nxt}

    def _associate_resource(self, eng: dict[str, Any], oid: str, created_by: str) -> None:
        if not any(r["ResourceId"] == oid for r in eng["Resources"]):
            eng["Resources"].append(
                {"ResourceType": "Opportunity", "ResourceId": oid, "CreatedBy": created_by}
            )

    # ----------------------------------------------------------------------------------- invitations
    def _new_invitation(
        self,
        catalog: str,
        eng: dict[str, Any],
        payload: dict[str, Any],
        sender: str,
        sender_name: str,
        receiver: str,
        participant: str,
        message: str,
    ) -> dict[str, Any]:
        iid = f"engi-{self._rand_id(13)}"
        now = self.now()
        inv = {
            "Id": iid,
            "Arn": f"arn:aws:partnercentral::{self.account_id}:{catalog}/engagement-invitation/{iid}",
            "Catalog": catalog,
            "EngagementId": eng["Id"],
            "EngagementTitle": eng.get("Title"),
            "EngagementDescription": eng.get("Description"),
            "Status": "PENDING",
            "InvitationDate": now,
            # Invitations expire 15 days after they are sent (API reference EngagementInvitationSummary).
            "ExpirationDate": now + INVITATION_TTL_MS,
            "SenderAwsAccountId": sender,
            "SenderCompanyName": sender_name,
            "Receiver": {"Account": {"AwsAccountId": receiver}},
            "ParticipantType": participant,
            "PayloadType": next(iter(payload)),
            "Payload": payload,
            "InvitationMessage": message,
            "ExistingMembers": [
                {"CompanyName": m["CompanyName"], "WebsiteUrl": m.get("WebsiteUrl")} for m in eng["Members"]
            ],
        }
        self.store(catalog)["invitations"][iid] = inv
        self._invitation_event("Engagement Invitation Created", inv, created=True)
        return inv

    def _invitation_event(self, detail_type: str, inv: dict[str, Any], created: bool = False) -> None:
        # Detail shape: developer guide, "Engagement Invitation Created/Accepted/Rejected/Expired" samples;
        # participantType is mixed case in events (Sender/Receiver).
        detail = {
            "arn": inv["Arn"],
            "id": inv["Id"],
            "engagementId": inv["EngagementId"],
            "senderAccountId": inv["SenderAwsAccountId"],
            "receiverAccountId": inv["Receiver"]["Account"]["AwsAccountId"],
            "participantType": inv["ParticipantType"].capitalize(),
            "payloadType": inv["PayloadType"],
        }
        if created:
            detail["senderCompanyName"] = inv["SenderCompanyName"]
            detail["expirationDate"] = iso(inv["ExpirationDate"])
        self._emit(detail_type, {"catalog": inv["Catalog"], "engagementInvitation": detail}, [inv["Arn"]])

    def expire_invitations(self) -> None:
        """Mark PENDING invitations past their ExpirationDate as EXPIRED (and emit the event)."""
        with self.lock:
            now = self.peek_now()
            for store in self.stores.values():
                for inv in store["invitations"].values():
                    if inv["Status"] == "PENDING" and inv["ExpirationDate"] <= now:
                        inv["Status"] = "EXPIRED"
                        self._invitation_event("Engagement Invitation Expired", inv)

    def invitation(self, catalog: str, identifier: str) -> dict[str, Any]:
        """Invitation by id or ARN, or ``ResourceNotFoundException``."""
        iid = identifier.rsplit("/", 1)[-1]
        inv = self.store(catalog)["invitations"].get(iid)
        if inv is None:
            raise ResourceNotFoundException(
                f"Engagement invitation {identifier} not found in catalog {catalog}"
            )
        return inv

    def create_engagement_invitation(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateEngagementInvitation: we invite another account into our engagement."""

        def action() -> dict[str, Any]:
            with self.lock:
                eng = self.engagement(params["Catalog"], params["EngagementIdentifier"])
                invitation = params["Invitation"]
                if not invitation["Payload"]:
                    raise ValidationException(
                        "Invitation.Payload must set one member",
                        [
                            {
                                "FieldName": "Invitation.Payload",
                                "Message": "Payload is empty",
                                "Code": "REQUIRED_FIELD_MISSING",
                            }
                        ],
                    )
                receiver = (invitation.get("Receiver") or {}).get("Account", {}).get("AwsAccountId")
                if not receiver:
                    raise ValidationException(
                        "Invitation.Receiver.Account is required",
                        [
                            {
                                "FieldName": "Invitation.Receiver",
                                "Message": "Receiver is required",
                                "Code": "REQUIRED_FIELD_MISSING",
                            }
                        ],
                    )
                inv = self._new_invitation(
                    params["Catalog"],
                    eng,
                    invitation["Payload"],
                    self.account_id,
                    "Example Partner",
                    receiver,
                    "SENDER",
                    invitation["Message"],
                )
                return {"Id": inv["Id"], "Arn": inv["Arn"]}

        return self.idempotent(params["Catalog"], "CreateEngagementInvitation", params, action)

    def _receivable(self, inv: dict[str, Any]) -> None:
        if inv["ParticipantType"] != "RECEIVER":
            raise AccessDeniedException(
                f"Invitation {inv['Id']} was sent by this account; only the receiver responds"
            )
        if inv["Status"] != "PENDING":
            raise ConflictException(f"Invitation {inv['Id']} is {inv['Status']}, not PENDING")

    def accept_invitation(self, catalog: str, identifier: str) -> dict[str, Any]:
        """AcceptEngagementInvitation: join the engagement."""
        with self.lock:
            self.expire_invitations()
            inv = self.invitation(catalog, identifier)
            self._receivable(inv)
            inv["Status"] = "ACCEPTED"
            eng = self.engagement(catalog, inv["EngagementId"])
            if not any(m["AccountId"] == self.account_id for m in eng["Members"]):
                eng["Members"].append(self._me())
                self._emit(
                    "Engagement Member Added",
                    {
                        "catalog": catalog,
                        "engagement": {"id": eng["Id"]},
                        "engagementMember": {"accountId": self.account_id, "companyName": "Example Partner"},
                    },
                    [eng["Arn"]],
                )
            eng["ModifiedAt"] = self.now()
            self._invitation_event("Engagement Invitation Accepted", inv)
            return inv

    def reject_invitation(self, catalog: str, identifier: str, reason: str | None) -> None:
        """RejectEngagementInvitation."""
        with self.lock:
            self.expire_invitations()
            inv = self.invitation(catalog, identifier)
            self._receivable(inv)
            inv["Status"] = "REJECTED"
            if reason:
                inv["RejectionReason"] = reason
            self._invitation_event("Engagement Invitation Rejected", inv)

    def list_invitations(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagementInvitations for one participant side."""
        with self.lock:
            self.expire_invitations()
            items = []
            for inv in self.store(params["Catalog"])["invitations"].values():
                if inv["ParticipantType"] != params["ParticipantType"]:
                    continue
                if params.get("PayloadType") and inv["PayloadType"] not in params["PayloadType"]:
                    continue
                if params.get("Status") and inv["Status"] not in params["Status"]:
                    continue
                if params.get("EngagementIdentifier") and inv["EngagementId"] not in {
                    i.rsplit("/", 1)[-1] for i in params["EngagementIdentifier"]
                }:
                    continue
                if (
                    params.get("SenderAwsAccountId")
                    and inv["SenderAwsAccountId"] not in params["SenderAwsAccountId"]
                ):
                    continue
                items.append(inv)
            order = (params.get("Sort") or {}).get("SortOrder", "DESCENDING")
            items.sort(key=lambda i: (i["InvitationDate"], i["Id"]), reverse=order == "DESCENDING")
            page, nxt = paginate(items, params, 20)
            return {"EngagementInvitationSummaries": page, "NextToken": nxt}

    # ---------------------------------------------------------------------------- resource snapshots
    def _snapshot(self, catalog: str, eid: str, oid: str, template: str) -> dict[str, Any]:
        opp = self.opportunity(catalog, oid)
        key = f"{eid}|{oid}|{template}"
        revisions = self.store(catalog)["snapshots"].setdefault(key, [])
        rev = len(revisions) + 1
        view = copy.deepcopy(opp)
        view["Lifecycle"] = view.get("LifeCycle")
        snap = {
            "Catalog": catalog,
            "EngagementId": eid,
            "ResourceType": "Opportunity",
            "ResourceId": oid,
            "ResourceSnapshotTemplateName": template,
            "Revision": rev,
            "CreatedBy": self.account_id,
            "CreatedAt": self.now(),
            "Arn": self._arn(
                catalog,
                "engagement",
                f"{eid}/resource/Opportunity/{oid}/template/{template}/resource-snapshot/{rev}",
            ),
            "Payload": {"OpportunitySummary": shapes.project(shapes.shape("OpportunitySummaryView"), view)},
        }
        revisions.append(snap)
        self._emit(
            "Engagement Resource Snapshot Created",
            {
                "catalog": catalog,
                "resourceSnapshot": {
                    "arn": snap["Arn"],
                    "engagementId": eid,
                    "resourceType": "Opportunity",
                    "resourceId": oid,
                    "createdBy": self.account_id,
                    "revision": rev,
                    "resourceSnapshotTemplateName": template,
                },
            },
            [snap["Arn"]],
        )
        return snap

    def _check_associated(self, catalog: str, eid: str, oid: str) -> dict[str, Any]:
        eng = self.engagement(catalog, eid)
        self.opportunity(catalog, oid)
        if not any(r["ResourceId"] == oid for r in eng["Resources"]):
            raise business_error(
                "ResourceIdentifier",
                f"Opportunity {oid} is not associated with engagement {eid}",
                "INVALID_VALUE",
            )
        return eng

    def create_resource_snapshot(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateResourceSnapshot: a new revision of the opportunity's view in the engagement."""

        def action() -> dict[str, Any]:
            with self.lock:
                c, e, o = params["Catalog"], params["EngagementIdentifier"], params["ResourceIdentifier"]
                self._check_associated(c, e, o)
                snap = self._snapshot(c, e, o, params["ResourceSnapshotTemplateIdentifier"])
                return {"Arn": snap["Arn"], "Revision": snap["Revision"]}

        return self.idempotent(params["Catalog"], "CreateResourceSnapshot", params, action)

    def get_resource_snapshot(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetResourceSnapshot: the given revision, or the latest."""
        with self.lock:
            key = (
                f"{params['EngagementIdentifier']}|{params['ResourceIdentifier']}|"
                f"{params['ResourceSnapshotTemplateIdentifier']}"
            )
            revisions = self.store(params["Catalog"])["snapshots"].get(key) or []
            rev = params.get("Revision") or len(revisions)
            if not revisions or rev > len(revisions):
                raise ResourceNotFoundException(f"No resource snapshot revision {rev} for {key}")
            snap = revisions[rev - 1]
            return {**snap, "ResourceSnapshotTemplateName": snap["ResourceSnapshotTemplateName"]}

    def list_resource_snapshots(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListResourceSnapshots of one engagement."""
        with self.lock:
            catalog = params["Catalog"]
            self.engagement(catalog, params["EngagementIdentifier"])
            items = []
            for revisions in self.store(catalog)["snapshots"].values():
                for snap in revisions:
                    if snap["EngagementId"] != params["EngagementIdentifier"]:
                        continue
                    if (
                        params.get("ResourceIdentifier")
                        and snap["ResourceId"] != params["ResourceIdentifier"]
                    ):
                        continue
                    if (
                        params.get("ResourceSnapshotTemplateIdentifier")
                        and snap["ResourceSnapshotTemplateName"]
                        != params["ResourceSnapshotTemplateIdentifier"]
                    ):
                        continue
                    if params.get("CreatedBy") and snap["CreatedBy"] != params["CreatedBy"]:
                        continue
                    items.append(snap)
            page, nxt = paginate(items, params, 100)
            return {"ResourceSnapshotSummaries": page, "NextToken": nxt}

    def job(self, catalog: str, identifier: str) -> dict[str, Any]:
        """Resource snapshot job or ``ResourceNotFoundException``."""
        job = self.store(catalog)["snapshot_jobs"].get(identifier)
        if job is None:
            raise ResourceNotFoundException(
                f"Resource snapshot job {identifier} not found in catalog {catalog}"
            )
        return job

    def _new_job(
        self,
        catalog: str,
        eid: str,
        oid: str,
        template: str,
        tags: list[dict[str, str]] | None,
        status: str = "Stopped",
    ) -> dict[str, Any]:
        jid = f"job-{self._rand_id(13)}"
        opp = self.opportunity(catalog, oid)
        job = {
            "Catalog": catalog,
            "Id": jid,
            "Arn": self._arn(catalog, "resource-snapshot-job", jid),
            "EngagementId": eid,
            "ResourceType": "Opportunity",
            "ResourceId": oid,
            "ResourceArn": opp["Arn"],
            "ResourceSnapshotTemplateName": template,
            "CreatedAt": self.now(),
            "Status": status,
        }
        self.store(catalog)["snapshot_jobs"][jid] = job
        if tags:
            self.tags[job["Arn"]] = {t["Key"]: t["Value"] for t in tags}
        return job

    def create_resource_snapshot_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateResourceSnapshotJob (created Stopped; StartResourceSnapshotJob runs it)."""

        def action() -> dict[str, Any]:
            with self.lock:
                c, e, o = params["Catalog"], params["EngagementIdentifier"], params["ResourceIdentifier"]
                self._check_associated(c, e, o)
                template = params["ResourceSnapshotTemplateIdentifier"]
                if any(
                    j["EngagementId"] == e
                    and j["ResourceId"] == o
                    and j["ResourceSnapshotTemplateName"] == template
                    for j in self.store(c)["snapshot_jobs"].values()
                ):
                    raise ConflictException(
                        f"A snapshot job for {o} in {e} with template {template} already exists"
                    )
                job = self._new_job(c, e, o, template, params.get("Tags"))
                return {"Id": job["Id"], "Arn": job["Arn"]}

        return self.idempotent(params["Catalog"], "CreateResourceSnapshotJob", params, action)

    def set_job_status(self, catalog: str, identifier: str, status: str) -> None:
        """Start/StopResourceSnapshotJob; starting takes a snapshot right away."""
        with self.lock:
            job = self.job(catalog, identifier)
            job["Status"] = status
            if status == "Running":
                self._snapshot(
                    catalog, job["EngagementId"], job["ResourceId"], job["ResourceSnapshotTemplateName"]
                )
                job["LastSuccessfulExecutionDate"] = self.peek_now()

    def delete_job(self, catalog: str, identifier: str) -> None:
        """DeleteResourceSnapshotJob: only a stopped job can be deleted (API reference)."""
        with self.lock:
            job = self.job(catalog, identifier)
            if job["Status"] == "Running":
                raise ConflictException(
                    f"Resource snapshot job {identifier} is Running; stop it before deleting"
                )
            del self.store(catalog)["snapshot_jobs"][identifier]
            self.tags.pop(job["Arn"], None)

    def list_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListResourceSnapshotJobs."""
        with self.lock:
            items = [
                j
                for j in self.store(params["Catalog"])["snapshot_jobs"].values()
                if (
                    not params.get("EngagementIdentifier")
                    or j["EngagementId"] == params["EngagementIdentifier"]
                )
                and (not params.get("Status") or j["Status"] == params["Status"])
            ]
            order = (params.get("Sort") or {}).get("SortOrder", "DESCENDING")
            items.sort(key=lambda j: (j["CreatedAt"], j["Id"]), reverse=order == "DESCENDING")
            page, nxt = paginate(items, params, 100)
            return {"ResourceSnapshotJobSummaries": page, "NextToken": nxt}

    # -------------------------------------------------------------------------------------- tasks
    def _new_task(self, catalog: str, kind: str, fields: dict[str, Any], digits: int = 13) -> dict[str, Any]:
        tid = f"task-{self._rand_id(digits)}"
        segment = {"ProspectingFromEngagement": "prospecting-from-engagement-task"}.get(
            kind,
            f"{kind[0].lower()}{''.join('-' + ch.lower() if ch.isupper() else ch for ch in kind[1:])}-task",
        )
        arn = (
            f"arn:aws:partnercentral-selling:{self.region}:{self.account_id}"
            f":catalog/{catalog}/{segment}/{tid}"
            if kind == "ProspectingFromEngagement"
            else self._arn(catalog, segment, tid)
        )
        task = {
            "TaskId": tid,
            "TaskArn": arn,
            "StartTime": self.now(),
            "TaskStatus": "IN_PROGRESS",
            "Catalog": catalog,
            **fields,
        }
        self.store(catalog)["tasks"][kind][tid] = task
        # Tasks are asynchronous: they finish after task_delay_ms (see run_due_tasks).
        self._pending.append((self.peek_now() + self.task_delay_ms, catalog, kind, tid))
        if self.task_delay_ms > 0:
            timer = threading.Timer(self.task_delay_ms / 1000 + 0.01, self.run_due_tasks)
            timer.daemon = True
            timer.start()
        else:
            self.run_due_tasks()
        return task

    def run_due_tasks(self) -> None:
        """Finish every task whose time has come (called before each request and by timers)."""
        with self.lock:
            now = self.peek_now()
            due = [p for p in self._pending if p[0] <= now]
            if not due:
                return
            self._pending = [p for p in self._pending if p[0] > now]
            for _, catalog, kind, tid in due:
                task = self.store(catalog)["tasks"][kind].get(tid)
                if task is not None:
                    getattr(self, f"_finish_{kind}")(catalog, task)

    def _fail(self, task: dict[str, Any], code: str, message: str) -> None:
        task.update({"TaskStatus": "FAILED", "ReasonCode": code, "Message": message})

    def start_engagement_from_opportunity(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartEngagementFromOpportunityTask: submits the opportunity to AWS asynchronously."""

        def action() -> dict[str, Any]:
            with self.lock:
                catalog = params["Catalog"]
                self.opportunity(catalog, params["Identifier"])
                task = self._new_task(
                    catalog,
                    "EngagementFromOpportunity",
                    {"OpportunityId": params["Identifier"], "_submission": params["AwsSubmission"]},
                )
                if params.get("Tags"):
                    self.tags[task["TaskArn"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
                return copy.deepcopy(task) | {"TaskStatus": "IN_PROGRESS"}

        return self.idempotent(params["Catalog"], "StartEngagementFromOpportunityTask", params, action)

    def _finish_EngagementFromOpportunity(self, catalog: str, task: dict[str, Any]) -> None:
        opp = self.opportunity(catalog, task["OpportunityId"])
        sub = task["_submission"]
        try:
            self._submit(opp, sub["InvolvementType"], sub.get("Visibility"))
        except ValidationException as err:
            self._fail(task, "OpportunityValidationFailed", err.message)
            return
        account = get_path(opp, "Customer.Account") or {}
        eng = self._new_engagement(
            catalog,
            (get_path(opp, "Project.Title") or opp["Id"])[:40],
            self.account_id,
            contexts=[
                {
                    "Type": "CustomerProject",
                    "Payload": {
                        "CustomerProject": {
                            "Customer": {
                                "Industry": account.get("Industry", "Other"),
                                "CompanyName": account.get("CompanyName", "Unknown"),
                                "WebsiteUrl": account.get("WebsiteUrl", "https://unknown.example"),
                                "CountryCode": get_path(account, "Address.CountryCode") or "US",
                            },
                            "Project": {
                                "Title": get_path(opp, "Project.Title") or opp["Id"],
                                "BusinessProblem": get_path(opp, "Project.CustomerBusinessProblem"),
                                "TargetCompletionDate": get_path(opp, "LifeCycle.TargetCloseDate"),
                            },
                        }
                    },
                }
            ],
        )
        self._associate_resource(eng, opp["Id"], self.account_id)
        self._emit(
            "Engagement Member Added",
            {
                "catalog": catalog,
                "engagement": {"id": eng["Id"]},
                "engagementMember": {"accountId": self.account_id, "companyName": "Example Partner"},
            },
            [eng["Arn"]],
        )
        job = self._new_job(catalog, eng["Id"], opp["Id"], DEFAULT_TEMPLATE, None, status="Running")
        self._snapshot(catalog, eng["Id"], opp["Id"], DEFAULT_TEMPLATE)
        job["LastSuccessfulExecutionDate"] = self.peek_now()
        inv = self._new_invitation(
            catalog,
            eng,
            {
                "OpportunityInvitation": {
                    "ReceiverResponsibilities": ["Co-Sell Facilitator"],
                    "Customer": eng["Contexts"][0]["Payload"]["CustomerProject"]["Customer"],
                    "Project": {
                        "Title": get_path(opp, "Project.Title"),
                        "BusinessProblem": get_path(opp, "Project.CustomerBusinessProblem"),
                        "TargetCompletionDate": get_path(opp, "LifeCycle.TargetCloseDate"),
                        "ExpectedCustomerSpend": get_path(opp, "Project.ExpectedCustomerSpend") or [],
                    },
                }
            },
            self.account_id,
            "Example Partner",
            AWS_ACCOUNT,
            "SENDER",
            "Co-sell request",
        )
        task.update(
            {
                "TaskStatus": "COMPLETE",
                "EngagementId": eng["Id"],
                "ResourceSnapshotJobId": job["Id"],
                "EngagementInvitationId": inv["Id"],
            }
        )

    def start_engagement_by_accepting_invitation(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartEngagementByAcceptingInvitationTask: accept an AWS referral and get an opportunity for it."""

        def action() -> dict[str, Any]:
            with self.lock:
                catalog = params["Catalog"]
                inv = self.invitation(catalog, params["Identifier"])
                task = self._new_task(
                    catalog, "EngagementByAcceptingInvitation", {"EngagementInvitationId": inv["Id"]}
                )
                if params.get("Tags"):
                    self.tags[task["TaskArn"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
                return copy.deepcopy(task) | {"TaskStatus": "IN_PROGRESS"}

        return self.idempotent(params["Catalog"], "StartEngagementByAcceptingInvitationTask", params, action)

    def _finish_EngagementByAcceptingInvitation(self, catalog: str, task: dict[str, Any]) -> None:
        inv = self.invitation(catalog, task["EngagementInvitationId"])
        try:
            inv = self.accept_invitation(catalog, inv["Id"])
        except (ConflictException, AccessDeniedException) as err:
            self._fail(task, "InvitationValidationFailed", err.message)
            return
        payload = inv["Payload"].get("OpportunityInvitation")
        if payload is None:
            task["TaskStatus"] = "COMPLETE"
            return
        cust, proj = payload["Customer"], payload["Project"]
        created = self._create_referral(catalog, cust, proj)
        oid = created["Id"]
        eng = self.engagement(catalog, inv["EngagementId"])
        self._associate_resource(eng, oid, self.account_id)
        self.store(catalog)["aws_summaries"][oid] = {
            "RelatedOpportunityId": oid,
            "Origin": "AWS Referral",
            "InvolvementType": "Co-Sell",
            "Visibility": "Full",
            "LifeCycle": {"Stage": "Prospect"},
        }
        job = self._new_job(catalog, eng["Id"], oid, DEFAULT_TEMPLATE, None, status="Running")
        task.update({"TaskStatus": "COMPLETE", "OpportunityId": oid, "ResourceSnapshotJobId": job["Id"]})

    def _create_referral(self, catalog: str, cust: dict[str, Any], proj: dict[str, Any]) -> dict[str, Any]:
        # AWS itself creates the opportunity for an accepted referral, so the Sandbox-only Origin rule
        # (which governs partner CreateOpportunity calls) does not apply here.
        params = {
            "Customer": {
                "Account": {
                    "CompanyName": cust["CompanyName"],
                    "Industry": cust["Industry"],
                    "WebsiteUrl": cust["WebsiteUrl"],
                    "Address": {"CountryCode": cust["CountryCode"]},
                }
            },
            "Project": {
                "Title": proj["Title"],
                "CustomerBusinessProblem": proj["BusinessProblem"],
                "ExpectedCustomerSpend": proj.get("ExpectedCustomerSpend") or [],
            },
            "OpportunityType": "Net New Business",
            "LifeCycle": {"Stage": "Prospect", "TargetCloseDate": proj["TargetCompletionDate"]},
        }
        store = self.store(catalog)
        store["next_opp"] += 1
        oid = f"O{store['next_opp']}"
        now = self.now()
        record = {k: copy.deepcopy(params[k]) for k in PARTNER_FIELDS if k in params}
        record.update(
            {
                "Catalog": catalog,
                "Id": oid,
                "Arn": self._arn(catalog, "opportunity", oid),
                "CreatedDate": now,
                "LastModifiedDate": now,
                "RelatedEntityIdentifiers": {},
                "Origin": "AWS Referral",
            }
        )
        store["opportunities"][oid] = record
        self._touch()
        self._opportunity_event("Opportunity Created", record)
        return {"Id": oid}

    def start_opportunity_from_engagement(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartOpportunityFromEngagementTask: an opportunity from an engagement context."""

        def action() -> dict[str, Any]:
            with self.lock:
                eng = self.engagement(params["Catalog"], params["Identifier"])
                task = self._new_task(
                    params["Catalog"],
                    "OpportunityFromEngagement",
                    {"EngagementId": eng["Id"], "ContextId": params["ContextIdentifier"]},
                )
                return copy.deepcopy(task) | {"TaskStatus": "IN_PROGRESS"}

        return self.idempotent(params["Catalog"], "StartOpportunityFromEngagementTask", params, action)

    def _finish_OpportunityFromEngagement(self, catalog: str, task: dict[str, Any]) -> None:
        eng = self.engagement(catalog, task["EngagementId"])
        ctx = next((c for c in eng["Contexts"] if c["Id"] == task["ContextId"]), None)
        if ctx is None:
            self._fail(task, "ContextNotFound", f"Context {task['ContextId']} not found in {eng['Id']}")
            return
        if ctx["Type"] == "CustomerProject":
            cp = ctx["Payload"].get("CustomerProject") or {}
            cust, proj = cp.get("Customer") or {}, cp.get("Project") or {}
            account = {
                "CompanyName": cust.get("CompanyName", "Unknown"),
                "Industry": cust.get("Industry"),
                "WebsiteUrl": cust.get("WebsiteUrl"),
                "Address": {"CountryCode": cust.get("CountryCode")},
            }
            project = {"Title": proj.get("Title"), "CustomerBusinessProblem": proj.get("BusinessProblem")}
            close = proj.get("TargetCompletionDate")
        elif ctx["Type"] == "Lead":
            lead = ctx["Payload"].get("Lead") or {}
            if (lead.get("QualificationStatus") or "").lower() == "disqualified":
                self._fail(
                    task, "DisqualifiedLeadNotPermitted", "Disqualified leads cannot become opportunities"
                )
                return
            cust = lead.get("Customer") or {}
            account = {
                "CompanyName": cust.get("CompanyName", "Unknown"),
                "WebsiteUrl": cust.get("WebsiteUrl"),
            }
            project, close = {}, None
        else:
            self._fail(
                task, "CustomerProjectContextNotPermitted", f"Context type {ctx['Type']} is not supported"
            )
            return
        store = self.store(catalog)
        store["next_opp"] += 1
        oid = f"O{store['next_opp']}"
        now = self.now()
        record = {
            "Catalog": catalog,
            "Id": oid,
            "Arn": self._arn(catalog, "opportunity", oid),
            "CreatedDate": now,
            "LastModifiedDate": now,
            "RelatedEntityIdentifiers": {},
            "Origin": "Partner Referral",
            "Customer": {"Account": {k: v for k, v in account.items() if v}},
            "Project": {k: v for k, v in project.items() if v},
            "LifeCycle": {
                "ReviewStatus": "Pending Submission",
                **({"TargetCloseDate": close} if close else {}),
            },
        }
        store["opportunities"][oid] = record
        self._associate_resource(eng, oid, self.account_id)
        self._touch()
        self._opportunity_event("Opportunity Created", record)
        task.update({"TaskStatus": "COMPLETE", "OpportunityId": oid})

    def start_prospecting(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartProspectingFromEngagementTask: enrich engagements (IN_PROGRESS -> COMPLETED)."""

        def action() -> dict[str, Any]:
            with self.lock:
                task = self._new_task(
                    params["Catalog"],
                    "ProspectingFromEngagement",
                    {"TaskName": params["TaskName"], "Identifiers": list(params["Identifiers"])},
                    digits=14,
                )
                task["TaskStatus"] = "IN_PROGRESS"
                return copy.deepcopy(task)

        return self.idempotent(params["Catalog"], "StartProspectingFromEngagementTask", params, action)

    def _finish_ProspectingFromEngagement(self, catalog: str, task: dict[str, Any]) -> None:
        results = []
        for eid in task["Identifiers"]:
            eng = self.store(catalog)["engagements"].get(eid)
            if eng is None:
                results.append(
                    {
                        "EngagementIdentifier": eid,
                        "Status": "FAILED",
                        "ReasonCode": "EngagementAccessDenied",
                        "Message": f"Engagement {eid} not found",
                    }
                )
            else:
                results.append(
                    {
                        "EngagementIdentifier": eid,
                        "Status": "COMPLETED",
                        "EngagementContextId": f"ctx-{self._rand_id(14)}",
                    }
                )
        task.update({"TaskStatus": "COMPLETED", "EndTime": self.now(), "Engagements": results})

    def list_tasks(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """List*Tasks with their common filters, sorted by StartTime (default DESCENDING)."""
        with self.lock:
            id_filters = {
                "TaskIdentifier": "TaskId",
                "OpportunityIdentifier": "OpportunityId",
                "EngagementIdentifier": "EngagementId",
                "EngagementInvitationIdentifier": "EngagementInvitationId",
                "ContextIdentifier": "ContextId",
                "TaskName": "TaskName",
            }
            items = []
            for task in self.store(params["Catalog"])["tasks"][kind].values():
                if params.get("TaskStatus") and task["TaskStatus"] not in params["TaskStatus"]:
                    continue
                ok = True
                for param, field in id_filters.items():
                    wanted = params.get(param)
                    if wanted and str(task.get(field)) not in {w.rsplit("/", 1)[-1] for w in wanted}:
                        ok = False
                if params.get("StartAfter") and task["StartTime"] < parse_ts(params["StartAfter"]):
                    ok = False
                if params.get("StartBefore") and task["StartTime"] > parse_ts(params["StartBefore"]):
                    ok = False
                if ok:
                    items.append(task)
            sort = params.get("Sort") or {}
            order = sort.get("SortOrder", "DESCENDING")
            by = sort.get("SortBy", "StartTime")
            items.sort(
                key=lambda t: (
                    str(t.get(by, t["StartTime"])) if by == "TaskName" else t["StartTime"],
                    t["TaskId"],
                ),
                reverse=order == "DESCENDING",
            )
            return dict(zip(("TaskSummaries", "NextToken"), paginate(items, params, 100), strict=True))

    def task(self, catalog: str, kind: str, identifier: str) -> dict[str, Any]:
        """A task or ``ResourceNotFoundException``."""
        task = self.store(catalog)["tasks"][kind].get(identifier.rsplit("/", 1)[-1])
        if task is None:
            raise ResourceNotFoundException(f"Task {identifier} not found in catalog {catalog}")
        return task

    # ----------------------------------------------------------------------- solutions, settings, tags
    def _seed_solutions(self, catalog: str) -> None:
        names = [
            ("Data Lake Accelerator", "Software Product"),
            ("Migration Factory", "Consulting Service"),
            ("Managed Kubernetes", "Managed Service"),
            ("GenAI Assistant", "Software Product"),
            ("Legacy Archive", "Consulting Service"),
        ]
        base = parse_ts("2024-01-15T09:00:00Z")
        for i, (name, category) in enumerate(names, start=1):
            sid = f"S-{1000000 + i}"
            self.stores[catalog]["solutions"][sid] = {
                "Catalog": catalog,
                "Id": sid,
                "Arn": sid,
                "Name": name,
                "Category": category,
                "Status": "Inactive" if i == 5 else "Active",
                "CreatedDate": base + i * 86_400_000,
            }

    def list_solutions(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListSolutions with filters and sort."""
        with self.lock:
            items = [
                s
                for s in self.store(params["Catalog"])["solutions"].values()
                if (not params.get("Status") or s["Status"] in params["Status"])
                and (not params.get("Identifier") or s["Id"] in params["Identifier"])
                and (not params.get("Category") or s["Category"] in params["Category"])
            ]
            sort = params.get("Sort") or {"SortBy": "Identifier", "SortOrder": "ASCENDING"}
            field = {"Identifier": "Id", "CreatedDate": "CreatedDate"}.get(sort["SortBy"], sort["SortBy"])
            items.sort(key=lambda s: (s[field], s["Id"]), reverse=sort["SortOrder"] == "DESCENDING")
            page, nxt = paginate(items, params, 20)
            return {"SolutionSummaries": page, "NextToken": nxt}

    def put_settings(self, catalog: str, role: str | None) -> dict[str, Any]:
        """PutSellingSystemSettings: a bare role name is expanded to this account's role ARN."""
        with self.lock:
            settings = self.store(catalog)["settings"]
            if role:
                settings["ResourceSnapshotJobRoleArn"] = (
                    role if role.startswith("arn:") else f"arn:aws:iam::{self.account_id}:role/{role}"
                )
            return {"Catalog": catalog, **settings}

    def get_settings(self, catalog: str) -> dict[str, Any]:
        """GetSellingSystemSettings."""
        with self.lock:
            return {"Catalog": catalog, **self.store(catalog)["settings"]}

    def _resource_arns(self) -> set[str]:
        arns = set()
        for store in self.stores.values():
            for coll in ("opportunities", "engagements", "snapshot_jobs"):
                arns.update(r["Arn"] for r in store[coll].values())
            for tasks in store["tasks"].values():
                arns.update(t["TaskArn"] for t in tasks.values())
        return arns

    def _taggable(self, arn: str) -> None:
        if arn not in self._resource_arns():
            raise ResourceNotFoundException(f"Resource {arn} not found")

    def tag(self, arn: str, tags: list[dict[str, str]]) -> None:
        """TagResource (at most 200 tags a resource, model ``TagList``)."""
        with self.lock:
            self._taggable(arn)
            current = dict(self.tags.get(arn, {}))
            current.update({t["Key"]: t["Value"] for t in tags})
            if len(current) > 200:
                raise ValidationException(
                    "A resource can have at most 200 tags",
                    [{"FieldName": "Tags", "Message": "Too many tags", "Code": "TOO_MANY_VALUES"}],
                )
            self.tags[arn] = current

    def untag(self, arn: str, keys: list[str]) -> None:
        """UntagResource."""
        with self.lock:
            self._taggable(arn)
            for key in keys:
                self.tags.get(arn, {}).pop(key, None)

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        """ListTagsForResource."""
        with self.lock:
            self._taggable(arn)
            return [{"Key": k, "Value": v} for k, v in self.tags.get(arn, {}).items()]

    # --------------------------------------------------------------------------------- persistence
    def dump(self) -> dict[str, Any]:
        """Everything needed to restore the state (``--state FILE``)."""
        with self.lock:
            return {
                "stores": self.stores,
                "tags": self.tags,
                "last_ms": self._last_ms,
                "idempotency": {k: list(v) for k, v in self.idempotency.items()},
            }

    def load(self, data: dict[str, Any]) -> None:
        """Restore what ``dump`` produced."""
        with self.lock:
            self.stores = data["stores"]
            self.tags = data["tags"]
            self._last_ms = data["last_ms"]
            self.idempotency = {k: (v[0], v[1]) for k, v in data["idempotency"].items()}
            self._touch()
