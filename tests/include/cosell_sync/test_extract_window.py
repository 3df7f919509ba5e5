"""``extract_hubspot`` reads every changed deal, however many share one ``hs_lastmodifieddate``.

HubSpot's search stops at 10,000 results a query (paging past them is a 400, which the emulator
enforces). A bulk import or a workflow can give more records than that one millisecond, and a search
that windows only by timestamp then either loops or gives up; before this was fixed, 50 of 10,050 such
deals were left out of the run while the watermark still moved past them. These tests run the real
``HubSpotHook`` (its retries and client-side rate limiter included) against the HubSpot emulator, and
the run's stores against moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from cosell_hooks import HubSpotHook
from cosell_sync.config import SyncConfig, load_config
from cosell_sync.env import SyncEnv
from cosell_sync.errors import NotFoundError, SyncError
from cosell_sync.extract import extract_hubspot
from cosell_sync.setup import ensure_properties, ensure_storage
from cosell_sync.state import BaselineStore, RetryQueue, WatermarkStore
from cosell_sync.storage import SnapshotStore, run_key
from emulators.hubspot.models import iso, now_ms

DAY_MS = 86_400_000
#: The one millisecond 10,050 deals share: 45 days ago, inside the 90 days seeded deals spread over.
SHARED_MS = now_ms() - 45 * DAY_MS
SEARCH_KEY = "POST /crm/v3/objects/deals/search"
EDITED = "Edited while the sync was reading the deals."


@dataclass
class Portal:
    """The emulator's URL and the hook and env a run would use."""

    url: str
    hook: HubSpotHook
    env: SyncEnv

    def control(self, name: str, body: dict[str, Any] | None = None) -> Any:
        """Call an emulator control (``POST /_emulator/<name>``)."""
        resp = requests.post(f"{self.url}/_emulator/{name}", json=body or {}, timeout=120)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def seed_cosell_deals(self, count: int, modified_ms: int | None = None) -> list[str]:
        """Bulk-seed co-sell deals (no API calls); all at ``modified_ms`` when given."""
        body: dict[str, Any] = {"deals": count, "deal_properties": {self.env.config.cosell_property: "true"}}
        if modified_ms is not None:
            body["modified_at"] = modified_ms
        return self.control("seed", body)["deals"]

    def searches(self) -> int:
        """Deal searches the emulator has answered (throttled ones included)."""
        resp = requests.get(f"{self.url}/_emulator/calls", timeout=10).json()
        return int(resp["by_endpoint"].get(SEARCH_KEY, 0))


