"""The steps of one reconciliation run, each a plain function a DAG task calls.

Every step takes a :class:`SyncEnv` (API clients and stores) and small dicts (the run and the results
of earlier steps, as XCom carries them: S3 keys, counts, ids) and returns a small dict. Data moves
between steps through S3 Parquet snapshots, never through XCom.

Ordering and idempotency, by design:
- extract steps only read; ``plan`` only computes;
- ``apply_partner_central`` creates with a ``ClientToken`` derived from the deal, and skips an update
  whose merged payload already matches the record (so a retried task re-sends nothing);
- ``apply_hubspot`` creates deals by upsert on the unique link property and checkpoints notes per batch;
- ``commit`` writes audit entries under deterministic keys, then the baseline, the retry queue and, last,
  the watermark: a failure anywhere before leaves the watermark where it was and the run is redone.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cosell_sync.errors import ConflictError, SyncError
from cosell_sync.hubspot_api import NOTE_TO_DEAL, TASK_TO_DEAL, HubSpotGateway, association_to, error_ids

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.audit import AuditTrail
    from cosell_sync.clients import HubSpotApi, PartnerCentralApi
    from cosell_sync.config import SyncConfig
    from cosell_sync.state import BaselineStore, ConflictStore, RetryQueue, WatermarkStore
    from cosell_sync.storage import SnapshotStore

log = logging.getLogger(__name__)

PC_SIDE = "partner_central"
HS_SIDE = "hubspot"
TO_HUBSPOT = "partner_central_to_hubspot"
TO_PARTNER_CENTRAL = "hubspot_to_partner_central"
#: HubSpot deal properties every extract reads besides the mapped ones.
DEAL_SYSTEM_PROPERTIES = ("hs_lastmodifieddate", "hubspot_owner_id", "pipeline", "dealstage")


@dataclass
class SyncEnv:
    """Everything a step needs: config, API clients and stores (built by the Airflow glue)."""

    config: SyncConfig
    catalog: str
    partner_central: PartnerCentralApi
    hubspot: HubSpotApi
    snapshots: SnapshotStore
    baseline: BaselineStore
    watermarks: WatermarkStore
    retry: RetryQueue
    conflicts: ConflictStore
    audit: AuditTrail


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def ts_key(value: Any) -> str | None:
    """A timestamp as an ISO-8601 UTC string with milliseconds (how baselines store them)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_ts(value: str | None) -> datetime | None:
    """Parse an ISO timestamp (``Z`` allowed) to an aware UTC datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return ts_key(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _run_key(run: dict[str, Any], name: str, ext: str = "parquet") -> str:
    return f"runs/{run['catalog']}/{run['run_id'].replace(':', '_').replace('+', '_')}/{name}.{ext}"


def _fields(cfg: SyncConfig, obj: str | None = None) -> list[Any]:
    return [f for f in cfg.fields if obj is None or f.object == obj]


def _hs_properties(cfg: SyncConfig, obj: str) -> list[str]:
    props = {f.hubspot for f in _fields(cfg, obj)}
    if obj == "deal":
        props |= {cfg.link_property, cfg.cosell_property, *DEAL_SYSTEM_PROPERTIES}
    elif obj == "contact":
        props.add("lastmodifieddate")
    else:
        props.add("hs_lastmodifieddate")
    return sorted(props)


def _modified_property(obj: str) -> str:
    # Contacts carry ``lastmodifieddate``; deals and companies ``hs_lastmodifieddate``.
    return "lastmodifieddate" if obj == "contact" else "hs_lastmodifieddate"


def _window_filters(prop: str, since: str | None, until: str | None) -> list[dict[str, str]]:
    filters = []
    if since:
        filters.append(
            {"propertyName": prop, "operator": "GTE", "value": str(int(parse_ts(since).timestamp() * 1000))}
        )
    if until:
        filters.append(
            {"propertyName": prop, "operator": "LT", "value": str(int(parse_ts(until).timestamp() * 1000))}
        )
    return filters


def _empty_frame(columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(columns=columns, dtype=object)
    frame.index.name = "opportunity_id"
    return frame


# ---------------------------------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------------------------------
def prepare(env: SyncEnv, params: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Fix the run: catalog, mode, direction and the time window each side is read from.

    Args:
        env: clients and stores.
        params: the DAG params (``mode``, ``direction``, ``dry_run``, ``since``, ``catalog``,
            ``opportunity_ids``).
        info: ``run_id``, ``dag_id``, ``run_type`` and the data interval of the Airflow run.

    Returns:
        The run description every later step receives.
    """
    cfg = env.config
    now = datetime.now(UTC)
    overlap = timedelta(minutes=cfg.overlap_minutes)
    mode = params.get("mode") or "incremental"
    run_type = str(info.get("run_type") or "manual").lower()
    is_backfill = "backfill" in run_type
    since_pc = since_hs = until = None
    if params.get("since"):
        since_pc = since_hs = ts_key(parse_ts(str(params["since"])))
    elif mode == "full":
        pass
    elif is_backfill and info.get("data_interval_start"):
        # A backfill run reconciles what changed in its own interval (plus the overlap).
        since_pc = since_hs = ts_key(parse_ts(str(info["data_interval_start"])) - overlap)
        until = ts_key(parse_ts(str(info["data_interval_end"])))
    else:
        for side in (PC_SIDE, HS_SIDE):
            mark = env.watermarks.get(env.catalog, side)
            value = ts_key(mark - overlap) if mark else None
            if side == PC_SIDE:
                since_pc = value
            else:
                since_hs = value
    ids = [str(i) for i in (params.get("opportunity_ids") or [])]
    run = {
        "run_id": str(info["run_id"]),
        "dag_id": str(info.get("dag_id") or "cosell_reconcile"),
        "run_type": run_type,
        "catalog": env.catalog,
        "mode": mode,
        "direction": params.get("direction") or "both",
        "dry_run": bool(params.get("dry_run")),
        "opportunity_ids": ids,
        "since_partner_central": since_pc,
        "since_hubspot": since_hs,
        "until": until,
        "started_at": ts_key(now),
        # The watermark only moves for runs that looked at everything that changed up to now.
        "advance_watermark": not (is_backfill or ids or params.get("dry_run") or params.get("since")),
    }
    log.info(
        "Run window: catalog=%s mode=%s direction=%s dry_run=%s partner_central since %s, "
        "hubspot since %s, until %s",
        run["catalog"],
        mode,
        run["direction"],
        run["dry_run"],
        since_pc or "the beginning",
        since_hs or "the beginning",
        until or "now",
    )
    return run


