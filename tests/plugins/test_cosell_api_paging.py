"""The Co-sell API's audit-trail pages (``cosell_runtime.api.audit_page``) against moto's DynamoDB.

Many entries share one run timestamp (one run writes several per record), so a page boundary inside a
run must neither repeat nor drop an entry; a deal's trail merges its own partition with its opportunity's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pandas as pd
import pytest

from cosell_sync.audit import AuditEntry, AuditTrail
from cosell_sync.bootstrap import ensure_storage

AUDIT = "cosell-audit"
T0 = datetime(2026, 2, 18, 10, tzinfo=UTC)
ACTIONS = ["UPDATE_OPPORTUNITY", "UPDATE_DEAL", "SKIPPED", "DEFERRED"]


@pytest.fixture
def env(aws_endpoint: str) -> Any:
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, "cosell-test", AUDIT, "cosell-state")
    trail = AuditTrail(ddb, AUDIT, retention_days=30)
    entries = [
        AuditEntry(
            opportunity_id=None if run == 0 else "O1",
            deal_id="77",
            run_id=f"scheduled__run{run}",
            run_timestamp=T0 + timedelta(hours=run),
            direction="HUBSPOT_TO_PARTNER_CENTRAL",
            action=action,
            source="HUBSPOT",
            changes={"next_steps": {"old": f"v{run}", "new": f"v{run + 1}"}},
        )
        for run in range(3)
        for action in ACTIONS
    ]
    trail.write(entries)
    baseline = pd.DataFrame({"deal_id": ["77"]}, index=pd.Index(["O1"], name="opportunity_id"))
    return SimpleNamespace(audit=trail, baseline=SimpleNamespace(load=lambda: baseline))


def _all_pages(env: Any, record_id: str, limit: int, start: datetime | None = None) -> list[dict[str, Any]]:
    from cosell_runtime.api import audit_page

    entries: list[dict[str, Any]] = []
    token = None
    for _ in range(50):
        page = audit_page(env, record_id, limit, start, token)
        assert len(page["entries"]) <= limit
        entries += page["entries"]
        token = page["nextToken"]
        if token is None:
            return entries
    raise AssertionError("nextToken never ran out")


@pytest.mark.parametrize("limit", [1, 3, 4, 5, 50])
def test_pages_inside_one_runs_entries_neither_repeat_nor_drop_any(env: Any, limit: int) -> None:
    from cosell_runtime.api import audit_page

    # The opportunity's entries, then (older) its deal's from before it had an opportunity.
    stored = env.audit.history("O1", limit=None) + env.audit.history("deal#77", limit=None)
    entries = _all_pages(env, "O1", limit)
    assert [(e["timestamp"], e["action"]) for e in entries] == [(e["timestamp"], e["action"]) for e in stored]
    assert len(entries) == 12
    first = audit_page(env, "O1", limit, None, None)
    assert (first["total"], first["opportunityId"], first["dealId"]) == (12, "O1", "77")


def test_a_deal_id_finds_the_same_trail_through_its_opportunity(env: Any) -> None:
    from cosell_runtime.api import audit_page

    entries = _all_pages(env, "77", 3)
    assert entries == _all_pages(env, "O1", 5)
    assert {e["opportunityId"] for e in entries[-4:]} == {None}  # run 0, before the deal had one
    assert all(e["dealId"] == "77" for e in entries)
    assert audit_page(env, "77", 3, None, None)["opportunityId"] == "O1"


def test_start_date_bounds_the_entries_and_the_total(env: Any) -> None:
    from cosell_runtime.api import audit_page

    start = T0 + timedelta(hours=2)
    page = audit_page(env, "O1", 50, start, None)
    assert page["total"] == 4
    assert {e["runId"] for e in page["entries"]} == {"scheduled__run2"}
