"""Proof on a real Airflow: events and webhooks reach the other side through running Airflow components.

Airflow runs as subprocesses (api-server, scheduler, dag-processor, triggerer; ``cosell_local.real_airflow``)
with the repo's ``dags/`` and ``plugins/``, wired to the Partner Central and HubSpot emulators and moto:

- ``sqlite``: SQLite metadata DB and the LocalExecutor, in a temporary ``AIRFLOW_HOME``;
- ``postgres-celery``: a throwaway PostgreSQL database, the CeleryExecutor with Redis and an
  ``airflow celery worker`` (the shape of ``docker-compose.yaml``); skipped when PostgreSQL
  (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not reachable.

The Partner Central emulator emits EventBridge events; :class:`~cosell_local.real_airflow.EventBridgeRelay`
posts them as the deployed API destination does (input transformer from the CloudFormation template, JWT
from ``/auth/token``). The HubSpot emulator delivers signed webhooks to the receiver on the API server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from cosell_local.real_airflow import (
    WEBHOOK_PATH,
    EventBridgeRelay,
    RealAirflow,
    connect_partner_central_events,
    reachable,
    route_deliveries,
    wait_for,
)

# Each variant starts Airflow, runs the initial load and three event runs: minutes, not the 300 s default.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_airflow"), pytest.mark.timeout(900)]

HS_HEADERS = {"Authorization": "Bearer local-emulator-token"}
EVENTS = "cosell_events"


@dataclass
class Rig:
    """A running Airflow plus the stand-ins it is wired to."""

    airflow: RealAirflow
    relay: EventBridgeRelay
    pc_url: str
    hs_url: str
    aws_url: str
    secret: str
    opportunity_ids: list[str]

    @property
    def webhook_url(self) -> str:
        return f"{self.airflow.url}{WEBHOOK_PATH}"

    def pc_next_steps(self, oid: str) -> str | None:
        import boto3

        pc = boto3.client("partnercentral-selling", endpoint_url=self.pc_url, region_name="us-east-1")
        return pc.get_opportunity(Catalog="AWS", Identifier=oid)["LifeCycle"].get("NextSteps")

    def deal(self, oid: str) -> dict[str, Any]:
        r = requests.post(
            f"{self.hs_url}/crm/v3/objects/deals/batch/read",
            headers=HS_HEADERS,
            timeout=30,
            json={
                "idProperty": "aws_opportunity_id",
                "inputs": [{"id": oid}],
                "properties": ["aws_next_steps", "aws_opportunity_id"],
            },
        )
        r.raise_for_status()
        [deal] = r.json()["results"]
        return dict(deal)

    def stored_batches(self) -> list[str]:
        import boto3

        from cosell_sync.config import load_config

        cfg = load_config().storage
        s3 = boto3.client("s3", endpoint_url=self.aws_url, region_name="us-east-1")
        listed = s3.list_objects_v2(Bucket=cfg.bucket, Prefix=f"{cfg.prefix}/webhooks/hubspot/")
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def stored_body(self, key: str) -> bytes:
        import boto3

        from cosell_sync.config import load_config

        cfg = load_config().storage
        s3 = boto3.client("s3", endpoint_url=self.aws_url, region_name="us-east-1")
        return bytes(s3.get_object(Bucket=cfg.bucket, Key=key)["Body"].read())

    def deliveries(self, pc_events: bool, webhooks: bool) -> None:
        """One delivery path at a time (the other side's echo of the sync's write is not under test)."""
        route_deliveries(
            self.pc_url,
            self.hs_url,
            self.relay.url if pc_events else None,
            self.webhook_url if webhooks else None,
            self.secret,
            retry_base_s=0.5,
        )

    def post_webhook(self, body: bytes, secret: str | None = None, age_ms: int = 0) -> requests.Response:
        """A webhook request signed as HubSpot signs it (``secret`` None: the app's own)."""
        from emulators.hubspot.webhooks import sign_v3

        ts = str(int(time.time() * 1000) - age_ms)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sign_v3(secret or self.secret, "POST", self.webhook_url, body, ts),
            "X-HubSpot-Request-Timestamp": ts,
        }
        return requests.post(self.webhook_url, data=body, headers=headers, timeout=30)

    def settle(self) -> list[dict[str, Any]]:
        """Wait until deliveries are done and no event run is left; every event run."""
        wait_for(
            lambda: (
                requests.get(f"{self.hs_url}/_emulator/webhooks/deliveries", timeout=10).json()["pending"]
                == 0
            ),
            60,
            "HubSpot webhook deliveries",
        )
        time.sleep(1)  # a delivery answered a moment ago may still be creating its run
        return self.airflow.wait_idle(EVENTS, timeout=180)


