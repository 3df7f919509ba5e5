"""``SearchOpportunities``: find an opportunity by its deal before creating one, and read AWS insights.

Two uses, both cheap in calls:

* :func:`find_by_partner_ids`: before an opportunity is created for a deal, look for one whose
  ``PartnerOpportunityIdentifier`` is the deal's id. A link lost in HubSpot (cleared by a user, or a run
  that died between the create and the link) must never give a second opportunity.
* :func:`read_insights`: the AWS insight fields of the search summary (origin, co-sell motion,
  engagement score, quality score), 100 opportunities per call.

When search is not enabled for the account, both return ``None`` and the caller goes on without it
(creates keep their deal-derived ``ClientToken``, which makes a re-sent create return the first
opportunity; insights are simply not copied).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.errors import AuthError

if TYPE_CHECKING:
    from cosell_sync.clients import PartnerCentralApi

log = logging.getLogger(__name__)

#: ``AccessDeniedException.Reason`` when the account has no SearchOpportunities.
SEARCH_NOT_ENABLED = "SEARCH_OPPORTUNITIES_NOT_ENABLED"
#: Values one ``ContainsAny`` leaf takes (``OpportunitySearchFilterValues``: 1-20).
LOOKUP_BATCH = 20
#: ``MaxResults`` upper bound of SearchOpportunities.
PAGE_SIZE = 100
#: Insight fields -> HubSpot deal property.
INSIGHT_PROPERTIES = {
    "origin": "aws_origin",
    "cosell_motion": "aws_cosell_motion",
    "engagement_score": "aws_engagement_score",
    "quality_score": "aws_opportunity_quality_score",
}


def _search_disabled(err: AuthError) -> bool:
    return err.reason == SEARCH_NOT_ENABLED or SEARCH_NOT_ENABLED in err.message


def _pages(
    api: PartnerCentralApi, calls: Counter[str], *, max_pages: int | None = None, **params: Any
) -> Any:
    """Yield SearchOpportunities pages (one paced read each), at most ``max_pages`` of them."""
    token: str | None = None
    pages = 0
    while True:
        if max_pages is not None and pages >= max_pages:
            return
        request = {"MaxResults": PAGE_SIZE, **params}
        if token:
            request["NextToken"] = token
        calls["SearchOpportunities"] += 1
        page = api.call("search_opportunities", **request)
        pages += 1
        yield page
        token = page.get("NextToken")
        if not token:
            return


def _keep_oldest(found: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
    """Record ``summary`` under its partner id; with two for one deal, the oldest wins (and is logged)."""
    pid = str(summary.get("PartnerOpportunityIdentifier") or "")
    if not pid:
        return
    seen = found.get(pid)
    if seen is None:
        found[pid] = summary
        return
    if seen["Id"] != summary["Id"]:
        older, newer = sorted((seen, summary), key=lambda s: (str(s.get("CreatedDate")), s["Id"]))
        log.warning(
            "Deal %s has two opportunities (%s, %s): linking the older one; the newer needs a person.",
            pid,
            older["Id"],
            newer["Id"],
        )
        found[pid] = older


def find_by_partner_ids(
    api: PartnerCentralApi, deal_ids: list[str], calls: Counter[str]
) -> dict[str, str] | None:
    """Opportunities whose ``PartnerOpportunityIdentifier`` is one of ``deal_ids``.

    Cost-bounded: a lookup costs one call per 20 deals (``ContainsAny`` on the identifier, matched
    exactly here, since ``ContainsAny`` matches substrings). For many deals a scan of the catalog (100
    per call) is tried first, for at most as many pages as the lookups would cost; a catalog that ends
    within that budget (the initial load of an empty catalog: one call) needs no lookup. Either way the
    cost stays within twice the cheaper of the two.

    Args:
        api: the Partner Central client (bound to the run's catalog).
        deal_ids: HubSpot deal ids about to get an opportunity.
        calls: API call counter.

    Returns:
        deal id -> opportunity id for the deals that already have one; ``None`` when search is not
        enabled for the account.
    """
    wanted = {str(d) for d in deal_ids}
    if not wanted:
        return {}
    found: dict[str, dict[str, Any]] = {}
    budget = math.ceil(len(wanted) / LOOKUP_BATCH)
    try:
        remaining = sorted(wanted)
        if budget > 2:
            complete = False
            for page in _pages(
                api, calls, max_pages=budget, Sort={"SortBy": "CreatedDate", "SortOrder": "ASCENDING"}
            ):
                for summary in page.get("OpportunitySearchSummaries") or []:
                    if str(summary.get("PartnerOpportunityIdentifier") or "") in wanted:
                        _keep_oldest(found, summary)
                complete = not page.get("NextToken")
            # A catalog bigger than the lookups cost: look the rest up by id.
            remaining = [] if complete else [d for d in remaining if d not in found]
        for start in range(0, len(remaining), LOOKUP_BATCH):
            batch = remaining[start : start + LOOKUP_BATCH]
            leaf = {"Key": "PartnerOpportunityIdentifier", "Value": {"StringListValue": batch}}
            for page in _pages(api, calls, Filter={"ContainsAny": leaf}):
                for summary in page.get("OpportunitySearchSummaries") or []:
                    if str(summary.get("PartnerOpportunityIdentifier") or "") in wanted:
                        _keep_oldest(found, summary)
    except AuthError as err:
        if _search_disabled(err):
            return None
        raise
    return {pid: s["Id"] for pid, s in found.items()}


def insight_values(summary: dict[str, Any]) -> dict[str, str | None]:
    """The insight fields of one ``OpportunitySearchSummary``, as HubSpot property strings."""
    aws = summary.get("AwsOpportunitySummary") or {}
    insights = aws.get("Insights") or {}
    score = (insights.get("OpportunityQuality") or {}).get("Score")
    return {
        "origin": aws.get("Origin"),
        "cosell_motion": aws.get("CosellMotion"),
        "engagement_score": insights.get("EngagementScore"),
        "quality_score": None if score is None else str(score),
    }


def read_insights(
    api: PartnerCentralApi, calls: Counter[str], modified_since: datetime | None = None
) -> dict[str, dict[str, str | None]] | None:
    """AWS insights per opportunity, 100 opportunities per call.

    Args:
        api: the Partner Central client.
        calls: API call counter.
        modified_since: only opportunities modified at or after this instant (None: all of them).

    Returns:
        opportunity id -> insight values, for every opportunity past Pending Submission; ``None`` when
        search is not enabled for the account.
    """
    params: dict[str, Any] = {"Sort": {"SortBy": "LastModifiedDate", "SortOrder": "ASCENDING"}}
    # AWS has not seen an opportunity still in Pending Submission: it has no insights to read (this keeps
    # the scan of a freshly loaded book to the records AWS works on).
    not_pending = {
        "NotFilter": {"EqualsTo": {"Key": "ReviewStatus", "Value": {"StringValue": "Pending Submission"}}}
    }
    if modified_since is not None:
        since = {"GreaterThanOrEquals": {"Key": "LastModifiedDate", "Value": {"DateValue": modified_since}}}
        params["Filter"] = {"AndAllFilters": [since, not_pending]}
    else:
        params["Filter"] = not_pending
    out: dict[str, dict[str, str | None]] = {}
    try:
        for page in _pages(api, calls, **params):
            for summary in page.get("OpportunitySearchSummaries") or []:
                out[summary["Id"]] = insight_values(summary)
    except AuthError as err:
        if _search_disabled(err):
            return None
        raise
    return out


def read_tags(
    api: PartnerCentralApi, calls: Counter[str], ids: list[str] | None = None
) -> dict[str, list[dict[str, str]]] | None:
    """Opportunities' tags as search shows them, 100 opportunities per call.

    The search index may lag a tag write: callers use this only to find the opportunities whose tags may
    have changed, and read those with ``ListTagsForResource`` before acting (``cosell_sync.tags``).

    Args:
        api: the Partner Central client.
        calls: API call counter.
        ids: only these opportunities (100 a request: five ``ContainsAny`` leaves of 20 ids on
            ``OpportunityId``, matched exactly here since ``ContainsAny`` matches substrings); None: all.

    Returns:
        opportunity id -> its ``Tags`` (``[]`` when none); ``None`` when search is not enabled.
    """
    out: dict[str, list[dict[str, str]]] = {}
    wanted = set(ids or [])
    if ids is None:
        requests: list[dict[str, Any]] = [{"Sort": {"SortBy": "CreatedDate", "SortOrder": "ASCENDING"}}]
    else:
        ordered = sorted(wanted)
        requests = []
        for start in range(0, len(ordered), PAGE_SIZE):
            chunk = ordered[start : start + PAGE_SIZE]
            leaves = [
                {
                    "ContainsAny": {
                        "Key": "OpportunityId",
                        "Value": {"StringListValue": chunk[i : i + LOOKUP_BATCH]},
                    }
                }
                for i in range(0, len(chunk), LOOKUP_BATCH)
            ]
            requests.append({"Filter": leaves[0] if len(leaves) == 1 else {"OrAllFilters": leaves}})
    try:
        for params in requests:
            for page in _pages(api, calls, **params):
                for summary in page.get("OpportunitySearchSummaries") or []:
                    oid = str(summary["Id"])
                    if ids is None or oid in wanted:
                        out[oid] = list(summary.get("Tags") or [])
    except AuthError as err:
        if _search_disabled(err):
            return None
        raise
    return out
