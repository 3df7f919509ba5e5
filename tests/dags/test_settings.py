"""Selling system settings: read by every ``cosell_reconcile`` run, changed by ``cosell_settings``.

End to end against both emulators and moto (``dag.test``), as a user triggers the DAGs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dags.scenarios import xcom

ROLE = "arn:aws:iam::123456789012:role/service-role/SnapshotJobRole"
OTHER_ROLE = "arn:aws:iam::123456789012:role/OtherRole"


def _settings(stack: Any) -> dict[str, Any]:
    got = stack.pc.get_selling_system_settings(Catalog="AWS")
    return {k: v for k, v in got.items() if k not in ("Catalog", "ResponseMetadata")}


def _settings_entries(stack: Any) -> list[dict[str, Any]]:
    return [e for e in stack.audit("settings#AWS") if e["action"] == "SETTINGS_CHANGED"]


def test_a_reconcile_run_reports_the_settings(sync_stack: Any, caplog: pytest.LogCaptureFixture) -> None:
    sync_stack.pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier=ROLE)
    sync_stack.reset_calls()
    caplog.set_level("INFO")

    run = sync_stack.run()

    report = sync_stack.report(run)
    # With the time Partner Central was asked (settings.refresh_minutes 0: this run's own read).
    assert report["selling_settings"].pop("read_at")
    assert report["selling_settings"] == {"readable": True, "settings": {"ResourceSnapshotJobRoleArn": ROLE}}
    # One read a run, counted with the run's other calls.
    assert report["api_calls"]["GetSellingSystemSettings"] == 1
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"]["GetSellingSystemSettings"] == 1
    assert f"settings: ResourceSnapshotJobRoleArn={ROLE}" in caplog.text


def test_a_run_without_permission_goes_on_and_says_so(
    sync_stack: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sync_stack.pc_control("config", {"settings_access": False})
    caplog.set_level("INFO")

    run = sync_stack.run()

    report = sync_stack.report(run)
    assert report["selling_settings"].pop("read_at")
    assert report["selling_settings"] == {"readable": False, "error": "AccessDeniedException"}
    assert report["api_calls"]["GetSellingSystemSettings"] == 1
    assert "settings: not readable (AccessDeniedException)" in caplog.text


def test_dry_run_shows_current_and_new_and_changes_nothing(
    sync_stack: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sync_stack.pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier=OTHER_ROLE)
    sync_stack.reset_calls()
    caplog.set_level("INFO")

    run = sync_stack.run("cosell_settings", conf={"resource_snapshot_job_role_identifier": ROLE})

    result = xcom(run, "change_settings")
    assert (result["dry_run"], result["written"]) == (True, False)
    assert result["changes"] == {"ResourceSnapshotJobRoleArn": {"old": OTHER_ROLE, "new": ROLE}}
    assert f"ResourceSnapshotJobRoleArn: {OTHER_ROLE} -> {ROLE}" in caplog.text
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"] == {"GetSellingSystemSettings": 1}
    assert _settings(sync_stack) == {"ResourceSnapshotJobRoleArn": OTHER_ROLE}
    assert _settings_entries(sync_stack) == []


def test_apply_changes_the_settings_once_and_a_rerun_writes_nothing(sync_stack: Any) -> None:
    sync_stack.reset_calls()
    conf = {"resource_snapshot_job_role_identifier": ROLE, "dry_run": False}

    first = sync_stack.run("cosell_settings", conf=conf)

    assert _settings(sync_stack) == {"ResourceSnapshotJobRoleArn": ROLE}
    result = xcom(first, "change_settings")
    assert (result["written"], result["audit_entries"]) == (True, 1)
    entries = _settings_entries(sync_stack)
    assert len(entries) == 1
    assert entries[0]["changes"] == {"ResourceSnapshotJobRoleArn": {"old": None, "new": ROLE}}
    assert entries[0]["metadata"]["runId"] == first.run_id
    assert entries[0]["user"] == "airflow:cosell_settings"

    second = sync_stack.run("cosell_settings", conf=conf)

    assert xcom(second, "change_settings")["written"] is False
    assert len(_settings_entries(sync_stack)) == 1
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"]["PutSellingSystemSettings"] == 1


def test_a_role_name_is_stored_as_the_accounts_arn_and_counts_as_unchanged_after(sync_stack: Any) -> None:
    conf = {"resource_snapshot_job_role_identifier": "SnapshotJobRole", "dry_run": False}
    sync_stack.run("cosell_settings", conf=conf)
    expanded = "arn:aws:iam::123456789012:role/SnapshotJobRole"
    assert _settings(sync_stack) == {"ResourceSnapshotJobRoleArn": expanded}
    assert _settings_entries(sync_stack)[0]["changes"]["ResourceSnapshotJobRoleArn"]["new"] == expanded

    again = sync_stack.run("cosell_settings", conf=conf)

    assert xcom(again, "change_settings")["written"] is False
    assert len(_settings_entries(sync_stack)) == 1


@pytest.mark.parametrize(
    ("value", "rule"),
    [("not a role", "must match the pattern"), ("r" * 2049, "must match the pattern")],
    ids=["pattern", "too_long"],
)
def test_an_invalid_value_fails_at_once_without_retries(
    sync_stack: Any, capfd: Any, value: str, rule: str
) -> None:
    dag = sync_stack.dag("cosell_settings")
    task = dag.get_task("change_settings")
    task.retries, task.retry_delay = 1, timedelta(0)
    sync_stack.reset_calls()
    capfd.readouterr()

    run = dag.test(run_conf={"resource_snapshot_job_role_identifier": value, "dry_run": False})

    ti = next(t for t in run.get_task_instances() if t.task_id == "change_settings")
    assert (str(getattr(ti.state, "value", ti.state)), ti.try_number) == ("failed", 1)
    out = capfd.readouterr()
    text = out.out + out.err
    assert "resource_snapshot_job_role_identifier: Partner Central PutSellingSystemSettings." in text
    assert rule in text
    assert value not in text  # the rule, never the value
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["total"] == 0
    assert _settings_entries(sync_stack) == []


def test_every_settable_member_of_the_model_is_a_param() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from cosell_sync import settings

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "cosell_settings.py"))
    params = set(bag.dags["cosell_settings"].params)
    assert set(settings.settable_members()) == set(settings.PUT_TO_GET)
    assert {settings.PARAMS[m] for m in settings.PUT_TO_GET} | {"catalog", "dry_run"} == params


def test_a_put_whose_audit_write_died_is_audited_by_the_next_run(
    sync_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task dies after Partner Central took the value: the next run writes the owed audit entry once."""
    from cosell_sync.audit import AuditTrail
    from cosell_sync.errors import FatalError

    sync_stack.reset_calls()
    conf = {"resource_snapshot_job_role_identifier": OTHER_ROLE, "dry_run": False}
    real_write = AuditTrail.write

    def dies(self: AuditTrail, entries: Any) -> int:
        raise FatalError("the worker died here")

    monkeypatch.setattr(AuditTrail, "write", dies)
    first = sync_stack.run("cosell_settings", conf=conf, expect="failed")
    monkeypatch.setattr(AuditTrail, "write", real_write)

    # The put was applied and nothing audited it.
    assert _settings(sync_stack)["ResourceSnapshotJobRoleArn"] == OTHER_ROLE
    before = [e for e in _settings_entries(sync_stack) if e["metadata"]["runId"] == first.run_id]
    assert before == []

    second = sync_stack.run("cosell_settings", conf=conf)

    result = xcom(second, "change_settings")
    assert (result["written"], result["audit_entries"]) == (False, 1)
    owed = [e for e in _settings_entries(sync_stack) if e["metadata"]["runId"] == first.run_id]
    assert len(owed) == 1
    assert owed[0]["changes"]["ResourceSnapshotJobRoleArn"]["new"] == OTHER_ROLE
    # A third run finds nothing owed and writes nothing.
    third = sync_stack.run("cosell_settings", conf=conf)
    assert xcom(third, "change_settings")["audit_entries"] == 0
    assert len([e for e in _settings_entries(sync_stack) if e["metadata"]["runId"] == first.run_id]) == 1
