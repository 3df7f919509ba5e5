"""A sync run's step after `commit` finding the lease taken is rescheduled, not parked in its slot.

``commit`` gives the catalog's lease up; the post-commit steps (``sync_engagements``, ``sync_owners``, ...)
take it again. They run in the ``partner_central_writes`` pool (1 slot). Waiting for the lease inside the
slot deadlocked with the run holding the lease, whose own writing tasks need that slot (seen on a real
Airflow: both runs stuck until ``lease.wait_seconds``, then the step failed).
"""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture
def lease_store(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    from cosell_sync.bootstrap import ensure_storage
    from cosell_sync.config import load_config

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "us-east-1", "endpoint_url": aws_endpoint},
            }
        ),
    )
    storage = load_config().storage
    ensure_storage(
        boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1"),
        boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1"),
        storage.bucket,
        storage.audit_table,
        storage.state_table,
    )
    from cosell_runtime.env import build_lease

    return build_lease("AWS")


def test_an_event_step_is_rescheduled_while_another_run_holds_the_lease(lease_store: Any) -> None:
    from airflow.sdk.exceptions import AirflowRescheduleException

    from cosell_runtime.tasks import _exclusive, _step_recheck

    assert lease_store.try_acquire("hs-other-run")
    event_run = {"run_id": "eb-this-run", "events": {"opportunity_ids": ["O1"]}}
    with pytest.raises(AirflowRescheduleException), _exclusive("AWS", "eb-this-run", reschedule_after=5):
        pytest.fail("the step ran without the lease")
    assert _step_recheck(event_run) == 5  # lease.event_recheck_seconds of the shipped config
    assert lease_store.holder()["owner"] == "hs-other-run"  # untouched

    # Once the other run gave it up, the rescheduled step takes it, works, and gives it back.
    lease_store.release("hs-other-run")
    with _exclusive("AWS", "eb-this-run", reschedule_after=5):
        assert lease_store.holder()["owner"] == "eb-this-run"
    assert lease_store.holder() is None


def test_a_reconcile_step_after_commit_is_rescheduled_too(lease_store: Any) -> None:
    from airflow.sdk.exceptions import AirflowRescheduleException

    from cosell_runtime.tasks import _exclusive, _step_recheck

    # An event run holds the lease; the scheduled run's post-commit step must not sit in the pool's slot.
    assert lease_store.try_acquire("eb-event-run")
    delay = _step_recheck({"run_id": "scheduled__x"})
    assert delay == 15  # lease.step_recheck_seconds of the shipped config
    with pytest.raises(AirflowRescheduleException), _exclusive("AWS", "scheduled__x", reschedule_after=delay):
        pytest.fail("the step ran without the lease")
    assert lease_store.holder()["owner"] == "eb-event-run"
    lease_store.release("eb-event-run")