@pytest.fixture
def portal(hubspot_emulator: Any, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Portal:
    """The HubSpot emulator behind the real hook, with the custom properties setup creates."""
    import boto3

    url = hubspot_emulator.url
    # Both sides' limits are raised together, so the product's limiter stays on without making the
    # ~60 searches of 10,000+ deals take 12 s at HubSpot's 5 a second.
    requests.post(f"{url}/_emulator/quotas", json={"time_scale": 50}, timeout=10).raise_for_status()
    extra = {
        "requests_per_10s": 4_000,
        "search_requests_per_s": 200,
        "max_retries": 1,
        "backoff_factor": 0.01,
    }
    conn = {"conn_type": "hubspot", "password": "pat-na1-extract-window", "host": url, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
    cfg: SyncConfig = load_config()
    hook = HubSpotHook()
    ensure_properties(cfg, hook)
    clients = {
        name: boto3.client(name, endpoint_url=aws_endpoint, region_name="us-east-1")
        for name in ("s3", "dynamodb")
    }
    ensure_storage(cfg, clients["s3"], clients["dynamodb"])
    snapshots = SnapshotStore(clients["s3"], cfg.storage.bucket, cfg.storage.prefix)
    env = SyncEnv(
        config=cfg,
        catalog="AWS",
        partner_central=None,  # type: ignore[arg-type]  # extract_hubspot never calls it
        hubspot=hook,
        snapshots=snapshots,
        baseline=BaselineStore(snapshots, "AWS"),
        watermarks=WatermarkStore(clients["dynamodb"], cfg.storage.state_table),
        retry=RetryQueue(clients["dynamodb"], cfg.storage.state_table, "AWS"),
        conflicts=None,  # type: ignore[arg-type]
        audit=None,  # type: ignore[arg-type]
    )
    return Portal(url, hook, env)


def _run(env: SyncEnv, run_id: str, since_ms: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """An incremental run's description from ``since_ms``, and an empty Partner Central extract."""
    import pandas as pd

    run = {
        "run_id": run_id,
        "catalog": "AWS",
        "opportunity_ids": [],
        "since_hubspot": iso(since_ms),
        "until": None,
    }
    pc_frame = pd.DataFrame(
        {"_lm_key": pd.Series([], dtype=object)}, index=pd.Index([], name="opportunity_id")
    )
    pc_key = run_key("AWS", run_id, "partner_central")
    env.snapshots.put_frame(pc_frame, pc_key)
    return run, {"key": pc_key}


class HookSpy:
    """The hook, calling ``on_search(n)`` before its ``n``-th deal search (to act in the middle of a read)."""

    def __init__(self, hook: HubSpotHook, on_search: Callable[[int], None]) -> None:
        self._hook = hook
        self._on_search = on_search
        self.searches = 0

    @property
    def client(self) -> Any:
        """The hook's SDK client."""
        return self._hook.client

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """The hook's ``call``, after the ``on_search`` callback for deal searches."""
        if getattr(fn, "__name__", "") == "do_search" and "deals" in str(getattr(fn, "__self__", "")):
            self.searches += 1
            self._on_search(self.searches)
        return self._hook.call(fn, *args, **kwargs)


def test_10050_deals_at_one_timestamp_are_all_read(portal: Portal) -> None:
    spread = portal.seed_cosell_deals(400)  # one timestamp each, before and after the shared one
    shared = portal.seed_cosell_deals(10_050, modified_ms=SHARED_MS)
    seeded = set(spread) | set(shared)
    first_edited = min(spread, key=int)  # the oldest spread deal: read on the first page

    def edit_while_reading(n: int) -> None:
        # A seller edits a deal already read: it moves to "now". With offset paging every later record
        # would shift one place down and one would never be read; keyset paging finds the edit again.
        if n == 3:
            resp = requests.patch(
                f"{portal.url}/crm/v3/objects/deals/{first_edited}",
                json={"properties": {"description": EDITED}},
                headers={"Authorization": "Bearer pat-na1-extract-window"},
                timeout=10,
            )
            resp.raise_for_status()

    portal.env.hubspot = HookSpy(portal.hook, edit_while_reading)  # type: ignore[assignment]
    run, pc_result = _run(portal.env, "window-all", now_ms() - 91 * DAY_MS)
    requests.delete(f"{portal.url}/_emulator/calls", timeout=10).raise_for_status()

    result = extract_hubspot(portal.env, run, pc_result)

    new = portal.env.snapshots.get_frame(result["new_key"])
    read = {str(i).removeprefix("new:") for i in new.index}
    assert len(seeded) == 10_450
    assert sorted(seeded - read, key=int) == []  # not one deal left out
    assert read == seeded
    assert result["new_deals"] == 10_450
    assert new.loc[f"new:{first_edited}", "customer_business_problem"] == EDITED  # the newer copy
    # Every page is a fresh query of at most 200, none past 10,000 (the emulator answers those with
    # a 400), and hardly any deal is fetched twice: ~53 pages for 10,450 deals.
    assert portal.searches() == result["api_calls"]["search:deals"] <= 10_450 // 200 + 8


def test_a_failed_page_fails_the_extract_so_the_watermark_cannot_move(portal: Portal) -> None:
    portal.seed_cosell_deals(2_000, modified_ms=SHARED_MS)

    def fail_from_the_fifth(n: int) -> None:
        # HubSpot keeps failing the search from the 5th page on, beyond the hook's retries.
        if n == 5:
            portal.control("faults", {"endpoint_faults": {SEARCH_KEY: {"times": 100, "status": 503}}})

    portal.env.hubspot = HookSpy(portal.hook, fail_from_the_fifth)  # type: ignore[assignment]
    run, pc_result = _run(portal.env, "window-failed", SHARED_MS - DAY_MS)

    with pytest.raises(SyncError):
        extract_hubspot(portal.env, run, pc_result)

    # Nothing was handed on: with no snapshot, plan and commit have nothing to run from (in the DAG
    # they are upstream_failed), so the HubSpot watermark cannot move past the deals not read.
    for name in ("hubspot", "hubspot_new"):
        with pytest.raises(NotFoundError):
            portal.env.snapshots.get_frame(run_key("AWS", run["run_id"], name))
