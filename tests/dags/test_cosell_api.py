"""The Co-sell API (``cosell_runtime.api``): Airflow's JWT on every route, and the routes against the stack.

The app is mounted the way Airflow's API server mounts plugin apps (``init_plugins``), tokens come from the
configured auth manager's own generator, data from a book synced through the emulators and moto.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from api_helpers import airflow_api_app, bearer, dag_run, token
from scenarios import config_with, editable, set_pc, synced_book

ROUTES = [
    ("GET", "/cosell/ui", None),
    ("GET", "/cosell/openapi.json", None),
    ("GET", "/cosell/audit-trail/O1234567", None),
    ("GET", "/cosell/conflicts/pending", None),
    ("GET", "/cosell/runs", None),
    ("POST", "/cosell/conflicts/resolve", {"conflictId": "conf-0", "resolution": "USE_HUBSPOT_VALUE"}),
    ("POST", "/cosell/rollback", {"opportunityId": "O1", "targetTimestamp": "2026-01-01T00:00:00Z"}),
]


@pytest.fixture
def client(airflow_db: None) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(airflow_api_app())


def _forged(valid: str) -> list[str]:
    """Tokens Airflow must refuse: re-signed with another key, tampered, unsigned, expired, garbage."""
    claims = jwt.decode(valid, options={"verify_signature": False})
    header, _payload, signature = valid.split(".")
    admin = jwt.encode({**claims, "role": "admin"}, "not-airflows-secret", algorithm="HS512")
    tampered_payload = jwt.encode({**claims, "sub": "someone-else"}, "x", algorithm="HS512").split(".")[1]
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    return [
        admin,
        f"{header}.{tampered_payload}.{signature}",
        unsigned,
        token(expires_in=-3600),
        "not-a-jwt",
    ]


def test_every_route_refuses_requests_without_a_valid_airflow_token(client: Any) -> None:
    valid = token(role="viewer")
    for method, path, body in ROUTES:
        # no credentials at all
        r = client.request(method, path, json=body)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        # another scheme, then forged, tampered, unsigned, expired and malformed tokens, as header and cookie
        assert (
            client.request(
                method, path, json=body, headers={"Authorization": "Basic b3BzOm9wcw=="}
            ).status_code
            == 401
        )
        for bad in _forged(valid):
            r = client.request(method, path, json=body, headers=bearer(bad))
            assert r.status_code == 401, (method, path, bad[:12], r.status_code)
            client.cookies.set("_token", bad)
            r = client.request(method, path, json=body)
            client.cookies.clear()
            assert r.status_code == 401, (method, path, "cookie", r.status_code)


def test_a_token_from_airflows_generator_is_accepted_and_permissions_apply(client: Any) -> None:
    viewer, user = token(role="viewer"), token(role="user")
    r = client.get("/cosell/runs", headers=bearer(viewer))
    assert r.status_code == 200
    # Other tests of this worker may have left runs in its Airflow database: the shape is what counts.
    assert r.json()["dagId"] == "cosell_reconcile"
    assert isinstance(r.json()["runs"], list)
    # the UI's cookie authenticates as well (what the page in Airflow's frame sends)
    client.cookies.set("_token", viewer)
    page = client.get("/cosell/ui")
    client.cookies.clear()
    assert page.status_code == 200
    assert "Pending conflicts" in page.text
    assert (
        client.get("/cosell/openapi.json", headers=bearer(viewer)).json()["info"]["title"] == "Co-sell sync"
    )
    # a viewer may read but not trigger: 403 (authenticated, not allowed), before anything is looked up
    for method, path, body in ROUTES[5:]:
        assert client.request(method, path, json=body, headers=bearer(viewer)).status_code == 403
    # a role that may trigger gets past authorization to validation: the body names no value back
    r = client.post(
        "/cosell/rollback",
        json={"opportunityId": "O1", "dealId": "42", "targetTimestamp": "2026-01-01T00:00:00Z"},
        headers=bearer(user),
    )
    assert r.status_code == 422
    assert "O1" not in r.text
    assert "42" not in r.text
    assert "exactly one of opportunityId, dealId, runId" in r.text


# ---------------------------------------------------------------------------------------------------
# against a synced book with a pending conflict
# ---------------------------------------------------------------------------------------------------


def _set_hs_deal(stack: Any, oid: str, changes: dict[str, str]) -> None:
    from cosell_sync.config import load_config
    from cosell_sync.mapping import changes_to_hubspot

    props = changes_to_hubspot(changes, load_config())
    stack.update_deal(stack.deal_by_opportunity(oid)["id"], props["deal"])


@pytest.mark.slow
@pytest.mark.xdist_group("dags")
def test_the_api_reads_conflicts_audit_and_runs_and_triggers_resolution_and_rollback(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """One book and one conflict for every route: each reconcile run costs seconds."""
    from fastapi.testclient import TestClient

    config_with(
        tmp_path,
        monkeypatch,
        {"default_strategy": "last_write_wins", "field_strategies": {}, "manual_resolution": ["next_steps"]},
    )
    ids = synced_book(sync_stack, opportunities=4)
    oid = editable(sync_stack, ids)[0]
    set_pc(sync_stack, oid, {"next_steps": "Partner Central says: workshop first"})
    _set_hs_deal(sync_stack, oid, {"next_steps": "HubSpot says: pricing call"})
    conflict_run = sync_stack.run()
    assert sync_stack.report(conflict_run)["conflicts"] == 1
    deal_id = sync_stack.deal_by_opportunity(oid)["id"]
    client = TestClient(airflow_api_app())
    admin, viewer = bearer(token(role="admin")), bearer(token(role="viewer"))

    # GET /conflicts/pending: both values, their sources' times, the type
    r = client.get("/cosell/conflicts/pending", headers=viewer)
    assert r.status_code == 200
    (conflict,) = r.json()["conflicts"]
    assert conflict["id"].startswith("conf-")
    assert (conflict["opportunityId"], conflict["dealId"], conflict["field"]) == (oid, deal_id, "next_steps")
    assert conflict["hubspotValue"] == "HubSpot says: pricing call"
    assert conflict["partnerCentralValue"] == "Partner Central says: workshop first"
    assert conflict["conflictType"] == "SIMULTANEOUS_UPDATE"
    assert conflict["status"] == "PENDING"
    for key in ("hubspotTimestamp", "partnerCentralTimestamp", "detectedAt"):
        assert datetime.fromisoformat(conflict[key]).tzinfo is not None, key
    assert (
        client.get(f"/cosell/conflicts/pending?opportunityId={ids[-1]}x", headers=viewer).json()["conflicts"]
        == []
    )

    # GET /audit-trail/{opportunityId}: pages of one follow nextToken to exactly the stored trail
    expected = [(e["timestamp"], e["action"], e.get("direction")) for e in sync_stack.audit(oid)]
    assert [a for _, a, _ in expected] == ["CONFLICT_DETECTED", "CREATE_DEAL"]
    seen: list[dict[str, Any]] = []
    url = f"/cosell/audit-trail/{oid}?limit=1"
    while True:
        body = client.get(url, headers=viewer).json()
        assert body["total"] == len(expected)
        assert len(body["entries"]) == 1
        seen += body["entries"]
        if not body["nextToken"]:
            break
        url = f"/cosell/audit-trail/{oid}?limit=1&nextToken={body['nextToken']}"
    assert [(e["timestamp"], e["action"], e["direction"]) for e in seen] == expected
    detected = next(e for e in seen if e["action"] == "CONFLICT_DETECTED")
    assert set(detected) >= {"timestamp", "action", "source", "user", "changes", "success"}
    assert detected["changes"]["next_steps"]
    assert all(e["opportunityId"] == oid for e in seen)
    # startDate: nothing after now; a bad one or a bad token is a 400 naming the parameter, not the value
    later = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert client.get(f"/cosell/audit-trail/{oid}?startDate={later}", headers=viewer).json()["total"] == 0
    r = client.get(f"/cosell/audit-trail/{oid}?startDate=yesterday", headers=viewer)
    assert r.status_code == 400
    assert "startDate" in r.text
    assert "yesterday" not in r.text
    assert client.get(f"/cosell/audit-trail/{oid}?nextToken=abc", headers=viewer).status_code == 400
    # by HubSpot deal id: the linked opportunity's trail
    body = client.get(f"/cosell/audit-trail/{deal_id}", headers=viewer).json()
    assert (body["opportunityId"], body["dealId"]) == (oid, deal_id)
    assert [e["timestamp"] for e in body["entries"]] == [t for t, _, _ in expected]

    # GET /runs: the two sync runs, newest first, with their notes and the report's counts
    # (newest first: this worker's earlier tests may have left older runs in its Airflow database)
    runs = client.get("/cosell/runs", headers=viewer).json()["runs"]
    assert runs[0]["runId"] == conflict_run.run_id
    assert [r["state"] for r in runs[:2]] == ["success", "success"]
    assert runs[0]["report"]["conflicts"] == 1
    assert runs[0]["report"]["partner_central_to_hubspot"]["failed"] == 0
    assert runs[0]["note"].startswith("**Sync succeeded.**")
    assert runs[0]["runAfter"] >= runs[1]["runAfter"]

    # POST /conflicts/resolve: a queued cosell_resolve_conflict run with the decision as its conf
    r = client.post(
        "/cosell/conflicts/resolve",
        json={
            "conflictId": conflict["id"],
            "resolution": "USE_HUBSPOT_VALUE",
            "reason": "confirmed on a call",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    resolved = r.json()
    assert (resolved["dagId"], resolved["conflictId"], resolved["state"]) == (
        "cosell_resolve_conflict",
        conflict["id"],
        "queued",
    )
    run = dag_run("cosell_resolve_conflict", resolved["runId"])
    assert run is not None
    assert run.conf == {
        "conflict_id": conflict["id"],
        "resolution": "USE_HUBSPOT_VALUE",
        "reason": "confirmed on a call",
        "resolved_by": "airflow:ops-7",
    }
    assert run.triggering_user_name == "ops-7"
    r = client.post(
        "/cosell/conflicts/resolve",
        json={"conflictId": "conf-0000000000000000", "resolution": "USE_HUBSPOT_VALUE"},
        headers=admin,
    )
    assert r.status_code == 404

    # POST /rollback: a queued cosell_rollback run, a dry run unless asked otherwise
    target = seen[-1]["timestamp"]
    r = client.post("/cosell/rollback", json={"opportunityId": oid, "targetTimestamp": target}, headers=admin)
    assert r.status_code == 201, r.text
    rolled = r.json()
    assert (rolled["dagId"], rolled["dryRun"]) == ("cosell_rollback", True)
    run = dag_run("cosell_rollback", rolled["runId"])
    assert run is not None
    assert run.conf == {"opportunity_id": oid, "target_timestamp": target, "systems": "both", "dry_run": True}
    r = client.post(
        "/cosell/rollback", json={"dealId": deal_id, "targetTimestamp": "not a time"}, headers=admin
    )
    assert r.status_code == 422
    assert "not a time" not in r.text
