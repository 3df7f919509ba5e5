"""Unit tests for the pure half of ``cosell_sync.commit``: audit entries, the retry set and the next baseline.

Each test builds :class:`~cosell_sync.commit.CommitInputs` by hand (a plan, this run's records, the baseline
and the apply results) and checks what a user would see after the run: which records are read again next
run and why, what the audit trail says, and which baseline values moved. A baseline that advances for a
change that was not applied would make the sync forget that change for good.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cosell_sync.commit import CommitInputs, audit_entries, next_baseline, retry_set
from cosell_sync.common import AuditAction, Direction
from cosell_sync.config import SyncConfig, load_config
from cosell_sync.plan import Plan

RUN: dict[str, Any] = {
    "run_id": "scheduled__2026-02-18T10:00:00+00:00",
    "dag_id": "cosell_reconcile",
    "run_type": "scheduled",
    "started_at": "2026-02-18T10:00:00.000+00:00",
    "catalog": "AWS",
    "advance_watermark": True,
}
PC_LM = "2026-02-18T09:00:00.000+00:00"
WRITTEN_LM = "2026-02-18T10:00:05.000+00:00"
THROTTLED = {"type": "ThrottledError", "service": "partner_central", "message": "Rate exceeded"}


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


def record(**values: Any) -> dict[str, Any]:
    """One record as both extract snapshots hold it (PC and HubSpot agree on everything not given)."""
    return {
        "project_title": "Migration",
        "stage": "Qualified",
        "next_steps": "Call",
        "expected_spend_amount": "1000",
        "_deal_id": "D1",
        "_lm_key": PC_LM,
        "_review_status": "Pending Submission",
        "_last_modified": "2026-02-18T09:30:00Z",
        **values,
    }


def base_row(**values: Any) -> dict[str, Any]:
    return {
        "project_title": "Migration",
        "stage": "Qualified",
        "next_steps": "Call",
        "expected_spend_amount": "1000",
        "deal_id": "D1",
        "pc_last_modified": "2026-02-01T00:00:00.000+00:00",
        "review_status": "Pending Submission",
        **values,
    }


def inputs(
    cfg: SyncConfig,
    plan: Plan,
    pc: dict[str, dict[str, Any]] | None = None,
    hs: dict[str, dict[str, Any]] | None = None,
    base: dict[str, dict[str, Any]] | None = None,
    pc_res: dict[str, Any] | None = None,
    hs_res: dict[str, Any] | None = None,
) -> CommitInputs:
    return CommitInputs(
        cfg=cfg,
        run=RUN,
        plan=plan,
        pc=pc or {},
        hs=hs or {},
        base=base or {},
        pc_res=pc_res or {},
        hs_res=hs_res or {},
    )


def by_action(entries: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for e in entries:
        out.setdefault(e.action, []).append(e)
    return out


def changes(entry: Any) -> dict[str, tuple[Any, Any]]:
    return {k: (v.old, v.new) for k, v in entry.changes.items()}


# ---------------------------------------------------------------------------------------------------
# read failures
# ---------------------------------------------------------------------------------------------------
def test_read_failure_is_queued_for_retry_with_its_error(cfg: SyncConfig) -> None:
    plan = Plan(read_failures=[{"opportunity_id": "O9", "error": THROTTLED}])
    retry, done = retry_set(inputs(cfg, plan, base={"O9": base_row()}))
    assert retry == [
        {
            "opportunity_id": "O9",
            "reason": "READ_FAILED",
            "error": THROTTLED,
            "direction": Direction.TO_HUBSPOT,
        }
    ]
    assert done == []


def test_unread_record_keeps_its_baseline_when_hubspot_changed(cfg: SyncConfig) -> None:
    # PC could not be read: the HubSpot edit is not taken as agreed; the baseline (and PC stamp) stay.
    plan = Plan(read_failures=[{"opportunity_id": "O1", "error": THROTTLED}])
    ci = inputs(cfg, plan, hs={"O1": record(next_steps="HubSpot edit")}, base={"O1": base_row()})
    row = next_baseline(ci)["O1"]
    assert row["next_steps"] == "Call"
    assert row["pc_last_modified"] == "2026-02-01T00:00:00.000+00:00"


# ---------------------------------------------------------------------------------------------------
# Partner Central updates: written, superseded, gated, failed
# ---------------------------------------------------------------------------------------------------
def test_written_pc_update_is_audited_with_planned_old_value_and_advances_the_baseline(
    cfg: SyncConfig,
) -> None:
    plan = Plan(
        partner_central_updates={"O1": {"next_steps": "Demo"}},
        expected={"O1": {"next_steps": "Call"}},
    )
    pc_res = {"updated": {"O1": {"written": {"next_steps": "Demo"}, "last_modified": WRITTEN_LM}}}
    ci = inputs(
        cfg,
        plan,
        pc={"O1": record()},
        hs={"O1": record(next_steps="Demo")},
        base={"O1": base_row()},
        pc_res=pc_res,
    )
    [entry] = audit_entries(ci)
    assert entry.action == AuditAction.UPDATE_OPPORTUNITY
    assert entry.direction == Direction.TO_PARTNER_CENTRAL
    assert entry.success is True
    assert entry.deal_id == "D1"
    assert changes(entry) == {"next_steps": ("Call", "Demo")}
    row = next_baseline(ci)["O1"]
    assert row["next_steps"] == "Demo"
    assert row["pc_last_modified"] == WRITTEN_LM  # the write's stamp: next run does not re-read it
    retry, done = retry_set(ci)
    assert retry == []
    assert done == [{"opportunity_id": "O1"}]


def test_superseded_field_is_deferred_with_the_fresh_pc_value_and_not_baselined(cfg: SyncConfig) -> None:
    # Partner Central changed next_steps between plan and write: the writer held our value back.
    plan = Plan(
        partner_central_updates={"O1": {"next_steps": "Demo", "project_title": "Renamed"}},
        expected={"O1": {"next_steps": "Call", "project_title": "Migration"}},
    )
    pc_res = {
        "updated": {"O1": {"written": {"project_title": "Renamed"}, "last_modified": WRITTEN_LM}},
        "superseded": {"O1": {"next_steps": "Console edit"}},
    }
    ci = inputs(
        cfg,
        plan,
        pc={"O1": record()},
        hs={"O1": record(next_steps="Demo", project_title="Renamed")},
        base={"O1": base_row()},
        pc_res=pc_res,
    )
    actions = by_action(audit_entries(ci))
    [update] = actions[AuditAction.UPDATE_OPPORTUNITY]
    assert changes(update) == {"project_title": ("Migration", "Renamed")}
    [deferred] = actions[AuditAction.DEFERRED]
    assert deferred.opportunity_id == "O1"
    assert deferred.metadata["reasons"] == ["CHANGED_IN_PARTNER_CENTRAL"]
    assert changes(deferred) == {"next_steps": ("Console edit", "Demo")}
    row = next_baseline(ci)["O1"]
    assert row["project_title"] == "Renamed"
    assert row["next_steps"] == "Call"  # not applied: the next run sees the difference again
    retry, done = retry_set(ci)
    assert [(r["opportunity_id"], r["reason"]) for r in retry] == [("O1", "CHANGED_DURING_WRITE")]
    assert done == []


def test_gated_field_is_deferred_with_the_review_reason_and_retried(cfg: SyncConfig) -> None:
    # AWS started its review between plan and write: nothing was written.
    plan = Plan(
        partner_central_updates={"O1": {"stage": "Committed"}},
        expected={"O1": {"stage": "Qualified"}},
    )
    pc_res = {"gated": {"O1": {"review_status": "In review", "fields": {"stage": "REVIEW_IN_PROGRESS"}}}}
    ci = inputs(
        cfg,
        plan,
        pc={"O1": record()},
        hs={"O1": record(stage="Committed")},
        base={"O1": base_row()},
        pc_res=pc_res,
    )
    entries = audit_entries(ci)
    assert [e.action for e in entries] == [AuditAction.DEFERRED]
    assert entries[0].metadata["reasons"] == ["REVIEW_IN_PROGRESS"]
    assert changes(entries[0]) == {"stage": ("Qualified", "Committed")}
    assert next_baseline(ci)["O1"]["stage"] == "Qualified"
    retry, done = retry_set(ci)
    assert [(r["opportunity_id"], r["reason"]) for r in retry] == [("O1", "CHANGED_DURING_WRITE")]
    assert done == []


def test_failed_pc_update_is_audited_as_failure_and_retried_with_the_error(cfg: SyncConfig) -> None:
    plan = Plan(
        partner_central_updates={"O1": {"next_steps": "Demo"}}, expected={"O1": {"next_steps": "Call"}}
    )
    ci = inputs(
        cfg,
        plan,
        pc={"O1": record()},
        hs={"O1": record(next_steps="Demo")},
        base={"O1": base_row()},
        pc_res={"failed": {"O1": THROTTLED}},
    )
    [entry] = audit_entries(ci)
    assert entry.action == AuditAction.UPDATE_OPPORTUNITY
    assert entry.success is False
    assert entry.error == THROTTLED
    assert changes(entry) == {"next_steps": ("Call", "Demo")}
    assert next_baseline(ci)["O1"]["next_steps"] == "Call"
    retry, _ = retry_set(ci)
    assert retry == [
        {
            "opportunity_id": "O1",
            "reason": "FAILED",
            "error": THROTTLED,
            "direction": Direction.TO_PARTNER_CENTRAL,
        }
    ]


# ---------------------------------------------------------------------------------------------------
# plan-level deferred / blocked, HubSpot updates, conflicts
# ---------------------------------------------------------------------------------------------------
def test_planned_deferrals_and_blocks_become_one_entry_per_record(cfg: SyncConfig) -> None:
    plan = Plan(
        deferred=[
            {"opportunity_id": "O1", "field": "stage", "reason": "REVIEW_IN_PROGRESS", "value": "Committed"},
            {"opportunity_id": "O1", "field": "next_steps", "reason": "REVIEW_IN_PROGRESS", "value": "Demo"},
        ],
        blocked=[
            {"opportunity_id": "O2", "field": "next_steps", "reason": "REJECTED_READ_ONLY", "value": "X"}
        ],
    )
    base = {"O1": base_row(), "O2": base_row(deal_id="D2")}
    ci = inputs(cfg, plan, base=base)
    actions = by_action(audit_entries(ci))
    [deferred] = actions[AuditAction.DEFERRED]
    assert deferred.opportunity_id == "O1"
    assert changes(deferred) == {"stage": ("Qualified", "Committed"), "next_steps": ("Call", "Demo")}
    assert deferred.metadata["reasons"] == ["REVIEW_IN_PROGRESS"]
    [skipped] = actions[AuditAction.SKIPPED]
    assert (skipped.opportunity_id, skipped.deal_id) == ("O2", "D2")
    assert skipped.metadata["reasons"] == ["REJECTED_READ_ONLY"]
    retry, _ = retry_set(ci)
    # Deferred records wait for the review and are read again; blocked ones never will be writable.
    assert [(r["opportunity_id"], r["reason"]) for r in retry] == [("O1", "REVIEW_IN_PROGRESS")]


def test_failed_hubspot_update_is_retried_and_keeps_the_baseline(cfg: SyncConfig) -> None:
    plan = Plan(hubspot_updates={"O1": {"stage": "Committed"}, "O2": {"stage": "Launched"}})
    err = {"category": "VALIDATION_ERROR", "message": "bad stage"}
    ci = inputs(
        cfg,
        plan,
        pc={"O1": record(stage="Committed"), "O2": record(stage="Launched", _deal_id="D2")},
        hs={"O1": record(), "O2": record(_deal_id="D2")},
        base={"O1": base_row(), "O2": base_row(deal_id="D2")},
        hs_res={"failed": {"O1": err}},
    )
    entries = {e.opportunity_id: e for e in audit_entries(ci)}
    assert (entries["O1"].action, entries["O1"].success, entries["O1"].error) == (
        AuditAction.UPDATE_DEAL,
        False,
        err,
    )
    assert entries["O2"].success is True
    assert changes(entries["O2"]) == {"stage": ("Qualified", "Launched")}
    rows = next_baseline(ci)
    assert rows["O1"]["stage"] == "Qualified"
    assert rows["O2"]["stage"] == "Launched"
    retry, done = retry_set(ci)
    assert retry == [
        {"opportunity_id": "O1", "reason": "FAILED", "error": err, "direction": Direction.TO_HUBSPOT}
    ]
    assert done == [{"opportunity_id": "O2"}]


def test_manual_conflict_is_audited_and_its_field_not_baselined(cfg: SyncConfig) -> None:
    conflict = {
        "opportunity_id": "O1",
        "field": "expected_spend_amount",
        "pc": "2000",
        "hs": "3000",
        "conflict_id": "conf-abc",
    }
    ci = inputs(
        cfg,
        Plan(conflicts=[conflict]),
        pc={"O1": record(expected_spend_amount="2000")},
        hs={"O1": record(expected_spend_amount="3000")},
        base={"O1": base_row()},
    )
    [entry] = audit_entries(ci)
    assert entry.action == AuditAction.CONFLICT_DETECTED
    assert entry.direction == Direction.CONFLICT
    assert entry.metadata["conflictId"] == "conf-abc"
    assert changes(entry) == {"expected_spend_amount": ("2000", "3000")}
    assert next_baseline(ci)["O1"]["expected_spend_amount"] == "1000"


def test_values_both_sides_agree_on_advance_even_without_a_write(cfg: SyncConfig) -> None:
    # Converged: both sides were edited to the same value; a field that differs stays at its baseline.
    ci = inputs(
        cfg,
        Plan(converged=["O1"]),
        pc={"O1": record(next_steps="Same", project_title="PC title")},
        hs={"O1": record(next_steps="Same", project_title="HS title")},
        base={"O1": base_row()},
    )
    row = next_baseline(ci)["O1"]
    assert row["next_steps"] == "Same"
    assert row["project_title"] == "Migration"
    assert row["deal_id"] == "D1"
    assert row["pc_last_modified"] == PC_LM
    assert row["hs_last_modified"] == "2026-02-18T09:30:00.000+00:00"
    assert row["review_status"] == "Pending Submission"


# ---------------------------------------------------------------------------------------------------
# creates and submissions
# ---------------------------------------------------------------------------------------------------
def test_failed_opportunity_create_is_retried_by_deal_and_has_no_baseline(cfg: SyncConfig) -> None:
    plan = Plan(create_opportunities=[{"deal_id": "D7", "values": {"project_title": "New deal"}}])
    err = {"type": "ValidationError", "message": "bad"}
    ci = inputs(cfg, plan, pc_res={"failed": {"deal:D7": err}})
    [entry] = audit_entries(ci)
    assert (entry.action, entry.success, entry.opportunity_id, entry.deal_id) == (
        AuditAction.CREATE_OPPORTUNITY,
        False,
        None,
        "D7",
    )
    assert entry.pk == "deal#D7"
    assert changes(entry) == {"project_title": (None, "New deal")}
    retry, _ = retry_set(ci)
    assert retry == [
        {"deal_id": "D7", "reason": "FAILED", "error": err, "direction": Direction.TO_PARTNER_CENTRAL}
    ]
    assert next_baseline(ci) == {}


def test_created_and_linked_opportunity_gets_a_baseline_and_leaves_the_queue(cfg: SyncConfig) -> None:
    plan = Plan(create_opportunities=[{"deal_id": "D7", "values": {"project_title": "New deal"}}])
    created = {
        "opportunity_id": "O-new",
        "values": {"project_title": "New deal", "review_status": "Pending Submission"},
        "last_modified": WRITTEN_LM,
        "review_status": "Pending Submission",
    }
    ci = inputs(cfg, plan, pc_res={"created": {"D7": created}}, hs_res={"linked": {"D7": "O-new"}})
    [entry] = audit_entries(ci)
    assert (entry.opportunity_id, entry.success) == ("O-new", True)
    row = next_baseline(ci)["O-new"]
    assert (row["deal_id"], row["project_title"], row["pc_last_modified"]) == ("D7", "New deal", WRITTEN_LM)
    retry, done = retry_set(ci)
    assert retry == []
    assert done == [{"deal_id": "D7"}]


def test_created_opportunity_whose_link_failed_keeps_its_deal_in_the_retry_queue(cfg: SyncConfig) -> None:
    plan = Plan(create_opportunities=[{"deal_id": "D7", "values": {"project_title": "New deal"}}])
    created = {
        "opportunity_id": "O-new",
        "values": {"project_title": "New deal"},
        "last_modified": WRITTEN_LM,
    }
    ci = inputs(
        cfg,
        plan,
        pc_res={"created": {"D7": created}},
        hs_res={"linked": {"D7": "O-new"}, "failed": {"D7": {"category": "RATE_LIMITS", "message": "429"}}},
    )
    assert "O-new" not in next_baseline(ci)  # no baseline without the link (documented)
    retry, done = retry_set(ci)
    assert {"deal_id": "D7"} not in done
    assert [r.get("deal_id") for r in retry] == ["D7"]


def test_created_deal_is_baselined_with_its_related_ids(cfg: SyncConfig) -> None:
    plan = Plan(create_deals=["O5"])
    pc = {"O5": record(_deal_id=None, project_title="From AWS")}
    hs_res = {"created": {"O5": "D55"}, "related": {"O5": {"company_id": "C5", "contact_id": "P5"}}}
    ci = inputs(cfg, plan, pc=pc, hs_res=hs_res)
    [entry] = audit_entries(ci)
    assert (entry.action, entry.deal_id, entry.success) == (AuditAction.CREATE_DEAL, "D55", True)
    assert changes(entry)["project_title"] == (None, "From AWS")
    row = next_baseline(ci)["O5"]
    assert (row["deal_id"], row["company_id"], row["contact_id"]) == ("D55", "C5", "P5")
    assert row["project_title"] == "From AWS"
    assert retry_set(ci) == ([], [{"opportunity_id": "O5"}])


def test_opportunity_created_for_a_deal_is_baselined_with_the_deals_company_and_contact(
    cfg: SyncConfig,
) -> None:
    # Without them, a later change of the company (or the customer accounts step) would not find the record.
    plan = Plan(
        create_opportunities=[
            {"deal_id": "D7", "values": {"project_title": "New deal"}, "company_id": "C7", "contact_id": "P7"}
        ]
    )
    created = {
        "opportunity_id": "O-new",
        "values": {"project_title": "New deal"},
        "last_modified": WRITTEN_LM,
    }
    ci = inputs(cfg, plan, pc_res={"created": {"D7": created}}, hs_res={"linked": {"D7": "O-new"}})
    row = next_baseline(ci)["O-new"]
    assert (row["deal_id"], row["company_id"], row["contact_id"]) == ("D7", "C7", "P7")


def test_failed_deal_create_is_retried_and_not_baselined(cfg: SyncConfig) -> None:
    err = {"category": "VALIDATION_ERROR", "message": "dealname"}
    ci = inputs(
        cfg, Plan(create_deals=["O5"]), pc={"O5": record(_deal_id=None)}, hs_res={"failed": {"O5": err}}
    )
    [entry] = audit_entries(ci)
    assert (entry.success, entry.error) == (False, err)
    assert next_baseline(ci) == {}
    assert retry_set(ci)[0] == [
        {"opportunity_id": "O5", "reason": "FAILED", "error": err, "direction": Direction.TO_HUBSPOT}
    ]


def test_submission_waiting_for_a_solution_keeps_the_old_stage_and_is_retried(cfg: SyncConfig) -> None:
    plan = Plan(submit=["O1"])
    err = {"type": "SolutionsRequiredError", "message": "no solution"}
    pc_res = {"submit_waiting": ["O1"], "failed": {"submit:O1": err}}
    ci = inputs(
        cfg,
        plan,
        pc={"O1": record(stage="Committed")},
        hs={"O1": record(stage="Committed")},
        base={"O1": base_row()},
        pc_res=pc_res,
    )
    # Both sides say Committed, but the submission did not happen: the stage keeps its old baseline so
    # the next run sees the deal enter the submit stage again.
    assert next_baseline(ci)["O1"]["stage"] == "Qualified"
    [deferred] = audit_entries(ci)
    assert deferred.action == AuditAction.DEFERRED
    assert deferred.metadata["reasons"] == ["SOLUTION_REQUIRED"]
    retry, _ = retry_set(ci)
    assert retry == [
        {
            "opportunity_id": "O1",
            "reason": "SOLUTION_REQUIRED",
            "error": err,
            "direction": Direction.TO_PARTNER_CENTRAL,
        }
    ]


# ---------------------------------------------------------------------------------------------------
# audit keys
# ---------------------------------------------------------------------------------------------------
def test_audit_keys_are_deterministic_so_a_retried_commit_overwrites_its_entries(cfg: SyncConfig) -> None:
    plan = Plan(
        hubspot_updates={"O1": {"stage": "Committed"}},
        deferred=[{"opportunity_id": "O2", "field": "stage", "reason": "REVIEW_IN_PROGRESS", "value": "X"}],
    )
    ci = inputs(cfg, plan, base={"O1": base_row(), "O2": base_row(deal_id="D2")})
    first = [(e.pk, e.sk) for e in audit_entries(ci)]
    second = [(e.pk, e.sk) for e in audit_entries(ci)]
    assert first == second
    assert len(set(first)) == len(first)
    run_ts = datetime(2026, 2, 18, 10, tzinfo=UTC)
    for entry in audit_entries(ci):
        assert entry.run_timestamp == run_ts
        assert entry.user == "airflow:cosell_reconcile"
        assert "#" not in entry.run_id
        assert entry.metadata["runId"] == RUN["run_id"]


# ---------------------------------------------------------------------------------------------------
# other contacts (Customer.Contacts[1..]) of linked deals
# ---------------------------------------------------------------------------------------------------
OTHERS = [{"Email": "bo@customer.example"}, {"Email": "cy@customer.example"}]


def _contacts_read(**values: Any) -> dict[str, Any]:
    """A HubSpot record whose deal's contacts were read again this run (three contacts now)."""
    return record(_contact_count="3", _other_contact_ids="P2;P3", **values)


