"""HubSpot webhooks: the emulator's signed deliveries reach the receiver on the API server and start runs.

The receiver is served by uvicorn exactly as the API server mounts the plugin (``init_plugins``), so the
HubSpot emulator delivers to a real URL with HubSpot's headers and retries; S3 and DynamoDB are moto.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from scenarios import canonical_pc, editable, set_hs, synced_book

from emulators.hubspot.webhooks import sign_v3

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

SECRET = "webhook-test-secret-1"  # the HubSpot app's client secret in these tests (not a real one)
HEADERS = {"Authorization": "Bearer test-token"}
PATH = "/cosell/hubspot/webhooks"


def _sync_dags() -> None:
    """Write the dags folder to Airflow's DB, as the DAG processor would (the receiver triggers by id)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)


@dataclass
class Receiver:
    """The API server's URL and what the receiver wrote."""

    url: str
    hs_url: str
    aws_url: str

    @property
    def target(self) -> str:
        return f"{self.url}{PATH}"

    def post(self, body: bytes, secret: str = SECRET, age_ms: int = 0) -> requests.Response:
        ts = str(int(time.time() * 1000) - age_ms)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sign_v3(secret, "POST", self.target, body, ts),
            "X-HubSpot-Request-Timestamp": ts,
        }
        return requests.post(self.target, data=body, headers=headers, timeout=30)

    def stored(self) -> dict[str, bytes]:
        import boto3

        from cosell_sync.config import load_config

        cfg = load_config().storage
        s3 = boto3.client("s3", endpoint_url=self.aws_url, region_name="us-east-1")
        listed = s3.list_objects_v2(Bucket=cfg.bucket, Prefix=f"{cfg.prefix}/webhooks/hubspot/")
        return {
            o["Key"]: s3.get_object(Bucket=cfg.bucket, Key=o["Key"])["Body"].read()
            for o in listed.get("Contents", [])
        }

    def ledger(self) -> Any:
        import boto3

        from cosell_sync.config import load_config
        from cosell_sync.events import EventLedger

        ddb = boto3.client("dynamodb", endpoint_url=self.aws_url, region_name="us-east-1")
        return EventLedger(ddb, load_config().storage.state_table)

    def configure(self, *subscriptions: Any) -> None:
        r = requests.post(
            f"{self.hs_url}/_emulator/webhooks",
            json={
                "target_url": self.target,
                "client_secret": SECRET,
                "subscriptions": list(subscriptions),
                "retry_base_s": 0.2,
                "max_attempts": 3,
            },
            timeout=10,
        )
        assert r.status_code == 200, r.text

    def deliveries(self, at_least: int = 1, timeout_s: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            got = requests.get(f"{self.hs_url}/_emulator/webhooks/deliveries", timeout=10).json()
            if len(got["deliveries"]) >= at_least and got["pending"] == 0:
                return got["deliveries"]
            assert time.monotonic() < deadline, f"no webhook delivery in {timeout_s}s: {got}"
            time.sleep(0.1)


def _runs(run_ids: set[str]) -> list[Any]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = (
            session.query(DagRun).filter(DagRun.dag_id == "cosell_events", DagRun.run_id.in_(run_ids)).all()
        )
        for run in runs:
            session.expunge(run)
        return runs


def _serve(monkeypatch: pytest.MonkeyPatch, hs_url: str, aws_url: str, backend: Any) -> Iterator[Receiver]:
    """Serve the plugin's apps with uvicorn on port 0; the HubSpot connection gets the client secret."""
    import uvicorn
    from api_helpers import airflow_api_app

    from cosell_sync.bootstrap import ensure_storage
    from cosell_sync.config import load_config

    conn = json.loads(
        os.environ.get("AIRFLOW_CONN_HUBSPOT_DEFAULT")
        or json.dumps({"conn_type": "hubspot", "host": hs_url, "password": "test-token"})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps({**conn, "extra": {"client_secret": SECRET}})
    )
    if "AIRFLOW_CONN_AWS_DEFAULT" not in os.environ:
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"region_name": "us-east-1", "endpoint_url": aws_url},
                }
            ),
        )
    import boto3

    storage = load_config().storage
    ensure_storage(
        boto3.client("s3", endpoint_url=aws_url, region_name="us-east-1"),
        boto3.client("dynamodb", endpoint_url=aws_url, region_name="us-east-1"),
        storage.bucket,
        storage.audit_table,
        storage.state_table,
    )
    _sync_dags()
    # Event ids restart with every emulator: a portal id of its own keeps this test's batch (and run)
    # ids apart from other tests' in the shared Airflow DB.
    backend.portal_id = random.randint(10**8, 10**9)
    server = uvicorn.Server(uvicorn.Config(airflow_api_app(), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Receiver(f"http://127.0.0.1:{port}", hs_url, aws_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def receiver(
    airflow_db: None, hubspot_emulator: Any, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Receiver]:
    yield from _serve(monkeypatch, hubspot_emulator.url, aws_endpoint, hubspot_emulator.backend)


def test_signed_batches_are_stored_and_start_one_run_and_forgeries_nothing(receiver: Receiver) -> None:
    from cosell_sync.webhooks import parse_batch, run_id

    receiver.configure(
        "deal.creation", {"subscriptionType": "deal.propertyChange", "propertyName": "dealstage"}
    )
    made = requests.post(
        f"{receiver.hs_url}/crm/v3/objects/deals",
        headers=HEADERS,
        json={"properties": {"dealname": "Webhook deal", "dealstage": "appointmentscheduled"}},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    deal_id = made.json()["id"]
    receiver.deliveries(at_least=1)
    r = requests.patch(
        f"{receiver.hs_url}/crm/v3/objects/deals/{deal_id}",
        headers=HEADERS,
        json={"properties": {"dealstage": "contractsent"}},
        timeout=10,
    )
    assert r.status_code == 200, r.text

    # 1. HubSpot's own deliveries: each answered 200 (no retry), stored as sent, one queued run each.
    deliveries = receiver.deliveries(at_least=2)
    assert [(d["status"], d["attempt"]) for d in deliveries] == [(200, 0), (200, 0)]
    stored = receiver.stored()
    assert len(stored) == 2
    batches = {key: parse_batch(body) for key, body in stored.items()}
    assert sorted(e.subscription_type for b in batches.values() for _, e, _ in b.events) == [
        "deal.creation",
        "deal.propertyChange",
    ]
    run_ids = {run_id(b.batch_id) for b in batches.values()}
    runs = _runs(run_ids)
    assert len(runs) == 2
    for run in runs:
        ref = run.conf["hubspot"]
        assert ref["object_ids"] == {"deal": [deal_id]}
        assert ref["reserved_for"] == run.run_id
        assert run_id(batches[f"cosell-sync/{ref['batch_key']}"].batch_id) == run.run_id
    for batch in batches.values():
        for key in batch.keys:
            assert receiver.ledger().status(key) == {"status": "claimed", "owner": run_id(batch.batch_id)}

    # 2. A replay (HubSpot retrying, or a copy sent again in time): same batch and run, nothing new.
    body = next(iter(stored.values()))
    again = receiver.post(body)
    assert again.status_code == 200, again.text
    assert again.json()["started"] is False
    assert len(_runs(run_ids)) == 2
    # ...and once the run has synced its events, a replay is dropped before anything is stored.
    batch = parse_batch(body)
    receiver.ledger().done(batch.keys, run_id(batch.batch_id))
    late = receiver.post(body)
    assert late.status_code == 200
    assert late.json()["runId"] is None
    assert late.json()["duplicates"] == len(batch.keys)

    # 3. Forged, stale and unsigned requests: 401, nothing stored, no run.
    fresh = json.loads(body)
    fresh[0]["eventId"] += 10_000
    forged_body = json.dumps(fresh).encode()
    assert receiver.post(forged_body, secret="not-the-app-secret").status_code == 401
    assert receiver.post(forged_body, age_ms=6 * 60 * 1000).status_code == 401
    assert requests.post(receiver.target, data=forged_body, timeout=10).status_code == 401
    assert len(receiver.stored()) == 2
    assert not _runs({run_id(parse_batch(forged_body).batch_id)})

    # 4. The state bucket unavailable: 503 (HubSpot delivers again later), no run without a stored batch.
    import boto3

    from cosell_sync.config import load_config

    cfg = load_config().storage
    s3 = boto3.client("s3", endpoint_url=receiver.aws_url, region_name="us-east-1")
    for key in receiver.stored():
        s3.delete_object(Bucket=cfg.bucket, Key=key)
    s3.delete_bucket(Bucket=cfg.bucket)
    down = receiver.post(forged_body)
    assert down.status_code == 503, down.text
    assert not _runs({run_id(parse_batch(forged_body).batch_id)})


def test_a_company_edit_in_hubspot_reaches_partner_central_through_its_webhook(
    sync_stack: Any, hubspot_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = editable(sync_stack, synced_book(sync_stack, 2))[0]
    serving = _serve(monkeypatch, sync_stack.hs_url, sync_stack.aws_url, hubspot_emulator.backend)
    receiver = next(serving)
    try:
        receiver.configure({"subscriptionType": "company.propertyChange", "propertyName": "website"})
        set_hs(sync_stack, oid, {"company_website": "https://webhooks.example.com"})
        [delivery] = receiver.deliveries(at_least=1)
        assert delivery["status"] == 200
    finally:
        serving.close()
    from cosell_sync.webhooks import parse_batch, run_id

    [body] = receiver.stored().values()
    [queued] = _runs({run_id(parse_batch(body).batch_id)})
    # The run the receiver queued, executed in-process (dag.test makes its own run id: the conf's
    # reservation lets it take the batch's events over).
    sync_stack.reset_calls()
    sync_stack.run("cosell_events", conf=queued.conf)
    assert canonical_pc(sync_stack, oid)["company_website"] == "https://webhooks.example.com"
    [key] = parse_batch(body).keys
    audit = [e for e in sync_stack.audit("events#AWS") if (e.get("metadata") or {}).get("eventId") == key]
    assert [(e["action"], e["source"]) for e in audit] == [("EVENT_PROCESSED", "HUBSPOT")]
    assert oid in audit[0]["metadata"]["opportunityIds"]
    _, hs_calls = sync_stack.calls()
    # company -> deals (one v4 association read), deals -> opportunities (one batch read).
    assert hs_calls["by_endpoint"].get("POST /crm/v4/associations/companies/deals/batch/read") == 1