# ---------------------------------------------------------------------------------------------------
# extract
# ---------------------------------------------------------------------------------------------------
def extract_partner_central(env: SyncEnv, run: dict[str, Any]) -> dict[str, Any]:
    """List opportunities changed in the window and ``GetOpportunity`` only those that really changed.

    A summary whose ``LastModifiedDate`` equals the baseline's was already synced (the overlap re-lists
    it); records in the retry queue are read again even when unchanged.
    """
    from cosell_sync.mapping import opportunities_to_frame

    cfg, pc = env.config, env.partner_central
    calls: Counter[str] = Counter()
    base = env.baseline.load()
    base_lm = base["pc_last_modified"].to_dict() if "pc_last_modified" in base.columns else {}
    wanted: set[str] = set()
    listed = 0
    if run["opportunity_ids"]:
        wanted |= set(run["opportunity_ids"])
    else:
        kwargs: dict[str, Any] = {
            "MaxResults": 100,
            "Sort": {"SortBy": "LastModifiedDate", "SortOrder": "ASCENDING"},
        }
        window: dict[str, Any] = {}
        if run["since_partner_central"]:
            window["AfterLastModifiedDate"] = parse_ts(run["since_partner_central"])
        if run["until"]:
            window["BeforeLastModifiedDate"] = parse_ts(run["until"])
        if window:
            kwargs["LastModifiedDate"] = window
        for page in pc.paginate("list_opportunities", **kwargs):
            calls["ListOpportunities"] += 1
            for summary in page.get("OpportunitySummaries", []):
                listed += 1
                oid = summary["Id"]
                if base_lm.get(oid) != ts_key(summary.get("LastModifiedDate")):
                    wanted.add(oid)
    retry_items = [r for r in env.retry.list() if r.get("opportunity_id")]
    wanted |= {r["opportunity_id"] for r in retry_items}

    opportunities: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for oid in sorted(wanted):
        calls["GetOpportunity"] += 1
        try:
            opp = pc.call("get_opportunity", Identifier=oid)
        except SyncError as err:
            log.error("GetOpportunity failed for %s: %s", oid, err.message)
            failures.append({"opportunity_id": oid, "error": err.to_dict()})
            continue
        opp.pop("ResponseMetadata", None)
        opportunities.append(opp)
    frame = opportunities_to_frame(opportunities, cfg)
    raw = {o["Id"]: json.dumps(o, default=_json_default, sort_keys=True) for o in opportunities}
    frame["_raw"] = frame.index.map(raw)
    frame["_lm_key"] = frame.index.map({o["Id"]: ts_key(o.get("LastModifiedDate")) for o in opportunities})
    key = _run_key(run, "partner_central")
    env.snapshots.put_frame(frame, key)
    log.info(
        "Partner Central: %d listed, %d read (%d from the retry queue), %d failed reads",
        listed,
        len(opportunities),
        len(retry_items),
        len(failures),
    )
    return {
        "key": key,
        "listed": listed,
        "read": len(opportunities),
        "failures": failures,
        "api_calls": dict(calls),
    }


def extract_hubspot(env: SyncEnv, run: dict[str, Any], pc_result: dict[str, Any]) -> dict[str, Any]:
    """Read the HubSpot side of every record that changed on either side, as economically as possible.

    - deals changed in the window (linked, or marked for co-sell) via search, windowed past 10,000;
    - companies and contacts changed in the window via search, mapped back to their deals;
    - deals linked to opportunities we have no baseline for, via batch read on the unique link property;
    - deals in the retry queue, via batch read.
    A record's values on objects that were not read are taken from the baseline: unchanged by definition.
    """
    from cosell_sync.mapping import hubspot_to_frame

    cfg = env.config
    gw = HubSpotGateway(env.hubspot)
    link = cfg.link_property
    base = env.baseline.load()
    base_deal = base["deal_id"].dropna().to_dict() if "deal_id" in base.columns else {}
    deal_to_opp = {str(d): o for o, d in base_deal.items()}
    deal_props = _hs_properties(cfg, "deal")
    deals: dict[str, dict[str, Any]] = {}

    if run["opportunity_ids"]:
        found, _ = gw.batch_read("deals", run["opportunity_ids"], deal_props, id_property=link)
        deals.update({d["id"]: d for d in found})
    else:
        window = _window_filters("hs_lastmodifieddate", run["since_hubspot"], run["until"])
        groups = [
            {"filters": [*window, {"propertyName": link, "operator": "HAS_PROPERTY"}]},
            {"filters": [*window, {"propertyName": cfg.cosell_property, "operator": "EQ", "value": "true"}]},
        ]
        for deal in gw.search("deals", groups, deal_props, "hs_lastmodifieddate"):
            deals[deal["id"]] = deal

    # Opportunities that changed but whose deal we don't know yet (new, or linked by hand).
    pc_frame = env.snapshots.get_frame(pc_result["key"])
    linked_now = {d["properties"].get(link) for d in deals.values()}
    unknown = [o for o in pc_frame.index if o not in base_deal and o not in linked_now]
    if unknown:
        found, _ = gw.batch_read("deals", unknown, deal_props, id_property=link)
        deals.update({d["id"]: d for d in found})
    # Records in the retry queue (failed or deferred last time): read their deals again, because a
    # HubSpot change that could not be applied must not be mistaken for "unchanged since the baseline".
    retry_deals: set[str] = set()
    for item in env.retry.list():
        deal_id = item.get("deal_id") or base_deal.get(item.get("opportunity_id"))
        if deal_id and str(deal_id) not in deals:
            retry_deals.add(str(deal_id))
    if retry_deals:
        found, _ = gw.batch_read("deals", retry_deals, deal_props)
        deals.update({d["id"]: d for d in found})

    # Companies and contacts that changed in the window, and the deals they belong to.
    related: dict[str, dict[str, dict[str, Any]]] = {"company": {}, "contact": {}}
    related_deals: dict[str, dict[str, str]] = {"company": {}, "contact": {}}
    plural = {"company": "companies", "contact": "contacts"}
    if not run["opportunity_ids"] and run["since_hubspot"]:
        for obj in ("company", "contact"):
            if not _fields(cfg, obj):
                continue
            window = _window_filters(_modified_property(obj), run["since_hubspot"], run["until"])
            changed = {
                o["id"]: o
                for o in gw.search(
                    plural[obj], [{"filters": window}], _hs_properties(cfg, obj), _modified_property(obj)
                )
            }
            if not changed:
                continue
            # The baseline knows which deal each synced company/contact belongs to; ask HubSpot's
            # associations only for the ones it does not know (saves a call per 100 after large writes).
            id_column = f"{obj}_id"
            known: dict[str, list[str]] = {}
            if id_column in base.columns:
                for opp_id, rid in base[id_column].dropna().items():
                    if str(rid) in changed and opp_id in base_deal:
                        known.setdefault(str(rid), []).append(str(base_deal[opp_id]))
            unknown_ids = [rid for rid in changed if rid not in known]
            owners = {**known, **(gw.associations(plural[obj], "deals", unknown_ids) if unknown_ids else {})}
            for oid, deal_ids in owners.items():
                for deal_id in deal_ids:
                    if deal_id in deal_to_opp or deal_id in deals:
                        related[obj][oid] = changed[oid]
                        related_deals[obj][deal_id] = oid

    # Deals we read in full and have no baseline for need their company and contact too.
    new_links = [
        d
        for d, deal in deals.items()
        if deal["properties"].get(link) not in base_deal or not deal["properties"].get(link)
    ]
    for obj in ("company", "contact"):
        if not _fields(cfg, obj) or not new_links:
            continue
        assoc = gw.associations("deals", plural[obj], new_links)
        first = {d: ids[0] for d, ids in assoc.items() if ids}
        missing = [i for i in set(first.values()) if i not in related[obj]]
        if missing:
            found, _ = gw.batch_read(plural[obj], missing, _hs_properties(cfg, obj))
            related[obj].update({o["id"]: o for o in found})
        related_deals[obj].update(first)

    # Split deals: linked ones go into the record frame; unlinked co-sell deals become new opportunities.
    linked = [d for d in deals.values() if d["properties"].get(link)]
    unlinked = [
        d
        for d in deals.values()
        if not d["properties"].get(link)
        and str(d["properties"].get(cfg.cosell_property, "")).lower() == "true"
    ]
    # Deals touched only through a company/contact change: stand-ins carrying just the link.
    for obj in ("company", "contact"):
        for deal_id in related_deals[obj]:
            if deal_id not in deals and deal_id in deal_to_opp:
                deals[deal_id] = {"id": deal_id, "properties": {link: deal_to_opp[deal_id]}, "_stub": True}
                linked.append(deals[deal_id])
    companies = dict(related["company"])
    contacts = dict(related["contact"])
    frame = hubspot_to_frame(
        [{k: v for k, v in d.items() if k != "_stub"} for d in linked],
        companies,
        contacts,
        related_deals["company"],
        related_deals["contact"],
        cfg,
    )
    frame = _fill_unread_from_baseline(
        frame,
        base,
        cfg,
        read_deals={d["id"] for d in linked if not d.get("_stub")},
        read_companies=set(companies),
        read_contacts=set(contacts),
    )
    new_frame = hubspot_to_frame(
        [{**d, "properties": {**d["properties"], link: f"new:{d['id']}"}} for d in unlinked],
        companies,
        contacts,
        related_deals["company"],
        related_deals["contact"],
        cfg,
    )
    key, new_key = _run_key(run, "hubspot"), _run_key(run, "hubspot_new")
    env.snapshots.put_frame(frame, key)
    env.snapshots.put_frame(new_frame, new_key)
    log.info(
        "HubSpot: %d linked deals changed, %d new co-sell deals, %d companies and %d contacts "
        "changed; %d API calls",
        len(frame),
        len(new_frame),
        len(companies),
        len(contacts),
        gw.total_calls,
    )
    return {
        "key": key,
        "new_key": new_key,
        "deals": len(frame),
        "new_deals": len(new_frame),
        "api_calls": dict(gw.calls),
    }


