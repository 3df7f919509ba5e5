"""Proof on a real triggerer: a queued message starts a run of a DAG scheduled with ``events_schedule()``.

Airflow runs as subprocesses (``cosell_local.real_airflow``: api-server, scheduler, dag-processor, triggerer;
SQLite, LocalExecutor) with a probe DAG scheduled exactly as ``cosell_events`` is on the SQS path
(``schedule=events_schedule()``), against moto's SQS. The probe's task reads its triggering asset events
with ``queued_events`` (what ``cosell_events``' ``prepare`` does) and acknowledges the messages as ``finish``
does. It shows the parts ``tests/dags/test_sqs_events_dag.py`` stands in for: the watcher's trigger running
in the triggerer, the asset event Airflow stores, the asset-triggered run, and the context handing the
messages back; and that the trigger itself deletes nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_airflow_sqs"), pytest.mark.timeout(600)]

PROBE = '''
"""Probe: the SQS path's schedule and context, on a real Airflow (tests/e2e/test_sqs_watcher_triggerer.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

from cosell_runtime.assets import events_schedule


@dag(
    dag_id="cosell_sqs_probe",
    schedule=events_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["test"],
)
def cosell_sqs_probe() -> None:
    """Record the events a run received from the queue, then acknowledge them."""

    @task
    def record(**context: object) -> None:
        """What prepare reads, and what finish deletes."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from cosell_runtime.assets import queued_events
        from cosell_sync.event_queue import acknowledge

        queue, events = queued_events(context)
        out = {"run_id": context["run_id"], "events": [e.event_id for e in events], "deleted": []}
        if queue:
            client = AwsBaseHook(aws_conn_id=queue["conn_id"], client_type="sqs").get_conn()
            attrs = client.get_queue_attributes(QueueUrl=queue["queue_url"], AttributeNames=["All"])
            out["in_flight"] = int(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"])
            out["deleted"] = acknowledge(client, queue["queue_url"], queue["messages"])["deleted"]
        Path(os.environ["COSELL_PROBE_OUT"], "run.json").write_text(json.dumps(out))

    record()


cosell_sqs_probe()
'''

EVENT = {
    "version": "1",
    "id": "5d1c0c6e-aaaa-bbbb-cccc-0123456789ab",
    "detail-type": "Opportunity Updated",
    "source": "aws.partnercentral-selling",
    "account": "111122223333",
    "time": "2026-12-06T09:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"catalog": "AWS", "opportunity": {"identifier": "O1234567"}},
}


def _counts(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_a_queued_message_starts_an_asset_triggered_run(aws_endpoint: str, tmp_path: Path) -> None:
    from cosell_local.real_airflow import RealAirflow, wait_for
    from cosell_sync.event_queue import QUEUE_URL_ENV

    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName="cosell-events", Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "cosell_sqs_probe.py").write_text(PROBE)
    out = tmp_path / "out"
    out.mkdir()
    airflow = RealAirflow(
        tmp_path / "airflow",
        {
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {"conn_type": "aws", "extra": {"region_name": "us-east-1", "endpoint_url": aws_endpoint}}
            )
        },
        dags_folder=dags,
        extra_env={QUEUE_URL_ENV: url, "COSELL_PROBE_OUT": str(out)},
    )
    with airflow.running(("cosell_sqs_probe",)):
        sent = time.monotonic()
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(EVENT))
        result = out / "run.json"
        try:
            wait_for(result.exists, 240, "the asset-triggered probe run", every=1.0)
        except Exception:
            logs = {p.name: p.read_text(errors="replace")[-2000:] for p in airflow.workdir.glob("*.log")}
            raise AssertionError(f"no run; component logs: {json.dumps(logs, indent=1)}") from None
        # Not asserted (no wall-time asserts): message sent -> task done, on this machine.
        print(f"SQS message to task end: {time.monotonic() - sent:.1f}s")
        got = json.loads(result.read_text())

    assert got["run_id"].startswith("asset_triggered__")
    assert got["events"] == [EVENT["id"]]
    # The trigger deleted nothing (the message was still in flight when the task ran); the run's
    # acknowledgement did.
    assert got["in_flight"] == 1
    assert len(got["deleted"]) == 1
    assert _counts(sqs, url) == (0, 0)
