"""The benchmark's handle on a local stack: emulator controls, call counters, time_scale, DAG runs."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
HS_TOKEN = "local-emulator-token"  # noqa: S105 - the emulator accepts any token
CATALOG = "AWS"


def start_stack_process() -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start ``bench.stack_server`` and return (process, URLs); close its stdin to stop it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "include", ROOT / "plugins")),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.stack_server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the local stack process did not start")
    return proc, json.loads(line)


def stop_stack_process(proc: subprocess.Popen[str]) -> None:
    """Stop a process started by :func:`start_stack_process`."""
    try:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=10)


def scaled_config(time_scale: float, folder: Path) -> Path:
    """Write the shipped sync config with its quotas multiplied by ``time_scale``; return its path.

    The hooks pace themselves to the config's quotas; the emulators enforce theirs times ``time_scale``.
    Scaling both keeps client pacing and server quotas in the same ratio as in production.
    """
    import yaml

    data = yaml.safe_load((ROOT / "include" / "cosell_sync" / "sync_config.yaml").read_text(encoding="utf-8"))
    q = data.setdefault("quotas", {})
    for key in (
        "partner_central_reads_per_second",
        "partner_central_writes_per_second",
        "hubspot_search_per_second",
    ):
        q[key] = float(q.get(key, 1)) * time_scale
    q["hubspot_requests_per_10s"] = int(int(q.get("hubspot_requests_per_10s", 100)) * time_scale)
    path = folder / f"sync_config_x{time_scale:g}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def connections(urls: dict[str, str], time_scale: float) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for the stack, HubSpot's client budgets scaled by ``time_scale``."""
    from cosell_local.stack import LocalStack

    conns = LocalStack(urls["partner_central"], urls["hubspot"], urls["aws"]).connections()
    conns["hubspot_default"]["extra"] = {
        **conns["hubspot_default"].get("extra", {}),
        "requests_per_10s": max(1, int(100 * time_scale)),
        "search_requests_per_s": max(1, int(5 * time_scale)),
    }
    return {f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in conns.items()}


