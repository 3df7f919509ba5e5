"""The report step: the run's summary per direction, with the API calls of every step.

:func:`run_summary` counts what the plan and the apply results say happened; :func:`format_report` lays it
out as the fixed-width table the ``report`` task logs; :func:`finish_report` adds the extract steps' calls
and rewrites ``report.json`` so it carries every step's API calls; :func:`check_record_errors` then makes
a run with records it could not read or write (or requested ids that do not exist) fail, or warn.
"""

from __future__ import annotations

import logging
import textwrap
from typing import TYPE_CHECKING, Any

from cosell_sync.common import Direction
from cosell_sync.errors import RecordErrorsError
from cosell_sync.polling import describe_polling
from cosell_sync.settings import describe as describe_settings

if TYPE_CHECKING:
    from cosell_sync.env import SyncEnv
    from cosell_sync.plan import Plan

log = logging.getLogger(__name__)

#: The report table's width in the task log (the API-call list wraps to it).
LOG_WIDTH = 100
#: Airflow keeps at most 1,000 characters of a DAG run's note (``dag_run_note.content``).
NOTE_MAX_CHARS = 1000


def run_summary(
    run: dict[str, Any],
    plan: Plan,
    pc_res: dict[str, Any],
    hs_res: dict[str, Any],
    api_calls: dict[str, int],
    retried: int,
) -> dict[str, Any]:
    """Counts per direction for one run (no values: the report is what operators paste into tickets).

    Args:
        run: the run description.
        plan: the run's plan.
        pc_res: the Partner Central apply results (empty in a dry run).
        hs_res: the HubSpot apply results.
        api_calls: operation -> calls made by the apply steps.
        retried: records queued for retry.

    Returns:
        The summary document.
    """
    pc_failed = pc_res.get("failed") or {}
    hs_failed = hs_res.get("failed") or {}
    reverted = hs_res.get("auto_reverted") or {}
    dry = run["dry_run"]
    return {
        "run_id": run["run_id"],
        "catalog": run["catalog"],
        "mode": run["mode"],
        "direction": run["direction"],
        "dry_run": dry,
        Direction.TO_HUBSPOT.value: {
            "created": len(plan.create_deals) if dry else len(hs_res.get("created") or {}),
            "updated": len([o for o in plan.hubspot_updates if o not in hs_failed and o not in reverted]),
            "failed": len(hs_failed),
            # held back because Partner Central rejected the record (rollback.auto_revert_hubspot)
            **({"auto_reverted": len(reverted)} if reverted else {}),
        },
        Direction.TO_PARTNER_CENTRAL.value: {
            "created": len(plan.create_opportunities) if dry else len(pc_res.get("created") or {}),
            "updated": len(plan.partner_central_updates) if dry else len(pc_res.get("updated") or {}),
            "submitted": len(pc_res.get("submitted") or []),
            "deferred": len({i["opportunity_id"] for i in plan.deferred}),
            "blocked": len(plan.blocked),
            "failed": len(pc_failed),
            "superseded": len(pc_res.get("superseded") or {}),
        },
        "read_failures": len(plan.read_failures),
        "conflicts": len(plan.conflicts),
        "unchanged_converged": len(plan.converged),
        "queued_for_retry": retried,
        "api_calls": api_calls,
        # The catalog's selling system settings as prepare read them (cosell_sync.settings), calls apart.
        **(
            {"selling_settings": {k: v for k, v in run["selling_settings"].items() if k != "api_calls"}}
            if run.get("selling_settings")
            else {}
        ),
        # What the run polled and what it left to events (cosell_sync.polling), with the reasons.
        **({"polling": run["polling"]} if run.get("polling") else {}),
    }


def format_report(report: dict[str, Any], pc_calls: int | None = None, hs_calls: int | None = None) -> str:
    """The run summary as a fixed-width table for the task log."""
    to_hs, to_pc = report[Direction.TO_HUBSPOT.value], report[Direction.TO_PARTNER_CENTRAL.value]
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
    if to_hs.get("auto_reverted"):
        lines.append(
            f"HubSpot changes held back (Partner Central rejected the record): {to_hs['auto_reverted']}"
        )
    if report.get("read_failures"):
        lines.append(f"records that could not be read (retried next run): {report['read_failures']}")
    if report.get("unknown_opportunity_ids"):
        unknown = report["unknown_opportunity_ids"]
        lines.append(f"requested opportunity ids that do not exist ({len(unknown)}): {', '.join(unknown)}")
    if report.get("selling_settings"):
        lines.append(describe_settings(report["selling_settings"]))
    if report.get("polling"):
        lines.append(describe_polling(report["polling"]))
    calls = report.get("api_calls") or {}
    if calls:
        # One line per ~100 characters: a run calls 20-30 operations, too many for one readable line.
        lines.extend(
            textwrap.wrap(
                ", ".join(f"{k}={v}" for k, v in sorted(calls.items())),
                width=LOG_WIDTH,
                initial_indent="API calls: ",
                subsequent_indent="           ",
                break_on_hyphens=False,
            )
        )
    if pc_calls is not None or hs_calls is not None:
        lines.append(f"API calls total: Partner Central {pc_calls}, HubSpot {hs_calls}")
    return "\n".join(lines)


