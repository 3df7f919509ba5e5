"""A realistic session driven by the official hubspot-api-client against the emulator.

Setup of custom properties, bulk load, search with paging and the 10k cap, batch updates with a partial
failure, associations, notes and tasks, 429 under load and recovery.
"""

from __future__ import annotations

import time

import pytest
from hubspot.crm.associations.v4 import AssociationSpec
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyGroupCreate


def _setup_custom_properties(client) -> None:
    client.crm.properties.groups_api.create(
        "deals", PropertyGroupCreate(name="aws_partner_central", label="AWS Partner Central")
    )
    client.crm.properties.core_api.create(
        "deals",
        PropertyCreate(
            name="aws_opportunity_id",
            label="AWS Opportunity ID",
            type="string",
            field_type="text",
            group_name="aws_partner_central",
            has_unique_value=True,
        ),
    )
    client.crm.properties.core_api.create(
        "deals",
        PropertyCreate(
            name="aws_review_status",
            label="AWS Review Status",
            type="enumeration",
            field_type="select",
            group_name="aws_partner_central",
            options=[
                OptionInput(label=v, value=v, hidden=False, display_order=i)
                for i, v in enumerate(["Pending Submission", "Submitted", "In review", "Approved"])
            ],
        ),
    )


def test_custom_properties_setup_and_validation(client, fast) -> None:
    names = {p.name for p in client.crm.properties.core_api.get_all("deals").results}
    assert {"dealname", "amount", "dealstage", "pipeline", "closedate", "hs_lastmodifieddate"} <= names
    assert not any(n.startswith("aws_") for n in names)  # the product's setup creates them
    _setup_custom_properties(client)
    prop = client.crm.properties.core_api.get_by_name("deals", "aws_opportunity_id")
    assert prop.has_unique_value is True
    assert prop.group_name == "aws_partner_central"

    # Writing an unknown property or a bad option is a 400 VALIDATION_ERROR naming it.
    with pytest.raises(DealsApiException) as err:
        client.crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"dealname": "x", "aws_review_status": "Bogus"})
        )
    assert err.value.status == 400
    assert "VALIDATION_ERROR" in err.value.body
    assert "aws_review_status" in err.value.body
    with pytest.raises(DealsApiException) as err:
        client.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(properties={"no_such_prop": "1"}))
    assert err.value.status == 400
    assert "no_such_prop" in err.value.body

    # The unique property works as idProperty in batch upsert and batch read.
    upserted = client.crm.deals.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                {"id": "O-1", "idProperty": "aws_opportunity_id", "properties": {"dealname": "One"}},
                {"id": "O-2", "idProperty": "aws_opportunity_id", "properties": {"dealname": "Two"}},
            ]
        )
    )
    assert sorted(r.new for r in upserted.results) == [True, True]
    again = client.crm.deals.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                {"id": "O-1", "idProperty": "aws_opportunity_id", "properties": {"dealname": "One v2"}},
            ]
        )
    )
    assert again.results[0].new is False
    read = client.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            id_property="aws_opportunity_id",
            inputs=[{"id": "O-1"}, {"id": "O-2"}],
            properties=["dealname", "aws_opportunity_id"],
            properties_with_history=[],
        )
    )
    assert sorted(r.properties["dealname"] for r in read.results) == ["One v2", "Two"]
    # hasUniqueValue is enforced.
    with pytest.raises(DealsApiException) as err:
        client.crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"dealname": "dup", "aws_opportunity_id": "O-1"})
        )
    assert err.value.status == 409


def test_bulk_load_search_paging_and_10k_cap(client, emu, fast) -> None:
    ids = fast.control("POST", "seed", {"deals": 10_050, "companies": 300, "contacts": 600, "seed": 7})
    assert len(ids["deals"]) == 10_050
    request = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "pipeline", "operator": "EQ", "value": "default"}]}],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        properties=["dealname", "hs_lastmodifieddate"],
        limit=200,
    )
    seen: list[str] = []
    after = None
    last_modified = None
    while after is None or int(after) < 10_000:
        request.after = after
        page = client.crm.deals.search_api.do_search(request)
        assert page.total == 10_050
        seen += [r.id for r in page.results]
        last_modified = page.results[-1].properties["hs_lastmodifieddate"]
        after = page.paging.next.after  # still offered at 10,000: there are more results
    # HubSpot: paging beyond 10,000 results of one query is a 400.
    request.after = after
    with pytest.raises(DealsApiException) as err:
        client.crm.deals.search_api.do_search(request)
    assert err.value.status == 400
    assert "10000" in err.value.body
    assert len(seen) == 10_000
    assert len(set(seen)) == 10_000
    # Windowing past the cap: re-query with GTE the last value seen (ties break by id, so no gaps).
    request.after = None
    request.filter_groups = [
        {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": last_modified}]}
    ]
    rest = client.crm.deals.search_api.do_search(request)
    new_ids = {r.id for r in rest.results} - set(seen)
    assert len(new_ids) == 50
    assert set(seen) | new_ids == set(ids["deals"])


def test_batch_update_partial_failure_and_timestamps(client, emu, fast) -> None:
    created = client.crm.deals.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": {"dealname": f"Deal {i}", "amount": str(1000 * i)}} for i in range(5)]
        )
    )
    assert len(created.results) == 5
    ids = [r.id for r in created.results]
    before = {r.id: r.updated_at for r in created.results}
    fast.control("POST", "faults", {"fail_ids": [ids[1]]})
    resp = client.crm.deals.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": i, "properties": {"dealstage": "closedwon"}} for i in ids]
            + [{"id": "999999999", "properties": {"dealstage": "closedwon"}}]
        )
    )
    # 207: the SDK returns the WithErrors model; only the failing items are in errors.
    assert resp.num_errors == 2
    failed_ids = {i for e in resp.errors for i in e.context["ids"]}
    assert failed_ids == {ids[1], "999999999"}
    assert sorted(r.id for r in resp.results) == sorted(set(ids) - {ids[1]})
    for r in resp.results:
        assert r.updated_at > before[r.id]
    untouched = client.crm.deals.basic_api.get_by_id(ids[1], properties=["dealstage"])
    assert untouched.properties["dealstage"] != "closedwon"
    # Too many inputs is a 400.
    with pytest.raises(DealsApiException) as err:
        client.crm.deals.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[{"id": ids[0], "properties": {"amount": "1"}}] * 101
            )
        )
    assert err.value.status == 400


