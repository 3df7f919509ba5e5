"""Raw HTTP behaviour: auth, objects CRUD, validation, properties, pipelines, owners, controls."""

from __future__ import annotations

from typing import Any

import requests

from emulators.hubspot import HubSpotEmulator


def test_auth_required_with_hubspot_401_body(emu, api) -> None:
    resp = requests.get(emu.url + "/crm/v3/objects/deals", timeout=5)
    assert resp.status_code == 401
    body = resp.json()
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["correlationId"]
    assert "Authentication credentials not found" in body["message"]
    with HubSpotEmulator(access_tokens={"good"}) as strict:
        ok = requests.get(
            strict.url + "/crm/v3/objects/deals", headers={"Authorization": "Bearer good"}, timeout=5
        )
        bad = requests.get(
            strict.url + "/crm/v3/objects/deals", headers={"Authorization": "Bearer bad"}, timeout=5
        )
        assert (ok.status_code, bad.status_code) == (200, 401)


def test_crud_by_name_and_type_id_with_timestamps(fast) -> None:
    created = fast("POST", "/crm/v3/objects/0-3", {"properties": {"dealname": "A", "amount": 1200}})
    assert created.status_code == 201
    deal = created.json()
    assert deal["properties"]["amount"] == "1200"  # property values are strings
    did = deal["id"]
    got = fast("GET", f"/crm/v3/objects/deals/{did}").json()
    assert set(got["properties"]) >= {"dealname", "amount", "hs_lastmodifieddate", "hs_object_id", "pipeline"}
    stamps = [got["updatedAt"]]
    for i in range(3):  # strictly increasing per record, even within one millisecond
        upd = fast("PATCH", f"/crm/v3/objects/0-3/{did}", {"properties": {"amount": str(i)}}).json()
        stamps.append(upd["updatedAt"])
        assert upd["properties"]["hs_lastmodifieddate"] == upd["updatedAt"]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 4
    hist = fast("GET", f"/crm/v3/objects/deals/{did}?propertiesWithHistory=amount").json()
    assert [h["value"] for h in hist["propertiesWithHistory"]["amount"]] == ["2", "1", "0", "1200"]
    contact = fast("POST", "/crm/v3/objects/contacts", {"properties": {"email": "a@b.test"}}).json()
    assert "lastmodifieddate" in contact["properties"]
    assert fast("DELETE", f"/crm/v3/objects/deals/{did}").status_code == 204
    assert fast("GET", f"/crm/v3/objects/deals/{did}").status_code == 404
    archived = fast("GET", f"/crm/v3/objects/deals/{did}?archived=true").json()
    assert archived["archived"] is True
    assert "archivedAt" in archived
    assert fast("GET", "/crm/v3/objects/deals?archived=true").json()["results"][0]["id"] == did
    assert fast("GET", "/crm/v3/objects/widgets").status_code == 400


def test_list_paging_with_after(fast) -> None:
    ids = fast.control("POST", "seed", {"companies": 25, "seed": 3})["companies"]
    seen, after = [], None
    while True:
        q = "/crm/v3/objects/companies?limit=10&properties=name,industry" + (
            f"&after={after}" if after else ""
        )
        page = fast("GET", q).json()
        seen += [r["id"] for r in page["results"]]
        assert all(set(r["properties"]) >= {"name", "industry", "hs_object_id"} for r in page["results"])
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert seen == ids