def _fill_unread_from_baseline(
    frame: pd.DataFrame,
    base: pd.DataFrame,
    cfg: SyncConfig,
    *,
    read_deals: set[str],
    read_companies: set[str],
    read_contacts: set[str],
) -> pd.DataFrame:
    """Replace the columns of objects we did not read with the baseline's (they did not change)."""
    if frame.empty or base.empty:
        return frame
    known = frame.index.intersection(base.index)
    if known.empty:
        return frame
    frame = frame.copy()
    checks = {
        "deal": ("_deal_id", read_deals),
        "company": ("_company_id", read_companies),
        "contact": ("_contact_id", read_contacts),
    }
    for obj, (id_col, read) in checks.items():
        cols = [f.name for f in _fields(cfg, obj) if f.name in base.columns and f.name in frame.columns]
        if not cols:
            continue
        ids = frame.loc[known, id_col] if id_col in frame.columns else None
        unread = known if ids is None else known[~ids.astype(str).isin(read).to_numpy()]
        if len(unread):
            frame.loc[unread, cols] = base.loc[unread, cols].to_numpy()
    return frame


# ---------------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------------
def plan(
    env: SyncEnv, run: dict[str, Any], pc_result: dict[str, Any], hs_result: dict[str, Any]
) -> dict[str, Any]:
    """Diff both sides against the baseline, resolve conflicts, gate by review state; store the plan.

    The stored plan (``plan.json``) is the complete list of intended writes: in a dry run it is the
    product; otherwise the apply steps execute it and ``commit`` records what happened.
    """
    from cosell_sync.conflicts import resolve
    from cosell_sync.diff import three_way_diff
    from cosell_sync.plan import build_plan

    cfg = env.config
    base = env.baseline.load()
    pc = env.snapshots.get_frame(pc_result["key"])
    hs = env.snapshots.get_frame(hs_result["key"])
    new_deals = env.snapshots.get_frame(hs_result["new_key"])
    direction = run["direction"]

    # Only linked pairs are diffed: an opportunity without a deal (or a deal without an opportunity)
    # is a create, handled below, not an update of every field.
    linked = set(base.index) | set(hs.index)
    pc_linked = pc[pc.index.isin(list(linked))]
    diff = three_way_diff(base, pc_linked, hs, cfg)
    resolved = resolve(diff, cfg)
    frozen = env.conflicts.frozen_fields()
    if frozen and not resolved.empty:
        # A field with a pending manual conflict waits for a person; nothing syncs it meanwhile.
        keys = list(zip(resolved["opportunity_id"], resolved["field"], strict=True))
        resolved = resolved[[k not in frozen for k in keys]]
    planned = build_plan(resolved, pc, base, cfg)
    for item in planned.conflicts:
        # When each side last changed, for the person resolving it (and the conflict's identity).
        oid = item["opportunity_id"]
        item["partner_central_timestamp"] = _clean(pc.at[oid, "_lm_key"]) if oid in pc.index else None
        stamp = hs.at[oid, "_last_modified"] if oid in hs.index else None
        item["hubspot_timestamp"] = ts_key(stamp) if _clean(stamp) else None
    if direction == TO_HUBSPOT:
        planned.partner_central_updates = {}
    elif direction == TO_PARTNER_CENTRAL:
        planned.hubspot_updates = {}

    # New records: opportunities no deal is linked to, and co-sell deals with no opportunity.
    create_deals = (
        []
        if direction == TO_PARTNER_CENTRAL
        else [oid for oid in pc.index if oid not in linked and not _is_error(pc, oid)]
    )
    create_opps = (
        []
        if direction == TO_HUBSPOT
        else [
            {
                "deal_id": str(row["_deal_id"]),
                "values": {f: _clean(row.get(f)) for f in cfg.field_names() if f in new_deals.columns},
            }
            for _, row in new_deals.iterrows()
        ]
    )
    # A co-sell deal reaching the configured stage submits its opportunity to AWS.
    submit: list[str] = []
    if cfg.submit_stage and direction != TO_HUBSPOT:
        stage_field = next((f.name for f in cfg.fields if f.hubspot == "dealstage"), None)
        target = next(
            (s.partner_central_stage for s in cfg.stages if s.hubspot_stage == cfg.submit_stage), None
        )
        if stage_field and target and stage_field in hs.columns:
            for oid, row in hs.iterrows():
                review = (
                    pc["_review_status"].get(oid)
                    if oid in pc.index
                    else (base["review_status"].get(oid) if "review_status" in base.columns else None)
                )
                before = (
                    base.at[oid, stage_field] if oid in base.index and stage_field in base.columns else None
                )
                # A transition, not a state: a deal that sits in the stage after a failed submission is
                # not resubmitted every run; moving it out and back in tries again.
                if row.get(stage_field) == target and before != target and review == "Pending Submission":
                    submit.append(str(oid))
            for item in create_opps:
                item["submit"] = item["values"].get(stage_field) == target

    document = {
        "run_id": run["run_id"],
        "hubspot_updates": planned.hubspot_updates,
        "partner_central_updates": planned.partner_central_updates,
        "conflicts": planned.conflicts,
        "deferred": planned.deferred,
        "blocked": planned.blocked,
        "converged": list(planned.converged),
        "create_deals": create_deals,
        "create_opportunities": create_opps,
        "submit": submit,
        "diff_rows": len(resolved),
    }
    key = _run_key(run, "plan", "json")
    env.snapshots.put_json(document, key)
    counts = {
        name: len(document[name])
        for name in (
            "hubspot_updates",
            "partner_central_updates",
            "conflicts",
            "deferred",
            "blocked",
            "create_deals",
            "create_opportunities",
            "submit",
        )
    }
    _log_plan(document, run["dry_run"])
    return {"key": key, "counts": counts}


