"""Fixtures for end-to-end DAG runs: an Airflow DB per worker and a wired local stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the (SQLite) metadata DB of this worker's AIRFLOW_HOME once per session."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "include"), str(ROOT / "plugins")]),
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@dataclass
class SyncStack:
    """The emulators and moto, wired as the three Airflow connections, plus helpers for scenarios."""

    pc_url: str
    hs_url: str
    aws_url: str
    catalog: str = "AWS"

    # -- clients ------------------------------------------------------------------------------------
    @property
    def pc(self) -> Any:
        import boto3

        return boto3.client(
            "partnercentral-selling",
            region_name="us-east-1",
            endpoint_url=self.pc_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def hs(self) -> Any:
        import hubspot

        return hubspot.Client.create(access_token="test-token", host=self.hs_url, base_url=self.hs_url)

    def aws(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.aws_url, region_name="us-east-1")

    # -- emulator controls --------------------------------------------------------------------------
    def pc_control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = requests.post(f"{self.pc_url}/_emulator/{path}", json=body or {}, timeout=60)
        assert r.status_code < 300, f"{path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None

    def hs_control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = requests.post(f"{self.hs_url}/_emulator/{path}", json=body or {}, timeout=60)
        assert r.status_code < 300, f"{path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None

    def calls(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(Partner Central, HubSpot) call counters."""
        return (
            requests.get(f"{self.pc_url}/_emulator/calls", timeout=10).json(),
            requests.get(f"{self.hs_url}/_emulator/calls", timeout=10).json(),
        )

    def reset_calls(self) -> None:
        requests.delete(f"{self.pc_url}/_emulator/calls", timeout=10)
        requests.delete(f"{self.hs_url}/_emulator/calls", timeout=10)

    # -- DAG runs -----------------------------------------------------------------------------------
    def dag(self, dag_id: str) -> Any:
        """The DAG freshly parsed from its file (``dags/<dag_id>.py``), tasks without retries.

        Fresh on every call: ``dag.test()`` leaves a run's conf in the DAG's params, and a test may give a
        task retries; neither may reach the next run. Parsing only the DAG's own file, not the folder
        (``dag.test()`` syncs the whole folder to the DB itself), saves ~1 s per run.
        """
        from airflow.dag_processing.dagbag import DagBag

        # Every DAG lives in the file named after it (tests/dags/test_dag_integrity.py parses the folder).
        bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"))
        assert bag.import_errors == {}
        dag = bag.dags[dag_id]
        for t in dag.tasks:
            t.retries = 0  # dag.test() waits out retry delays for real: fail fast instead
        return dag

    def run(
        self,
        dag_id: str = "cosell_reconcile",
        conf: dict[str, Any] | None = None,
        expect: str = "success",
        **kwargs: Any,
    ) -> Any:
        """``dag.test()`` one run and check how it ended.

        ``expect="failed_at_report"``: the run committed but had record errors (failed reads or writes,
        unknown requested ids), so its ``report`` task, and only that, failed (report.fail_on_record_errors).
        """
        run = self.dag(dag_id).test(run_conf=conf or {}, **kwargs)
        state = str(getattr(run.state, "value", run.state))
        if expect == "failed_at_report":
            assert state == "failed", f"{dag_id} ended {state}"
            tis = run.get_task_instances()
            states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}
            assert {t: s for t, s in states.items() if s != "success"} == {"report": "failed"}, states
            return run
        assert state == expect, f"{dag_id} ended {state}"
        return run

    def report(self, run: Any) -> dict[str, Any]:
        from cosell_sync.audit import RunReport
        from cosell_sync.config import load_config
        from cosell_sync.storage import SnapshotStore

        cfg = load_config()
        store = SnapshotStore(self.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
        return RunReport(store, self.catalog, run.run_id).read_report()

    def plan(self, run: Any) -> dict[str, Any]:
        from cosell_sync.config import load_config
        from cosell_sync.storage import SnapshotStore, run_key

        cfg = load_config()
        store = SnapshotStore(self.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
        return store.get_json(run_key(self.catalog, run.run_id, "plan.json"))

    def artefact(self, run: Any, name: str) -> dict[str, Any]:
        """A JSON artefact a step of ``run`` stored in its run folder (``solutions.json``, ...)."""
        from cosell_sync.config import load_config
        from cosell_sync.storage import SnapshotStore, run_key

        cfg = load_config()
        store = SnapshotStore(self.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
        return store.get_json(run_key(self.catalog, run.run_id, name))

    def audit(self, opportunity_id: str) -> list[dict[str, Any]]:
        from cosell_sync.audit import AuditTrail
        from cosell_sync.config import load_config
        from cosell_sync.storage import SnapshotStore

        cfg = load_config()
        # With the store, entries whose values went to S3 (too large for DynamoDB) read back whole.
        store = SnapshotStore(self.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
        return AuditTrail(self.aws("dynamodb"), cfg.storage.audit_table, 30, store).history(
            opportunity_id, limit=500
        )

    def retry_items(self) -> list[dict[str, Any]]:
        """The items of the catalog's retry queue (``opportunity_id`` None: a deal not yet linked)."""
        from cosell_sync.config import load_config
        from cosell_sync.state import RetryQueue

        cfg = load_config()
        queue = RetryQueue(self.aws("dynamodb"), cfg.storage.state_table, self.catalog)
        return queue.list()

    # -- HubSpot helpers ----------------------------------------------------------------------------
    def deal_by_opportunity(self, opportunity_id: str, properties: list[str] | None = None) -> dict[str, Any]:
        r = requests.post(
            f"{self.hs_url}/crm/v3/objects/deals/batch/read",
            headers={"Authorization": "Bearer test-token"},
            timeout=30,
            json={
                "idProperty": "aws_opportunity_id",
                "inputs": [{"id": opportunity_id}],
                "properties": properties
                or [
                    "dealname",
                    "amount",
                    "dealstage",
                    "closedate",
                    "description",
                    "aws_opportunity_id",
                    "aws_next_steps",
                    "aws_review_status",
                    "aws_sync_error",
                    "aws_conflict_status",
                ],
            },
        )
        r.raise_for_status()
        results = r.json()["results"]
        assert len(results) == 1, f"expected one deal for {opportunity_id}, got {len(results)}"
        return results[0]

    def update_deal(self, deal_id: str, properties: dict[str, str]) -> None:
        r = requests.patch(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            timeout=30,
            headers={"Authorization": "Bearer test-token"},
            json={"properties": properties},
        )
        r.raise_for_status()


@pytest.fixture
def sync_stack(
    airflow_db: None,
    pc_emulator: Any,
    hubspot_emulator: Any,
    aws_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> SyncStack:
    """Both emulators and moto wired as connections; setup DAG already run; quotas sped up."""
    from cosell_local.stack import LocalStack

    local = LocalStack(pc_emulator.url, hubspot_emulator.url, aws_endpoint)
    for key, value in local.connection_env().items():
        monkeypatch.setenv(key, value)
    stack = SyncStack(pc_emulator.url, hubspot_emulator.url, aws_endpoint)
    # s3:// bulk job files are read from moto, as the local stack wires it.
    stack.pc_control("config", {"s3_endpoint_url": aws_endpoint})
    # Quotas stay on (they are part of what we test), sped up so scenarios take seconds.
    stack.pc_control("quotas", {"enabled": True, "time_scale": 50})
    stack.hs_control("quotas", {"enabled": True, "time_scale": 20})
    stack.run("cosell_hubspot_setup")
    return stack


def json_dumps(value: Any) -> str:
    """Stable JSON for assertion messages."""
    return json.dumps(value, sort_keys=True, default=str)
