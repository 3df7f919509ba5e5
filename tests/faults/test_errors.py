"""Fault group: clear errors (issue 10, cases 11 to 13).

11. ``aws_sync_error`` on a deal is cleared once its record syncs again, whichever way the user fixed it.
12. Unknown ids in the ``opportunity_ids`` run param are named in the run report (and fail its report
    task); a run none of whose requested ids exists fails with a clear error.
13. A bad cron in the sync config fails the config check (``load_config``), not the DAG's import.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dags.scenarios import canonical_pc, editable, set_hs, synced_book

pytestmark = [pytest.mark.xdist_group("dags")]

#: Partner Central takes at most 255 characters in ``Project.Title``; HubSpot's dealname takes more.
TOO_LONG_TITLE = "An opportunity title far longer than Partner Central accepts " * 5


def _sync_error(stack: Any, oid: str) -> str:
    deal = stack.deal_by_opportunity(oid, ["aws_sync_error"])
    return deal["properties"].get("aws_sync_error") or ""


def _retry_ids(stack: Any) -> set[str]:
    from cosell_sync.config import load_config
    from cosell_sync.state import RetryQueue

    cfg = load_config()
    queue = RetryQueue(stack.aws("dynamodb"), cfg.storage.state_table, "AWS")
    return {str(i.get("opportunity_id")) for i in queue.list()}


# 11 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fix", ["new_valid_title", "title_put_back"])
def test_sync_error_is_cleared_once_the_record_syncs(sync_stack: Any, fix: str) -> None:
    """A title PC cannot take sets the error; fixing it in HubSpot clears it on the next run.

    ``title_put_back``: the user restores the title both systems last agreed on, so the next run has
    nothing to write; the error must go all the same.
    """
    ids = synced_book(sync_stack, opportunities=4)
    oid = editable(sync_stack, ids)[0]
    agreed = canonical_pc(sync_stack, oid)["project_title"]
    set_hs(sync_stack, oid, {"project_title": TOO_LONG_TITLE})
    first = sync_stack.report(sync_stack.run(expect="failed_at_report"))  # a write failed

    assert first["hubspot_to_partner_central"]["failed"] == 1
    error = _sync_error(sync_stack, oid)
    assert "project_title" in error or "Title" in error
    assert TOO_LONG_TITLE.strip() not in error  # names the field and the rule, never the value
    assert oid in _retry_ids(sync_stack)
    assert canonical_pc(sync_stack, oid)["project_title"] == agreed

    fixed = "A title Partner Central accepts" if fix == "new_valid_title" else agreed
    set_hs(sync_stack, oid, {"project_title": fixed})
    second = sync_stack.report(sync_stack.run())

    assert second["hubspot_to_partner_central"]["failed"] == 0
    assert canonical_pc(sync_stack, oid)["project_title"] == fixed
    assert _sync_error(sync_stack, oid) == ""
    assert oid not in _retry_ids(sync_stack)
    # and it stays clear: a quiet run neither sets it again nor rewrites the deal
    sync_stack.run()
    assert _sync_error(sync_stack, oid) == ""


@pytest.mark.slow
def test_sync_error_of_a_failed_create_is_cleared_once_the_opportunity_is_created(sync_stack: Any) -> None:
    """A co-sell deal whose title PC cannot take gets no opportunity and an error; fixed, it gets both."""
    seeded = sync_stack.hs_control("seed", {"deals": 1, "contacts": 1, "companies": 1, "seed": 9})
    (deal_id,) = seeded["deals"]
    sync_stack.update_deal(deal_id, {"aws_sync_enabled": "true", "dealname": TOO_LONG_TITLE})
    first = sync_stack.report(sync_stack.run(expect="failed_at_report"))  # the create failed

    assert first["hubspot_to_partner_central"]["created"] == 0
    deal = sync_stack.hs.crm.deals.basic_api.get_by_id(
        deal_id, properties=["aws_sync_error", "aws_opportunity_id"]
    )
    assert deal.properties.get("aws_sync_error")
    assert not deal.properties.get("aws_opportunity_id")

    sync_stack.update_deal(deal_id, {"dealname": "A title Partner Central accepts"})
    second = sync_stack.report(sync_stack.run())

    assert second["hubspot_to_partner_central"]["created"] == 1
    deal = sync_stack.hs.crm.deals.basic_api.get_by_id(
        deal_id, properties=["aws_sync_error", "aws_opportunity_id"]
    )
    assert deal.properties.get("aws_opportunity_id")
    assert not deal.properties.get("aws_sync_error")


# 12 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_unknown_requested_ids_are_reported_and_the_known_ones_synced(sync_stack: Any) -> None:
    ids = synced_book(sync_stack, opportunities=3)
    oid = editable(sync_stack, ids)[0]
    set_hs(sync_stack, oid, {"next_steps": "Synced by a run restricted to ids"})
    # Unknown requested ids fail the run's report (report.fail_on_record_errors), the known one synced.
    run = sync_stack.run(conf={"opportunity_ids": ["O9999999", oid, "O9999998"]}, expect="failed_at_report")
    report = sync_stack.report(run)

    assert report["unknown_opportunity_ids"] == ["O9999998", "O9999999"]
    assert report["hubspot_to_partner_central"]["updated"] == 1
    assert report["read_failures"] == 0  # a typo is not a failed read ...
    assert not {"O9999998", "O9999999"} & _retry_ids(sync_stack)  # ... to be read again every run
    assert canonical_pc(sync_stack, oid)["next_steps"] == "Synced by a run restricted to ids"
    # A run whose requested ids all exist reports none.
    again = sync_stack.report(sync_stack.run(conf={"opportunity_ids": [oid]}))
    assert again["unknown_opportunity_ids"] == []


@pytest.mark.slow
def test_a_run_none_of_whose_requested_ids_exists_fails_clearly(sync_stack: Any) -> None:
    from cosell_runtime.env import build_env
    from cosell_sync import reconcile
    from cosell_sync.errors import UnknownOpportunitiesError

    synced_book(sync_stack, opportunities=2)
    wanted = ["O9999999", "O9999998"]
    sync_stack.reset_calls()
    run = sync_stack.run(conf={"opportunity_ids": wanted}, expect="failed")

    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states["extract_partner_central"] == "failed"
    assert states["commit"] != "success"
    pc_calls, hs_calls = sync_stack.calls()
    assert not [op for op in pc_calls["by_operation"] if not op.startswith(("Get", "List", "Search"))]
    assert not [e for e in hs_calls["by_endpoint"] if not e.startswith("GET") and "search" not in e]
    assert not set(wanted) & _retry_ids(sync_stack)
    # The error says what is wrong: every id, the catalog, and that nothing was synced.
    env = build_env("AWS")
    described = reconcile.prepare(
        env, {"opportunity_ids": wanted}, {"run_id": "manual__check", "run_type": "manual"}
    )
    with pytest.raises(UnknownOpportunitiesError, match=r"O9999998, O9999999.*Nothing was synced"):
        reconcile.extract_partner_central(env, described)


# 13 ------------------------------------------------------------------------------------------------
def _config_with_schedule(tmp_path: Any, monkeypatch: Any, schedule: Any) -> Any:
    import yaml

    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["schedule"] = schedule
    path = tmp_path / "sync_config.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))
    return path


def _reconcile_import(tmp_path: Any) -> Any:
    """Parse the reconcile DAG file alone, as the dag-processor would, with the current config."""
    import shutil
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "dags" / "cosell_reconcile.py", folder)
    return DagBag(dag_folder=str(folder))


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("61 * * * *", "not a valid cron expression"),
        ("*/0 * * * *", "not a valid cron expression"),
        ("not a cron", "has 3 fields"),
        ("* * * *", "has 4 fields"),
        ("0 0 * * * *", "has 6 fields"),
        ("0 0 31 2 *", "never fires"),
        ("@once", "not a cron preset"),
        ("@continuous", "not a cron preset"),
        (30, "must be a cron expression or a preset"),
    ],
)
def test_a_bad_schedule_fails_the_config_check(
    tmp_path: Any, monkeypatch: Any, schedule: Any, reason: str
) -> None:
    from cosell_sync.config import load_config
    from cosell_sync.errors import ConfigError

    _config_with_schedule(tmp_path, monkeypatch, schedule)
    with pytest.raises(ConfigError, match=rf"^schedule: .*{reason}"):
        load_config()
    # And the DAG's import says the same, naming the key, instead of a bare AirflowTimetableInvalid.
    bag = _reconcile_import(tmp_path)
    (error,) = bag.import_errors.values()
    assert "schedule" in error
    assert reason in error


@pytest.mark.parametrize(
    ("schedule", "expression"),
    [
        ("0 6 * * 1-5", "0 6 * * 1-5"),
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        (None, "*/30 * * * *"),  # absent or null: the default, in the config and the DAG alike
    ],
)
def test_every_schedule_the_config_accepts_imports_in_the_dag(
    tmp_path: Any, monkeypatch: Any, schedule: Any, expression: str
) -> None:
    from cosell_sync.config import load_config

    _config_with_schedule(tmp_path, monkeypatch, schedule)
    load_config()
    bag = _reconcile_import(tmp_path)
    assert bag.import_errors == {}
    timetable = bag.dags["cosell_reconcile"].timetable
    assert timetable.expression in {expression, schedule}