@dataclass
class BenchStack:
    """A running stack plus helpers: controls, counters, scaling and ``dag.test()`` runs."""

    urls: dict[str, str]
    workdir: Path
    time_scale: float = 1.0
    _dags: dict[str, Any] = field(default_factory=dict)

    @property
    def pc_url(self) -> str:
        """Partner Central emulator URL."""
        return self.urls["partner_central"]

    @property
    def hs_url(self) -> str:
        """HubSpot emulator URL."""
        return self.urls["hubspot"]

    # -- controls -----------------------------------------------------------------------------------
    def control(
        self, service: str, path: str, body: dict[str, Any] | None = None, method: str = "POST"
    ) -> Any:
        """Call an emulator control (not counted, not rate limited)."""
        url = f"{self.pc_url if service == 'pc' else self.hs_url}/_emulator/{path}"
        r = requests.request(method, url, json=body if method == "POST" else None, timeout=120)
        r.raise_for_status()
        return r.json() if r.content else None

    def calls(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(Partner Central, HubSpot) call counters."""
        return self.control("pc", "calls", method="GET"), self.control("hs", "calls", method="GET")

    def reset_calls(self) -> None:
        """Zero both emulators' counters."""
        self.control("pc", "calls", method="DELETE")
        self.control("hs", "calls", method="DELETE")

    def set_scale(self, time_scale: float) -> None:
        """Quotas on at ``time_scale`` in both emulators, and the clients' pacing scaled to match."""
        self.time_scale = time_scale
        for service in ("pc", "hs"):
            self.control(service, "quotas", {"enabled": True, "time_scale": time_scale})
        path = scaled_config(time_scale, self.workdir)
        # Every task's load_config() reads this file: quotas (and so the clients' pacing) scaled to match.
        os.environ["COSELL_SYNC_CONFIG"] = str(path)
        os.environ.update(connections(self.urls, time_scale))

    # -- DAG runs -----------------------------------------------------------------------------------
    def dag(self, dag_id: str) -> Any:
        """The DAG object (parsed once)."""
        if dag_id not in self._dags:
            from airflow.dag_processing.dagbag import DagBag

            bag = DagBag(dag_folder=str(ROOT / "dags"))
            if bag.import_errors:
                raise RuntimeError(f"DAG import errors: {bag.import_errors}")
            self._dags.update(bag.dags)
        return self._dags[dag_id]

    def run(self, dag_id: str = "cosell_reconcile", conf: dict[str, Any] | None = None) -> tuple[Any, float]:
        """``dag.test()`` one run; returns (dag run, wall seconds). Raises if the run did not succeed."""
        started = time.monotonic()
        run = self.dag(dag_id).test(run_conf=conf or {})
        seconds = time.monotonic() - started
        state = str(getattr(run.state, "value", run.state))
        if state != "success":
            raise RuntimeError(f"{dag_id} run {run.run_id} ended {state}")
        return run, seconds

    def task_seconds(self, run: Any) -> dict[str, float]:
        """Wall seconds of each task instance of a finished run (from the metadata DB)."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = (
                session.query(TaskInstance.task_id, TaskInstance.start_date, TaskInstance.end_date)
                .filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
                .order_by(TaskInstance.start_date)
                .all()
            )
        out: dict[str, float] = {}
        for task_id, start, end in rows:
            if start and end:
                out[task_id] = out.get(task_id, 0.0) + (end - start).total_seconds()
        return out

    def s3(self) -> Any:
        """boto3 S3 client on moto."""
        import boto3

        return boto3.client("s3", endpoint_url=self.urls["aws"], region_name="us-east-1")

    def report(self, run: Any) -> dict[str, Any]:
        """The run's report.json."""
        from cosell_sync.audit import RunReport
        from cosell_sync.config import load_config
        from cosell_sync.storage import SnapshotStore

        cfg = load_config()
        return RunReport(
            SnapshotStore(self.s3(), cfg.storage.bucket, cfg.storage.prefix), CATALOG, run.run_id
        ).read_report()

    def baseline(self) -> Any:
        """The committed baseline frame (opportunity id -> deal id, review status, ...)."""
        from cosell_sync.config import load_config
        from cosell_sync.state import BaselineStore
        from cosell_sync.storage import SnapshotStore

        cfg = load_config()
        return BaselineStore(SnapshotStore(self.s3(), cfg.storage.bucket, cfg.storage.prefix), CATALOG).load()

    # -- edits --------------------------------------------------------------------------------------
    def edit_partner_central(self, ids: list[str], tag: str) -> None:
        """An AWS-side edit (``LifeCycle.NextSteps``) on each opportunity, through the control API."""
        session = requests.Session()
        for n, oid in enumerate(ids):
            r = session.post(
                f"{self.pc_url}/_emulator/simulate/aws-update",
                json={"catalog": CATALOG, "identifier": oid, "LifeCycle": {"NextSteps": f"{tag} step {n}"}},
                timeout=30,
            )
            r.raise_for_status()

    def edit_hubspot_objects(self, plural: str, ids: list[str], prop: str, tag: str) -> None:
        """A HubSpot-side edit of one property per company or contact (batch update); zero the counters."""
        session = requests.Session()
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            r = session.post(
                f"{self.hs_url}/crm/v3/objects/{plural}/batch/update",
                headers={"Authorization": f"Bearer {HS_TOKEN}"},
                json={
                    "inputs": [
                        {"id": i, "properties": {prop: f"{tag} {start + n}"}} for n, i in enumerate(chunk)
                    ]
                },
                timeout=60,
            )
            r.raise_for_status()
        self.reset_calls()

    def edit_hubspot(self, deal_ids: list[str], tag: str) -> None:
        """A HubSpot-side edit (``aws_next_steps``) on each deal via batch update, then zero the counters."""
        self.edit_hubspot_objects("deals", deal_ids, "aws_next_steps", f"{tag} partner step")


#: Partner Central's read operations (the read quota): every read is named Get*, List* or Search*.
PC_READ_PREFIXES = ("Get", "List", "Search")


def pc_reads(calls: dict[str, Any]) -> int:
    """Partner Central read calls (Get*/List*/Search*) in a counter snapshot."""
    return sum(n for op, n in (calls.get("by_operation") or {}).items() if op.startswith(PC_READ_PREFIXES))


def pc_writes(calls: dict[str, Any]) -> int:
    """Partner Central write calls in a counter snapshot."""
    return sum(
        n for op, n in (calls.get("by_operation") or {}).items() if not op.startswith(PC_READ_PREFIXES)
    )


def hs_search(calls: dict[str, Any]) -> int:
    """HubSpot search calls in a counter snapshot."""
    return sum(n for ep, n in (calls.get("by_endpoint") or {}).items() if ep.endswith("/search"))


def required_list_pages(records: int, page: int = 100) -> int:
    """ListOpportunities pages needed to list ``records`` (at least one call)."""
    return max(1, math.ceil(records / page))


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (the task logs of ``dag.test()``) to ``path`` for the block."""
    with open(path, "a", encoding="utf-8") as sink:
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
