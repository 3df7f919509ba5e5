"""What a run shows: record errors fail the run's report, bad params and permanent errors fail at once.

- A ``cosell_reconcile`` run with a record it could not write ends failed at ``report`` (after
  ``report.json`` and the commit), once, without retries, naming the counts; the next run works.
  With ``report.fail_on_record_errors: false`` the same run succeeds with a WARNING line.
- A run conf key that is no param of the DAG fails its first task, listing the valid keys.
- Permanent errors (requested ids none of which exists, an unknown conflict, a record that is not linked)
  fail their task on the first try, even when the task has retries left.
- ``since`` (and rollback's ``target_timestamp``) without a UTC offset is read as UTC.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from tests.dags.scenarios import canonical_pc, editable, set_hs, synced_book, xcom

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

#: Partner Central takes at most 255 characters in ``Project.Title``; HubSpot's dealname takes more.
TOO_LONG_TITLE = "An opportunity title far longer than Partner Central accepts " * 5


def _config(tmp_path: Any, monkeypatch: Any, **sections: Any) -> None:
    """The shipped config with some sections replaced."""
    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data.update(sections)
    path = tmp_path / "sync_config.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))


def _run_with_retries(
    stack: Any, dag_id: str, task_id: str, conf: dict[str, Any] | None = None, retries: int = 2
) -> Any:
    """``dag.test()`` with ``retries`` (no delay) on one task, as deployed, so a retry would really happen."""
    dag = stack.dag(dag_id)
    task = dag.get_task(task_id)
    task.retries = retries
    task.retry_delay = timedelta(0)
    return dag.test(run_conf=conf or {})


def _tis(run: Any) -> dict[str, Any]:
    return {ti.task_id: ti for ti in run.get_task_instances()}


def _state(obj: Any) -> str:
    return str(getattr(obj.state, "value", obj.state))


def _lease_holder(stack: Any) -> Any:
    from cosell_sync.config import load_config
    from cosell_sync.lease import CatalogLease

    cfg = load_config()
    return CatalogLease(stack.aws("dynamodb"), cfg.storage.state_table, "AWS", ttl_seconds=600).holder()


def _note(run: Any) -> str:
    """The run's note as the Airflow UI shows it (written by the scheduler's listener when the run ended)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = session.query(DagRun).filter(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id).one()
        return stored.note or ""


# 1 -------------------------------------------------------------------------------------------------
def test_a_run_with_a_failed_write_fails_its_report_once_and_the_next_run_works(
    sync_stack: Any, capfd: Any
) -> None:
    ids = synced_book(sync_stack, opportunities=4)
    bad, good = editable(sync_stack, ids)[:2]
    set_hs(sync_stack, bad, {"project_title": TOO_LONG_TITLE})
    set_hs(sync_stack, good, {"next_steps": "Synced although another record failed"})
    capfd.readouterr()

    run = _run_with_retries(sync_stack, "cosell_reconcile", "report")

    assert _state(run) == "failed"
    tis = _tis(run)
    # Only the report failed, on its first try although it had retries: nothing before it ran again.
    assert {t: _state(ti) for t, ti in tis.items() if _state(ti) != "success"} == {"report": "failed"}
    assert tis["report"].try_number == 1
    assert all(ti.try_number == 1 for ti in tis.values())
    # Everything else was committed: the good edit is in Partner Central, the report stored.
    assert canonical_pc(sync_stack, good)["next_steps"] == "Synced although another record failed"
    report = sync_stack.report(run)
    assert report["hubspot_to_partner_central"]["failed"] == 1
    assert report["watermark_advanced"] is True
    assert report["record_errors"] == {
        "read_failures": 0,
        "failed_writes_to_hubspot": 0,
        "failed_writes_to_partner_central": 1,
        "unknown_opportunity_ids": 0,
    }
    out = capfd.readouterr()
    logged = out.out + out.err
    assert "1 write(s) failed (0 to HubSpot, 1 to Partner Central)" in logged
    assert "report.fail_on_record_errors" in logged
    assert TOO_LONG_TITLE.strip() not in logged.replace("\n", "")  # counts, never values
    # The run page says so: the note names the outcome, the counts and where the artefacts are.
    note = _note(run)
    assert note.startswith("**Sync finished with record errors**"), note
    assert "| HubSpot → Partner Central | 0 | 1 | 0 | 0 | 1 |" in note, note
    assert f"runs/AWS/{run.run_id}/` (`report.json`, `changes.parquet`, `plan.json`)" in note
    assert TOO_LONG_TITLE.strip() not in note
    assert len(note) <= 1000
    # The failed run left no lease behind: the next run starts at once and, the title fixed, succeeds.
    assert _lease_holder(sync_stack) is None
    set_hs(sync_stack, bad, {"project_title": "A title Partner Central accepts"})
    second = sync_stack.run()
    again = sync_stack.report(second)
    assert again["hubspot_to_partner_central"]["failed"] == 0
    assert _note(second).startswith("**Sync succeeded.**")
    assert "| HubSpot → Partner Central | 0 | 1 | 0 | 0 | 0 |" in _note(second)
    assert canonical_pc(sync_stack, bad)["project_title"] == "A title Partner Central accepts"