def _contacts_commit(cfg: SyncConfig, pc_res: dict[str, Any], **baseline: Any) -> Any:
    """Commit inputs of a run that planned O1's other contacts (``OTHERS``) and got ``pc_res`` back."""
    return inputs(
        cfg,
        Plan(other_contacts={"O1": OTHERS}),
        hs={"O1": _contacts_read()},
        base={"O1": base_row(**baseline)},
        pc_res=pc_res,
    )


def test_other_contacts_written_alone_are_audited_and_recorded_in_the_baseline(cfg: SyncConfig) -> None:
    pc_res = {
        "updated": {"O1": {"written": {}, "last_modified": WRITTEN_LM, "other_contacts": 2}},
        "other_contacts_done": ["O1"],
    }
    ci = _contacts_commit(cfg, pc_res, contact_count="2", other_contact_ids="P2")
    [entry] = audit_entries(ci)
    assert (entry.action, entry.success) == (AuditAction.UPDATE_OPPORTUNITY, True)
    assert entry.metadata["otherContacts"] == 2
    assert changes(entry) == {}
    row = next_baseline(ci)["O1"]
    assert (row["contact_count"], row["other_contact_ids"]) == ("3", "P2;P3")
    # The e-mails sent: a later removal on the deal removes exactly these, never Partner Central's own.
    assert row["other_contact_emails"] == "bo@customer.example;cy@customer.example"
    assert retry_set(ci) == ([], [{"opportunity_id": "O1"}])


