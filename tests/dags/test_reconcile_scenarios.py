"""``cosell_reconcile`` end to end: ``dag.test()`` against both emulators and moto (S3, DynamoDB).

Each scenario is what an operator would see: records created, fields moved, writes deferred or refused,
conflicts opened, and the counters the emulators keep of every API call.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]


def _seed(stack: Any, opportunities: int = 6, deals: int = 4, cosell: int = 2) -> dict[str, Any]:
    opp_ids = stack.pc_control("seed", {"opportunities": opportunities, "seed": 3, "catalog": "AWS"})[
        "opportunity_ids"
    ]
    seeded = stack.hs_control("seed", {"deals": deals, "contacts": deals, "companies": deals, "seed": 3})
    deal_ids = seeded["deals"]
    for deal_id in deal_ids[:cosell]:
        stack.update_deal(deal_id, {"aws_sync_enabled": "true"})
    return {"opportunities": opp_ids, "deals": deal_ids, "cosell": deal_ids[:cosell]}


def test_initial_load_creates_records_both_ways_then_rerun_writes_nothing(sync_stack: Any) -> None:
    seeded = _seed(sync_stack)
    first = sync_stack.report(sync_stack.run())
    assert first["partner_central_to_hubspot"]["created"] == len(seeded["opportunities"])
    assert first["hubspot_to_partner_central"]["created"] == len(seeded["cosell"])
    # every opportunity now has exactly one deal carrying its title
    for oid in seeded["opportunities"]:
        opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
        deal = sync_stack.deal_by_opportunity(oid)
        assert deal["properties"]["dealname"] == opp["Project"]["Title"]
    # co-sell deals got an opportunity whose PartnerOpportunityIdentifier is the deal id
    for deal_id in seeded["cosell"]:
        listed = sync_stack.pc.list_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySummaries"]
        assert [s for s in listed if s.get("PartnerOpportunityIdentifier") == deal_id]

    sync_stack.reset_calls()
    second = sync_stack.report(sync_stack.run())
    pc_calls, hs_calls = sync_stack.calls()
    writes = {k: v for k, v in pc_calls["by_operation"].items() if not k.startswith(("Get", "List"))}
    assert writes == {}
    assert second["partner_central_to_hubspot"] == {"created": 0, "updated": 0, "failed": 0}
    assert second["hubspot_to_partner_central"]["updated"] == 0
    assert not [
        e
        for e in hs_calls["by_endpoint"]
        if "batch/update" in e or "batch/create" in e or "batch/upsert" in e
    ]


# ---------------------------------------------------------------------------------------------------
# helpers for the scenarios below
# ---------------------------------------------------------------------------------------------------
def _synced_book(stack: Any, opportunities: int = 8) -> list[str]:
    """Seed Partner Central, run the initial load; returns the opportunity ids (all linked now)."""
    ids = stack.pc_control("seed", {"opportunities": opportunities, "seed": 11, "catalog": "AWS"})[
        "opportunity_ids"
    ]
    stack.run()
    return ids


def _with_status(stack: Any, ids: list[str], *statuses: str) -> list[str]:
    out = []
    for oid in ids:
        opp = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
        if opp["LifeCycle"].get("ReviewStatus") in statuses:
            out.append(oid)
    return out


def _editable(stack: Any, ids: list[str]) -> list[str]:
    found = _with_status(stack, ids, "Pending Submission")
    assert found, "the seeded book has no opportunity in Pending Submission"
    return found


def _canonical_pc(stack: Any, oid: str) -> dict[str, Any]:
    from cosell_sync.config import load_config
    from cosell_sync.mapping import opportunities_to_frame

    cfg = load_config()
    frame = opportunities_to_frame([stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)], cfg)
    return {f: frame.iloc[0][f] for f in cfg.field_names()}


def _canonical_hs(stack: Any, oid: str) -> dict[str, Any]:
    """The HubSpot side of a record (deal, primary company and contact) as canonical values."""
    import requests

    from cosell_sync.config import load_config
    from cosell_sync.mapping import hubspot_to_frame

    cfg = load_config()
    headers = {"Authorization": "Bearer test-token"}
    props = {
        obj: sorted({f.hubspot for f in cfg.fields if f.object == obj})
        for obj in ("deal", "company", "contact")
    }
    deal = stack.deal_by_opportunity(oid, [*props["deal"], "aws_opportunity_id", "hs_lastmodifieddate"])
    related: dict[str, dict[str, Any]] = {}
    for obj, plural in (("company", "companies"), ("contact", "contacts")):
        r = requests.get(
            f"{stack.hs_url}/crm/v4/objects/deals/{deal['id']}/associations/{plural}",
            headers=headers,
            timeout=30,
        )
        r.raise_for_status()
        ids = [str(x["toObjectId"]) for x in r.json()["results"]]
        if ids:
            obj_id = ids[0]
            got = requests.get(
                f"{stack.hs_url}/crm/v3/objects/{plural}/{obj_id}",
                params={"properties": ",".join(props[obj])},
                headers=headers,
                timeout=30,
            )
            got.raise_for_status()
            related[obj] = {obj_id: got.json()}
    frame = hubspot_to_frame(
        [deal],
        related.get("company", {}),
        related.get("contact", {}),
        {deal["id"]: next(iter(related.get("company", {"": 0})))},
        {deal["id"]: next(iter(related.get("contact", {"": 0})))},
        cfg,
    )
    return {f: frame.iloc[0][f] for f in cfg.field_names()}


def _new_value(field: Any, current: Any) -> str:
    """A different, valid canonical value for a mapped field."""
    t = field.transform
    if t == "date":
        return "2027-06-30" if current != "2027-06-30" else "2027-07-31"
    if t == "amount":
        return "424242" if current != "424242" else "515151"
    if t == "stage":
        return "Technical Validation" if current != "Technical Validation" else "Business Validation"
    if t == "enum":
        options = [k for k in (field.values or {}) if k != current]
        return options[0]
    if t == "country_code":
        return "DE" if current != "DE" else "FR"
    if t == "email":
        return "new.owner@example.org"
    if t == "phone":
        return "+4930123456"
    realistic = {
        "company_website": "https://www.example-changed.com",
        "company_postal_code": "80331",
        "company_city": "Munich",
        "company_state": "Bavaria",
        "company_street": "1 Changed Street",
        "contact_first_name": "Robin",
        "contact_last_name": "Changed",
        "company_name": "Changed Corp",
    }
    if field.name in realistic:
        return realistic[field.name] if realistic[field.name] != current else realistic[field.name] + " II"
    from cosell_sync.config import pc_shape, shape_at

    # Stay inside what Partner Central accepts for the member (enums, lengths), as a real edit would.
    shape = shape_at(pc_shape("GetOpportunity", "output"), field.partner_central)
    enum = list(getattr(shape, "enum", None) or [])
    if enum:
        return next(v for v in enum if v != current)
    value = f"Changed {field.name.replace('_', ' ')} on purpose for the test"
    limit = (getattr(shape, "metadata", None) or {}).get("max")
    return value[: int(limit)] if limit else value


def _set_pc(stack: Any, oid: str, changes: dict[str, str]) -> None:
    """An edit in the Partner Central console (AWS-side), through the emulator's control."""
    from cosell_sync.config import load_config
    from cosell_sync.mapping import get_path, set_path
    from cosell_sync.transforms import converters_for

    cfg = load_config()
    convs = converters_for(cfg)
    opp = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    patch: dict[str, Any] = {}
    for name, value in changes.items():
        path = cfg.field(name).partner_central
        root = path.split(".")[0].split("[")[0]
        if root not in patch:
            patch[root] = get_path(opp, root)
        set_path(patch, path, convs[name].to_partner_central(value))
    stack.pc_control("simulate/aws-update", {"catalog": "AWS", "identifier": oid, **patch})


