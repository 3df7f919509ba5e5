"""Unit tests for ``cosell_sync.report``: the run summary operators read and paste into tickets.

The counts must say what really happened (apply results), not what was planned, except in a dry run where
nothing is applied; and ``report.json`` must carry the API calls of every step, extracts included.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from cosell_sync.audit import RunReport
from cosell_sync.bootstrap import ensure_storage
from cosell_sync.common import Direction
from cosell_sync.plan import Plan
from cosell_sync.report import LOG_WIDTH, NOTE_MAX_CHARS, finish_report, format_report, run_note, run_summary
from cosell_sync.storage import SnapshotStore

TO_HS = Direction.TO_HUBSPOT.value
TO_PC = Direction.TO_PARTNER_CENTRAL.value
BUCKET = "cosell-report-test"


def run(dry_run: bool = False) -> dict[str, Any]:
    return {
        "run_id": "manual__2026-02-18T10:00:00+00:00",
        "catalog": "AWS",
        "mode": "incremental",
        "direction": "both",
        "dry_run": dry_run,
    }


def busy_plan() -> Plan:
    return Plan(
        hubspot_updates={"O1": {"stage": "Committed"}, "O2": {"stage": "Launched"}, "O3": {"stage": "X"}},
        partner_central_updates={"O4": {"next_steps": "a"}, "O5": {"next_steps": "b"}},
        create_deals=["O6", "O7"],
        create_opportunities=[{"deal_id": "D1", "values": {}}],
        deferred=[
            {"opportunity_id": "O8", "field": "stage", "reason": "REVIEW_IN_PROGRESS"},
            {"opportunity_id": "O8", "field": "next_steps", "reason": "REVIEW_IN_PROGRESS"},
            {"opportunity_id": "O9", "field": "stage", "reason": "REVIEW_IN_PROGRESS"},
        ],
        blocked=[{"opportunity_id": "O10", "field": "stage", "reason": "REJECTED_READ_ONLY"}],
        conflicts=[{"opportunity_id": "O11", "field": "expected_spend_amount", "conflict_id": "c"}],
        converged=["O12"],
        read_failures=[{"opportunity_id": "O13", "error": {}}, {"opportunity_id": "O14", "error": {}}],
    )


PC_RES: dict[str, Any] = {
    "created": {},
    "updated": {"O4": {"written": {"next_steps": "a"}}},
    "failed": {"O5": {"type": "ThrottledError"}, "deal:D1": {"type": "ValidationError"}},
    "submitted": [{"opportunity_id": "O15"}],
    "superseded": {"O4": {"project_title": "x"}},
}
HS_RES: dict[str, Any] = {"created": {"O6": "D6"}, "failed": {"O2": {"category": "VALIDATION_ERROR"}}}


def test_summary_counts_what_was_applied_not_what_was_planned() -> None:
    summary = run_summary(run(), busy_plan(), PC_RES, HS_RES, {"GetOpportunity": 3}, retried=6)
    assert summary[TO_HS] == {"created": 1, "updated": 2, "failed": 1}
    assert summary[TO_PC] == {
        "created": 0,
        "updated": 1,
        "submitted": 1,
        "deferred": 2,  # records, not fields: O8 twice counts once
        "blocked": 1,
        "failed": 2,
        "superseded": 1,
    }
    assert summary["read_failures"] == 2
    assert summary["conflicts"] == 1
    assert summary["unchanged_converged"] == 1
    assert summary["queued_for_retry"] == 6
    assert summary["api_calls"] == {"GetOpportunity": 3}
    assert (summary["run_id"], summary["catalog"], summary["dry_run"]) == (run()["run_id"], "AWS", False)


def test_dry_run_summary_counts_the_plan() -> None:
    summary = run_summary(run(dry_run=True), busy_plan(), {}, {}, {}, retried=0)
    assert summary[TO_HS] == {"created": 2, "updated": 3, "failed": 0}
    assert summary[TO_PC]["created"] == 1
    assert summary[TO_PC]["updated"] == 2
    assert summary[TO_PC]["failed"] == 0


def test_format_report_lays_out_both_directions() -> None:
    text = format_report(run_summary(run(), busy_plan(), PC_RES, HS_RES, {"GetOpportunity": 3}, 6), 10, 4)
    lines = text.splitlines()
    assert lines[0] == f"co-sell sync run {run()['run_id']} (AWS, incremental, both)"
    to_hs = next(x for x in lines if x.startswith("Partner Central -> HubSpot"))
    assert to_hs.split()[-5:] == ["1", "2", "-", "-", "1"]
    to_pc = next(x for x in lines if x.startswith("HubSpot -> Partner Central"))
    assert to_pc.split()[-5:] == ["0", "1", "2", "1", "2"]
    assert "submitted to AWS: 1" in text
    assert "conflicts (manual): 1" in text
    assert "queued for retry: 6" in text
    assert "records that could not be read (retried next run): 2" in text
    assert "API calls: GetOpportunity=3" in text
    assert lines[-1] == "API calls total: Partner Central 10, HubSpot 4"


def test_format_report_marks_dry_runs_and_omits_empty_lines() -> None:
    text = format_report(run_summary(run(dry_run=True), Plan(), {}, {}, {}, 0))
    assert text.splitlines()[0].endswith("(AWS, incremental, both, DRY RUN)")
    assert "could not be read" not in text
    assert "API calls" not in text


def test_format_report_wraps_the_api_call_list_to_the_log_width() -> None:
    calls = {f"Operation{i:02d}": i for i in range(30)}
    text = format_report(run_summary(run(), busy_plan(), PC_RES, HS_RES, calls, 6), 10, 4)
    lines = text.splitlines()
    call_lines = lines[lines.index(next(x for x in lines if x.startswith("API calls: "))) : -1]
    assert len(call_lines) > 1
    assert all(len(x) <= LOG_WIDTH for x in call_lines)
    # Nothing lost in the wrapping: every operation and its count is there once.
    listed = " ".join(x.removeprefix("API calls: ") for x in call_lines).replace(",", " ").split()
    assert sorted(listed) == sorted(f"{k}={v}" for k, v in calls.items())


def test_run_note_shows_the_counts_and_where_the_artefacts_are() -> None:
    summary = run_summary(run(), busy_plan(), PC_RES, HS_RES, {"GetOpportunity": 3}, 6)
    note = run_note(summary, "s3://bucket/cosell/runs/AWS/manual__x/", 10, 4)
    assert note.splitlines()[0] == "**incremental**, both, catalog AWS"
    assert "| Partner Central → HubSpot | 1 | 2 | - | - | 1 |" in note
    assert "| HubSpot → Partner Central | 0 | 1 | 2 | 1 | 2 |" in note
    assert "Conflicts (manual): 1 · submitted: 1 · not read: 2" in note
    assert "API calls: Partner Central 10, HubSpot 4" in note
    assert "`s3://bucket/cosell/runs/AWS/manual__x/` (`report.json`, `changes.parquet`, `plan.json`)" in note


def test_run_note_of_a_dry_run_says_so_and_fits_airflows_limit() -> None:
    summary = run_summary(run(dry_run=True), busy_plan(), {}, {}, {}, 0)
    note = run_note(summary, "s3://bucket/" + "p" * 2000 + "/", 1, 1)
    assert "**dry run** (nothing written)" in note
    assert len(note) == NOTE_MAX_CHARS
    assert "changes.parquet" not in note


@pytest.fixture
def snapshots(aws_endpoint: str) -> SnapshotStore:
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, BUCKET, "cosell-audit", "cosell-state")
    return SnapshotStore(s3, BUCKET, "cosell")


def test_finish_report_adds_extract_calls_and_rewrites_report_json(snapshots: SnapshotStore) -> None:
    the_run = run()
    store = RunReport(snapshots, "AWS", the_run["run_id"])
    summary = run_summary(
        the_run, busy_plan(), PC_RES, HS_RES, {"UpdateOpportunity": 2, "batch_update:deals": 1}, 6
    )
    summary["report_key"] = store.write_report(summary)
    pc_extract = {"api_calls": {"ListOpportunities": 1, "GetOpportunity": 5}}
    hs_extract = {"api_calls": {"search:deals": 2, "batch_update:deals": 1}}
    env = SimpleNamespace(snapshots=snapshots)
    out = finish_report(env, the_run, pc_extract, hs_extract, {"report": summary})  # type: ignore[arg-type]
    assert (out["partner_central_calls"], out["hubspot_calls"]) == (8, 4)
    assert out[TO_HS] == summary[TO_HS]
    assert out["conflicts"] == 1
    stored = store.read_report()
    assert stored["api_calls"] == {
        "UpdateOpportunity": 2,
        "ListOpportunities": 1,
        "GetOpportunity": 5,
        "search:deals": 2,
        "batch_update:deals": 2,
    }
    assert stored["api_calls_total"] == {"partner_central": 8, "hubspot": 4}


def test_finish_report_of_a_dry_run_writes_nothing(snapshots: SnapshotStore) -> None:
    the_run = run(dry_run=True)
    summary = run_summary(the_run, Plan(), {}, {}, {}, 0)
    out = finish_report(
        SimpleNamespace(snapshots=snapshots),  # type: ignore[arg-type]
        the_run,
        {"api_calls": {"ListOpportunities": 1}},
        {"api_calls": {"search:deals": 1}},
        {"report": summary, "dry_run": True},
    )
    assert (out["partner_central_calls"], out["hubspot_calls"], out["report_key"]) == (1, 1, None)
    assert not snapshots.exists(RunReport(snapshots, "AWS", the_run["run_id"]).report_key)


def test_record_errors_fail_the_report_naming_counts_only(snapshots: SnapshotStore) -> None:
    from cosell_sync.errors import RecordErrorsError
    from cosell_sync.report import check_record_errors

    the_run = {**run(), "opportunity_ids": ["O13", "O99", "O98"]}
    store = RunReport(snapshots, "AWS", the_run["run_id"])
    summary = run_summary(the_run, busy_plan(), PC_RES, HS_RES, {}, 6)
    summary["report_key"] = store.write_report(summary)
    pc_extract = {"unknown_ids": ["O99", "O98"]}
    out = finish_report(SimpleNamespace(snapshots=snapshots), the_run, pc_extract, {}, {"report": summary})  # type: ignore[arg-type]
    counts = {
        "read_failures": 2,
        "failed_writes_to_hubspot": 1,
        "failed_writes_to_partner_central": 2,
        "unknown_opportunity_ids": 2,
    }
    assert out["record_errors"] == counts
    assert store.read_report()["record_errors"] == counts  # report.json is written before the check

    with pytest.raises(RecordErrorsError) as caught:
        check_record_errors(the_run, out, fail=True)
    message = caught.value.message
    assert (
        "2 record(s) could not be read, 3 write(s) failed (1 to HubSpot, 2 to Partner Central), " in message
    )
    assert "2 requested opportunity id(s) do not exist" in message
    assert "report.fail_on_record_errors" in message
    assert not [oid for oid in ("O2", "O5", "O13", "O98", "O99") if oid in message]  # counts, not ids


def test_record_errors_only_warn_when_configured_so_and_a_clean_run_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cosell_sync.report import check_record_errors

    errors = {"read_failures": 1, "failed_writes_to_hubspot": 0, "failed_writes_to_partner_central": 0}
    check_record_errors(run(), {"record_errors": errors}, fail=False)
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "1 record(s) could not be read" in record.getMessage()
    caplog.clear()
    check_record_errors(run(), {"record_errors": dict.fromkeys(errors, 0)}, fail=True)
    assert not caplog.records
