"""Search: SearchOpportunities, SearchEngagements and ListEngagementGroups.

Both searches share one filter machinery: :class:`FilterEvaluator` compiles a request's recursive filter tree
(``AndAllFilters``/``OrAllFilters``/``NotFilter`` and the leaf predicates) into a predicate, given a table of
searchable keys (:class:`SearchKey`: how to read the key from a record, whether it is a string or an ordered
date/number key) and the documented limits. Sorting, keyword matching and cursor pagination are shared too.

Rules (API reference ``OpportunitySearchFilter``, ``EngagementSearchFilter`` and the operations' pages):

* a filter node sets exactly one member; nesting is bounded to 3 levels of combinators, each combinator list
  holds 1 to 10 entries (the model's list bounds), and an opportunity filter has at most 20 leaf conditions;
* ``EqualsTo`` on a string key takes ``StringValue``; ``ContainsAny`` (case-insensitive substring, any value
  of a multi-valued key) and ``ContainsAll`` (every supplied value held exactly) take ``StringValue`` or
  ``StringListValue`` and only apply to string keys; range predicates only apply to ordered keys, with
  ``DateValue`` on date keys and ``LongValue``/``DoubleValue`` on numeric ones. Anything else is a
  ``ValidationException`` naming the predicate's field;
* ``Keyword``, ``Filter`` (and ``GroupId``) each narrow the result set (logical AND).

Where AWS documents nothing the choices are written down in docs/api-rules.md ("Search").
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import hashlib
import operator
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ResourceNotFoundException,
    ValidationException,
)
from emulators.partner_central.models.base import (
    AWS_ACCOUNT,
    decode_token,
    digest,
    encode_token,
    get_path,
    parse_ts,
)
from emulators.partner_central.models.catalog_extras import CatalogExtrasMixin
from emulators.partner_central.models.opportunities import OpportunitiesMixin

FILTER_MAX_DEPTH = 3  # "Nesting is bounded (depth up to 3 ...)" (model docs of both filter shapes)
OPPORTUNITY_MAX_LEAVES = 20  # "... and up to 20 leaf conditions per tree" (OpportunitySearchFilter)
DEFAULT_PAGE_SIZE = 20
COMBINATORS = ("AndAllFilters", "OrAllFilters", "NotFilter")
RANGES: dict[str, Callable[[Any, Any], bool]] = {
    "GreaterThan": operator.gt,
    "GreaterThanOrEquals": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEquals": operator.le,
}
LEAVES = ("EqualsTo", "ContainsAny", "ContainsAll", *RANGES)
LEVELS = {"Low": 0, "Medium": 1, "High": 2}  # EngagementScore / LeadReadinessScore sort by level, not name
ENGAGEMENT_SCORES = ("High", "Medium", "Low")
COSELL_MOTIONS = ("AWS Field-engaged", "Agent-engaged", "Partner-led")
READINESS_LEVELS = ("SalesReady", "MarketingReady", "LowPotential")


def invalid(field: str, message: str, code: str = "INVALID_VALUE") -> ValidationException:
    """A request validation error naming one field of the filter tree."""
    return ValidationException(message, [{"FieldName": field, "Message": message, "Code": code}])


@dataclass(frozen=True)
class SearchKey:
    """One searchable/sortable key.

    Attributes:
        kind: ``string`` (``get`` returns a list of strings, one per value of a multi-valued key), ``date``
            (``get`` returns epoch ms or None) or ``number`` (``get`` returns a number or None).
        get: reads the key from a record.
        numeric_values: the value members a ``number`` key accepts (``LongValue``, ``DoubleValue``).
        levels: for string keys holding a level (High/Medium/Low): the sort rank of each value.
    """

    kind: str
    get: Callable[[Any], Any]
    numeric_values: tuple[str, ...] = ("LongValue",)
    levels: dict[str, int] | None = None


class FilterEvaluator:
    """Compiles filter trees over one key table into predicates and sort keys.

    Args:
        keys: the searchable keys by filter/sort name.
        max_leaves: cap on leaf conditions in one tree (None: only the model's limits).
    """

    def __init__(self, keys: dict[str, SearchKey], max_leaves: int | None) -> None:
        self.keys = keys
        self.max_leaves = max_leaves

    def compile(self, node: dict[str, Any] | None, path: str = "Filter") -> Callable[[Any], bool]:
        """The predicate of a filter tree (None matches everything); ValidationException on a bad tree."""
        if node is None:
            return lambda _record: True
        leaves = [0]
        return self._node(node, path, 0, leaves)

    def _node(self, node: dict[str, Any], path: str, depth: int, leaves: list[int]) -> Callable[[Any], bool]:
        present = [k for k, v in node.items() if v is not None and k in (*COMBINATORS, *LEAVES)]
        if len(present) != 1:
            raise invalid(path, f"{path} must set exactly one of {', '.join((*COMBINATORS, *LEAVES))}")
        member = present[0]
        sub = f"{path}.{member}"
        if member in COMBINATORS:
            if depth + 1 > FILTER_MAX_DEPTH:
                raise invalid(
                    sub, f"Filter nesting exceeds the maximum depth of {FILTER_MAX_DEPTH}", "TOO_MANY_VALUES"
                )
            if member == "NotFilter":
                inner = self._node(node[member], sub, depth + 1, leaves)
                return lambda record: not inner(record)
            children = [
                self._node(child, f"{sub}[{i}]", depth + 1, leaves) for i, child in enumerate(node[member])
            ]
            if member == "AndAllFilters":
                return lambda record: all(child(record) for child in children)
            return lambda record: any(child(record) for child in children)
        leaves[0] += 1
        if self.max_leaves is not None and leaves[0] > self.max_leaves:
            raise invalid(
                sub, f"A filter can hold at most {self.max_leaves} leaf conditions", "TOO_MANY_VALUES"
            )
        return self._leaf(member, node[member], sub)

    def _leaf(self, op: str, pred: dict[str, Any], path: str) -> Callable[[Any], bool]:
        name, value = pred["Key"], pred["Value"]
        key = self.keys.get(name)
        if key is None:  # the model's enum already rules this out; kept for direct backend calls
            raise invalid(f"{path}.Key", f"{name} is not a searchable field", "INVALID_ENUM_VALUE")
        members = [m for m, v in value.items() if v is not None]
        if len(members) != 1:
            raise invalid(f"{path}.Value", f"{path}.Value must set exactly one value member")
        member = members[0]
        wrong_type = invalid(f"{path}.Value", f"{op} on {name} does not accept {member}")
        ordered = key.kind != "string"
        if op in RANGES and not ordered:
            raise invalid(
                f"{path}.Key", f"{op} is supported on ordered (date or numeric) fields only, not on {name}"
            )
        if op in ("ContainsAny", "ContainsAll") and ordered:
            raise invalid(f"{path}.Key", f"{op} is supported on string fields only, not on {name}")
        if ordered:  # EqualsTo or a range on a date/number key
            accepted = ("DateValue",) if key.kind == "date" else key.numeric_values
            if member not in accepted:
                raise wrong_type
            target = parse_ts(value[member]) if key.kind == "date" else value[member]
            compare = RANGES.get(op, operator.eq)
            get = key.get

            def ordered_match(record: Any) -> bool:
                actual = get(record)
                return actual is not None and compare(actual, target)

            return ordered_match
        get = key.get
        if op == "EqualsTo":
            if member != "StringValue":
                raise wrong_type
            wanted = value[member]
            return lambda record: wanted in get(record)
        if member not in ("StringValue", "StringListValue"):
            raise wrong_type
        supplied = [value[member]] if member == "StringValue" else list(value[member])
        if op == "ContainsAny":
            needles = [s.lower() for s in supplied]
            return lambda record: any(n in v.lower() for v in get(record) for n in needles)
        required = set(supplied)
        return lambda record: required <= set(get(record))

    def sort_entry(self, record: Any, by: str, descending: bool, tiebreak: Any, rid: str) -> tuple[Any, ...]:
        """The ascending sort entry of a record: (presence, value, tie-break, id).

        Records without a value come last in either direction: read from the end for DESCENDING, so the
        presence flag flips with the order.
        """
        key = self.keys[by]
        raw = key.get(record)
        value: Any
        if key.kind == "string":
            if key.levels is not None:
                ranks = [key.levels[v] for v in raw if v in key.levels]
                value = (max(ranks) if descending else min(ranks)) if ranks else None
            else:
                folded = [v.casefold() for v in raw]
                value = (max(folded) if descending else min(folded)) if folded else None
        else:
            value = raw
        if value is None:
            return (0 if descending else 1, None, tiebreak, rid)
        return (1 if descending else 0, value, tiebreak, rid)


def keyword_matcher(
    keyword: str | None, texts: Callable[[Any], Iterable[str | None]]
) -> Callable[[Any], bool]:
    """Free-text match: every whitespace-separated term occurs, case-insensitively, in one of the texts."""
    terms = (keyword or "").lower().split()
    if not terms:
        return lambda _record: True

    def match(record: Any) -> bool:
        haystack = "\n".join(t.lower() for t in texts(record) if t)
        return all(term in haystack for term in terms)

    return match


def _one(value: Any) -> list[str]:
    return [value] if isinstance(value, str) and value else []


def _date_ms(value: str | None) -> int | None:
    # A Date (YYYY-MM-DD) compares as midnight UTC of that day.
    if not value:
        return None
    return round(dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp() * 1000)


def _mrr(opp: dict[str, Any]) -> float | None:
    spend = get_path(opp, "Project.ExpectedCustomerSpend") or []
    amounts = [float(s["Amount"]) for s in spend if s.get("Amount")]
    return sum(amounts) if amounts else None


def _walk(record: Any, parts: tuple[str, ...]) -> Any:
    # get_path with the path split once per key instead of once per record (10,000 records a query).
    cur = record
    for part in parts:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _opp_text(dotted: str) -> Callable[[_OppView], list[str]]:
    parts = tuple(dotted.split("."))
    return lambda v: _one(_walk(v.opp, parts))


class _OppView:
    """An opportunity as search sees it: the record, its tags and AWS's view (computed on first use)."""

    __slots__ = ("_aws", "backend", "catalog", "opp", "tags")

    def __init__(self, backend: SearchMixin, catalog: str, opp: dict[str, Any]) -> None:
        self.backend, self.catalog, self.opp = backend, catalog, opp
        self.tags = backend.tags.get(opp["Arn"], {})
        self._aws: dict[str, Any] | bool | None = False

    @property
    def aws(self) -> dict[str, Any] | None:
        if self._aws is False:
            self._aws = self.backend.aws_insights(self.catalog, self.opp)
        return self._aws  # type: ignore[return-value]

    def aws_field(self, name: str) -> list[str]:
        return _one((self.aws or {}).get(name))

    def related_ids(self, kind: str) -> list[str]:
        return [
            arn.rsplit("/", 1)[-1] for arn in get_path(self.opp, f"RelatedEntityIdentifiers.{kind}") or []
        ]

    def owner(self) -> list[str]:
        team = self.opp.get("OpportunityTeam") or []
        if not team:
            return []
        name = f"{team[0].get('FirstName', '')} {team[0].get('LastName', '')}".strip()
        return _one(name)


OPPORTUNITY_KEYS: dict[str, SearchKey] = {
    "OpportunityId": SearchKey("string", lambda v: [v.opp["Id"]]),
    "Stage": SearchKey("string", _opp_text("LifeCycle.Stage")),
    "ReviewStatus": SearchKey("string", _opp_text("LifeCycle.ReviewStatus")),
    "CustomerCompanyName": SearchKey("string", _opp_text("Customer.Account.CompanyName")),
    "LastModifiedDate": SearchKey("date", lambda v: v.opp["LastModifiedDate"]),
    "TargetCloseDate": SearchKey("date", lambda v: _date_ms(get_path(v.opp, "LifeCycle.TargetCloseDate"))),
    "CreatedDate": SearchKey("date", lambda v: v.opp["CreatedDate"]),
    "CountryCode": SearchKey("string", _opp_text("Customer.Account.Address.CountryCode")),
    "PartnerProjectTitle": SearchKey("string", _opp_text("Project.Title")),
    "OpportunityType": SearchKey("string", _opp_text("OpportunityType")),
    "PartnerOpportunityIdentifier": SearchKey("string", _opp_text("PartnerOpportunityIdentifier")),
    "Industry": SearchKey("string", _opp_text("Customer.Account.Industry")),
    "AwsAccountId": SearchKey("string", _opp_text("Customer.Account.AwsAccountId")),
    "ApnPrograms": SearchKey("string", lambda v: list(get_path(v.opp, "Project.ApnPrograms") or [])),
    "Origin": SearchKey("string", lambda v: v.aws_field("Origin") or _one(v.opp.get("Origin"))),
    "Tags": SearchKey("string", lambda v: [f"{k}:{val}" for k, val in v.tags.items()]),
    "NextStep": SearchKey("string", _opp_text("LifeCycle.NextSteps")),
    "OfferId": SearchKey("string", lambda v: v.related_ids("AwsMarketplaceOffers")),
    "OfferSetId": SearchKey("string", lambda v: v.related_ids("AwsMarketplaceOfferSets")),
    "AwsMarketplaceSolution": SearchKey(
        "string", lambda v: list(get_path(v.opp, "RelatedEntityIdentifiers.AwsMarketplaceSolutions") or [])
    ),
    "CosellMotion": SearchKey("string", lambda v: v.aws_field("CosellMotion")),
    "OpportunityOwner": SearchKey("string", lambda v: v.owner()),
    "EstimatedMrr": SearchKey("number", lambda v: _mrr(v.opp), ("LongValue", "DoubleValue")),
    "EngagementScore": SearchKey("string", lambda v: v.aws_field("EngagementScore"), levels=LEVELS),
}
OPPORTUNITY_FILTER = FilterEvaluator(OPPORTUNITY_KEYS, OPPORTUNITY_MAX_LEAVES)


def _opp_texts(v: _OppView) -> list[str | None]:
    opp = v.opp
    return [
        opp["Id"],
        opp.get("PartnerOpportunityIdentifier"),
        get_path(opp, "Project.Title"),
        get_path(opp, "Customer.Account.CompanyName"),
    ]


def _contexts(eng: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c.get("Payload", {}).get(kind) or {} for c in eng.get("Contexts", []) if c.get("Type") == kind]


def _ctx_values(kind: str, dotted: str) -> Callable[[dict[str, Any]], list[str]]:
    def get(eng: dict[str, Any]) -> list[str]:
        return [v for p in _contexts(eng, kind) for v in _one(get_path(p, dotted))]

    return get


def _interaction_values(dotted: str) -> Callable[[dict[str, Any]], list[str]]:
    # One value per lead interaction: the multi-valued keys of the engagement filter.
    def get(eng: dict[str, Any]) -> list[str]:
        return [
            v
            for lead in _contexts(eng, "Lead")
            for interaction in lead.get("Interactions") or []
            for v in _one(get_path(interaction, dotted))
        ]

    return get


_PROSPECT = "ProspectingResult"
ENGAGEMENT_KEYS: dict[str, SearchKey] = {
    "EngagementId": SearchKey("string", lambda e: [e["Id"]]),
    "Title": SearchKey("string", lambda e: _one(e.get("Title"))),
    "PartnerId": SearchKey(
        "string",
        lambda e: [m["AccountId"] for m in e.get("Members", []) if m.get("AccountId") != AWS_ACCOUNT],
    ),
    "CreatedAt": SearchKey("date", lambda e: e["CreatedAt"]),
    "LastModifiedAt": SearchKey("date", lambda e: e["ModifiedAt"]),
    "MemberCount": SearchKey("number", lambda e: len(e.get("Members", []))),
    "ProspectingCustomerGeo": SearchKey("string", _ctx_values(_PROSPECT, "Aws.Customer.Geo")),
    "ProspectingCustomerRegion": SearchKey("string", _ctx_values(_PROSPECT, "Aws.Customer.Region")),
    "ProspectingCustomerIndustry": SearchKey("string", _ctx_values(_PROSPECT, "Aws.Customer.Industry")),
    "ProspectingCustomerSegment": SearchKey("string", _ctx_values(_PROSPECT, "Aws.Customer.Segment")),
    "ProspectingCustomerCountry": SearchKey("string", _ctx_values(_PROSPECT, "Aws.Customer.Country")),
    "ProspectingCustomerCompanySize": SearchKey("string", _ctx_values(_PROSPECT, "Aws.Customer.CompanySize")),
    "ProspectingInsightsMarketplaceEngagementScore": SearchKey(
        "string", _ctx_values(_PROSPECT, "Aws.Insights.MarketplaceEngagementScore"), levels=LEVELS
    ),
    "ProspectingInsightsSolutionCategory": SearchKey(
        "string", _ctx_values(_PROSPECT, "Aws.Insights.SolutionCategory")
    ),
    "ProspectingInsightsSolutionSubCategory": SearchKey(
        "string", _ctx_values(_PROSPECT, "Aws.Insights.SolutionSubCategory")
    ),
    "LeadQualificationStatus": SearchKey("string", _ctx_values("Lead", "QualificationStatus")),
    "LeadReadinessScore": SearchKey(
        "string", _ctx_values("Lead", "Insights.LeadReadinessScore"), levels=LEVELS
    ),
    "LeadCustomerIndustry": SearchKey("string", _ctx_values("Lead", "Customer.Industry")),
    "LeadCustomerCountryCode": SearchKey("string", _ctx_values("Lead", "Customer.Address.CountryCode")),
    "LeadCustomerAwsMaturity": SearchKey("string", _ctx_values("Lead", "Customer.AwsMaturity")),
    "LeadCustomerMarketSegment": SearchKey("string", _ctx_values("Lead", "Customer.MarketSegment")),
    "LeadInteractionsSourceType": SearchKey("string", _interaction_values("SourceType")),
    "LeadCustomerCompanyName": SearchKey("string", _ctx_values("Lead", "Customer.CompanyName")),
    "LeadInteractionsContactFirstName": SearchKey("string", _interaction_values("Contact.FirstName")),
    "LeadInteractionsContactLastName": SearchKey("string", _interaction_values("Contact.LastName")),
    "LeadInteractionsUsecase": SearchKey("string", _interaction_values("Usecase")),
    "LeadInteractionsSourceName": SearchKey("string", _interaction_values("SourceName")),
    "LeadInteractionsContactBusinessTitle": SearchKey("string", _interaction_values("Contact.BusinessTitle")),
    "ContextType": SearchKey("string", lambda e: [c["Type"] for c in e.get("Contexts", [])]),
}
ENGAGEMENT_FILTER = FilterEvaluator(ENGAGEMENT_KEYS, None)


def _engagement_texts(eng: dict[str, Any]) -> list[str | None]:
    texts: list[str | None] = [eng.get("Title"), eng.get("Description")]
    texts += [get_path(p, "Customer.CompanyName") for p in _contexts(eng, "Lead")]
    texts += [get_path(p, "Customer.CompanyName") for p in _contexts(eng, "CustomerProject")]
    texts += [get_path(p, "Customer.CompanyName") for p in _contexts(eng, "CustomerAccount")]
    texts += [get_path(p, "Aws.Customer.AccountName") for p in _contexts(eng, _PROSPECT)]
    texts += [m.get("CompanyName") for m in eng.get("Members", [])]
    return texts


def _eq(key: str, value: str) -> dict[str, Any]:
    return {"EqualsTo": {"Key": key, "Value": {"StringValue": value}}}


# The curated groups every catalog offers: (name, description, readiness level, active, criteria).
DEFAULT_GROUPS: list[tuple[str, str, str, bool, dict[str, Any]]] = [
    (
        "High-readiness leads",
        "Leads that AWS scores as highly ready for engagement.",
        "SalesReady",
        True,
        _eq("LeadReadinessScore", "High"),
    ),
    (
        "US software and internet leads",
        "Leads from software and internet companies in the United States.",
        "SalesReady",
        True,
        {
            "AndAllFilters": [
                _eq("LeadCustomerCountryCode", "US"),
                _eq("LeadCustomerIndustry", "Software and Internet"),
            ]
        },
    ),
    (
        "Generative AI interest in Europe",
        "European leads that showed interest in generative AI.",
        "MarketingReady",
        True,
        {
            "AndAllFilters": [
                {
                    "ContainsAny": {
                        "Key": "LeadCustomerCountryCode",
                        "Value": {"StringListValue": ["GB", "DE", "FR"]},
                    }
                },
                {
                    "ContainsAny": {
                        "Key": "LeadInteractionsUsecase",
                        "Value": {"StringValue": "generative ai"},
                    }
                },
            ]
        },
    ),
    (
        "Prospected enterprise accounts",
        "Enterprise accounts enriched by a prospecting task.",
        "MarketingReady",
        True,
        {
            "AndAllFilters": [
                _eq("ContextType", "ProspectingResult"),
                _eq("ProspectingCustomerSegment", "Enterprise"),
            ]
        },
    ),
    (
        "Early-stage small businesses",
        "Small businesses new to AWS that are not qualified yet.",
        "LowPotential",
        True,
        {
            "AndAllFilters": [
                _eq("LeadCustomerMarketSegment", "SMB"),
                {"NotFilter": _eq("LeadQualificationStatus", "Qualified")},
            ]
        },
    ),
    (
        "Retired 2024 campaign leads",
        "Leads of a campaign that ended; the group is no longer active.",
        "LowPotential",
        False,
        _eq("LeadInteractionsSourceName", "2024 Summit campaign"),
    ),
]
_GROUPS_UPDATED = parse_ts("2025-06-01T08:00:00Z")


class SearchMixin(OpportunitiesMixin, CatalogExtrasMixin):
    """SearchOpportunities, SearchEngagements, ListEngagementGroups and AWS's insights on opportunities."""

    def reset(self) -> None:
        """Reset everything else, then switch search on and drop the search caches."""
        with self.lock:
            super().reset()
            self.search_enabled = True
            # Sorted matches per (catalog, query digest, order), valid while data_version is unchanged.
            self.search_cache: dict[tuple[str, str], tuple[int, list[tuple[Any, ...]]]] = {}

    # Tags are searchable (key ``Tags``): a tag change must invalidate the sorted-results cache.
    def tag(self, arn: str, tags: list[dict[str, str]]) -> None:
        """TagResource, then note the change for the search cache."""
        with self.lock:
            super().tag(arn, tags)
            self.touch()

    def untag(self, arn: str, keys: list[str]) -> None:
        """UntagResource, then note the change for the search cache."""
        with self.lock:
            super().untag(arn, keys)
            self.touch()

    # ---------------------------------------------------------------------------------- AWS insights
    def aws_insights(self, catalog: str, opp: dict[str, Any]) -> dict[str, Any] | None:
        """AWS's view used by search: Origin, CosellMotion, EngagementScore, QualityScore (None: no summary).

        Values set by AWS (``/_emulator/simulate/insights``, ``simulate/aws-update``) win; otherwise they are
        derived deterministically from the opportunity id and review state, so every opportunity that
        reached AWS has insights and the same book always yields the same values.
        """
        summary = self.store(catalog)["aws_summaries"].get(opp["Id"])
        if summary is None:
            return None
        h = zlib.crc32(opp["Id"].encode())
        insights = summary.get("Insights") or {}
        if "OpportunityQuality" in insights:
            quality = (insights["OpportunityQuality"] or {}).get("Score")
        elif get_path(opp, "LifeCycle.ReviewStatus") == "Submitted":
            quality = None  # not scored until AWS has looked at the submission
        else:
            quality = (h >> 8) % 101
        motion = summary.get("CosellMotion")
        if not motion:
            if summary.get("InvolvementType") == "For Visibility Only":
                motion = "Partner-led"
            elif summary.get("Origin") == "AWS Referral":
                motion = "AWS Field-engaged"
            else:
                motion = COSELL_MOTIONS[h % 2]
        return {
            "Origin": summary.get("Origin") or opp.get("Origin") or "Partner Referral",
            "CosellMotion": motion,
            "EngagementScore": insights.get("EngagementScore") or ENGAGEMENT_SCORES[h % 3],
            "QualityScore": quality,
        }

    def aws_summary(self, catalog: str, identifier: str) -> dict[str, Any]:
        """GetAwsOpportunitySummary, with the same insights and co-sell motion that search reports."""
        with self.lock:
            out = super().aws_summary(catalog, identifier)
            view = self.aws_insights(catalog, self.opportunity(catalog, identifier)) or {}
            out.setdefault("CosellMotion", view["CosellMotion"])
            insights = out.setdefault("Insights", {})
            insights.setdefault("EngagementScore", view["EngagementScore"])
            if view["QualityScore"] is not None:
                quality = insights.get("OpportunityQuality") or {}
                insights["OpportunityQuality"] = {**quality, "Score": view["QualityScore"]}
            else:
                insights.pop("OpportunityQuality", None)
            return out

    def simulate_insights(self, catalog: str, identifier: str, changes: dict[str, Any]) -> dict[str, Any]:
        """AWS re-scores an opportunity (test control): insights, origin, co-sell motion.

        Insights are AWS's computation, not an edit of the opportunity: ``LastModifiedDate`` stays and no
        event is emitted (the product refreshes insights on a schedule for that reason).
        """
        with self.lock:
            opp = self.opportunity(catalog, identifier)
            summary = self.store(catalog)["aws_summaries"].get(identifier)
            if summary is None:
                raise ResourceNotFoundException(f"No AWS opportunity summary for {identifier}")
            insights = summary.setdefault("Insights", {})
            if "engagement_score" in changes:
                score = changes["engagement_score"]
                if score not in ENGAGEMENT_SCORES:
                    raise ValueError(f"engagement_score must be one of {ENGAGEMENT_SCORES}")
                insights["EngagementScore"] = score
            if "quality_score" in changes:
                quality = changes["quality_score"]
                if quality is not None and not (isinstance(quality, int) and 0 <= quality <= 100):
                    raise ValueError("quality_score must be an integer 0-100 or null (not scored)")
                insights["OpportunityQuality"] = {"Score": quality} if quality is not None else {}
            if "origin" in changes:
                if changes["origin"] not in ("AWS Referral", "Partner Referral"):
                    raise ValueError("origin must be 'AWS Referral' or 'Partner Referral'")
                summary["Origin"] = changes["origin"]
            if "cosell_motion" in changes:
                summary["CosellMotion"] = str(changes["cosell_motion"])
            self.touch()  # search results change; the record itself does not
            view = self.aws_insights(catalog, opp) or {}
            return {"identifier": identifier, **view}

    # ------------------------------------------------------------------------------------ shared bits
    @staticmethod
    def _query_digest(params: dict[str, Any], *fields: str) -> str:
        # A NextToken is bound to the query it came from (not to MaxResults, which may change per page).
        return digest({f: params.get(f) for f in ("Catalog", *fields)})[:24]

    @staticmethod
    def _cursor_page(
        keyed: list[tuple[Any, ...]], params: dict[str, Any], descending: bool, query: str
    ) -> tuple[list[tuple[Any, ...]], str | None]:
        """One page of an ascending entry list read in the sort direction, after the token's cursor.

        The cursor is the last entry returned, so records added or changed between pages neither repeat
        nor shift the pages already read.
        """
        size = params.get("MaxResults") or DEFAULT_PAGE_SIZE
        if params.get("NextToken"):
            tok = decode_token(params["NextToken"])
            if tok.get("q") != query or not isinstance(tok.get("c"), list):
                raise ValidationException(
                    "NextToken does not match the request",
                    [{"FieldName": "NextToken", "Message": "Invalid NextToken", "Code": "INVALID_VALUE"}],
                )
            cursor = tuple(tok["c"])
            try:
                pos = bisect.bisect_left(keyed, cursor) if descending else bisect.bisect_right(keyed, cursor)
            except TypeError as err:  # a forged cursor of the wrong types
                raise ValidationException(
                    "Invalid NextToken",
                    [{"FieldName": "NextToken", "Message": "Invalid NextToken", "Code": "INVALID_VALUE"}],
                ) from err
        else:
            pos = len(keyed) if descending else 0
        if descending:
            page = keyed[max(0, pos - size) : pos][::-1]
            more = pos - size > 0
        else:
            page = keyed[pos : pos + size]
            more = pos + size < len(keyed)
        token = encode_token({"c": list(page[-1]), "q": query}) if more and page else None
        return page, token

    # ------------------------------------------------------------------------------ SearchOpportunities
    def search_opportunities(self, params: dict[str, Any]) -> dict[str, Any]:
        """SearchOpportunities: Keyword AND Filter, Sort (default LastModifiedDate DESCENDING), paging.

        The sorted matches of a query are cached per data version, so paging costs O(page) after the
        first page and a book of 10,000 opportunities answers well within 100 ms.
        """
        with self.lock:
            if not self.search_enabled:
                raise AccessDeniedException(
                    "SearchOpportunities is not enabled for this account", "SEARCH_OPPORTUNITIES_NOT_ENABLED"
                )
            catalog = params["Catalog"]
            store = self.store(catalog)
            sort = params.get("Sort") or {"SortBy": "LastModifiedDate", "SortOrder": "DESCENDING"}
            descending = sort["SortOrder"] == "DESCENDING"
            query = self._query_digest({**params, "Sort": sort}, "Keyword", "Filter", "Sort")
            cache_key = (catalog, query)
            cached = self.search_cache.get(cache_key)
            if cached is None or cached[0] != self.data_version:
                matches = OPPORTUNITY_FILTER.compile(params.get("Filter"))
                keyword = keyword_matcher(params.get("Keyword"), _opp_texts)
                keyed = []
                for opp in store["opportunities"].values():
                    view = _OppView(self, catalog, opp)
                    if keyword(view) and matches(view):
                        keyed.append(
                            OPPORTUNITY_FILTER.sort_entry(
                                view, sort["SortBy"], descending, int(opp["Id"][1:]), opp["Id"]
                            )
                        )
                keyed.sort()
                cached = (self.data_version, keyed)
                if len(self.search_cache) > 64:
                    self.search_cache.clear()
                self.search_cache[cache_key] = cached
            page, token = self._cursor_page(cached[1], params, descending, query)
            summaries = [
                self._opportunity_search_summary(catalog, store["opportunities"][e[-1]]) for e in page
            ]
            return {"OpportunitySearchSummaries": summaries, "NextToken": token}

    def _opportunity_search_summary(self, catalog: str, opp: dict[str, Any]) -> dict[str, Any]:
        """The curated OpportunitySearchSummary view (the server's projection drops what it omits)."""
        tags = self.tags.get(opp["Arn"], {})
        out: dict[str, Any] = {
            "Id": opp["Id"],
            "LastModifiedDate": opp["LastModifiedDate"],
            "CreatedDate": opp["CreatedDate"],
            "OpportunityType": opp.get("OpportunityType"),
            "PartnerOpportunityIdentifier": opp.get("PartnerOpportunityIdentifier"),
            "LifeCycle": copy.deepcopy(opp.get("LifeCycle")),
            "Customer": {"Account": copy.deepcopy(get_path(opp, "Customer.Account"))},
            "Project": copy.deepcopy(opp.get("Project")),
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()] or None,
            "RelatedEntityIdentifiers": copy.deepcopy(opp.get("RelatedEntityIdentifiers")) or None,
            # Names and titles only: the projection onto OpportunitySearchTeamMember drops email and phone.
            "OpportunityTeam": copy.deepcopy(opp.get("OpportunityTeam")) or None,
        }
        aws = self.aws_insights(catalog, opp)
        if aws is not None:
            insights: dict[str, Any] = {"EngagementScore": aws["EngagementScore"]}
            if aws["QualityScore"] is not None:
                insights["OpportunityQuality"] = {"Score": aws["QualityScore"]}
            out["AwsOpportunitySummary"] = {
                "Origin": aws["Origin"],
                "CosellMotion": aws["CosellMotion"],
                "Insights": insights,
            }
        return out

    # ------------------------------------------------------------------------------- engagement groups
    def engagement_groups(self, catalog: str) -> dict[str, dict[str, Any]]:
        """The catalog's engagement groups (the curated defaults unless a loaded state holds others)."""
        store = self.store(catalog)
        if "engagement_groups" not in store:
            groups = {}
            for i, (name, description, level, active, criteria) in enumerate(DEFAULT_GROUPS):
                gid = "eng-grp-" + hashlib.sha256(f"{catalog}/{name}".encode()).hexdigest()[:14]
                groups[gid] = {
                    "Id": gid,
                    "Arn": self.make_arn(catalog, "engagement-group", gid),
                    "Catalog": catalog,
                    "Name": name,
                    "Description": description,
                    "ReadinessLevel": level,
                    "Active": active,
                    "Criteria": criteria,
                    "UpdatedAt": _GROUPS_UPDATED + i * 3_600_000,
                    "Rank": i,  # the "recommended order" of ListEngagementGroups without Sort
                }
            store["engagement_groups"] = groups
        return store["engagement_groups"]

    def _active_group(self, catalog: str, identifier: str) -> dict[str, Any]:
        group = self.engagement_groups(catalog).get(identifier.rsplit("/", 1)[-1])
        if group is None or not group["Active"]:
            # SearchEngagements, GroupId: "The group must be active and available to you in the specified
            # catalog. Otherwise, the request fails with a ValidationException."
            raise ValidationException(
                f"Engagement group {identifier} is not an active group in catalog {catalog}",
                [{"FieldName": "GroupId", "Message": "Unknown or inactive group", "Code": "INVALID_VALUE"}],
                reason="BUSINESS_VALIDATION_FAILED",
            )
        return group

    def list_engagement_groups(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagementGroups: active groups, optional readiness/identifier filters, Sort, paging."""
        with self.lock:
            catalog = params["Catalog"]
            engagements = list(self.store(catalog)["engagements"].values())
            wanted = {i.rsplit("/", 1)[-1] for i in params.get("EngagementGroupIdentifiers") or []}
            items = []
            for group in self.engagement_groups(catalog).values():
                if not group["Active"]:
                    continue
                if params.get("ReadinessLevel") and group["ReadinessLevel"] != params["ReadinessLevel"]:
                    continue
                if wanted and group["Id"] not in wanted:
                    continue  # identifiers of unknown or inactive groups are ignored (API reference)
                matches = ENGAGEMENT_FILTER.compile(group["Criteria"])
                items.append({**group, "Count": sum(1 for e in engagements if matches(e))})
            sort = params.get("Sort")
            if sort:
                items.sort(
                    key=lambda g: (g[sort["SortBy"]], g["Id"]), reverse=sort["SortOrder"] == "DESCENDING"
                )
            else:
                items.sort(
                    key=lambda g: (READINESS_LEVELS.index(g["ReadinessLevel"]), -g["Count"], g["Rank"])
                )
            query = self._query_digest(params, "ReadinessLevel", "Sort", "EngagementGroupIdentifiers")
            start = 0
            if params.get("NextToken"):
                tok = decode_token(params["NextToken"])
                if tok.get("q") != query or not isinstance(tok.get("o"), int):
                    raise ValidationException(
                        "NextToken does not match the request",
                        [{"FieldName": "NextToken", "Message": "Invalid NextToken", "Code": "INVALID_VALUE"}],
                    )
                start = tok["o"]
            size = params.get("MaxResults") or DEFAULT_PAGE_SIZE
            page = items[start : start + size]
            token = encode_token({"o": start + size, "q": query}) if start + size < len(items) else None
            return {"EngagementGroupSummaries": page, "NextToken": token}

    # -------------------------------------------------------------------------------- SearchEngagements
    def search_engagements(self, params: dict[str, Any]) -> dict[str, Any]:
        """SearchEngagements: Keyword AND Filter AND GroupId criteria, Sort (default CreatedAt DESCENDING)."""
        with self.lock:
            catalog = params["Catalog"]
            store = self.store(catalog)
            sort = params.get("Sort") or {"SortBy": "CreatedAt", "SortOrder": "DESCENDING"}
            descending = sort["SortOrder"] == "DESCENDING"
            matches = ENGAGEMENT_FILTER.compile(params.get("Filter"))
            keyword = keyword_matcher(params.get("Keyword"), _engagement_texts)
            criteria = (
                self._active_group(catalog, params["GroupId"])["Criteria"] if params.get("GroupId") else None
            )
            in_group = ENGAGEMENT_FILTER.compile(criteria)
            keyed = sorted(
                ENGAGEMENT_FILTER.sort_entry(e, sort["SortBy"], descending, e["Id"], e["Id"])
                for e in store["engagements"].values()
                if keyword(e) and matches(e) and in_group(e)
            )
            query = self._query_digest({**params, "Sort": sort}, "Keyword", "Filter", "GroupId", "Sort")
            page, token = self._cursor_page(keyed, params, descending, query)
            summaries = []
            for entry in page:
                eng = store["engagements"][entry[-1]]
                summaries.append({**copy.deepcopy(eng), "MemberCount": len(eng.get("Members", []))})
            return {"EngagementSearchSummaries": summaries, "NextToken": token}