def _set_hs(stack: Any, oid: str, changes: dict[str, str]) -> None:
    """Edits in HubSpot on the deal and its company and contact, as a user would make them."""
    import requests

    from cosell_sync.config import load_config
    from cosell_sync.mapping import changes_to_hubspot

    cfg = load_config()
    headers = {"Authorization": "Bearer test-token"}
    deal = stack.deal_by_opportunity(oid)
    for obj, props in changes_to_hubspot(changes, cfg).items():
        if obj == "deal":
            target, plural = deal["id"], "deals"
        else:
            plural = {"company": "companies", "contact": "contacts"}[obj]
            r = requests.get(
                f"{stack.hs_url}/crm/v4/objects/deals/{deal['id']}/associations/{plural}",
                headers=headers,
                timeout=30,
            )
            target = str(r.json()["results"][0]["toObjectId"])
        r = requests.patch(
            f"{stack.hs_url}/crm/v3/objects/{plural}/{target}",
            headers=headers,
            json={"properties": props},
            timeout=30,
        )
        assert r.status_code == 200, r.text


def _fields(direction: str) -> list[Any]:
    from cosell_sync.config import load_config

    return [f for f in load_config().fields if f.direction in ("both", direction)]


# ---------------------------------------------------------------------------------------------------
# each direction of each mapped field
# ---------------------------------------------------------------------------------------------------
def test_every_mapped_field_flows_partner_central_to_hubspot(sync_stack: Any) -> None:
    ids = _synced_book(sync_stack)
    oid = _editable(sync_stack, ids)[0]
    before = _canonical_pc(sync_stack, oid)
    fields = [f for f in _fields("partner_central_to_hubspot") if f.name not in ("review_status",)]
    wanted = {f.name: _new_value(f, before.get(f.name)) for f in fields}
    _set_pc(sync_stack, oid, wanted)
    report = sync_stack.report(sync_stack.run())
    assert report["partner_central_to_hubspot"]["updated"] == 1
    after = _canonical_hs(sync_stack, oid)
    mismatched = {f: (wanted[f], after[f]) for f in wanted if after[f] != wanted[f]}
    assert mismatched == {}
    # the deal got a note saying what changed, and nothing was written back to Partner Central
    pc_calls, _ = sync_stack.calls()
    assert "UpdateOpportunity" not in pc_calls["by_operation"]