def test_other_contacts_the_opportunity_already_holds_are_neither_audited_nor_retried(
    cfg: SyncConfig,
) -> None:
    ci = _contacts_commit(cfg, {"unchanged": ["O1"], "other_contacts_done": ["O1"]}, contact_count="2")
    assert audit_entries(ci) == []
    assert next_baseline(ci)["O1"]["contact_count"] == "3"
    assert retry_set(ci) == ([], [{"opportunity_id": "O1"}])


@pytest.mark.parametrize(
    ("pc_res", "reason"),
    [
        pytest.param({"failed": {"O1": THROTTLED}}, "FAILED", id="write-failed"),
        pytest.param(
            {"other_contacts_gated": {"O1": "REVIEW_IN_PROGRESS"}}, "CHANGED_DURING_WRITE", id="under-review"
        ),
    ],
)
def test_other_contacts_not_written_keep_the_old_count_so_they_are_read_and_sent_again(
    cfg: SyncConfig, pc_res: dict[str, Any], reason: str
) -> None:
    ci = _contacts_commit(cfg, pc_res, contact_count="2", other_contact_ids="P2")
    row = next_baseline(ci)["O1"]
    assert (row["contact_count"], row["other_contact_ids"]) == ("2", "P2")
    assert row["other_contact_emails"] is None
    retry, _ = retry_set(ci)
    assert [(r["opportunity_id"], r["reason"]) for r in retry] == [("O1", reason)]


