"""Overlapping runs and replayed old tasks (issue "nothing lost, nothing duplicated", items 8 and 9).

- Two writing runs on one catalog never overlap: the second waits for the catalog's lease, then ends
  with a message naming the run that holds it, having written nothing on either side.
- A write step re-run from an old run (cleared in the UI two runs later) refuses its stale plan.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dags.scenarios import canonical_pc, editable, hubspot_total, set_hs, synced_book

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]


def _lease(stack: Any) -> Any:
    from cosell_sync.config import load_config
    from cosell_sync.lease import CatalogLease

    cfg = load_config()
    return CatalogLease(stack.aws("dynamodb"), cfg.storage.state_table, "AWS", ttl_seconds=600)


def _counts(stack: Any) -> tuple[int, int, int, int]:
    """(opportunities, deals, companies, notes) on the two sides."""
    pages = stack.pc.get_paginator("list_opportunities").paginate(Catalog="AWS")
    opportunities = sum(len(p["OpportunitySummaries"]) for p in pages)
    return (opportunities, *(hubspot_total(stack, p) for p in ("deals", "companies", "notes")))


def _no_wait(tmp_path: Any, monkeypatch: Any) -> None:
    """A config whose runs do not wait for another run's lease (the shipped default waits 120 s)."""
    import yaml

    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["lease"] = {"ttl_seconds": 600, "wait_seconds": 0}
    path = tmp_path / "sync_config.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))


def test_a_second_run_waits_for_the_lease_then_ends_having_written_nothing(
    sync_stack: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    from cosell_sync.errors import RunOverlapError

    _no_wait(tmp_path, monkeypatch)
    ids = synced_book(sync_stack, opportunities=3)
    oid = editable(sync_stack, ids)[0]
    set_hs(sync_stack, oid, {"next_steps": "Edited while another run works"})
    before_pc = canonical_pc(sync_stack, oid)
    before = _counts(sync_stack)
    # Another deployment (or a backfill) is in the middle of a run on this catalog.
    lease = _lease(sync_stack)
    assert lease.try_acquire("other-deployment__run")

    run = sync_stack.run(expect="failed")

    from airflow.utils.state import TaskInstanceState

    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states["prepare"] == TaskInstanceState.FAILED.value
    assert states["apply_partner_central"] != TaskInstanceState.SUCCESS.value
    assert canonical_pc(sync_stack, oid) == before_pc
    assert _counts(sync_stack) == before
    # The lease still belongs to the run that holds it: the failed run did not release someone else's.
    assert lease.holder()["owner"] == "other-deployment__run"
    # The error an operator reads names the run that holds the catalog.
    with pytest.raises(RunOverlapError, match="other-deployment__run"):
        _lease(sync_stack).acquire("me", wait_seconds=0)

    # Once that run ends, the next run syncs the edit.
    lease.release("other-deployment__run")
    sync_stack.run()
    assert canonical_pc(sync_stack, oid)["next_steps"] == "Edited while another run works"
    assert lease.holder() is None  # a finished run gives its lease up


def test_a_killed_run_blocks_the_catalog_only_until_its_lease_expires(sync_stack: Any) -> None:
    from cosell_sync.config import load_config
    from cosell_sync.lease import CatalogLease

    cfg = load_config()
    now = [1_000_000.0]
    lease = CatalogLease(
        sync_stack.aws("dynamodb"), cfg.storage.state_table, "AWS", ttl_seconds=60, clock=lambda: now[0]
    )
    assert lease.try_acquire("killed-run")
    assert not lease.try_acquire("next-run")
    assert lease.try_acquire("killed-run")  # the killed run's retry is the same owner: it goes on
    now[0] += 61
    assert lease.try_acquire("next-run")
    assert not lease.try_acquire("killed-run")  # its retry now finds the catalog taken
    assert not lease.release("killed-run")
    assert lease.holder()["owner"] == "next-run"


def test_a_cleared_write_task_of_an_old_run_refuses_its_stale_plan(sync_stack: Any) -> None:
    from cosell_sync.config import load_config
    from cosell_sync.errors import StalePlanError
    from cosell_sync.storage import run_key

    ids = synced_book(sync_stack, opportunities=3)
    oid = editable(sync_stack, ids)[0]
    set_hs(sync_stack, oid, {"next_steps": "First value"})
    first = sync_stack.run()
    assert canonical_pc(sync_stack, oid)["next_steps"] == "First value"
    set_hs(sync_stack, oid, {"next_steps": "Newer value"})
    sync_stack.run()
    assert canonical_pc(sync_stack, oid)["next_steps"] == "Newer value"
    sync_stack.reset_calls()

    # An operator clears apply_partner_central (then apply_hubspot) of the first run.
    from cosell_runtime.env import build_env
    from cosell_sync import reconcile

    cfg = load_config()
    assert cfg.catalog == "AWS"
    run = {"run_id": first.run_id, "catalog": "AWS", "dry_run": False}
    planned = {"key": run_key("AWS", first.run_id, "plan.json")}
    with pytest.raises(StalePlanError, match="another run"):
        reconcile.apply_partner_central(build_env("AWS"), run, planned)
    with pytest.raises(StalePlanError):
        reconcile.apply_hubspot(build_env("AWS"), run, planned, {"key": None})

    assert canonical_pc(sync_stack, oid)["next_steps"] == "Newer value"
    pc_calls, hs_calls = sync_stack.calls()
    assert not {op for op in pc_calls["by_operation"] if op.startswith(("Update", "Create", "Associate"))}
    writes = {e for e in hs_calls["by_endpoint"] if e.startswith(("PATCH", "PUT")) or "/batch/" in e}
    assert not {e for e in writes if not e.endswith("/batch/read")}


def test_the_airflow_task_fails_without_retries_on_a_stale_plan(sync_stack: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from cosell_runtime.tasks import reconcile_apply_partner_central
    from cosell_sync.storage import run_key

    ids = synced_book(sync_stack, opportunities=2)
    set_hs(sync_stack, editable(sync_stack, ids)[0], {"next_steps": "Moves the baseline"})
    old = sync_stack.run()
    set_hs(sync_stack, editable(sync_stack, ids)[0], {"next_steps": "Moves it again"})
    sync_stack.run()
    run = {"run_id": old.run_id, "catalog": "AWS", "dry_run": False}
    with pytest.raises(AirflowFailException, match="Clear the whole run"):
        reconcile_apply_partner_central(run, {"key": run_key("AWS", old.run_id, "plan.json")})