def test_every_mapped_field_flows_hubspot_to_partner_central(sync_stack: Any) -> None:
    ids = _synced_book(sync_stack)
    oid = _editable(sync_stack, ids)[0]
    before = _canonical_hs(sync_stack, oid)
    fields = _fields("hubspot_to_partner_central")
    wanted = {f.name: _new_value(f, before.get(f.name)) for f in fields}
    _set_hs(sync_stack, oid, wanted)
    untouched = {k: v for k, v in _canonical_pc(sync_stack, oid).items() if k not in wanted}
    report = sync_stack.report(sync_stack.run())
    assert report["hubspot_to_partner_central"]["updated"] == 1
    after = _canonical_pc(sync_stack, oid)
    mismatched = {f: (wanted[f], after[f]) for f in wanted if after[f] != wanted[f]}
    assert mismatched == {}
    # UpdateOpportunity replaces the whole record: everything we did not change must survive
    assert {k: after[k] for k in untouched} == untouched
    entries = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_OPPORTUNITY"]
    assert entries
    assert entries[0]["success"] is True
    assert set(entries[0]["changes"]) == set(wanted)


# ---------------------------------------------------------------------------------------------------
# conflicts
# ---------------------------------------------------------------------------------------------------
def _config_with(tmp_path: Any, monkeypatch: Any, conflicts: dict[str, Any]) -> None:
    import yaml

    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["conflicts"] = conflicts
    path = tmp_path / "sync_config.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))


