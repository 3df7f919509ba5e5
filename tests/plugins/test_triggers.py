"""The deferred wait for Partner Central jobs (``cosell_runtime.triggers``) against the emulator.

A user notices: the wait ends when the job ends (whatever its outcome), reports the job's counts, holds
no worker slot meanwhile (the trigger is serialisable, so the triggerer can run it), and a run with no
job does not wait at all.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import uuid
from typing import Any

import boto3
import pytest
import requests

from cosell_runtime.triggers import PartnerCentralJobsSensor, PartnerCentralJobTrigger

PC_CONN = "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"


@pytest.fixture
def pc(pc_emulator: Any, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    extra = {"region_name": "us-east-1", "endpoint_url": pc_emulator.url, "max_attempts": 1}
    monkeypatch.setenv(
        PC_CONN, json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra})
    )
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"enabled": False}, timeout=10)
    requests.post(
        f"{pc_emulator.url}/_emulator/config",
        json={"s3_endpoint_url": aws_endpoint, "task_delay_ms": 300},
        timeout=10,
    )
    return boto3.client(
        "partnercentral-selling",
        region_name="us-east-1",
        endpoint_url=pc_emulator.url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def _first_event(trigger: PartnerCentralJobTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout=30))


def test_the_wait_ends_when_the_job_ends_and_reports_it(pc: Any) -> None:
    # A file that is not there: the job is accepted, then ends FAILED once AWS tries to read it.
    job_id = pc.start_opportunity_bulk_job(
        Catalog="AWS", ClientToken=uuid.uuid4().hex, FileURI="s3://nowhere/missing.csv", FileFormat="CSV"
    )["JobId"]
    assert pc.list_opportunity_bulk_jobs(Catalog="AWS", JobId=job_id)["OpportunityBulkJobSummaries"][0][
        "Status"
    ] not in ("COMPLETED", "FAILED")
    trigger = PartnerCentralJobTrigger(
        "opportunity_bulk_job", [job_id], "AWS", "partner_central_default", poll_seconds=0.05
    )
    payload = _first_event(trigger)
    assert payload["status"] == "done"
    assert payload["jobs"][job_id]["Status"] == "FAILED"
    json.dumps(payload)  # the triggerer stores the event: it must be plain JSON


def test_the_trigger_survives_serialisation(pc: Any) -> None:
    trigger = PartnerCentralJobTrigger("opportunity_bulk_job", ["bulkjob-abc"], "Sandbox", "pc", 3.0)
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)


def test_a_run_without_a_job_does_not_wait(pc: Any, pc_emulator: Any) -> None:
    requests.delete(f"{pc_emulator.url}/_emulator/calls", timeout=10)
    sensor = PartnerCentralJobsSensor(task_id="wait", job_ids=[], catalog="AWS")
    assert sensor.execute({}) == {}
    assert requests.get(f"{pc_emulator.url}/_emulator/calls", timeout=10).json()["total"] == 0


def test_polls_follow_the_jobs_progress() -> None:
    """A job half done at 50 records/s waits about as long as the rest needs, within bounds."""
    from cosell_runtime.triggers import next_poll

    assert next_poll(5, None, (0.0, 0), 1000) == 5  # no rate yet
    assert next_poll(5, (0.0, 0), (10.0, 500), 500) == 10  # 500 left at 50/s
    assert next_poll(5, (0.0, 0), (10.0, 10), 100_000) == 100  # capped at 20 polls' worth
    assert next_poll(5, (0.0, 0), (10.0, 990), 10) == 5  # never sooner than poll_seconds