def _variant_available(variant: str) -> None:
    if variant == "postgres-celery":
        missing = [
            name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not reachable("127.0.0.1", port)
        ]
        if missing:
            pytest.skip(
                f"{' and '.join(missing)} not reachable on 127.0.0.1 (5432/6379): the production-shape "
                "variant (PostgreSQL metadata DB, CeleryExecutor) needs both"
            )


@pytest.fixture(scope="module", params=["sqlite", "postgres-celery"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """A real Airflow (variant: the param) with the stand-ins, the HubSpot setup done, 3 records synced."""
    variant = str(request.param)
    _variant_available(variant)
    from cosell_local.stack import LOCAL_WEBHOOK_SECRET, local_stack

    workdir = Path(tmp_path_factory.mktemp(f"airflow-{variant}"))
    with local_stack() as stack, pytest.MonkeyPatch.context() as mp:
        # moto's backends are process-wide: this stack's moto server would otherwise serve the previous
        # variant's bucket, tables, baseline and watermarks, and the initial load would see its records
        # as synced already (deals that exist only in the previous variant's HubSpot emulator).
        requests.post(f"{stack.aws_url}/moto-api/reset", timeout=30).raise_for_status()
        conns = stack.connection_env()
        airflow = RealAirflow(
            workdir,
            conns,
            backend="sqlite" if variant == "sqlite" else "postgres",
            executor="LocalExecutor" if variant == "sqlite" else "CeleryExecutor",
        )
        airflow.workdir.mkdir(parents=True, exist_ok=True)
        airflow.prepare()
        airflow.start()
        relay = None
        try:
            # While Airflow starts: state stores and HubSpot properties (the setup DAG's steps), a book.
            for key, value in conns.items():
                mp.setenv(key, value)
            from cosell_runtime.tasks import setup_ensure_properties, setup_ensure_storage

            setup_ensure_storage()
            setup_ensure_properties()
            seeded = requests.post(
                f"{stack.partner_central_url}/_emulator/seed",
                json={"opportunities": 3, "seed": 11, "catalog": "AWS"},
                timeout=60,
            ).json()["opportunity_ids"]
            airflow.wait_ready(("cosell_events", "cosell_reconcile"))
            # The initial load, on this Airflow: cosell_reconcile unpaused, its scheduled run.
            airflow.unpause("cosell_reconcile")
            wait_for(lambda: airflow.runs("cosell_reconcile"), 60, "the scheduled cosell_reconcile run")
            loads = airflow.wait_idle("cosell_reconcile", timeout=400)
            # A half-hour boundary crossed meanwhile adds a second scheduled run: each must succeed.
            assert loads, "no cosell_reconcile run"
            assert all(r["state"] == "success" for r in loads), [
                airflow.task_states("cosell_reconcile", r["dag_run_id"]) for r in loads
            ]
            # Paused again: a scheduled run starting at the next boundary would hold the catalog's lease
            # while the scenarios below wait for event runs (what they test is the event path).
            airflow.pause("cosell_reconcile")
            relay = EventBridgeRelay(airflow)
            yield Rig(
                airflow,
                relay,
                stack.partner_central_url,
                stack.hubspot_url,
                stack.aws_url,
                LOCAL_WEBHOOK_SECRET,
                seeded,
            )
        finally:
            connect_partner_central_events(stack.partner_central_url, None)
            if relay is not None:
                relay.close()
            airflow.stop()


def _editable(rig: Rig) -> str:
    """An opportunity Partner Central lets the partner update (review status Pending Submission)."""
    import boto3

    pc = boto3.client("partnercentral-selling", endpoint_url=rig.pc_url, region_name="us-east-1")
    for oid in rig.opportunity_ids:
        if pc.get_opportunity(Catalog="AWS", Identifier=oid)["LifeCycle"].get("ReviewStatus") == (
            "Pending Submission"
        ):
            return oid
    raise AssertionError("the seeded book has no opportunity in Pending Submission")


def test_events_and_webhooks_on_a_real_airflow(rig: Rig) -> None:
    """Both directions end to end; redelivered, forged, stale and replayed requests start nothing."""
    oid = _editable(rig)
    rig.deliveries(pc_events=True, webhooks=False)
    rig.settle()

    # 1. A Partner Central change: its event, posted as the API destination posts it, updates the deal.
    value = f"AWS booked the workshop {time.time():.0f}"
    r = requests.post(
        f"{rig.pc_url}/_emulator/simulate/aws-update",
        json={"catalog": "AWS", "identifier": oid, "LifeCycle": {"NextSteps": value}},
        timeout=30,
    )
    r.raise_for_status()
    wait_for(lambda: rig.deal(oid)["properties"].get("aws_next_steps") == value, 120, "the deal update")
    [delivery] = [d for d in rig.relay.for_opportunity(oid) if d["detail_type"] == "Opportunity Updated"]
    assert delivery["status"] == 200
    run_id = f"eb-{delivery['id']}"
    assert rig.airflow.wait_run(EVENTS, run_id)["state"] == "success"

    # 4. The same event delivered again (EventBridge retries): 409, no second run.
    event_runs = len(rig.airflow.runs(EVENTS))
    assert rig.relay.deliver(_event(rig, delivery["id"])) == 409
    assert [r["dag_run_id"] for r in rig.airflow.runs(EVENTS)].count(run_id) == 1
    assert len(rig.airflow.runs(EVENTS)) == event_runs

    # 2. A HubSpot change: the emulator's signed webhook reaches the receiver; Partner Central is updated.
    rig.settle()
    rig.deliveries(pc_events=False, webhooks=True)
    batches_before = set(rig.stored_batches())
    deal_id = rig.deal(oid)["id"]
    partner_value = f"Partner scheduled the PoC {time.time():.0f}"
    r = requests.patch(
        f"{rig.hs_url}/crm/v3/objects/deals/{deal_id}",
        headers=HS_HEADERS,
        json={"properties": {"aws_next_steps": partner_value}},
        timeout=30,
    )
    r.raise_for_status()
    wait_for(lambda: rig.pc_next_steps(oid) == partner_value, 120, "the Partner Central update")
    new_batches = sorted(set(rig.stored_batches()) - batches_before)
    assert new_batches, "the webhook batch was not stored"
    deliveries = requests.get(f"{rig.hs_url}/_emulator/webhooks/deliveries", timeout=10).json()["deliveries"]
    assert deliveries
    assert all(d["ok"] for d in deliveries), deliveries
    hs_runs = [r for r in rig.settle() if r["dag_run_id"].startswith("hs-")]
    assert hs_runs
    assert all(r["state"] == "success" for r in hs_runs), hs_runs

    # 3. Forged, stale and replayed webhooks change nothing. HubSpot has a change the sync has not seen
    # (deliveries off): a request that got through would carry it to Partner Central.
    rig.deliveries(pc_events=False, webhooks=False)
    r = requests.patch(
        f"{rig.hs_url}/crm/v3/objects/deals/{deal_id}",
        headers=HS_HEADERS,
        json={"properties": {"aws_next_steps": "forged change must not reach AWS"}},
        timeout=30,
    )
    r.raise_for_status()
    runs_before = len(rig.settle())
    batches_before = set(rig.stored_batches())
    genuine = rig.stored_body(new_batches[0])
    forged = json.loads(genuine)
    for ev in forged:
        ev["eventId"] += 10_000  # a new event, so only the signature can stop it
    forged_body = json.dumps(forged).encode()
    assert rig.post_webhook(forged_body, secret="not-the-app-secret").status_code == 401
    assert rig.post_webhook(forged_body, age_ms=6 * 60 * 1000).status_code == 401
    assert requests.post(rig.webhook_url, data=forged_body, timeout=30).status_code == 401
    replay = rig.post_webhook(genuine)  # validly signed again: a replay of a synced batch
    assert replay.status_code == 200, replay.text
    assert replay.json()["runId"] is None
    assert replay.json()["duplicates"] == len(json.loads(genuine))
    time.sleep(3)  # a run wrongly started would be visible by now
    assert len(rig.settle()) == runs_before
    assert set(rig.stored_batches()) == batches_before
    assert rig.pc_next_steps(oid) == partner_value


def _event(rig: Rig, event_id: str) -> dict[str, Any]:
    events = requests.get(f"{rig.pc_url}/_emulator/events", timeout=30).json()["events"]
    [event] = [e for e in events if e["id"] == event_id]
    return dict(event)