@pytest.mark.parametrize(
    ("strategy", "last_writer", "winner"),
    [
        pytest.param("last_write_wins", "hubspot", "hubspot", id="last-write-wins-hubspot-later"),
        pytest.param("last_write_wins", "partner_central", "partner_central", id="last-write-wins-pc-later"),
        pytest.param("hubspot_wins", "partner_central", "hubspot", id="hubspot-wins"),
        pytest.param("partner_central_wins", "hubspot", "partner_central", id="partner-central-wins"),
    ],
)
def test_conflict_strategies(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any, strategy: str, last_writer: str, winner: str
) -> None:
    import time

    _config_with(
        tmp_path,
        monkeypatch,
        {
            "default_strategy": "last_write_wins",
            "field_strategies": {"next_steps": strategy},
            "manual_resolution": [],
        },
    )
    ids = _synced_book(sync_stack)
    oid = _editable(sync_stack, ids)[0]
    pc_value, hs_value = "Partner Central says: call next week", "HubSpot says: send the proposal"
    writes = [
        ("partner_central", lambda: _set_pc(sync_stack, oid, {"next_steps": pc_value})),
        ("hubspot", lambda: _set_hs(sync_stack, oid, {"next_steps": hs_value})),
    ]
    if writes[0][0] == last_writer:
        writes.reverse()
    for _, write in writes:
        write()
        time.sleep(0.05)  # distinct modification times, so "last" is well defined
    sync_stack.run()
    expected = hs_value if winner == "hubspot" else pc_value
    assert _canonical_pc(sync_stack, oid)["next_steps"] == expected
    assert _canonical_hs(sync_stack, oid)["next_steps"] == expected


