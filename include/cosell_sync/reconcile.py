"""One reconciliation run, as the short list of its steps; each is a plain function a DAG task calls.

Every step takes a :class:`~cosell_sync.env.SyncEnv` and small dicts (the run description and what
earlier steps returned through XCom: S3 keys, counts, ids) and returns a small dict. Data moves between
steps through S3 (Parquet snapshots, JSON plan and results), by the keys the steps return.

1. :func:`prepare`: fix the run: catalog, mode, direction and each side's time window; read the
   catalog's selling system settings for the report (:mod:`cosell_sync.settings`), and decide what the
   run polls and what it leaves to events (:mod:`cosell_sync.polling`).
2. :func:`~cosell_sync.extract.extract_partner_central`, :func:`~cosell_sync.extract.extract_hubspot`.
3. :func:`plan`: the three-way diff, conflicts and review-state gating (:mod:`cosell_sync.plan`).
4. :func:`~cosell_sync.creates.prepare_creates`: deals that already have an opportunity are found by
   search; many creates go as one bulk job, waited for without a worker slot (:mod:`cosell_sync.creates`).
5. :func:`~cosell_sync.apply.apply_partner_central`, :func:`~cosell_sync.apply.apply_hubspot`: the
   writes, through the one writer per system (:mod:`cosell_sync.writers`).
6. :func:`commit`: audit, baseline, retry queue, watermark (:mod:`cosell_sync.commit`).
7. :func:`~cosell_sync.report.finish_report`: the summary table and ``report.json``; then
   :func:`~cosell_sync.report.check_record_errors` fails (or warns about) a run with record errors.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cosell_sync.apply import apply_hubspot, apply_partner_central, load_plan
from cosell_sync.common import Side, parse_ts, ts_key
from cosell_sync.creates import prepare_creates
from cosell_sync.extract import extract_hubspot, extract_partner_central
from cosell_sync.params import param_timestamp
from cosell_sync.polling import plan_polling, read_settings_cached
from cosell_sync.report import check_record_errors, finish_report

if TYPE_CHECKING:
    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

__all__ = [
    "apply_hubspot",
    "apply_partner_central",
    "check_record_errors",
    "commit",
    "extract_hubspot",
    "extract_partner_central",
    "finish_report",
    "plan",
    "prepare",
    "prepare_creates",
]


def prepare(env: SyncEnv, params: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Fix the run: catalog, mode, direction and the time window each side is read from.

    Args:
        env: clients and stores; ``env.catalog`` is the run's effective catalog.
        params: the DAG params (``mode``, ``direction``, ``dry_run``, ``since``, ``catalog``,
            ``opportunity_ids``); the run conf's keys were checked against them by the caller.
        info: ``run_id``, ``dag_id``, ``run_type`` and the data interval of the Airflow run.

    Returns:
        The run description every later step receives.

    Raises:
        ParamError: ``since`` is not an ISO 8601 timestamp (one without an offset is read as UTC).
    """
    cfg = env.config
    now = datetime.now(UTC)
    overlap = timedelta(minutes=cfg.overlap_minutes)
    mode = params.get("mode") or "incremental"
    run_type = str(info.get("run_type") or "manual").lower()
    is_backfill = "backfill" in run_type
    since: dict[str, str | None] = {Side.PARTNER_CENTRAL: None, Side.HUBSPOT: None}
    until = None
    since_param = param_timestamp("since", params.get("since"))  # no offset: UTC, as the form says
    if since_param is not None:
        since = dict.fromkeys(since, ts_key(since_param))
    elif mode == "full":
        pass
    elif is_backfill and info.get("data_interval_start"):
        # A backfill run reconciles what changed in its own interval (plus the overlap).
        since = dict.fromkeys(since, ts_key(parse_ts(str(info["data_interval_start"])) - overlap))
        until = ts_key(parse_ts(str(info["data_interval_end"])))
    else:
        for side in since:
            mark = env.watermarks.get(env.catalog, side)
            since[side] = ts_key(mark - overlap) if mark else None
    ids = [str(i) for i in (params.get("opportunity_ids") or [])]
    run = {
        "run_id": str(info["run_id"]),
        "dag_id": str(info.get("dag_id") or "cosell_reconcile"),
        "run_type": run_type,
        # One source of truth for the catalog: every later step, call, token, key and partition uses it.
        "catalog": env.catalog,
        "mode": mode,
        "direction": params.get("direction") or "both",
        "dry_run": bool(params.get("dry_run")),
        "opportunity_ids": ids,
        "since_partner_central": since[Side.PARTNER_CENTRAL],
        "since_hubspot": since[Side.HUBSPOT],
        "until": until,
        "started_at": ts_key(now),
        # The watermark only moves for runs that looked at everything that changed up to now.
        "advance_watermark": not (is_backfill or ids or params.get("dry_run") or since_param),
    }
    # What this run polls and what it leaves to events (webhooks, EventBridge), each with its backstop.
    run["polling"] = plan_polling(
        env, run, now, watermark_run=not (since_param is not None or is_backfill or mode == "full")
    )
    # GetSellingSystemSettings, shown in the report: at most every settings.refresh_minutes (0: each run);
    # unreadable settings do not stop the run.
    run["selling_settings"] = read_settings_cached(env, run, now)
    log.info(
        "Run window: catalog=%s mode=%s direction=%s dry_run=%s partner_central since %s, "
        "hubspot since %s, until %s",
        run["catalog"],
        mode,
        run["direction"],
        run["dry_run"],
        run["since_partner_central"] or "the beginning",
        run["since_hubspot"] or "the beginning",
        until or "now",
    )
    return run