def test_record_errors_only_warn_when_fail_on_record_errors_is_off(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any, caplog: Any
) -> None:
    _config(tmp_path, monkeypatch, report={"fail_on_record_errors": False})
    ids = synced_book(sync_stack, opportunities=3)
    oid = editable(sync_stack, ids)[0]
    set_hs(sync_stack, oid, {"project_title": TOO_LONG_TITLE})
    caplog.clear()

    run = sync_stack.run()  # success

    assert sync_stack.report(run)["hubspot_to_partner_central"]["failed"] == 1
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "had record errors" in r.getMessage()
    ]
    assert len(warnings) == 1, "one WARNING line with the counts"
    assert "1 write(s) failed (0 to HubSpot, 1 to Partner Central)" in warnings[0]
    assert TOO_LONG_TITLE.strip() not in warnings[0]


# 2 -------------------------------------------------------------------------------------------------
def test_an_unknown_run_conf_key_fails_prepare_once_listing_the_valid_keys(
    sync_stack: Any, capfd: Any
) -> None:
    capfd.readouterr()
    sync_stack.reset_calls()
    run = _run_with_retries(sync_stack, "cosell_reconcile", "prepare", conf={"mdoe": "full"})

    assert _state(run) == "failed"
    tis = _tis(run)
    assert _state(tis["prepare"]) == "failed"
    assert tis["prepare"].try_number == 1
    out = capfd.readouterr()
    assert "unknown run conf key(s) 'mdoe' (did you mean 'mode'?)" in out.out + out.err
    assert "valid keys: catalog, direction, dry_run, mode, opportunity_ids, since" in out.out + out.err
    # Nothing was read or written on either side.
    pc_calls, hs_calls = sync_stack.calls()
    assert not pc_calls["by_operation"]
    assert not hs_calls["by_endpoint"]


@pytest.mark.parametrize(
    ("dag_id", "task_id", "conf", "typo"),
    [
        pytest.param(
            "cosell_rollback",
            "rollback",
            {"opportunity_id": "O1234567890", "target_timestamp": "2026-01-01T00:00:00Z", "dryrun": False},
            "'dryrun' (did you mean 'dry_run'?)",
            id="rollback",
        ),
        pytest.param(
            "cosell_resolve_conflict",
            "resolve",
            {
                "conflict_id": "conf-0123456789abcdef",
                "resolution": "USE_HUBSPOT_VALUE",
                "resolved_by": "hs-owner-1",
                "resolvedby": "someone",
            },
            "'resolvedby' (did you mean 'resolved_by'?)",
            id="resolve_conflict",
        ),
    ],
)
def test_the_manual_dags_refuse_unknown_conf_keys_too(
    sync_stack: Any, capfd: Any, dag_id: str, task_id: str, conf: dict[str, Any], typo: str
) -> None:
    capfd.readouterr()
    run = _run_with_retries(sync_stack, dag_id, task_id, conf=conf, retries=1)

    ti = _tis(run)[task_id]
    assert (_state(ti), ti.try_number) == ("failed", 1)
    out = capfd.readouterr()
    assert f"unknown run conf key(s) {typo}" in out.out + out.err


# 3 -------------------------------------------------------------------------------------------------
def test_requested_ids_none_of_which_exists_fail_the_extract_without_retries(sync_stack: Any) -> None:
    synced_book(sync_stack, opportunities=2)
    run = _run_with_retries(
        sync_stack, "cosell_reconcile", "extract_partner_central", conf={"opportunity_ids": ["O9999999"]}
    )

    ti = _tis(run)["extract_partner_central"]
    assert (_state(ti), ti.try_number) == ("failed", 1)
    # The run page names the failed task; no summary, since no report was made.
    assert _note(run).startswith("**Sync failed** at `extract_partner_central`."), _note(run)