def test_manual_conflict_opens_pending_item_and_task_once(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    _config_with(
        tmp_path,
        monkeypatch,
        {"default_strategy": "last_write_wins", "field_strategies": {}, "manual_resolution": ["next_steps"]},
    )
    ids = _synced_book(sync_stack)
    oid = _editable(sync_stack, ids)[0]
    _set_pc(sync_stack, oid, {"next_steps": "Partner Central value"})
    _set_hs(sync_stack, oid, {"next_steps": "HubSpot value"})
    report = sync_stack.report(sync_stack.run())
    assert report["conflicts"] == 1
    # neither side was overwritten: a person decides
    assert _canonical_pc(sync_stack, oid)["next_steps"] == "Partner Central value"
    assert _canonical_hs(sync_stack, oid)["next_steps"] == "HubSpot value"
    deal = sync_stack.deal_by_opportunity(oid)
    assert deal["properties"]["aws_conflict_status"] == "Pending"
    _, hs_calls = sync_stack.calls()
    assert hs_calls["by_endpoint"].get("POST /crm/v3/objects/tasks/batch/create") == 1
    # a re-run neither opens a second conflict nor creates a second task
    sync_stack.reset_calls()
    sync_stack.run(conf={"mode": "full"})
    _, hs_calls = sync_stack.calls()
    assert "POST /crm/v3/objects/tasks/batch/create" not in hs_calls["by_endpoint"]
    from cosell_sync.config import load_config
    from cosell_sync.state import ConflictStore

    pending = ConflictStore(sync_stack.aws("dynamodb"), load_config().storage.state_table, "AWS").pending(oid)
    assert [(p["field"], p["status"]) for p in pending] == [("next_steps", "PENDING")]


# ---------------------------------------------------------------------------------------------------
# review-state gating
# ---------------------------------------------------------------------------------------------------
def test_review_state_defers_then_applies_allowed_fields_and_never_sends_locked_ones(sync_stack: Any) -> None:
    ids = _synced_book(sync_stack, opportunities=12)
    submitted = _with_status(sync_stack, ids, "Submitted", "In review")
    assert submitted, "the seeded book has no opportunity under review"
    oid = submitted[0]
    title_before = _canonical_pc(sync_stack, oid)["project_title"]
    _set_hs(sync_stack, oid, {"target_close_date": "2027-09-30", "project_title": "Renamed while in review"})

    # 1. Submitted / In review: nothing is sent; the change is kept for later
    sync_stack.reset_calls()
    report = sync_stack.report(sync_stack.run())
    assert report["hubspot_to_partner_central"]["deferred"] == 1
    pc_calls, _ = sync_stack.calls()
    assert "UpdateOpportunity" not in pc_calls["by_operation"]
    assert [e for e in sync_stack.audit(oid) if e["action"] == "DEFERRED"]

    # 2. Action Required: the close date may change now, the title still may not
    sync_stack.pc_control(
        "simulate/review",
        {
            "catalog": "AWS",
            "identifier": oid,
            "review_status": "Action Required",
            "review_comments": "Please confirm the close date",
        },
    )
    sync_stack.run()
    after = _canonical_pc(sync_stack, oid)
    assert after["target_close_date"] == "2027-09-30"
    assert after["project_title"] == title_before

    # 3. Approved: Project.Title is locked for good; Partner Central's value goes back to HubSpot
    submitted_again = _with_status(sync_stack, [oid], "Submitted", "In review")
    if submitted_again:  # an Action Required update re-enters review, as AWS documents
        sync_stack.pc_control(
            "simulate/review", {"catalog": "AWS", "identifier": oid, "review_status": "Approved"}
        )
    sync_stack.run()
    assert _canonical_pc(sync_stack, oid)["project_title"] == title_before
    assert _canonical_hs(sync_stack, oid)["project_title"] == title_before
    skipped = [e for e in sync_stack.audit(oid) if e["action"] == "SKIPPED"]
    assert skipped
    assert "LOCKED_AFTER_APPROVAL" in str(skipped[0]["metadata"])


# ---------------------------------------------------------------------------------------------------
# races, partial failures, dry runs, backfills
# ---------------------------------------------------------------------------------------------------
def test_conflict_exception_race_rereads_and_keeps_both_changes(sync_stack: Any, monkeypatch: Any) -> None:
    from cosell_sync import reconcile

    ids = _synced_book(sync_stack)
    oid = _editable(sync_stack, ids)[0]
    # Both sides changed: the extract reads the opportunity, and apply reuses that read (and its
    # LastModifiedDate) instead of reading again.
    _set_pc(sync_stack, oid, {"next_steps": "Changed in Partner Central before the run"})
    _set_hs(sync_stack, oid, {"target_close_date": "2027-10-31"})
    real_apply = reconcile.apply_partner_central

    def racing_apply(env: Any, run: Any, planned: Any) -> Any:
        # Someone edits the opportunity in the console after we read it: our LastModifiedDate is stale.
        _set_pc(sync_stack, oid, {"project_title": "Renamed in the console meanwhile"})
        return real_apply(env, run, planned)

    monkeypatch.setattr(reconcile, "apply_partner_central", racing_apply)
    sync_stack.reset_calls()
    sync_stack.run()
    after = _canonical_pc(sync_stack, oid)
    assert after["target_close_date"] == "2027-10-31"
    assert after["project_title"] == "Renamed in the console meanwhile"  # the re-merge kept the console edit
    assert after["next_steps"] == "Changed in Partner Central before the run"
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"]["UpdateOpportunity"] == 2  # the stale attempt, then the re-merged one
    entry = next(e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_OPPORTUNITY")
    assert entry["success"] is True


def test_partial_failure_207_is_retried_next_run(sync_stack: Any) -> None:
    ids = _synced_book(sync_stack)
    first, second = _editable(sync_stack, ids)[:2] if len(_editable(sync_stack, ids)) > 1 else ids[:2]
    _set_pc(sync_stack, first, {"next_steps": "First changed in Partner Central"})
    _set_pc(sync_stack, second, {"next_steps": "Second changed in Partner Central"})
    failing_deal = sync_stack.deal_by_opportunity(second)["id"]
    sync_stack.hs_control("faults", {"fail_ids": [failing_deal]})
    report = sync_stack.report(sync_stack.run())
    assert report["partner_central_to_hubspot"] == {"created": 0, "updated": 1, "failed": 1}
    assert _canonical_hs(sync_stack, first)["next_steps"] == "First changed in Partner Central"
    assert _canonical_hs(sync_stack, second)["next_steps"] != "Second changed in Partner Central"
    failed = [e for e in sync_stack.audit(second) if e["action"] == "UPDATE_DEAL"]
    assert failed
    assert failed[0]["success"] is False
    assert failed[0]["error"]
    # nothing changes in Partner Central again, yet the next run retries and succeeds
    sync_stack.hs_control("faults", {"fail_ids": []})
    report = sync_stack.report(sync_stack.run())
    assert report["partner_central_to_hubspot"]["updated"] == 1
    assert _canonical_hs(sync_stack, second)["next_steps"] == "Second changed in Partner Central"


def test_dry_run_writes_nothing_and_stores_the_full_plan(sync_stack: Any) -> None:
    ids = _synced_book(sync_stack)
    a, b = _editable(sync_stack, ids)[:2]
    _set_pc(sync_stack, a, {"next_steps": "Dry run: from Partner Central"})
    _set_hs(sync_stack, b, {"target_close_date": "2027-11-30"})
    sync_stack.reset_calls()
    run = sync_stack.run(conf={"dry_run": True})
    pc_calls, hs_calls = sync_stack.calls()
    assert not [op for op in pc_calls["by_operation"] if not op.startswith(("Get", "List"))]
    assert not [
        e
        for e in hs_calls["by_endpoint"]
        if e.startswith(("PATCH", "PUT", "DELETE"))
        or any(w in e for w in ("batch/update", "batch/create", "batch/upsert", "batch/archive"))
    ]
    plan = sync_stack.plan(run)
    assert plan["hubspot_updates"] == {a: {"next_steps": "Dry run: from Partner Central"}}
    assert plan["partner_central_updates"] == {b: {"target_close_date": "2027-11-30"}}
    # the watermark did not move: the next real run applies both changes
    sync_stack.run()
    assert _canonical_hs(sync_stack, a)["next_steps"] == "Dry run: from Partner Central"
    assert _canonical_pc(sync_stack, b)["target_close_date"] == "2027-11-30"


def test_backfill_run_reconciles_only_its_interval(sync_stack: Any) -> None:
    """A backfill run (run_type backfill) reads what changed in its data interval and keeps the watermark.

    ``dag.test()`` cannot create a BACKFILL run, so this drives the same steps the tasks call, with the
    run description Airflow gives a backfill run (the scheduler path is exercised by the DAG tests above).
    """
    from datetime import UTC, datetime, timedelta

    from cosell_hooks.runtime import build_env
    from cosell_sync import reconcile

    ids = _synced_book(sync_stack)
    old, new = _editable(sync_stack, ids)[:2]
    _set_pc(sync_stack, old, {"next_steps": "Changed inside the interval"})
    interval_end = datetime.now(UTC) + timedelta(milliseconds=5)
    import time

    time.sleep(0.2)
    _set_pc(sync_stack, new, {"next_steps": "Changed after the interval"})
    env = build_env("AWS")
    mark_before = env.watermarks.get("AWS", "partner_central")
    run = reconcile.prepare(
        env,
        {},
        {
            "run_id": "backfill__test",
            "run_type": "backfill",
            "dag_id": "cosell_reconcile",
            "data_interval_start": (interval_end - timedelta(minutes=30)).isoformat(),
            "data_interval_end": interval_end.isoformat(),
        },
    )
    pc = reconcile.extract_partner_central(env, run)
    hs = reconcile.extract_hubspot(env, run, pc)
    planned = reconcile.plan(env, run, pc, hs)
    pc_applied = reconcile.apply_partner_central(env, run, planned)
    hs_applied = reconcile.apply_hubspot(env, run, planned, pc_applied)
    reconcile.commit(env, run, planned, pc_applied, hs_applied)
    assert _canonical_hs(sync_stack, old)["next_steps"] == "Changed inside the interval"
    assert _canonical_hs(sync_stack, new)["next_steps"] != "Changed after the interval"
    assert env.watermarks.get("AWS", "partner_central") == mark_before
