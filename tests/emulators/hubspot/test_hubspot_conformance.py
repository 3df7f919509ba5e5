"""Conformance: endpoints we serve answer with the status codes and bodies of HubSpot's public OpenAPI specs.

Each response is validated with jsonschema against the schema the spec declares for that path, method and
status (``default`` for errors), and deserialized into the official SDK's model of that name with client-side
validation on. One knowing relaxation: HubSpot returns ``null`` for requested properties that have no value,
while the specs type property values as plain strings, so ``properties`` maps also accept ``null``.

The specs live in ``../shared/specs/hubspot`` beside the repository; the tests skip when it is absent.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SPECS = Path(__file__).resolve().parents[3] / ".." / "shared" / "specs" / "hubspot"
pytestmark = pytest.mark.skipif(not SPECS.is_dir(), reason=f"HubSpot OpenAPI specs not found at {SPECS}")

SDK_PACKAGES = {
    "associations": "hubspot.crm.associations.v4",
    "companies": "hubspot.crm.companies",
    "contacts": "hubspot.crm.contacts",
    "crmOwners": "hubspot.crm.owners",
    "deals": "hubspot.crm.deals",
    "lineItems": "hubspot.crm.line_items",
    "notes": "hubspot.crm.objects.notes",
    "pipelines": "hubspot.crm.pipelines",
    "products": "hubspot.crm.products",
    "properties": "hubspot.crm.properties",
    "tasks": "hubspot.crm.objects.tasks",
}


@cache
def _spec(name: str) -> dict[str, Any]:
    return json.loads((SPECS / f"{name}.json").read_text())


def _to_jsonschema(node: Any, spec: dict[str, Any], parent_key: str | None = None) -> Any:
    """Inline $refs and make the OpenAPI 3.0 subset plain JSON Schema."""
    if isinstance(node, list):
        return [_to_jsonschema(n, spec) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _to_jsonschema(target, spec, parent_key)
    out = {}
    for key, value in node.items():
        if key in ("example", "description", "format", "style", "explode"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: _to_jsonschema(v, spec, k) for k, v in value.items()}
        else:
            out[key] = _to_jsonschema(value, spec, key)
    if out.get("nullable"):
        out["type"] = [out.get("type", "object"), "null"]
    if (
        parent_key == "properties"
        and out.get("type") == "object"
        and out.get("additionalProperties") == {"type": "string"}
    ):
        out["additionalProperties"] = {"type": ["string", "null"]}  # HubSpot sends null for empty values
    return out


def _operation(spec_name: str, method: str, path: str) -> tuple[str, dict[str, Any]]:
    spec = _spec(spec_name)
    for template, ops in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template.rstrip("/"))) + "$"
        if re.match(pattern, path.rstrip("/")) and method.lower() in ops:
            return template, ops[method.lower()]
    raise AssertionError(f"{method} {path} is not in {spec_name}.json")


class Checker:
    """Calls the emulator and checks each response against the spec and the SDK models."""

    def __init__(self, api: Any, spec_name: str) -> None:
        self.api = api
        self.spec_name = spec_name
        self.seen: set[tuple[str, str, str]] = set()
        pkg = importlib.import_module(SDK_PACKAGES[spec_name])
        self.sdk_client = pkg.ApiClient(pkg.Configuration())
        self.models = importlib.import_module(SDK_PACKAGES[spec_name] + ".models")

    def __call__(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        resp = self.api(method, path, body)
        if expect is not None:
            assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        template, op = _operation(self.spec_name, method, path.split("?")[0])
        status = str(resp.status_code)
        responses = op["responses"]
        if status in responses:
            declared = responses[status]
        else:
            assert resp.status_code >= 400, f"{method} {template} answered undeclared {status}"
            assert "default" in responses, (
                f"{method} {template} answered {status}, which the spec does not declare"
            )
            declared = responses["default"]
        self.seen.add((method, template, status))
        spec = _spec(self.spec_name)
        if "$ref" in declared:  # e.g. #/components/responses/Error
            target: Any = spec
            for part in declared["$ref"].lstrip("#/").split("/"):
                target = target[part]
            declared = target
        content = next(iter(declared.get("content", {}).values()), None)
        if content is None:
            assert not resp.content, f"{method} {template} {status} should have no body"
            return None
        payload = resp.json()
        jsonschema.validate(payload, _to_jsonschema(content["schema"], spec))
        model = content["schema"]["$ref"].rsplit("/", 1)[-1]
        # The SDK renames a few models: Property -> ModelProperty; search answers carry ForwardPaging.
        model = next(m for m in (model, "Model" + model, model + "ForwardPaging") if hasattr(self.models, m))
        deserialize = self.sdk_client._ApiClient__deserialize  # the SDK's own response deserializer
        assert deserialize(copy.deepcopy(payload), model) is not None
        return payload


OBJECT_SPECS = [
    ("contacts", "contacts", {"email": "c@conf.test", "firstname": "C"}),
    ("companies", "companies", {"name": "Conf Co", "industry": "RETAIL"}),
    ("deals", "0-3", {"dealname": "Conf deal", "amount": "10"}),
    ("notes", "notes", {"hs_note_body": "n", "hs_timestamp": "2025-01-01T00:00:00Z"}),
    ("tasks", "tasks", {"hs_task_subject": "t", "hs_timestamp": "2025-01-01T00:00:00Z"}),
    ("products", "products", {"name": "P", "price": "9.5"}),
    ("lineItems", "line_items", {"name": "L", "quantity": "2", "price": "3"}),
]


@pytest.mark.parametrize(("spec_name", "segment", "props"), OBJECT_SPECS, ids=[s[0] for s in OBJECT_SPECS])
def test_object_endpoints_conform(fast, spec_name: str, segment: str, props: dict[str, str]) -> None:
    check = Checker(fast, spec_name)
    base = f"/crm/v3/objects/{segment}"
    created = check("POST", base, {"properties": props}, expect=201)
    oid = created["id"]
    check("GET", f"{base}?limit=5&properties=hs_object_id&propertiesWithHistory=hs_object_id", expect=200)
    check("GET", f"{base}/{oid}?propertiesWithHistory={next(iter(props))}", expect=200)
    check("GET", f"{base}/999999999", expect=404)
    check(
        "PATCH",
        f"{base}/{oid}",
        {
            "properties": {
                next(iter(props)): props[next(iter(props))] + "x" if "email" not in props else "c2@conf.test"
            }
        },
        expect=200,
    )
    check("POST", f"{base}", {"properties": {"no_such_property": "1"}}, expect=400)
    check(
        "POST",
        f"{base}/batch/read",
        {"inputs": [{"id": oid}], "properties": [], "propertiesWithHistory": []},
        expect=200,
    )
    check(
        "POST",
        f"{base}/batch/read",
        {"inputs": [{"id": oid}, {"id": "1"}], "properties": [], "propertiesWithHistory": []},
        expect=207,
    )
    more = {k: v for k, v in props.items() if k != "email"}
    batch = check("POST", f"{base}/batch/create", {"inputs": [{"properties": more}]}, expect=201)
    bid = batch["results"][0]["id"]
    check("POST", f"{base}/batch/update", {"inputs": [{"id": bid, "properties": more}]}, expect=200)
    check(
        "POST",
        f"{base}/batch/update",
        {"inputs": [{"id": bid, "properties": more}, {"id": "1", "properties": more}]},
        expect=207,
    )
    if spec_name == "contacts":
        upsert = {"inputs": [{"id": "u@conf.test", "idProperty": "email", "properties": {"firstname": "U"}}]}
    else:
        upsert = {"inputs": [{"id": bid, "idProperty": "hs_object_id", "properties": more}]}
    check("POST", f"{base}/batch/upsert", upsert, expect=200)
    if any(p.endswith("/search") for p in _spec(spec_name)["paths"]):
        check(
            "POST",
            f"{base}/search",
            {"filterGroups": [], "sorts": [], "properties": [], "limit": 2, "after": "0"},
            expect=200,
        )
        check("POST", f"{base}/search", {"limit": 500}, expect=400)
    check("POST", f"{base}/batch/archive", {"inputs": [{"id": bid}]}, expect=204)
    check("DELETE", f"{base}/{oid}", expect=204)
    fast.session.headers.pop("Authorization")
    check("GET", f"{base}/{oid}", expect=401)


def test_properties_endpoints_conform(fast) -> None:
    check = Checker(fast, "properties")
    base = "/crm/v3/properties/deals"
    check("GET", base, expect=200)
    check("GET", f"{base}/groups", expect=200)
    check("POST", f"{base}/groups", {"name": "aws_partner_central", "label": "AWS"}, expect=201)
    check("GET", f"{base}/groups/aws_partner_central", expect=200)
    check("PATCH", f"{base}/groups/aws_partner_central", {"label": "AWS PC"}, expect=200)
    prop = {
        "name": "aws_stage",
        "label": "Stage",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "aws_partner_central",
        "options": [{"label": "A", "value": "a", "hidden": False}],
    }
    check("POST", base, prop, expect=201)
    check("POST", base, prop, expect=409)
    check("GET", f"{base}/aws_stage", expect=200)
    check("GET", f"{base}/dealstage", expect=200)
    check("GET", f"{base}/nope", expect=404)
    check("PATCH", f"{base}/aws_stage", {"label": "AWS stage"}, expect=200)
    check(
        "POST",
        f"{base}/batch/create",
        {
            "inputs": [
                {
                    "name": "aws_a",
                    "label": "A",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "aws_partner_central",
                }
            ]
        },
        expect=201,
    )
    check(
        "POST",
        f"{base}/batch/create",
        {
            "inputs": [
                {
                    "name": "aws_a",
                    "label": "A",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "aws_partner_central",
                }
            ]
        },
        expect=207,
    )
    check(
        "POST",
        f"{base}/batch/read",
        {"inputs": [{"name": "aws_a"}], "archived": False, "propertiesWithHistory": []},
        expect=200,
    )
    check(
        "POST",
        f"{base}/batch/read",
        {"inputs": [{"name": "aws_a"}, {"name": "zz"}], "archived": False},
        expect=207,
    )
    check("POST", f"{base}/batch/archive", {"inputs": [{"name": "aws_a"}]}, expect=204)
    check("DELETE", f"{base}/aws_stage", expect=204)
    check("DELETE", f"{base}/groups/aws_partner_central", expect=204)


def test_pipelines_and_owners_conform(fast) -> None:
    check = Checker(fast, "pipelines")
    check("GET", "/crm/v3/pipelines/deals", expect=200)
    made = check(
        "POST",
        "/crm/v3/pipelines/deals",
        {
            "label": "P2",
            "displayOrder": 2,
            "stages": [{"label": "S1", "displayOrder": 0, "metadata": {"probability": "0.5"}}],
        },
        expect=201,
    )
    pid = made["id"]
    check("GET", f"/crm/v3/pipelines/deals/{pid}", expect=200)
    check("GET", "/crm/v3/pipelines/deals/nope", expect=404)
    check("PATCH", f"/crm/v3/pipelines/deals/{pid}", {"label": "P2b"}, expect=200)
    check("GET", f"/crm/v3/pipelines/deals/{pid}/stages", expect=200)
    stage = check(
        "POST",
        f"/crm/v3/pipelines/deals/{pid}/stages",
        {"label": "S2", "displayOrder": 1, "metadata": {"probability": "1.0"}},
        expect=201,
    )
    check("GET", f"/crm/v3/pipelines/deals/{pid}/stages/{stage['id']}", expect=200)
    check("DELETE", f"/crm/v3/pipelines/deals/{pid}", expect=204)
    owners = Checker(fast, "crmOwners")
    listed = owners("GET", "/crm/v3/owners/?limit=2", expect=200)
    owners("GET", f"/crm/v3/owners/{listed['results'][0]['id']}", expect=200)
    owners("GET", "/crm/v3/owners/1", expect=404)


def test_associations_v4_conform(fast) -> None:
    check = Checker(fast, "associations")
    deal = fast("POST", "/crm/v3/objects/deals", {"properties": {"dealname": "A"}}).json()["id"]
    c1 = fast("POST", "/crm/v3/objects/contacts", {"properties": {"email": "a1@x.test"}}).json()["id"]
    c2 = fast("POST", "/crm/v3/objects/contacts", {"properties": {"email": "a2@x.test"}}).json()["id"]
    co = fast("POST", "/crm/v3/objects/companies", {"properties": {"name": "X"}}).json()["id"]
    spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]
    check("PUT", f"/crm/v4/objects/deals/{deal}/associations/companies/{co}", spec, expect=201)
    check(
        "PUT",
        f"/crm/v4/objects/deals/{deal}/associations/companies/{co}",
        [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
        expect=400,
    )
    check("PUT", f"/crm/v4/objects/deals/{deal}/associations/default/contacts/{c1}", expect=200)
    check("GET", f"/crm/v4/objects/deals/{deal}/associations/companies", expect=200)
    check(
        "POST",
        "/crm/v4/associations/deals/contacts/batch/create",
        {
            "inputs": [
                {
                    "from": {"id": deal},
                    "to": {"id": c2},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                }
            ]
        },
        expect=201,
    )
    check(
        "POST",
        "/crm/v4/associations/deals/contacts/batch/create",
        {
            "inputs": [
                {
                    "from": {"id": deal},
                    "to": {"id": "424242"},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                }
            ]
        },
        expect=207,
    )
    check(
        "POST",
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        {"inputs": [{"from": {"id": c1}, "to": {"id": co}}]},
        expect=200,
    )
    read = check(
        "POST", "/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": deal}]}, expect=200
    )
    assert sorted(t["toObjectId"] for t in read["results"][0]["to"]) == sorted([c1, c2])
    check(
        "POST",
        "/crm/v4/associations/deals/contacts/batch/read",
        {"inputs": [{"id": deal}, {"id": "1"}]},
        expect=207,
    )
    check(
        "POST",
        "/crm/v4/associations/deals/companies/batch/labels/archive",
        {"inputs": [{"from": {"id": deal}, "to": {"id": co}, "types": spec}]},
        expect=204,
    )
    check(
        "POST",
        "/crm/v4/associations/deals/contacts/batch/archive",
        {"inputs": [{"from": {"id": deal}, "to": [{"id": c2}]}]},
        expect=204,
    )
    check("DELETE", f"/crm/v4/objects/deals/{deal}/associations/contacts/{c1}", expect=204)
    left = check("GET", f"/crm/v4/objects/deals/{deal}/associations/contacts", expect=200)
    assert left["results"] == []