def test_an_unknown_conflict_id_fails_without_retries(sync_stack: Any, capfd: Any) -> None:
    capfd.readouterr()
    conf = {"conflict_id": "conf-0000000000000000", "resolution": "USE_HUBSPOT_VALUE", "resolved_by": "hs-1"}
    run = _run_with_retries(sync_stack, "cosell_resolve_conflict", "resolve", conf=conf, retries=1)

    ti = _tis(run)["resolve"]
    assert (_state(ti), ti.try_number) == ("failed", 1)
    out = capfd.readouterr()
    assert "conflict conf-0000000000000000 not found" in out.out + out.err


# 4 -------------------------------------------------------------------------------------------------
def test_since_without_an_offset_is_read_as_utc(sync_stack: Any) -> None:
    ids = synced_book(sync_stack, opportunities=3)
    oid = editable(sync_stack, ids)[0]
    set_hs(sync_stack, oid, {"next_steps": "Changed after the given instant"})
    since = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)

    run = sync_stack.run(conf={"since": since.strftime("%Y-%m-%dT%H:%M:%S")})  # no offset

    described = xcom(run, "prepare")
    assert datetime.fromisoformat(described["since_partner_central"]) == since
    assert datetime.fromisoformat(described["since_hubspot"]) == since
    assert described["advance_watermark"] is False
    assert canonical_pc(sync_stack, oid)["next_steps"] == "Changed after the given instant"


def test_rollback_target_without_an_offset_is_accepted_and_an_unlinked_record_fails_at_once(
    sync_stack: Any, capfd: Any
) -> None:
    capfd.readouterr()
    conf = {"opportunity_id": "O1234567890", "target_timestamp": "2026-01-01T00:00:00"}
    run = _run_with_retries(sync_stack, "cosell_rollback", "rollback", conf=conf, retries=1)

    ti = _tis(run)["rollback"]
    assert (_state(ti), ti.try_number) == ("failed", 1)
    out = capfd.readouterr()
    # The param was taken (no validation error): the run got as far as looking the record up.
    assert "opportunity O1234567890 has no synced HubSpot deal" in out.out + out.err


# 4 -------------------------------------------------------------------------------------------------
def _prepare_context(stack: Any, run_id: str, run_type: str) -> dict[str, Any]:
    """The context Airflow gives ``prepare`` in a run of ``run_type`` (a day's data interval)."""
    from types import SimpleNamespace

    dag = stack.dag("cosell_reconcile")
    dag_run = SimpleNamespace(run_id=run_id, dag_id=dag.dag_id, run_type=run_type, conf={})
    return {
        "dag": dag,
        "dag_run": dag_run,
        "run_id": run_id,
        "params": dag.params.dump(),
        "data_interval_start": datetime(2026, 11, 1, tzinfo=UTC),
        "data_interval_end": datetime(2026, 11, 2, tzinfo=UTC),
    }


def test_a_backfill_run_finding_the_catalog_leased_is_rescheduled_and_a_manual_one_fails(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """Airflow's backfill ignores the DAG's max_active_runs: its runs must queue on the lease, not fail."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

    from cosell_runtime.tasks import reconcile_prepare
    from cosell_sync.config import load_config
    from cosell_sync.lease import CatalogLease

    _config(
        tmp_path, monkeypatch, lease={"ttl_seconds": 600, "wait_seconds": 0, "backfill_recheck_seconds": 30}
    )
    lease = CatalogLease(
        sync_stack.aws("dynamodb"), load_config().storage.state_table, "AWS", ttl_seconds=600
    )
    lease.acquire("scheduled__2026-11-05T00:00:00+00:00")
    before = datetime.now(UTC)

    with pytest.raises(AirflowRescheduleException) as later:
        reconcile_prepare(_prepare_context(sync_stack, "backfill__2026-11-01T00:00:00+00:00", "backfill"))
    assert (
        before + timedelta(seconds=29)
        <= later.value.reschedule_date
        <= datetime.now(UTC) + timedelta(seconds=31)
    )
    with pytest.raises(AirflowFailException, match="being synced by run scheduled__2026-11-05"):
        reconcile_prepare(_prepare_context(sync_stack, "manual__2026-11-05T01:00:00+00:00", "manual"))
    assert lease.holder()["owner"] == "scheduled__2026-11-05T00:00:00+00:00"  # neither took it

    # Once the other run is done, the rescheduled backfill run goes on with its own interval.
    lease.release("scheduled__2026-11-05T00:00:00+00:00")
    run = reconcile_prepare(_prepare_context(sync_stack, "backfill__2026-11-01T00:00:00+00:00", "backfill"))
    assert lease.holder()["owner"] == "backfill__2026-11-01T00:00:00+00:00"
    assert run["until"].startswith("2026-11-02")
    lease.release(run["run_id"])