def _is_error(frame: pd.DataFrame, oid: str) -> bool:
    return "_error" in frame.columns and bool(frame.at[oid, "_error"])


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _log_plan(document: dict[str, Any], dry_run: bool) -> None:
    prefix = "DRY RUN - would" if dry_run else "Plan:"
    for oid, fields in document["hubspot_updates"].items():
        log.info("%s update HubSpot deal of %s: %s", prefix, oid, ", ".join(sorted(fields)))
    for oid, fields in document["partner_central_updates"].items():
        log.info("%s update opportunity %s: %s", prefix, oid, ", ".join(sorted(fields)))
    for oid in document["create_deals"]:
        log.info("%s create a HubSpot deal for opportunity %s", prefix, oid)
    for item in document["create_opportunities"]:
        log.info("%s create an opportunity for deal %s", prefix, item["deal_id"])
    for oid in document["submit"]:
        log.info("%s submit opportunity %s to AWS", prefix, oid)
    for item in document["deferred"]:
        log.info("Deferred %s.%s: %s", item["opportunity_id"], item["field"], item["reason"])
    for item in document["blocked"]:
        log.info("Blocked %s.%s: %s", item["opportunity_id"], item["field"], item["reason"])
    for item in document["conflicts"]:
        log.info(
            "Manual conflict on %s.%s (conflict %s)",
            item["opportunity_id"],
            item["field"],
            item["conflict_id"],
        )


