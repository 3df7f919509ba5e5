"""What a scheduled run with nothing changed costs, and that events never make it lose a change.

End to end (``dag.test``) against both emulators and moto; calls are counted by the emulators, as the
partner's quota counts them. With webhooks, EventBridge events and cached settings switched on, a no-change
``cosell_reconcile`` run costs two calls (``ListOpportunities`` and the deal search) instead of six; a
company change or an AWS referral whose event never came is still synced by the backstop poll.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from scenarios import canonical_hs, canonical_pc, editable, set_hs, set_pc, synced_book

#: Every switch of cosell_sync.polling on (sync_config.yaml has them off).
SWITCHED_ON = {
    "webhooks": {"enabled": True, "backstop_minutes": 60},
    "events": {"enabled": True},
    "invitations": {"backstop_minutes": 60},
    "settings": {"refresh_minutes": 60},
}


def _use_config(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]) -> None:
    """The shipped config with ``overrides`` merged in; ``overlap_minutes`` 0 so a quiet run lists nothing."""
    import yaml

    from cosell_sync.config import _deep_merge
    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = _deep_merge(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), {"overlap_minutes": 0, **overrides})
    path = tmp_path / f"sync_config_{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))


def _calls(stack: Any) -> dict[str, int]:
    """Every call both emulators served since the last reset: PC operations and HubSpot endpoints."""
    pc, hs = stack.calls()
    return {**(pc.get("by_operation") or {}), **(hs.get("by_endpoint") or {})}


def _rewind(stack: Any, mark: str, minutes: float) -> None:
    """Move a polling mark back, as if its last poll was ``minutes`` earlier (the clock moved on)."""
    from cosell_sync.config import load_config
    from cosell_sync.state import WatermarkStore

    store = WatermarkStore(stack.aws("dynamodb"), load_config().storage.state_table)
    value = store.get("AWS", mark)
    assert value is not None, f"no {mark} mark stored"
    store.reset("AWS", mark, value - timedelta(minutes=minutes), "test")


def _mark(stack: Any, mark: str) -> Any:
    from cosell_sync.config import load_config
    from cosell_sync.state import WatermarkStore

    return WatermarkStore(stack.aws("dynamodb"), load_config().storage.state_table).get("AWS", mark)


def test_a_no_change_run_costs_six_calls_by_default_and_two_with_events_on(
    sync_stack: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_config(tmp_path, monkeypatch, {})
    synced_book(sync_stack, 4)
    sync_stack.run()  # settles the initial load's own writes (they are newer than its watermark)

    sync_stack.reset_calls()
    sync_stack.run()
    default = _calls(sync_stack)
    assert default == {
        "GetSellingSystemSettings": 1,
        "ListEngagementInvitations": 1,
        "ListOpportunities": 1,
        "POST /crm/v3/objects/deals/search": 1,
        "POST /crm/v3/objects/companies/search": 1,
        "POST /crm/v3/objects/contacts/search": 1,
    }, default

    _use_config(tmp_path, monkeypatch, SWITCHED_ON)
    first = sync_stack.run()  # the first run reads the settings once and keeps them
    read_at = sync_stack.report(first)["selling_settings"]["read_at"]
    sync_stack.reset_calls()
    run = sync_stack.run()
    switched = _calls(sync_stack)
    assert switched == {"ListOpportunities": 1, "POST /crm/v3/objects/deals/search": 1}, switched
    report = sync_stack.report(run)
    # The report says what was not polled and why, and shows the settings with the time they were read.
    assert report["polling"]["companies_contacts"]["poll"] is False
    assert report["polling"]["invitations"]["list"] is False
    assert report["selling_settings"]["readable"] is True
    assert report["selling_settings"]["read_at"] == read_at
    assert report["api_calls_total"] == {"partner_central": 1, "hubspot": 1}

    # A change made with cosell_settings is what the next runs show, without reading it back.
    role = "arn:aws:iam::123456789012:role/SnapshotJobRole"
    sync_stack.run("cosell_settings", conf={"resource_snapshot_job_role_identifier": role, "dry_run": False})
    sync_stack.reset_calls()
    run = sync_stack.run()
    assert "GetSellingSystemSettings" not in _calls(sync_stack)
    assert sync_stack.report(run)["selling_settings"]["settings"] == {"ResourceSnapshotJobRoleArn": role}


def test_a_company_change_without_its_webhook_is_synced_by_the_backstop_search(
    sync_stack: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_config(tmp_path, monkeypatch, SWITCHED_ON)
    ids = synced_book(sync_stack, 6)
    oid = editable(sync_stack, ids)[0]
    sync_stack.run()
    searched_from = _mark(sync_stack, "hubspot_related")

    # A seller renames the customer company in HubSpot; its webhook is lost (none is delivered here).
    set_hs(sync_stack, oid, {"company_name": "Renamed By Seller Corp"})
    run = sync_stack.run()

    # Within the backstop: not searched, so not synced yet, and the company mark did not move, although
    # the deal watermark is now past the change.
    assert sync_stack.report(run)["polling"]["companies_contacts"]["poll"] is False
    assert canonical_pc(sync_stack, oid)["company_name"] != "Renamed By Seller Corp"
    assert _mark(sync_stack, "hubspot_related") == searched_from
    assert _mark(sync_stack, "hubspot") > searched_from

    _rewind(sync_stack, "hubspot_related", 61)  # an hour on: the backstop search is due
    sync_stack.reset_calls()
    run = sync_stack.run()

    assert sync_stack.report(run)["polling"]["companies_contacts"]["poll"] is True
    assert _calls(sync_stack)["POST /crm/v3/objects/companies/search"] == 1
    assert canonical_pc(sync_stack, oid)["company_name"] == "Renamed By Seller Corp"
    assert _mark(sync_stack, "hubspot_related") > searched_from


def test_between_backstops_a_company_partner_central_changed_is_read_before_it_is_written(
    sync_stack: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_config(tmp_path, monkeypatch, SWITCHED_ON)
    ids = synced_book(sync_stack, 6)
    oid = editable(sync_stack, ids)[0]
    sync_stack.run()

    # AWS renames the customer, then the seller renames it in HubSpot (later: last write wins); the
    # seller's webhook is lost and the company search is not due.
    set_pc(sync_stack, oid, {"company_name": "Renamed By AWS Corp"})
    set_hs(sync_stack, oid, {"company_name": "Renamed By Seller Corp"})
    run = sync_stack.run()

    # The run read that company by id before writing it: the seller's newer edit wins on both sides,
    # instead of being overwritten as "unchanged since the baseline".
    assert sync_stack.report(run)["polling"]["companies_contacts"]["poll"] is False
    assert canonical_pc(sync_stack, oid)["company_name"] == "Renamed By Seller Corp"
    assert canonical_hs(sync_stack, oid)["company_name"] == "Renamed By Seller Corp"


def test_a_referral_without_its_event_becomes_a_deal_at_the_backstop_listing(
    sync_stack: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_config(tmp_path, monkeypatch, SWITCHED_ON)
    sync_stack.run()  # lists invitations (none yet) and starts the backstop clock
    inv = str(sync_stack.pc_control("simulate/aws-referral", {"catalog": "AWS"})["invitation_id"])

    # Its EventBridge event is lost: within the backstop the scheduled run does not list invitations.
    sync_stack.reset_calls()
    sync_stack.run()
    assert "ListEngagementInvitations" not in _calls(sync_stack)
    assert _deals_for(sync_stack, inv) == []

    _rewind(sync_stack, "invitations", 61)
    sync_stack.run()
    deals = _deals_for(sync_stack, inv)
    assert len(deals) == 1
    assert deals[0]["properties"]["aws_invitation_status"] == "PENDING"


def _deals_for(stack: Any, invitation_id: str) -> list[dict[str, Any]]:
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/deals/search",
        headers={"Authorization": "Bearer test-token"},
        json={
            "filterGroups": [
                {"filters": [{"propertyName": "aws_invitation_id", "operator": "EQ", "value": invitation_id}]}
            ],
            "properties": ["aws_invitation_id", "aws_invitation_status"],
            "limit": 10,
        },
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["results"]