def finish_report(
    env: SyncEnv,
    run: dict[str, Any],
    pc: dict[str, Any],
    hs: dict[str, Any],
    committed: dict[str, Any],
    insights: dict[str, Any] | None = None,
    steps: tuple[dict[str, Any], ...] = (),
    engagements: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Log the run's summary table with the API calls of every step, and store it in ``report.json``.

    Args:
        env: clients and stores.
        run: the run description.
        pc: the Partner Central extract's result.
        hs: the HubSpot extract's result.
        committed: the commit step's result (its ``report``).
        insights: the ``sync_insights`` step's result, if it ran.
        steps: other steps' results whose ``api_calls`` count too (the invitation steps).
        engagements: the ``sync_engagements`` step's result, if it ran.

    Returns:
        The report key, the call totals and the per-direction counts (small, for XCom).
    """
    from cosell_sync.audit import RunReport
    from cosell_sync.storage import run_key

    summary = committed["report"]
    calls = dict(summary.get("api_calls") or {})
    # prepare's GetSellingSystemSettings counts as a call of the run too.
    for extract in (pc, hs, insights or {}, engagements or {}, run.get("selling_settings") or {}, *steps):
        for op, count in (extract.get("api_calls") or {}).items():
            calls[op] = calls.get(op, 0) + count
    # Partner Central operations are CamelCase; the HubSpot gateway names its calls in lower case.
    pc_calls = sum(v for k, v in calls.items() if k[:1].isupper())
    hs_calls = sum(v for k, v in calls.items() if not k[:1].isupper())
    summary = {
        **summary,
        "api_calls": calls,
        "api_calls_total": {"partner_central": pc_calls, "hubspot": hs_calls},
    }
    if run.get("selling_settings"):
        summary["selling_settings"] = {k: v for k, v in run["selling_settings"].items() if k != "api_calls"}
    if insights:
        summary["insights"] = {k: v for k, v in insights.items() if k != "api_calls"}
    if engagements:
        summary["engagements"] = {k: v for k, v in engagements.items() if k != "api_calls"}
    if run.get("opportunity_ids"):
        # A run restricted to ids names each one that does not exist (ids only, no values); when none
        # exists the extract has already failed the run.
        summary["unknown_opportunity_ids"] = sorted(pc.get("unknown_ids") or [])
    summary["record_errors"] = record_errors(summary)
    if summary.get("report_key") and not run.get("dry_run"):
        # report.json gets every step's API calls, not only the apply steps' the commit saw.
        RunReport(env.snapshots, run["catalog"], run["run_id"]).write_report(summary)
    log.info("\n%s", format_report(summary, pc_calls, hs_calls))
    folder = env.snapshots.full_key(run_key(run["catalog"], run["run_id"], "report.json")).rsplit("/", 1)[0]
    return {
        "report_key": summary.get("report_key"),
        "note": run_note(summary, f"s3://{env.snapshots.bucket}/{folder}/", pc_calls, hs_calls),
        "partner_central_calls": pc_calls,
        "hubspot_calls": hs_calls,
        **{
            k: summary[k]
            for k in (
                Direction.TO_HUBSPOT.value,
                Direction.TO_PARTNER_CENTRAL.value,
                "conflicts",
                "record_errors",
            )
        },
    }


def run_note(summary: dict[str, Any], folder_uri: str, pc_calls: int, hs_calls: int) -> str:
    """The run's outcome as Markdown for the DAG run's note: counts per direction and where the artefacts are.

    The note is what the Airflow UI shows on the run page and in the runs list, so it carries counts and
    S3 locations only (no ids, no values), and fits Airflow's 1,000-character limit.

    Args:
        summary: the run summary (:func:`run_summary` plus ``record_errors``).
        folder_uri: ``s3://bucket/prefix/runs/{catalog}/{run_id}/``, where the run's artefacts are.
        pc_calls: Partner Central API calls the run made.
        hs_calls: HubSpot API calls the run made.

    Returns:
        Markdown of at most :data:`NOTE_MAX_CHARS` characters.
    """
    to_hs, to_pc = summary[Direction.TO_HUBSPOT.value], summary[Direction.TO_PARTNER_CENTRAL.value]
    errors = summary.get("record_errors") or record_errors(summary)
    head = f"**{summary['mode']}**, {summary['direction']}, catalog {summary['catalog']}"
    if summary.get("dry_run"):
        head += ", **dry run** (nothing written)"
    lines = [
        head,
        "",
        "| | created | updated | deferred | blocked | failed |",
        "|---|---:|---:|---:|---:|---:|",
        f"| Partner Central → HubSpot | {to_hs['created']} | {to_hs['updated']} | - | - "
        f"| {to_hs['failed']} |",
        f"| HubSpot → Partner Central | {to_pc['created']} | {to_pc['updated']} | {to_pc['deferred']} "
        f"| {to_pc['blocked']} | {to_pc['failed']} |",
        "",
        f"Conflicts (manual): {summary.get('conflicts', 0)} · submitted: {to_pc.get('submitted', 0)} · "
        f"not read: {errors.get('read_failures', 0)} · "
        f"unknown ids: {errors.get('unknown_opportunity_ids', 0)} · "
        f"queued for retry: {summary.get('queued_for_retry', 0)}",
        f"API calls: Partner Central {pc_calls}, HubSpot {hs_calls}",
        "",
        f"Artefacts: `{folder_uri}` (`report.json`"
        + ("" if summary.get("dry_run") else ", `changes.parquet`")
        + ", `plan.json`)",
    ]
    note = "\n".join(lines)
    if len(note) > NOTE_MAX_CHARS:
        # A very long bucket prefix or run id: keep the counts, cut the locations.
        note = note[: NOTE_MAX_CHARS - 1] + "…"
    return note


def record_errors(summary: dict[str, Any]) -> dict[str, int]:
    """The run's record errors by kind, from its summary (counts only: no ids, no values).

    Args:
        summary: the run summary (:func:`run_summary`, with ``unknown_opportunity_ids`` when the run was
            restricted to ids).

    Returns:
        ``read_failures``, ``failed_writes_to_hubspot``, ``failed_writes_to_partner_central`` and
        ``unknown_opportunity_ids``: records that could not be read, writes that failed each way, and
        requested ids that do not exist.
    """
    to_hs, to_pc = summary[Direction.TO_HUBSPOT.value], summary[Direction.TO_PARTNER_CENTRAL.value]
    return {
        "read_failures": int(summary.get("read_failures") or 0),
        "failed_writes_to_hubspot": int(to_hs.get("failed") or 0),
        "failed_writes_to_partner_central": int(to_pc.get("failed") or 0),
        "unknown_opportunity_ids": len(summary.get("unknown_opportunity_ids") or []),
    }


def check_record_errors(run: dict[str, Any], reported: dict[str, Any], fail: bool) -> None:
    """End the report step as the run's record errors say: silently, with a WARNING, or failed.

    Called after :func:`finish_report` wrote ``report.json`` and logged the table: everything that could
    be committed was, so failing here loses nothing and makes no earlier step run again.

    Args:
        run: the run description.
        reported: what :func:`finish_report` returned (its ``record_errors`` counts).
        fail: ``report.fail_on_record_errors``: raise instead of warning.

    Raises:
        RecordErrorsError: ``fail`` and the run had record errors; the message gives the counts only.
    """
    counts = reported.get("record_errors") or {}
    if not any(counts.values()):
        return
    to_hs = counts.get("failed_writes_to_hubspot", 0)
    to_pc = counts.get("failed_writes_to_partner_central", 0)
    where = f"report.json ({reported['report_key']})" if reported.get("report_key") else "the summary above"
    after = (
        "It was a dry run: nothing was written."
        if run.get("dry_run")
        else "Everything else was committed; records that could not be read or written are queued and "
        "retried by the next run (each deal's aws_sync_error says why)."
    )
    message = (
        f"run {run['run_id']} had record errors: {counts.get('read_failures', 0)} record(s) could not be "
        f"read, {to_hs + to_pc} write(s) failed ({to_hs} to HubSpot, {to_pc} to Partner Central), "
        f"{counts.get('unknown_opportunity_ids', 0)} requested opportunity id(s) do not exist. {after} "
        f"Details: {where} and the task logs."
    )
    if fail:
        raise RecordErrorsError(
            f"{message} (report.fail_on_record_errors is true; set it to false to let such runs succeed)"
        )
    log.warning("%s", message)