def plan(
    env: SyncEnv, run: dict[str, Any], pc_result: dict[str, Any], hs_result: dict[str, Any]
) -> dict[str, Any]:
    """Make and store the run's plan; returns its key (and the snapshot keys it was made from)."""
    from cosell_sync.plan import log_plan, make_plan, store_plan

    made = make_plan(env, run, pc_result, hs_result)
    key = store_plan(env, run, made)
    log_plan(made, run["dry_run"])
    if run["dry_run"]:
        from cosell_sync.dry_run import log_values

        # Old and new value per field (names only for fields the audit policy keeps no value of).
        log_values(
            made,
            env.snapshots.get_frame(pc_result["key"]),
            env.snapshots.get_frame(hs_result["key"]),
            env.config.audit.policy_for,
        )
    return {"key": key, "counts": made.counts()}


def commit(
    env: SyncEnv,
    run: dict[str, Any],
    planned: dict[str, Any],
    pc_applied: dict[str, Any],
    hs_applied: dict[str, Any],
) -> dict[str, Any]:
    """Record what happened: audit entries, then the baseline, the retry queue and, last, the watermark."""
    from cosell_sync.audit import RunReport
    from cosell_sync.commit import load_inputs, write_commit
    from cosell_sync.report import run_summary

    # A dry run writes nothing but its report: no need to check its plan is current.
    stored = load_plan(env, planned, for_commit=True, check=not run["dry_run"])
    report_store = RunReport(env.snapshots, run["catalog"], run["run_id"])
    if run["dry_run"]:
        report = run_summary(run, stored, {}, {}, {}, 0)
        report_store.write_report(report)
        return {"report": report, "dry_run": True}
    inputs = load_inputs(env, run, stored, pc_applied, hs_applied)
    done = write_commit(env, inputs)
    report = run_summary(
        run, stored, inputs.pc_res, inputs.hs_res, done["api_calls"], done["queued_for_retry"]
    )
    report["audit_entries"] = done["audit_entries"]
    report["watermark_advanced"] = done["watermark_advanced"]
    report_store.write_changes(done["entries"])
    # Writes of runs that died before their commit, audited by this one: in their own change sets too,
    # so a rollback by the dead run's id finds them.
    late: dict[str, list[Any]] = {}
    for entry in done["entries"]:
        owner = str(entry.metadata.get("runId") or "")
        if owner and owner.replace("#", "_") != str(run["run_id"]).replace("#", "_"):
            late.setdefault(owner, []).append(entry)
    for owner, entries in sorted(late.items()):
        RunReport(env.snapshots, run["catalog"], owner).add_changes(entries)
    report["report_key"] = report_store.write_report(report)
    return {"report": report}
