"""AWS insights (origin, co-sell motion, engagement score, quality score) into deal properties.

``SearchOpportunities`` returns them in its summaries, 100 opportunities per call
(:func:`cosell_sync.pc_search.read_insights`). The step keeps what it last wrote in
``state/{catalog}/insights.parquet`` and writes to HubSpot only the deals whose insights changed, in
batches of 100: an unchanged book costs no HubSpot write (and so no deal looks modified to the next run).

Insights can change without the opportunity's ``LastModifiedDate`` moving, so every
``insights.full_refresh_hours`` (and in every ``full`` run) all opportunities are scanned; in between, only
those modified since the run's Partner Central window.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cosell_sync.common import DEAL, Direction, clean, parse_ts
from cosell_sync.errors import NotFoundError
from cosell_sync.pc_search import INSIGHT_PROPERTIES, read_insights
from cosell_sync.storage import StepState

if TYPE_CHECKING:
    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

COLUMNS = list(INSIGHT_PROPERTIES)


def sync_insights(env: SyncEnv, run: dict[str, Any], pc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Copy changed AWS insights to the linked deals.

    Args:
        env: clients and stores.
        run: the run description.
        pc: the Partner Central extract's result: an incremental run in which nothing was listed as
            modified reads no insights (a run with no change costs no extra call).

    Returns:
        ``read`` (opportunities scanned), ``changed``, ``written`` (deals updated), ``failed``, ``full``
        (whether this was a full scan), ``api_calls``; or ``skipped`` with the reason.
    """
    import pandas as pd

    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers.hubspot import HubSpotWriter

    cfg = env.config.insights
    if run.get("dry_run") or not cfg.enabled:
        return {"skipped": "dry run" if run.get("dry_run") else "insights.enabled is false"}
    if run.get("direction") == Direction.TO_PARTNER_CENTRAL.value:
        return {"skipped": "this run only writes to Partner Central"}
    catalog = run["catalog"]
    calls: Counter[str] = Counter()
    step_state = StepState(env.snapshots, catalog, "insights")
    previous, meta = step_state.load()
    last_full = parse_ts(meta["last_full_scan"]) if meta.get("last_full_scan") else None
    now = datetime.now(UTC)
    full = (
        previous is None
        or run.get("mode") == "full"
        or last_full is None
        or now - last_full >= timedelta(hours=cfg.full_refresh_hours)
    )
    since = None if full or not run.get("since_partner_central") else parse_ts(run["since_partner_central"])
    if not full and since is None:
        full = True
    if not full and pc is not None and not pc.get("listed"):
        return {"skipped": "no opportunity modified since the last run", "read": 0, "written": 0}
    insights = read_insights(env.partner_central, calls, since)
    if insights is None:
        log.warning("SearchOpportunities is not enabled for this account: AWS insights are not copied.")
        return {"skipped": "search not enabled", "api_calls": dict(calls)}
    known: dict[str, dict[str, str | None]] = {}
    if previous is not None and len(previous):
        known = {
            str(oid): {c: clean(row.get(c)) for c in COLUMNS}
            for oid, row in previous[COLUMNS].to_dict(orient="index").items()
        }
    # An opportunity seen for the first time with no insight at all needs no write (the deal has none).
    changed = {oid: v for oid, v in insights.items() if known.get(oid, dict.fromkeys(COLUMNS)) != v}
    deals = _linked_deals(env, list(changed))
    updates = {
        deals[oid]: {INSIGHT_PROPERTIES[k]: ("" if v is None else v) for k, v in values.items()}
        for oid, values in changed.items()
        if oid in deals
    }
    gw = HubSpotGateway(env.hubspot)
    outcome = HubSpotWriter(env.config, gw).update_objects(
        {DEAL.plural: updates}, {(DEAL.plural, d): oid for oid, d in deals.items()}
    )
    for oid, error in outcome.failed.items():
        log.error("Insights of opportunity %s not written to its deal: %s", oid, error.get("message"))
    # Only what reached HubSpot (or has no deal yet) counts as known: a failed deal is written next run.
    # An opportunity without a deal yet stays unknown, so its insights go out once the deal is linked.
    merged = dict(known)
    for oid, values in insights.items():
        if oid in deals and oid not in outcome.failed:
            merged[oid] = values
    frame = pd.DataFrame.from_dict(merged, orient="index", columns=COLUMNS)
    frame.index.name = "opportunity_id"
    step_state.save_frame(frame)
    if full:
        meta["last_full_scan"] = now.isoformat()
    step_state.save_meta(meta)
    calls.update(gw.calls)
    result = {
        "read": len(insights),
        "changed": len(changed),
        "written": len(outcome.updated),
        "failed": len(outcome.failed),
        "full": full,
        "api_calls": dict(calls),
    }
    log.info("AWS insights: %s", result)
    return result


def _linked_deals(env: SyncEnv, opportunity_ids: list[str]) -> dict[str, str]:
    """The deal of each opportunity, from the baseline (a record not synced yet has no deal to write)."""
    if not opportunity_ids:
        return {}
    try:
        base = env.baseline.load(columns=["deal_id"])
    except NotFoundError:
        return {}
    wanted = set(opportunity_ids)
    return {
        str(oid): str(deal)
        for oid, deal in base["deal_id"].items()
        if str(oid) in wanted and clean(deal) is not None
    }
