from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cosell_sync.config import SyncConfig, load_config
from cosell_sync.pc_model import pc_enum
from cosell_sync.properties import (
    GROUP_NAME,
    PropertyGroupSpec,
    PropertySpec,
    custom_properties,
    diff_property,
)

SEEDS = Path(__file__).resolve().parents[4] / "shared" / "seeds"
SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs" / "hubspot" / "properties.json"
# HubSpot's valid type -> fieldType pairs (HubSpot properties guide).
VALID_FIELD_TYPES = {
    "string": {"text", "textarea", "html", "phonenumber", "file"},
    "number": {"number"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "bool": {"booleancheckbox"},
}


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


@pytest.fixture(scope="module")
def specs(cfg) -> list[PropertyGroupSpec | PropertySpec]:
    return custom_properties(cfg)


def props(specs, object_type: str) -> dict[str, dict]:
    return {
        s.body["name"]: s.body for s in specs if isinstance(s, PropertySpec) and s.object_type == object_type
    }


def test_groups_come_first_for_every_object(specs):
    groups = [s for s in specs if isinstance(s, PropertyGroupSpec)]
    assert specs[: len(groups)] == groups
    assert {g.object_type for g in groups} == {"deals", "companies", "contacts", "products"}
    assert all(
        g.body == {"name": GROUP_NAME, "label": "AWS Partner Central", "displayOrder": -1} for g in groups
    )


def test_products_are_keyed_by_a_unique_solution_id(specs):
    # cosell_catalog upserts products on it (batch upsert with idProperty needs a unique property).
    products = props(specs, "products")
    assert products["aws_solution_id"]["hasUniqueValue"] is True
    assert [o["value"] for o in products["aws_solution_status"]["options"]] == ["Active", "Inactive", "Draft"]


@pytest.mark.skipif(not SEEDS.exists(), reason="design seeds not available")
def test_every_aws_property_in_the_design_is_created(specs):
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in SEEDS.glob("*.txt"))
    # Property names appear in the design's tables as `aws_...`.
    designed = set(re.findall(r"\|\s*`(aws_[a-z_]+)`", text)) | {"aws_last_sync_date", "aws_review_status"}
    created = set(props(specs, "deals"))
    assert designed - created == set()
    assert len(designed) >= 19


@pytest.mark.parametrize(
    ("name", "type_", "field_type"),
    [
        pytest.param("aws_opportunity_id", "string", "text", id="link"),
        pytest.param("aws_sync_enabled", "bool", "booleancheckbox", id="cosell-flag"),
        pytest.param("aws_review_status", "enumeration", "select", id="review-status"),
        pytest.param("aws_sync_error", "string", "textarea", id="sync-error"),
        pytest.param("aws_conflict_status", "enumeration", "select", id="conflict-status"),
        pytest.param("aws_engagement_kickoff_date", "datetime", "date", id="datetime"),
        pytest.param("aws_total_resources", "number", "number", id="number"),
        pytest.param("aws_next_steps", "string", "textarea", id="next-steps"),
    ],
)
def test_deal_property_types(specs, name, type_, field_type):
    body = props(specs, "deals")[name]
    assert (body["type"], body["fieldType"]) == (type_, field_type)
    assert body["groupName"] == GROUP_NAME


@pytest.mark.skipif(not SPECS.exists(), reason=f"HubSpot OpenAPI specs not found at {SPECS}")
def test_every_body_is_a_valid_property_create(specs):
    schema = json.loads(SPECS.read_text())["components"]["schemas"]["PropertyCreate"]
    allowed = set(schema["properties"])
    for spec in specs:
        if not isinstance(spec, PropertySpec):
            continue
        body = spec.body
        assert set(schema["required"]) <= set(body), body["name"]
        assert set(body) <= allowed, body["name"]
        assert body["fieldType"] in VALID_FIELD_TYPES[body["type"]], body["name"]
        if body["type"] in ("enumeration", "bool"):
            assert body["options"], body["name"]
            assert all({"label", "value", "hidden"} <= set(o) for o in body["options"])


def test_link_property_is_unique_and_review_options_are_the_mapped_values(cfg, specs):
    deal = props(specs, "deals")
    assert deal["aws_opportunity_id"]["hasUniqueValue"] is True
    options = {o["value"]: o["label"] for o in deal["aws_review_status"]["options"]}
    assert set(options.values()) == set(pc_enum("ReviewStatus"))
    assert set(options) == set(cfg.field("review_status").values.values())
    assert [o["value"] for o in deal["aws_conflict_status"]["options"]] == ["None", "Pending", "Resolved"]


def test_every_mapped_custom_property_exists(cfg, specs):
    defaults = {
        "dealname",
        "dealstage",
        "closedate",
        "amount",
        "description",
        "closed_lost_reason",
        "name",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "industry",
        "website",
        "email",
        "firstname",
        "lastname",
        "phone",
        "jobtitle",
    }
    object_types = {"deal": "deals", "company": "companies", "contact": "contacts"}
    for field in cfg.fields:
        if field.hubspot not in defaults:
            assert field.hubspot in props(specs, object_types[field.object]), field.name


def test_company_and_contact_sync_stamps(specs):
    for object_type in ("companies", "contacts"):
        assert {"aws_last_sync_date", "aws_contact_company_last_sync"} <= set(props(specs, object_type))


def test_a_mapping_to_a_new_property_creates_it():
    base = load_config()
    raw = [f.model_dump() for f in base.fields]
    raw.append(
        {
            "name": "competitor",
            "object": "deal",
            "partner_central": "Project.CompetitorName",
            "hubspot": "aws_competitor",
            "transform": "enum",
            "values": {"Microsoft Azure": "azure"},
        }
    )
    cfg = load_config(overrides={"fields": raw})
    body = props(custom_properties(cfg), "deals")["aws_competitor"]
    assert body["type"] == "enumeration"
    assert body["options"][0]["value"] == "azure"


# --- idempotent setup ---------------------------------------------------------------------------------------
def _as_hubspot_returns(body: dict) -> dict:
    """A property as HubSpot echoes it back: extra read-only members, no hasUniqueValue change."""
    return {
        **body,
        "hubspotDefined": False,
        "createdAt": "2025-01-01T00:00:00Z",
        "options": body.get("options", []),
        "formField": False,
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({}, None, id="identical-is-no-op"),
        pytest.param({"label": "Old label"}, {"label": "AWS Conflict Status"}, id="label"),
        pytest.param({"groupName": "dealinformation"}, {"groupName": GROUP_NAME}, id="group"),
        pytest.param({"fieldType": "radio"}, {"fieldType": "select"}, id="field-type"),
    ],
)
def test_diff_property(specs, change, expected):
    wanted = props(specs, "deals")["aws_conflict_status"]
    existing = {**_as_hubspot_returns(wanted), **change}
    assert diff_property(existing, wanted) == expected


def test_diff_property_adds_missing_options_and_keeps_extra_ones(specs):
    wanted = props(specs, "deals")["aws_conflict_status"]
    existing = _as_hubspot_returns(wanted)
    existing["options"] = [
        wanted["options"][0],
        {"label": "Legacy", "value": "legacy", "hidden": False, "displayOrder": 9},
    ]
    patch = diff_property(existing, wanted)
    assert [o["value"] for o in patch["options"]] == ["None", "Pending", "Resolved", "legacy"]
    assert set(patch) == {"options"}


def test_diff_property_never_patches_name_or_uniqueness(specs):
    wanted = props(specs, "deals")["aws_opportunity_id"]
    existing = {**_as_hubspot_returns(wanted), "hasUniqueValue": False}
    assert diff_property(existing, wanted) is None