# ---------------------------------------------------------------------------------------------------
# apply: Partner Central
# ---------------------------------------------------------------------------------------------------
def apply_partner_central(env: SyncEnv, run: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """Create, update and submit opportunities; every write is safe to repeat.

    Updates send the full merged record with the ``LastModifiedDate`` we read (UpdateOpportunity
    replaces the whole record); on ``ConflictException`` we re-read, re-merge and retry a bounded number
    of times. An update whose merged payload equals the current record is skipped, so a retried task
    re-sends nothing it already applied.
    """
    from cosell_sync.mapping import (
        client_token,
        merge_into_opportunity,
        new_opportunity_request,
        opportunities_to_frame,
    )

    results: dict[str, Any] = {"created": {}, "updated": {}, "submitted": [], "failed": {}, "skipped": []}
    if run["dry_run"]:
        return {"key": None, "dry_run": True, "counts": {}}
    cfg, pc = env.config, env.partner_central
    document = env.snapshots.get_json(planned["key"])
    calls: Counter[str] = Counter()
    # The records extract read minutes ago: usually still current, which saves a GetOpportunity each.
    raw = env.snapshots.get_frame(_run_key(run, "partner_central"), columns=["_raw"])["_raw"].to_dict()

    for item in document["create_opportunities"]:
        deal_id = item["deal_id"]
        try:
            request = new_opportunity_request(item["values"], deal_id, cfg)
            calls["CreateOpportunity"] += 1
            created = pc.call("create_opportunity", **request)
            # Read it back: the deal gets the values Partner Central holds (review status, defaults) in
            # this run, and the baseline starts from what Partner Central really stored.
            calls["GetOpportunity"] += 1
            stored = pc.call("get_opportunity", Identifier=created["Id"])
            stored.pop("ResponseMetadata", None)
            values = opportunities_to_frame([stored], cfg)
            results["created"][deal_id] = {
                "opportunity_id": created["Id"],
                "last_modified": ts_key(stored.get("LastModifiedDate")),
                "review_status": stored.get("LifeCycle", {}).get("ReviewStatus"),
                "values": {f: _clean(values.iloc[0][f]) for f in cfg.field_names() if f in values.columns},
            }
            if item.get("submit"):
                document["submit"].append(created["Id"])
        except SyncError as err:
            log.error("CreateOpportunity for deal %s failed: %s", deal_id, err.message)
            results["failed"][f"deal:{deal_id}"] = err.to_dict()

    for oid, changes in document["partner_central_updates"].items():
        started = time.monotonic()
        current = _loads_opportunity(raw.get(oid)) if raw.get(oid) else None
        for attempt in range(cfg.conflict_retries + 1):
            try:
                if current is None:
                    calls["GetOpportunity"] += 1
                    current = pc.call("get_opportunity", Identifier=oid)
                    current.pop("ResponseMetadata", None)
                payload = merge_into_opportunity(current, changes, cfg)
                if _already_applied(payload, current):
                    results["skipped"].append(oid)
                    break
                calls["UpdateOpportunity"] += 1
                updated = pc.call("update_opportunity", **payload)
                results["updated"][oid] = {
                    "last_modified": ts_key(updated.get("LastModifiedDate")),
                    "fields": sorted(changes),
                    "attempts": attempt + 1,
                    "ms": int((time.monotonic() - started) * 1000),
                }
                break
            except ConflictError as err:
                # Someone changed the record since we read it: re-read, re-merge, try again.
                log.warning("ConflictException on %s (attempt %d): %s", oid, attempt + 1, err.message)
                current = None
                if attempt == cfg.conflict_retries:
                    results["failed"][oid] = err.to_dict()
            except SyncError as err:
                log.error("UpdateOpportunity %s failed: %s", oid, err.message)
                results["failed"][oid] = err.to_dict()
                break

    for oid in document["submit"]:
        try:
            calls["StartEngagementFromOpportunityTask"] += 1
            task = pc.call(
                "start_engagement_from_opportunity_task",
                Identifier=oid,
                ClientToken=client_token(run["catalog"], f"submit-{oid}"),
                AwsSubmission={"InvolvementType": "Co-Sell", "Visibility": "Full"},
            )
            results["submitted"].append({"opportunity_id": oid, "task_id": task.get("TaskId")})
        except SyncError as err:
            log.error("Submitting %s failed: %s", oid, err.message)
            results["failed"][f"submit:{oid}"] = err.to_dict()

    results["api_calls"] = dict(calls)
    key = _run_key(run, "apply_partner_central", "json")
    env.snapshots.put_json(results, key)
    counts = {
        "created": len(results["created"]),
        "updated": len(results["updated"]),
        "submitted": len(results["submitted"]),
        "failed": len(results["failed"]),
        "already_applied": len(results["skipped"]),
    }
    log.info("Partner Central writes: %s", counts)
    return {"key": key, "counts": counts}


def _loads_opportunity(text: str) -> dict[str, Any]:
    opp = json.loads(text)
    if opp.get("LastModifiedDate"):
        opp["LastModifiedDate"] = parse_ts(opp["LastModifiedDate"])
    return opp


def _already_applied(payload: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when sending ``payload`` would not change ``current`` (a retried task's second pass)."""
    from cosell_sync.mapping import get_path

    def same(value: Any, path: str) -> bool:
        if isinstance(value, dict):
            return all(same(v, f"{path}.{k}" if path else k) for k, v in value.items())
        if isinstance(value, list):
            other = get_path(current, path)
            return (
                isinstance(other, list)
                and len(other) == len(value)
                and all(same(v, f"{path}[{i}]") for i, v in enumerate(value))
            )
        return get_path(current, path) == value

    return all(
        same(v, k) for k, v in payload.items() if k not in ("LastModifiedDate", "Catalog", "Identifier")
    )


# ---------------------------------------------------------------------------------------------------
# apply: HubSpot
# ---------------------------------------------------------------------------------------------------
def apply_hubspot(
    env: SyncEnv, run: dict[str, Any], planned: dict[str, Any], pc_applied: dict[str, Any]
) -> dict[str, Any]:
    """Batched HubSpot writes: deal/company/contact updates, new deals, links, notes, conflict tasks."""
    from cosell_sync.mapping import changes_to_hubspot, new_deal_properties

    if run["dry_run"]:
        return {"key": None, "dry_run": True, "counts": {}}
    cfg = env.config
    gw = HubSpotGateway(env.hubspot)
    link = cfg.link_property
    document = env.snapshots.get_json(planned["key"])
    pc_results = env.snapshots.get_json(pc_applied["key"]) if pc_applied.get("key") else {}
    hs = env.snapshots.get_frame(_run_key(run, "hubspot"))
    base = env.baseline.load()
    pc = env.snapshots.get_frame(_run_key(run, "partner_central"))
    results: dict[str, Any] = {
        "updated": {},
        "created": {},
        "linked": {},
        "failed": {},
        "notes": 0,
        "tasks": 0,
    }

    def object_id(oid: str, column: str) -> str | None:
        for frame in (hs, base):
            if oid in frame.index and column in frame.columns and _clean(frame.at[oid, column]):
                return str(frame.at[oid, column])
        return None

    # 1. updates of existing objects, grouped per object type (one batch stream each)
    per_object: dict[str, dict[str, dict[str, str]]] = {"deals": {}, "companies": {}, "contacts": {}}
    owner_of: dict[tuple[str, str], str] = {}
    id_columns = {
        "deal": ("deals", "_deal_id", "deal_id"),
        "company": ("companies", "_company_id", "company_id"),
        "contact": ("contacts", "_contact_id", "contact_id"),
    }
    for oid, changes in document["hubspot_updates"].items():
        for obj, props in changes_to_hubspot(changes, cfg).items():
            plural, frame_col, base_col = id_columns[obj]
            target = object_id(oid, frame_col) or object_id(oid, base_col)
            if not target:
                # e.g. a deal with no associated company: nothing to write these fields to.
                results.setdefault("skipped_fields", {}).setdefault(oid, []).extend(
                    f"{obj}.{p}" for p in sorted(props)
                )
                log.warning(
                    "No HubSpot %s associated with the deal of %s: %d field(s) not written",
                    obj,
                    oid,
                    len(props),
                )
                continue
            per_object[plural].setdefault(target, {}).update(props)
            owner_of[(plural, target)] = oid
    # 2. link deals to the opportunities created for them, and record sync errors on deals
    sent_values = {i["deal_id"]: i["values"] for i in document["create_opportunities"]}
    for deal_id, created in (pc_results.get("created") or {}).items():
        # Values Partner Central holds that the deal does not (review status, defaults) go with the link.
        sent = sent_values.get(deal_id, {})
        pushed = {
            f: v
            for f, v in (created.get("values") or {}).items()
            if cfg.field(f).direction != TO_PARTNER_CENTRAL and v != sent.get(f)
        }
        props = changes_to_hubspot(pushed, cfg).get("deal", {}) if pushed else {}
        per_object["deals"].setdefault(deal_id, {}).update(
            {**props, link: created["opportunity_id"], "aws_sync_error": ""}
        )
        results["linked"][deal_id] = created["opportunity_id"]
    for key, error in (pc_results.get("failed") or {}).items():
        oid = key.split(":", 1)[1] if ":" in key else key
        deal_id = oid if key.startswith("deal:") else object_id(oid, "_deal_id") or object_id(oid, "deal_id")
        if deal_id:
            per_object["deals"].setdefault(deal_id, {})["aws_sync_error"] = (
                f"{error.get('code') or error.get('type')}: {error.get('message')}"[:1000]
            )
    for plural, updates in per_object.items():
        if not updates:
            continue
        outcome = gw.batch_update(plural, updates)
        failed = error_ids(outcome.errors)
        for target in updates:
            oid = owner_of.get((plural, target), target)
            if target in failed:
                results["failed"][oid] = {"type": "ValidationError", "service": "hubspot", **failed[target]}
            else:
                results["updated"].setdefault(oid, []).append(plural)
        if outcome.errors and not failed:
            # A 207 whose errors name no ids: we cannot tell which items failed, so fail them all.
            for target in updates:
                results["failed"][owner_of.get((plural, target), target)] = {
                    "type": "ValidationError",
                    "message": outcome.errors[0].get("message"),
                }
    # 3. new deals for opportunities that have none: upsert on the unique link property (idempotent)
    if document["create_deals"]:
        rows = {}
        related_props: dict[str, dict[str, dict[str, str]]] = {}
        new_records = pc.loc[document["create_deals"]].to_dict(
            "index"
        )  # one conversion, not 25 .at per record
        for oid in document["create_deals"]:
            values = {c: _clean(new_records[oid].get(c)) for c in cfg.field_names()}
            props = new_deal_properties(values, oid, cfg)
            rows[oid] = props["deal"]
            related_props[oid] = props
        outcome = gw.batch_upsert("deals", link, rows)
        failed = error_ids(outcome.errors)
        for oid, err in failed.items():
            results["failed"][oid] = {"type": "ValidationError", "service": "hubspot", **err}
        for obj in outcome.results:
            if (obj.get("properties") or {}).get(link):
                results["created"][obj["properties"][link]] = obj["id"]
        # Batch responses are not ordered like the inputs and need not echo every property: find the
        # deal of any upserted opportunity we could not match by reading it back on the link property.
        unmatched = [oid for oid in rows if oid not in results["created"] and oid not in failed]
        if unmatched:
            found, _ = gw.batch_read("deals", unmatched, [link], id_property=link)
            for obj in found:
                results["created"][obj["properties"][link]] = obj["id"]
        results["related"] = _create_related(env, gw, run, results["created"], related_props)
    # 4. one note per deal summarising what the sync changed (checkpointed: never twice per run)
    results["notes"] = _write_notes(env, gw, run, document, results, object_id)
    # 5. manual conflicts: a pending item in DynamoDB, a task for the deal owner, a status on the deal
    results["tasks"] = _open_conflicts(env, gw, document, object_id)
    results["api_calls"] = dict(gw.calls)
    key = _run_key(run, "apply_hubspot", "json")
    env.snapshots.put_json(results, key)
    counts = {
        "updated": len(results["updated"]),
        "created": len(results["created"]),
        "linked": len(results["linked"]),
        "failed": len(results["failed"]),
        "notes": results["notes"],
        "tasks": results["tasks"],
    }
    log.info("HubSpot writes: %s (%d API calls)", counts, gw.total_calls)
    return {"key": key, "counts": counts}


def _create_related(
    env: SyncEnv,
    gw: HubSpotGateway,
    run: dict[str, Any],
    created: dict[str, str],
    props: dict[str, dict[str, dict[str, str]]],
) -> dict[str, dict[str, str | None]]:
    """Give each new deal its company and primary contact; returns their ids per opportunity.

    Contacts are upserted on ``email`` (unique in HubSpot), so a retry finds them instead of making
    duplicates; companies have no unique property, so their creation is checkpointed per run in S3.
    Ids are read back through the deal's associations: batch responses are not ordered like inputs.
    """
    from cosell_sync.hubspot_api import COMPANY_TO_DEAL, CONTACT_TO_DEAL, associate_default

    checkpoint = _run_key(run, "new_companies_done", "json")
    done: list[str] = env.snapshots.get_json(checkpoint) if env.snapshots.exists(checkpoint) else []
    company_inputs = [
        {
            "properties": props[oid]["company"],
            "associations": association_to(deal_id, COMPANY_TO_DEAL),
        }
        for oid, deal_id in created.items()
        if props.get(oid, {}).get("company") and oid not in done
    ]
    if company_inputs:
        gw.batch_create("companies", company_inputs)
    by_email = {
        p["contact"]["email"]: (oid, p["contact"])
        for oid, p in props.items()
        if oid in created and p.get("contact", {}).get("email")
    }
    if by_email:
        gw.batch_upsert("contacts", "email", {email: row for email, (_, row) in by_email.items()})
        found, _ = gw.batch_read("contacts", list(by_email), ["email"], id_property="email")
        contact_ids = {str(c["properties"].get("email")): c["id"] for c in found}
        pairs = [
            (created[oid], contact_ids[email]) for email, (oid, _) in by_email.items() if email in contact_ids
        ]
        associate_default(gw, "deals", "contacts", pairs)
    without_email = [
        {
            "properties": props[oid]["contact"],
            "associations": association_to(deal_id, CONTACT_TO_DEAL),
        }
        for oid, deal_id in created.items()
        if props.get(oid, {}).get("contact") and not props[oid]["contact"].get("email") and oid not in done
    ]
    if without_email:
        gw.batch_create("contacts", without_email)
    if company_inputs or without_email:
        # Both creates are done: a retried task must not create these companies or contacts again.
        env.snapshots.put_json(sorted({*done, *created}), checkpoint)
    deal_ids = list(created.values())
    companies = gw.associations("deals", "companies", deal_ids)
    contacts = gw.associations("deals", "contacts", deal_ids)
    return {
        oid: {"company_id": (companies.get(d) or [None])[0], "contact_id": (contacts.get(d) or [None])[0]}
        for oid, d in created.items()
    }


def _write_notes(
    env: SyncEnv,
    gw: HubSpotGateway,
    run: dict[str, Any],
    document: dict[str, Any],
    results: dict[str, Any],
    object_id: Any,
) -> int:
    marker = _run_key(run, "notes_done", "json")
    if env.snapshots.exists(marker):
        return int(env.snapshots.get_json(marker)["count"])
    now_ms = str(int(time.time() * 1000))
    inputs = []
    for oid, changes in document["hubspot_updates"].items():
        deal_id = object_id(oid, "_deal_id") or object_id(oid, "deal_id")
        if not deal_id or oid in results["failed"]:
            continue
        lines = "".join(f"<li>{env.config.field(f).hubspot}</li>" for f in sorted(changes))
        inputs.append(
            {
                "properties": {
                    "hs_timestamp": now_ms,
                    "hs_note_body": f"<p>AWS Partner Central sync updated:</p><ul>{lines}</ul>",
                },
                "associations": association_to(deal_id, NOTE_TO_DEAL),
            }
        )
    for deal_id, opp_id in results["linked"].items():
        inputs.append(
            {
                "properties": {
                    "hs_timestamp": now_ms,
                    "hs_note_body": f"<p>Linked to AWS Partner Central opportunity {opp_id}.</p>",
                },
                "associations": association_to(deal_id, NOTE_TO_DEAL),
            }
        )
    count = 0
    if inputs:
        outcome = gw.batch_create("notes", inputs)
        count = len(outcome.results)
    env.snapshots.put_json({"count": count}, marker)
    return count


def _open_conflicts(env: SyncEnv, gw: HubSpotGateway, document: dict[str, Any], object_id: Any) -> int:
    if not document["conflicts"]:
        return 0
    rows = []
    for item in document["conflicts"]:
        rows.append(
            {
                "conflict_id": item["conflict_id"],
                "opportunity_id": item["opportunity_id"],
                "field": item["field"],
                # the plan names the two sides pc/hs; the conflict store's columns are spelled out
                "partner_central_value": item.get("pc"),
                "hubspot_value": item.get("hs"),
                "partner_central_timestamp": item.get("partner_central_timestamp"),
                "hubspot_timestamp": item.get("hubspot_timestamp"),
                "deal_id": object_id(item["opportunity_id"], "_deal_id")
                or object_id(item["opportunity_id"], "deal_id"),
            }
        )
    fresh = env.conflicts.open(rows)
    fresh = [c for c in fresh if c.get("deal_id")]
    if not fresh:
        return 0
    inputs = [
        {
            "properties": {
                "hs_task_subject": f"Resolve co-sell conflict on {env.config.field(c['field']).hubspot}",
                "hs_task_body": (
                    "HubSpot and AWS Partner Central both changed this field since the last sync. "
                    f"Conflict id {c['conflict_id']}: resolve it with the cosell_resolve_conflict DAG."
                ),
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": "HIGH",
                "hs_timestamp": str(int(time.time() * 1000)),
            },
            "associations": association_to(c["deal_id"], TASK_TO_DEAL),
        }
        for c in fresh
    ]
    outcome = gw.batch_create("tasks", inputs)
    for conflict, task in zip(fresh, outcome.results, strict=False):
        env.conflicts.set_task(conflict["conflict_id"], task["id"])
    gw.batch_update("deals", {c["deal_id"]: {"aws_conflict_status": "Pending"} for c in fresh})
    return len(outcome.results)


# ---------------------------------------------------------------------------------------------------
# commit
# ---------------------------------------------------------------------------------------------------
def commit(
    env: SyncEnv,
    run: dict[str, Any],
    planned: dict[str, Any],
    pc_applied: dict[str, Any],
    hs_applied: dict[str, Any],
) -> dict[str, Any]:
    """Record what happened: audit entries, then the baseline, the retry queue and, last, the watermark.

    A field's baseline advances only where both systems now hold the same value: it was already equal,
    or our write of the winning value succeeded. Deferred, blocked, failed and manual-conflict fields keep
    their old baseline, so the next run sees the difference again; failed and deferred records go to the
    retry queue so they are read again even if nothing else changes.
    """
    import pandas as pd

    from cosell_sync.audit import AuditEntry, RunReport

    cfg = env.config
    document = env.snapshots.get_json(planned["key"])
    pc_res = env.snapshots.get_json(pc_applied["key"]) if pc_applied.get("key") else {}
    hs_res = env.snapshots.get_json(hs_applied["key"]) if hs_applied.get("key") else {}
    base = env.baseline.load()
    pc = env.snapshots.get_frame(_run_key(run, "partner_central"))
    hs = env.snapshots.get_frame(_run_key(run, "hubspot"))
    names = [f for f in cfg.field_names()]
    run_ts = parse_ts(run["started_at"])
    entries: list[Any] = []
    user = f"airflow:{run['dag_id']}"
    meta = {"runId": run["run_id"], "dagId": run["dag_id"], "runType": run["run_type"]}

    def entry(
        oid: str | None,
        deal: str | None,
        direction: str,
        action: str,
        source: str,
        changes: dict[str, Any],
        success: bool = True,
        error: dict[str, Any] | None = None,
        calls: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        entries.append(
            AuditEntry(
                opportunity_id=oid,
                deal_id=deal,
                run_id=run["run_id"].replace("#", "_"),
                run_timestamp=run_ts,
                direction=direction,
                action=action,
                source=source,
                user=user,
                changes={k: {"old": v[0], "new": v[1]} for k, v in changes.items()},
                success=success,
                error=error,
                api_calls=calls or [],
                metadata={**meta, **({"dealId": deal} if deal else {}), **(extra or {})},
            )
        )

    # Plain dicts per record: a 10,000-record initial load would otherwise make ~10k .loc and ~250k .at
    # pandas lookups here, which cost more than the writes they describe.
    pc_rec: dict[str, dict[str, Any]] = pc.to_dict("index")
    hs_rec: dict[str, dict[str, Any]] = hs.to_dict("index")
    referenced = (
        set(pc_rec)
        | set(hs_rec)
        | set(document["hubspot_updates"])
        | set(document["partner_central_updates"])
    )
    referenced |= {
        i["opportunity_id"] for i in (*document["deferred"], *document["blocked"], *document["conflicts"])
    }
    base_rec: dict[str, dict[str, Any]] = base.loc[base.index.intersection(list(referenced))].to_dict("index")

    def base_value(oid: str, field: str) -> str | None:
        return _clean(base_rec.get(oid, {}).get(field))

    def deal_of(oid: str) -> str | None:
        found = _clean(hs_rec.get(oid, {}).get("_deal_id")) or _clean(base_rec.get(oid, {}).get("deal_id"))
        return str(found) if found else None

    if run["dry_run"]:
        report = _report(run, document, {}, {}, {}, 0)
        RunReport(env.snapshots, run["catalog"], run["run_id"]).write_report(report)
        return {"report": report, "dry_run": True}

    pc_failed = pc_res.get("failed") or {}
    hs_failed = hs_res.get("failed") or {}
    pc_ok = set(pc_res.get("updated") or {}) | set(pc_res.get("skipped") or [])
    retry_items: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []

    # -- audit entries, one per record and direction ------------------------------------------------
    for oid, changes in document["partner_central_updates"].items():
        ok = oid in pc_ok
        entry(
            oid,
            deal_of(oid),
            TO_PARTNER_CENTRAL,
            "UPDATE_OPPORTUNITY",
            "HUBSPOT",
            {f: (base_value(oid, f), v) for f, v in changes.items()},
            ok,
            pc_failed.get(oid),
            ["GetOpportunity", "UpdateOpportunity"],
        )
        (done if ok else retry_items).append(
            {
                "opportunity_id": oid,
                "reason": "FAILED",
                "error": pc_failed.get(oid),
                "direction": TO_PARTNER_CENTRAL,
            }
        )
    for oid, changes in document["hubspot_updates"].items():
        ok = oid not in hs_failed
        entry(
            oid,
            deal_of(oid),
            TO_HUBSPOT,
            "UPDATE_DEAL",
            "PARTNER_CENTRAL",
            {f: (base_value(oid, f), v) for f, v in changes.items()},
            ok,
            hs_failed.get(oid),
            ["crm.objects.batch.update"],
        )
        (done if ok else retry_items).append(
            {"opportunity_id": oid, "reason": "FAILED", "error": hs_failed.get(oid), "direction": TO_HUBSPOT}
        )
    for item in document["create_opportunities"]:
        deal_id = item["deal_id"]
        created = (pc_res.get("created") or {}).get(deal_id)
        err = pc_failed.get(f"deal:{deal_id}")
        entry(
            created["opportunity_id"] if created else None,
            deal_id,
            TO_PARTNER_CENTRAL,
            "CREATE_OPPORTUNITY",
            "HUBSPOT",
            {f: (None, v) for f, v in item["values"].items() if v},
            created is not None,
            err,
            ["CreateOpportunity"],
        )
        if not created:
            retry_items.append(
                {"deal_id": deal_id, "reason": "FAILED", "error": err, "direction": TO_PARTNER_CENTRAL}
            )
    for oid in document["create_deals"]:
        deal_id = (hs_res.get("created") or {}).get(oid)
        entry(
            oid,
            deal_id,
            TO_HUBSPOT,
            "CREATE_DEAL",
            "PARTNER_CENTRAL",
            {f: (None, _clean(pc_rec[oid].get(f))) for f in names if _clean(pc_rec[oid].get(f))},
            deal_id is not None,
            hs_failed.get(oid),
            ["crm.deals.batch.upsert"],
        )
        if not deal_id:
            retry_items.append(
                {
                    "opportunity_id": oid,
                    "reason": "FAILED",
                    "error": hs_failed.get(oid),
                    "direction": TO_HUBSPOT,
                }
            )
    for item in pc_res.get("submitted") or []:
        entry(
            item["opportunity_id"],
            deal_of(item["opportunity_id"]),
            TO_PARTNER_CENTRAL,
            "SUBMIT_OPPORTUNITY",
            "HUBSPOT",
            {},
            True,
            None,
            ["StartEngagementFromOpportunityTask"],
            {"taskId": item.get("task_id")},
        )
    for reason_items, action in ((document["deferred"], "DEFERRED"), (document["blocked"], "SKIPPED")):
        by_record: dict[str, list[dict[str, Any]]] = {}
        for item in reason_items:
            by_record.setdefault(item["opportunity_id"], []).append(item)
        for oid, items in by_record.items():
            entry(
                oid,
                deal_of(oid),
                TO_PARTNER_CENTRAL,
                action,
                "HUBSPOT",
                {i["field"]: (base_value(oid, i["field"]), i.get("value")) for i in items},
                True,
                None,
                [],
                {"reasons": sorted({i["reason"] for i in items})},
            )
            if action == "DEFERRED":
                retry_items.append(
                    {
                        "opportunity_id": oid,
                        "reason": items[0]["reason"],
                        "error": None,
                        "direction": TO_PARTNER_CENTRAL,
                    }
                )
    for item in document["conflicts"]:
        entry(
            item["opportunity_id"],
            deal_of(item["opportunity_id"]),
            "CONFLICT",
            "CONFLICT_DETECTED",
            "HUBSPOT",
            {item["field"]: (item.get("pc"), item.get("hs"))},
            True,
            None,
            [],
            {"conflictId": item["conflict_id"]},
        )

    # -- baseline: what both systems now agree on ---------------------------------------------------
    touched = sorted(set(pc.index) | set(hs.index))
    rows: dict[str, dict[str, Any]] = {}
    written_pc = {oid: ch for oid, ch in document["partner_central_updates"].items() if oid in pc_ok}
    written_hs = {oid: ch for oid, ch in document["hubspot_updates"].items() if oid not in hs_failed}
    for oid in touched:
        side_pc = pc_rec.get(oid) or base_rec.get(oid)
        side_hs = hs_rec.get(oid) or base_rec.get(oid)
        if side_pc is None or side_hs is None:
            continue  # not linked yet: the create path below handles it
        row: dict[str, Any] = {}
        for f in names:
            a = _clean(side_pc.get(f))
            b = _clean(side_hs.get(f))
            if oid in written_pc and f in written_pc[oid]:
                row[f] = written_pc[oid][f]
            elif oid in written_hs and f in written_hs[oid]:
                row[f] = written_hs[oid][f]
            elif a == b:
                row[f] = a
            else:
                row[f] = base_value(oid, f)
        row["deal_id"] = deal_of(oid)
        for col in ("company_id", "contact_id"):
            row[col] = _clean(hs_rec.get(oid, {}).get(f"_{col}")) or base_value(oid, col)
        updated = (pc_res.get("updated") or {}).get(oid)
        row["pc_last_modified"] = (
            updated["last_modified"]
            if updated
            else (
                _clean(pc_rec[oid].get("_lm_key")) if oid in pc_rec else base_value(oid, "pc_last_modified")
            )
        )
        stamp = hs_rec.get(oid, {}).get("_last_modified")
        row["hs_last_modified"] = ts_key(stamp) if _clean(stamp) else base_value(oid, "hs_last_modified")
        row["review_status"] = (
            _clean(pc_rec[oid].get("_review_status")) if oid in pc_rec else base_value(oid, "review_status")
        )
        rows[oid] = row
    for oid, deal_id in (hs_res.get("created") or {}).items():
        if oid in pc_rec:
            record = pc_rec[oid]
            rows[oid] = {
                **{f: _clean(record.get(f)) for f in names},
                "deal_id": str(deal_id),
                **((hs_res.get("related") or {}).get(oid) or {}),
                "pc_last_modified": _clean(record.get("_lm_key")),
                "review_status": _clean(record.get("_review_status")),
            }
            done.append({"opportunity_id": oid})
    linked_ok = set(hs_res.get("linked") or {}) - set(hs_failed)
    for deal_id, created in (pc_res.get("created") or {}).items():
        if deal_id not in linked_ok:
            continue  # the deal lacks the link: the next run recreates it idempotently (same ClientToken)
        rows[created["opportunity_id"]] = {
            **created.get("values", {}),
            "deal_id": str(deal_id),
            "pc_last_modified": created.get("last_modified"),
            "review_status": created.get("review_status"),
        }
        done.append({"deal_id": str(deal_id)})

    written = env.audit.write(entries)
    if rows:
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "opportunity_id"
        env.baseline.commit(frame, run["run_id"])
    retried_now = {RetryKey.of(i) for i in retry_items}
    env.retry.remove([i for i in done if RetryKey.of(i) not in retried_now])
    env.retry.add(retry_items, run_id=run["run_id"])
    moved = False
    if run["advance_watermark"]:
        started = parse_ts(run["started_at"])
        moved = env.watermarks.advance(run["catalog"], PC_SIDE, started, run["run_id"])
        env.watermarks.advance(run["catalog"], HS_SIDE, started, run["run_id"])
    api_calls = _sum_calls(pc_applied, hs_applied, pc_res, hs_res)
    report = _report(run, document, pc_res, hs_res, api_calls, len(retry_items))
    report["audit_entries"] = written
    report["watermark_advanced"] = moved
    rr = RunReport(env.snapshots, run["catalog"], run["run_id"])
    rr.write_changes(entries)
    report["report_key"] = rr.write_report(report)
    return {"report": report}


class RetryKey:
    """The identity of a retry-queue item (opportunity or deal)."""

    @staticmethod
    def of(item: dict[str, Any]) -> str:
        """``OPP#id`` or ``DEAL#id``."""
        return f"OPP#{item['opportunity_id']}" if item.get("opportunity_id") else f"DEAL#{item['deal_id']}"


def _sum_calls(*results: dict[str, Any]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for res in results:
        total.update(res.get("api_calls") or {})
    return dict(total)


def _report(
    run: dict[str, Any],
    document: dict[str, Any],
    pc_res: dict[str, Any],
    hs_res: dict[str, Any],
    api_calls: dict[str, int],
    retried: int,
) -> dict[str, Any]:
    pc_failed = pc_res.get("failed") or {}
    hs_failed = hs_res.get("failed") or {}
    deferred_records = {i["opportunity_id"] for i in document["deferred"]}
    return {
        "run_id": run["run_id"],
        "catalog": run["catalog"],
        "mode": run["mode"],
        "direction": run["direction"],
        "dry_run": run["dry_run"],
        TO_HUBSPOT: {
            "created": len(hs_res.get("created") or {})
            if not run["dry_run"]
            else len(document["create_deals"]),
            "updated": len(document["hubspot_updates"])
            - len([o for o in document["hubspot_updates"] if o in hs_failed]),
            "failed": len(hs_failed),
        },
        TO_PARTNER_CENTRAL: {
            "created": len(pc_res.get("created") or {})
            if not run["dry_run"]
            else len(document["create_opportunities"]),
            "updated": len(pc_res.get("updated") or {})
            if not run["dry_run"]
            else len(document["partner_central_updates"]),
            "submitted": len(pc_res.get("submitted") or []),
            "deferred": len(deferred_records),
            "blocked": len(document["blocked"]),
            "failed": len(pc_failed),
        },
        "conflicts": len(document["conflicts"]),
        "unchanged_converged": len(document["converged"]),
        "queued_for_retry": retried,
        "api_calls": api_calls,
    }


# ---------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------
def format_report(report: dict[str, Any], pc_calls: int | None = None, hs_calls: int | None = None) -> str:
    """The run summary as a fixed-width table for the task log."""
    to_hs, to_pc = report[TO_HUBSPOT], report[TO_PARTNER_CENTRAL]
    lines = [
        f"co-sell sync run {report['run_id']} ({report['catalog']}, {report['mode']}, "
        f"{report['direction']}{', DRY RUN' if report['dry_run'] else ''})",
        f"{'':28}{'created':>9}{'updated':>9}{'deferred':>9}{'blocked':>9}{'failed':>8}",
        f"{'Partner Central -> HubSpot':28}{to_hs['created']:>9}{to_hs['updated']:>9}{'-':>9}{'-':>9}"
        f"{to_hs['failed']:>8}",
        f"{'HubSpot -> Partner Central':28}{to_pc['created']:>9}{to_pc['updated']:>9}{to_pc['deferred']:>9}"
        f"{to_pc['blocked']:>9}{to_pc['failed']:>8}",
        f"submitted to AWS: {to_pc['submitted']}   conflicts (manual): {report['conflicts']}   "
        f"converged: {report['unchanged_converged']}   queued for retry: {report['queued_for_retry']}",
    ]
    calls = report.get("api_calls") or {}
    if calls:
        lines.append("API calls: " + ", ".join(f"{k}={v}" for k, v in sorted(calls.items())))
    if pc_calls is not None or hs_calls is not None:
        lines.append(f"API calls total: Partner Central {pc_calls}, HubSpot {hs_calls}")
    return "\n".join(lines)