def test_a_deal_created_by_the_sync_is_baselined_with_its_one_contact(cfg: SyncConfig) -> None:
    # Its count then matches HubSpot's: the deal's first edit reads no associations.
    plan = Plan(create_deals=["O5", "O6"])
    pc = {"O5": record(_deal_id=None), "O6": record(_deal_id=None)}
    hs_res = {
        "created": {"O5": "D55", "O6": "D66"},
        "related": {"O5": {"company_id": "C5", "contact_id": "P5"}, "O6": {"company_id": "C6"}},
    }
    baseline = next_baseline(inputs(cfg, plan, pc=pc, hs_res=hs_res))
    assert (baseline["O5"]["contact_count"], baseline["O6"]["contact_count"]) == ("1", "0")


def test_a_dead_runs_owed_notes_name_the_written_properties_and_contacts_never_values(
    cfg: SyncConfig,
) -> None:
    """The notes the next commit writes for a dead ``apply_hubspot``: the ones its step 4 would have."""
    from cosell_sync.apply import LOCKED_NOTE
    from cosell_sync.audit import AuditEntry
    from cosell_sync.commit import dead_run_notes
    from cosell_sync.gating import LOCKED

    email = "olga@customer.example"
    plan = Plan(
        blocked=[{"opportunity_id": "O1", "field": "stage", "reason": LOCKED, "value": "Committed"}],
        contacts_to_hubspot={"O2": {email: {"contact_job_title": "Head of Data"}}},
        contact_positions={"O2": {email: 2}},
    )

    def judged(oid: str, deal: str, action: AuditAction, changes: dict[str, Any], **metadata: Any) -> Any:
        return AuditEntry(
            opportunity_id=oid,
            deal_id=deal,
            run_id="scheduled__dead",
            run_timestamp=datetime(2026, 2, 18, 9, tzinfo=UTC),
            direction=Direction.TO_HUBSPOT,
            action=action,
            source="PARTNER_CENTRAL",
            changes=changes,
            metadata={"journalStatus": "INTENT", **metadata},
        )

    notes = dead_run_notes(
        cfg,
        plan,
        [
            judged(
                "O1",
                "D1",
                AuditAction.UPDATE_DEAL,
                {
                    "stage": {"old": "Qualified", "new": "Committed"},
                    "next_steps": {"old": "Call", "new": "Demo"},
                },
            ),
            judged(
                "O2",
                "D2",
                AuditAction.UPDATE_CONTACT,
                {"contact_job_title (contact 2)": {"old": "Buyer", "new": "Head of Data"}},
                contactIds={"contact 2": "C9"},
            ),
            judged("O3", "D3", AuditAction.CREATE_DEAL, {"stage": {"old": None, "new": "Prospect"}}),
            # Planned by the dead run for a field the config no longer maps: no note, and no error.
            judged("O4", "D4", AuditAction.UPDATE_DEAL, {"unmapped_since": {"old": "a", "new": "b"}}),
        ],
    )

    assert sorted(notes) == ["D1", "D2"]  # a created deal gets no note, as in apply_hubspot
    stage, next_steps = cfg.field("stage").hubspot, cfg.field("next_steps").hubspot
    assert f"<li>{stage} ({LOCKED_NOTE})</li>" in notes["D1"]
    assert f"<li>{next_steps}</li>" in notes["D1"]
    assert "contact 2 (contact_job_title)" in notes["D2"]
    for body in notes.values():
        assert not any(v in body for v in ("Committed", "Demo", "Head of Data", email))