def test_validation_errors_name_the_property(fast) -> None:
    resp = fast("POST", "/crm/v3/objects/deals", {"properties": {"amount": "lots", "dealstage": "nope"}})
    assert resp.status_code == 400
    body = resp.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert "INVALID_FLOAT" in body["message"]
    assert "amount" in body["message"]
    assert "dealstage" in body["message"]
    assert "INVALID_OPTION" in body["message"]
    bad_industry = fast("POST", "/crm/v3/objects/companies", {"properties": {"industry": "SPACESHIPS"}})
    assert bad_industry.status_code == 400
    assert "industry" in bad_industry.text
    good = fast("POST", "/crm/v3/objects/companies", {"properties": {"industry": "COMPUTER_SOFTWARE"}})
    assert good.status_code == 201
    read_only = fast("POST", "/crm/v3/objects/deals", {"properties": {"hs_lastmodifieddate": "1"}})
    assert read_only.status_code == 400
    assert "READ_ONLY_VALUE" in read_only.text
    malformed = fast(
        "POST", "/crm/v3/objects/deals", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["category"] == "VALIDATION_ERROR"
    # Contacts' email is unique (case-insensitive): HubSpot answers 409 naming the existing id.
    first = fast("POST", "/crm/v3/objects/contacts", {"properties": {"email": "x@y.test"}}).json()
    dup = fast("POST", "/crm/v3/objects/contacts", {"properties": {"email": "X@Y.test"}})
    assert dup.status_code == 409
    assert first["id"] in dup.json()["message"]
    # A batch create with one invalid input fails as a whole.
    batch = fast(
        "POST",
        "/crm/v3/objects/deals/batch/create",
        {"inputs": [{"properties": {"dealname": "ok"}}, {"properties": {"nope": "1"}}]},
    )
    assert batch.status_code == 400
    assert fast("POST", "/crm/v3/objects/deals/search", {}).json()["total"] == 0


def test_batch_read_missing_ids_is_207_and_history_limit(fast) -> None:
    ids = [
        fast("POST", "/crm/v3/objects/deals", {"properties": {"dealname": str(i)}}).json()["id"]
        for i in range(2)
    ]
    resp = fast(
        "POST",
        "/crm/v3/objects/deals/batch/read",
        {"inputs": [{"id": ids[0]}, {"id": "1"}], "properties": ["dealname"]},
    )
    assert resp.status_code == 207
    body = resp.json()
    assert [r["id"] for r in body["results"]] == [ids[0]]
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"]["ids"] == ["1"]
    too_many = fast(
        "POST",
        "/crm/v3/objects/deals/batch/read",
        {"inputs": [{"id": ids[0]}] * 51, "propertiesWithHistory": ["dealname"]},
    )
    assert too_many.status_code == 400
    assert (
        fast("POST", "/crm/v3/objects/deals/batch/archive", {"inputs": [{"id": i} for i in ids]}).status_code
        == 204
    )
    assert fast("GET", f"/crm/v3/objects/deals/{ids[1]}").status_code == 404


def test_properties_api_groups_types_and_options(fast) -> None:
    assert (
        fast(
            "POST",
            "/crm/v3/properties/deals",
            {"name": "aws_x", "label": "X", "type": "string", "fieldType": "text", "groupName": "missing"},
        ).status_code
        == 400
    )
    group = fast("POST", "/crm/v3/properties/deals/groups", {"name": "aws_partner_central", "label": "AWS"})
    assert group.status_code == 201
    assert (
        fast(
            "POST", "/crm/v3/properties/deals/groups", {"name": "aws_partner_central", "label": "AWS"}
        ).status_code
        == 409
    )
    mismatch = fast(
        "POST",
        "/crm/v3/properties/deals",
        {
            "name": "aws_n",
            "label": "N",
            "type": "number",
            "fieldType": "text",
            "groupName": "aws_partner_central",
        },
    )
    assert mismatch.status_code == 400
    no_options = fast(
        "POST",
        "/crm/v3/properties/deals",
        {
            "name": "aws_e",
            "label": "E",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "aws_partner_central",
        },
    )
    assert no_options.status_code == 400
    made = fast(
        "POST",
        "/crm/v3/properties/0-3/batch/create",
        {
            "inputs": [
                {
                    "name": "aws_n",
                    "label": "N",
                    "type": "number",
                    "fieldType": "number",
                    "groupName": "aws_partner_central",
                },
                {
                    "name": "aws_d",
                    "label": "D",
                    "type": "date",
                    "fieldType": "date",
                    "groupName": "aws_partner_central",
                },
                {
                    "name": "dealname",
                    "label": "dup",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "aws_partner_central",
                },
            ]
        },
    )
    assert made.status_code == 207
    assert made.json()["numErrors"] == 1
    assert fast("GET", "/crm/v3/properties/deals/aws_n").json()["type"] == "number"
    stage = fast("GET", "/crm/v3/properties/deals/dealstage").json()
    assert {"appointmentscheduled", "closedwon", "closedlost"} <= {o["value"] for o in stage["options"]}
    industry = fast("GET", "/crm/v3/properties/companies/industry").json()
    assert industry["type"] == "enumeration"
    assert len(industry["options"]) > 100
    email = fast("GET", "/crm/v3/properties/contacts/email").json()
    assert email["hasUniqueValue"] is True
    deal = fast("POST", "/crm/v3/objects/deals", {"properties": {"aws_d": "2025-03-01", "aws_n": "4.5"}})
    assert deal.status_code == 201
    assert deal.json()["properties"]["aws_d"] == "2025-03-01"
    not_midnight = fast("POST", "/crm/v3/objects/deals", {"properties": {"aws_d": "1740787200001"}})
    assert not_midnight.status_code == 400
    assert fast("DELETE", "/crm/v3/properties/deals/aws_n").status_code == 204
    assert fast("POST", "/crm/v3/objects/deals", {"properties": {"aws_n": "1"}}).status_code == 400
    assert fast("DELETE", "/crm/v3/properties/deals/dealname").status_code == 400


def test_pipelines_and_owners(fast) -> None:
    pipes = fast("GET", "/crm/v3/pipelines/deals").json()["results"]
    default = pipes[0]
    assert default["id"] == "default"
    assert default["label"] == "Sales Pipeline"
    assert [s["id"] for s in default["stages"]] == [
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ]
    assert default["stages"][5]["metadata"] == {"isClosed": "true", "probability": "1.0"}
    custom = fast(
        "POST",
        "/crm/v3/pipelines/deals",
        {
            "label": "Partner",
            "displayOrder": 1,
            "stages": [
                {"label": "Shared", "displayOrder": 0, "metadata": {"probability": "0.3"}},
                {"label": "Won", "displayOrder": 1, "metadata": {"probability": "1.0", "isClosed": "true"}},
            ],
        },
    )
    assert custom.status_code == 201
    pid, sid = custom.json()["id"], custom.json()["stages"][0]["id"]
    ok = fast("POST", "/crm/v3/objects/deals", {"properties": {"pipeline": pid, "dealstage": sid}})
    assert ok.status_code == 201
    wrong = fast("POST", "/crm/v3/objects/deals", {"properties": {"pipeline": pid, "dealstage": "closedwon"}})
    assert wrong.status_code == 400
    assert (
        fast("POST", "/crm/v3/pipelines/deals", {"label": "Bad", "stages": [{"label": "S"}]}).status_code
        == 400
    )
    owners = fast("GET", "/crm/v3/owners/").json()["results"]
    assert owners
    assert owners[0]["type"] == "PERSON"
    one = fast("GET", f"/crm/v3/owners/{owners[0]['id']}").json()
    assert one["email"] == owners[0]["email"]
    assert (
        fast("GET", f"/crm/v3/owners?email={owners[1]['email']}").json()["results"][0]["id"]
        == owners[1]["id"]
    )
    bad_owner = fast("POST", "/crm/v3/objects/deals", {"properties": {"hubspot_owner_id": "42"}})
    assert bad_owner.status_code == 400


def test_calls_counting_faults_and_seed(fast, emu) -> None:
    fast.control("DELETE", "calls")
    fast("GET", "/crm/v3/objects/0-3?limit=1")
    fast("POST", "/crm/v3/objects/deals/batch/update", {"inputs": []})
    fast("GET", "/crm/v3/objects/deals/123")
    calls = fast.control("GET", "calls")
    assert calls == {
        "total": 3,
        "throttled": 0,
        "by_endpoint": {
            "GET /crm/v3/objects/deals": 1,
            "POST /crm/v3/objects/deals/batch/update": 1,
            "GET /crm/v3/objects/deals/{id}": 1,
        },
    }
    # How fast seeding is belongs to `make bench` (bench/emulator_seed.py), not to a test's assertions.
    ids = fast.control("POST", "seed", {"deals": 10_000, "companies": 2_000, "contacts": 4_000, "seed": 1})
    assert len(ids["deals"]) == 10_000
    assert fast.control("GET", "calls")["total"] == 3  # seeding is not an API call
    again = HubSpotEmulator().app
    from emulators.hubspot.seed import seed

    twin = seed(again.backend, deals=10_000, companies=2_000, contacts=4_000, seed_value=1)
    assert twin["deals"] == ids["deals"]
    deal = emu.backend.objects["deals"][ids["deals"][17]]
    twin_deal = again.backend.objects["deals"][ids["deals"][17]]
    # Values are deterministic; only timestamps are relative to the seeding moment.
    timeless = {"createdate", "closedate"}
    assert {k: v for k, v in deal.properties.items() if k not in timeless} == {
        k: v for k, v in twin_deal.properties.items() if k not in timeless
    }
    again.webhooks.stop()
    assoc = fast("GET", f"/crm/v4/objects/deals/{ids['deals'][0]}/associations/contacts").json()["results"]
    assert 1 <= len(assoc) <= 2
    companies = fast("GET", f"/crm/v4/objects/deals/{ids['deals'][0]}/associations/companies").json()[
        "results"
    ]
    assert sorted(t["typeId"] for t in companies[0]["associationTypes"]) == [5, 341]

    fast.control("POST", "faults", {"error_rate": 0.5, "seed": 4})
    first = [fast("GET", "/crm/v3/objects/deals?limit=1").status_code for _ in range(20)]
    fast.control("POST", "faults", {"error_rate": 0.5, "seed": 4})
    second = [fast("GET", "/crm/v3/objects/deals?limit=1").status_code for _ in range(20)]
    assert first == second
    assert {500, 503} & set(first)
    assert 200 in first
    fast.control("POST", "faults", {"error_rate": 0})
    fast.control("POST", "reset")
    assert fast("GET", "/crm/v3/objects/deals").json()["results"] == []
    assert fast.control("GET", "calls")["total"] == 1


def test_owner_control_adds_owners_with_or_without_email(fast) -> None:
    with_email = fast.control(
        "POST", "owners", {"firstName": "Ana", "lastName": "Lima", "email": "ana@x.example"}
    )
    without = fast.control("POST", "owners", {"firstName": "No", "lastName": "Mail"})
    malformed = fast.control("POST", "owners", {"firstName": "Bad", "lastName": "Mail", "email": "bad mail"})
    assert "email" not in without
    listed = {o["id"]: o for o in fast("GET", "/crm/v3/owners?limit=500").json()["results"]}
    assert {with_email["id"], without["id"], malformed["id"]} <= set(listed)
    assert listed[malformed["id"]]["email"] == "bad mail"
    # The email filter skips owners without one and matches case-insensitively.
    found = fast("GET", "/crm/v3/owners?email=ANA@x.example").json()["results"]
    assert [o["id"] for o in found] == [with_email["id"]]
    bad = requests.post(f"{fast.url}/_emulator/owners", json={"email": 42}, timeout=5)
    assert bad.status_code == 400


def test_a_deals_contact_count_is_calculated_and_a_change_modifies_the_deal(fast) -> None:
    """``num_associated_contacts`` follows the deal's contacts; gaining or losing one moves the deal.

    The sync finds a linked deal whose contacts changed by that count, in a search on the deal's
    modification date (docs/api-rules.md, "Deal contacts").
    """

    def deal_now(deal_id: str) -> dict[str, Any]:
        r = fast("GET", f"/crm/v3/objects/deals/{deal_id}?properties=num_associated_contacts")
        assert r.status_code == 200, r.text
        return r.json()

    deal = fast("POST", "/crm/v3/objects/deals", {"properties": {"dealname": "Count"}}).json()["id"]
    ann, bo = (
        fast("POST", "/crm/v3/objects/contacts", {"properties": {"email": f"{n}@customer.example"}}).json()[
            "id"
        ]
        for n in ("ann", "bo")
    )
    before = deal_now(deal)
    assert before["properties"]["num_associated_contacts"] == "0"

    for cid in (ann, bo):
        assert (
            fast("PUT", f"/crm/v4/objects/deals/{deal}/associations/default/contacts/{cid}").status_code
            == 200
        )
    added = deal_now(deal)
    assert added["properties"]["num_associated_contacts"] == "2"
    assert added["updatedAt"] > before["updatedAt"]
    found = fast(
        "POST",
        "/crm/v3/objects/deals/search",
        {
            "filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": before["updatedAt"]}
            ]
        },
    ).json()
    assert [r["id"] for r in found["results"]] == [deal]

    assert fast("DELETE", f"/crm/v4/objects/deals/{deal}/associations/contacts/{ann}").status_code == 204
    removed = deal_now(deal)
    assert removed["properties"]["num_associated_contacts"] == "1"
    assert removed["updatedAt"] > added["updatedAt"]

    # Calculated by HubSpot: a write is refused, naming the property.
    r = fast("PATCH", f"/crm/v3/objects/deals/{deal}", {"properties": {"num_associated_contacts": "5"}})
    assert r.status_code == 400
    assert "num_associated_contacts" in r.text