def test_associations_notes_and_tasks(client, fast) -> None:
    deal = client.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(properties={"dealname": "Big"}))
    company = client.crm.companies.basic_api.create({"properties": {"name": "Acme", "domain": "acme.test"}})
    contact = client.crm.contacts.basic_api.create(
        {"properties": {"email": "Ana@Acme.test", "firstname": "Ana"}}
    )
    assert contact.properties["email"] == "ana@acme.test"
    client.crm.associations.v4.basic_api.create_default("deals", deal.id, "companies", company.id)
    client.crm.associations.v4.basic_api.create(
        "deals",
        deal.id,
        "contacts",
        contact.id,
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=3)],
    )
    notes = client.crm.objects.notes.batch_api.create(
        {
            "inputs": [
                {
                    "properties": {"hs_note_body": "Synced from AWS", "hs_timestamp": "2025-01-02T03:04:05Z"},
                    "associations": [
                        {
                            "to": {"id": deal.id},
                            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}],
                        }
                    ],
                }
            ]
        }
    )
    tasks = client.crm.objects.tasks.batch_api.create(
        {
            "inputs": [
                {
                    "properties": {
                        "hs_task_subject": "Follow up",
                        "hs_task_status": "NOT_STARTED",
                        "hs_task_priority": "HIGH",
                        "hs_timestamp": "1735787045000",
                    },
                    "associations": [
                        {
                            "to": {"id": deal.id},
                            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 216}],
                        }
                    ],
                }
            ]
        }
    )
    assert tasks.results[0].properties["hs_task_priority"] == "HIGH"
    fetched = client.crm.deals.basic_api.get_by_id(
        deal.id, associations=["companies", "contacts", "notes", "tasks"]
    )
    assoc = fetched.associations
    assert [r.id for r in assoc["notes"].results] == [notes.results[0].id]
    assert [r.id for r in assoc["tasks"].results] == [tasks.results[0].id]
    assert {r.type for r in assoc["companies"].results} == {"deal_to_company_unlabeled"}
    assert [r.id for r in assoc["contacts"].results] == [contact.id]
    page = client.crm.associations.v4.basic_api.get_page("deals", deal.id, "companies")
    assert page.results[0].to_object_id == company.id
    assert page.results[0].association_types[0].type_id == 341
    # Reverse direction is there too, with the inverse type id.
    back = client.crm.associations.v4.basic_api.get_page("notes", notes.results[0].id, "deals")
    assert back.results[0].association_types[0].type_id == 214
    batch = client.crm.associations.v4.batch_api.get_page("deals", "notes", {"inputs": [{"id": deal.id}]})
    assert batch.results[0].to[0].to_object_id == notes.results[0].id
    # Wrong association type id for the pair is a 400.
    from hubspot.crm.objects.notes.exceptions import ApiException as NotesApiException

    with pytest.raises(NotesApiException) as err:
        client.crm.objects.notes.basic_api.create(
            {
                "properties": {"hs_note_body": "x"},
                "associations": [
                    {
                        "to": {"id": deal.id},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 216}],
                    }
                ],
            }
        )
    assert err.value.status == 400


def test_429_under_load_and_recovery(client, api, emu) -> None:
    api.control("POST", "quotas", {"time_scale": 0.05})  # 5 requests per 10 s on free: a quick burst hits it
    statuses = []
    body = ""
    for _ in range(8):
        try:
            client.crm.deals.basic_api.get_page(limit=1)
            statuses.append(200)
        except DealsApiException as exc:
            statuses.append(exc.status)
            body = exc.body
    assert statuses == [200] * 5 + [429] * 3
    assert '"policyName": "TEN_SECONDLY_ROLLING"' in body
    assert "RATE_LIMIT" in body
    assert api.control("GET", "calls")["throttled"] == 3

    # Search: 5 requests per second; after the second has passed, searches work again.
    api.control("POST", "quotas", {"time_scale": 1})
    search = PublicObjectSearchRequest(limit=1)
    codes = []
    bodies = []
    for _ in range(7):
        try:
            client.crm.deals.search_api.do_search(search)
            codes.append(200)
        except DealsApiException as exc:
            codes.append(exc.status)
            bodies.append(exc.body)
    assert all('"policyName": "SECONDLY"' in b for b in bodies)
    assert codes[:5] == [200] * 5
    assert 429 in codes[5:]
    time.sleep(1.1)
    assert client.crm.deals.search_api.do_search(search).total == 0

    # An SDK configured with a urllib3 Retry that allows POST recovers on its own.
    import hubspot
    from urllib3.util.retry import Retry

    retry = Retry(
        total=10,
        backoff_factor=0.1,
        status_forcelist=[429],
        allowed_methods=None,
        respect_retry_after_header=False,
    )
    patient = hubspot.Client.create(access_token="t", host=emu.url, base_url=emu.url, retry=retry)
    for _ in range(12):
        assert patient.crm.deals.search_api.do_search(search).total == 0
