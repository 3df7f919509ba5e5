"""The kinds of asynchronous Partner Central work the deferred wait knows, against the emulator.

A user notices: a wait on a submission (``StartEngagementFromOpportunityTask``) ends when the task ends,
whatever its outcome, and reports it; every kind names a List operation the model has, filtering by the
id member it reads back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import boto3
import pytest
import requests

from cosell_runtime.triggers import KINDS, PartnerCentralJobsSensor, PartnerCentralJobTrigger

PC_CONN = "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"


@pytest.fixture
def pc(pc_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    extra = {"region_name": "us-east-1", "endpoint_url": pc_emulator.url, "max_attempts": 1}
    monkeypatch.setenv(
        PC_CONN, json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra})
    )
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"enabled": False}, timeout=10)
    requests.post(f"{pc_emulator.url}/_emulator/config", json={"task_delay_ms": 300}, timeout=10)
    return boto3.client(
        "partnercentral-selling",
        region_name="us-east-1",
        endpoint_url=pc_emulator.url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_names_a_list_operation_of_the_model(kind: str) -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("partnercentral-selling")
    spec = KINDS[kind]
    operation = next(o for o in model.operation_names if _snake(o) == spec.operation)
    op = model.operation_model(operation)
    assert spec.id_param in op.input_shape.members
    assert (op.input_shape.members[spec.id_param].type_name == "list") is spec.id_as_list
    summary = op.output_shape.members[spec.summaries].member
    assert {spec.id_member, spec.status_member} <= set(summary.members)
    assert spec.finished <= set(summary.members[spec.status_member].enum)


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_the_wait_for_a_submission_ends_with_the_task(pc: Any, pc_emulator: Any) -> None:
    [oid] = requests.post(
        f"{pc_emulator.url}/_emulator/seed",
        json={"opportunities": 1, "seed": 3, "catalog": "AWS"},
        timeout=30,
    ).json()["opportunity_ids"]
    task = pc.start_engagement_from_opportunity_task(
        Catalog="AWS", ClientToken="kinds-1", Identifier=oid, AwsSubmission={"InvolvementType": "Co-Sell"}
    )
    sensor = PartnerCentralJobsSensor(
        task_id="wait", job_ids=[task["TaskId"]], catalog="AWS", kind="engagement_from_opportunity_task"
    )
    trigger = PartnerCentralJobTrigger(
        "engagement_from_opportunity_task", [task["TaskId"]], "AWS", "partner_central_default", 0.05
    )

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    payload = asyncio.run(asyncio.wait_for(first(), timeout=30))
    assert payload["status"] == "done"
    status = payload["jobs"][task["TaskId"]]["TaskStatus"]
    assert status in ("COMPLETE", "FAILED")
    json.dumps(payload)
    # Once the task has ended, the sensor returns at once (no deferral) with the same summary.
    assert sensor.execute({})[task["TaskId"]]["TaskStatus"] == status
