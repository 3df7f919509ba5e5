"""Scenario helpers shared by the DAG tests: seeded books, console/HubSpot edits, canonical reads."""

from __future__ import annotations

from typing import Any


# ---------------------------------------------------------------------------------------------------
def synced_book(stack: Any, opportunities: int = 8) -> list[str]:
    """Seed Partner Central, run the initial load; returns the opportunity ids (all linked now)."""
    ids = stack.pc_control("seed", {"opportunities": opportunities, "seed": 11, "catalog": "AWS"})[
        "opportunity_ids"
    ]
    stack.run()
    return ids


def with_status(stack: Any, ids: list[str], *statuses: str) -> list[str]:
    out = []
    for oid in ids:
        opp = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
        if opp["LifeCycle"].get("ReviewStatus") in statuses:
            out.append(oid)
    return out


def approved(stack: Any, ids: list[str]) -> str:
    """An opportunity AWS has approved (one under review is approved through the emulator if need be)."""
    found = with_status(stack, ids, "Approved")
    if found:
        return found[0]
    (oid, *_) = with_status(stack, ids, "Submitted", "In review")
    stack.pc_control("simulate/review", {"catalog": "AWS", "identifier": oid, "review_status": "Approved"})
    return oid


def writes(stack: Any) -> tuple[dict[str, int], list[str]]:
    """(Partner Central write operations, HubSpot write endpoints) since the last ``reset_calls``."""
    pc_calls, hs_calls = stack.calls()
    pc_writes = {
        k: v for k, v in pc_calls["by_operation"].items() if not k.startswith(("Get", "List", "Search"))
    }
    hs_writes = [
        e
        for e in hs_calls["by_endpoint"]
        if not e.startswith("GET") and "batch/read" not in e and "search" not in e
    ]
    return pc_writes, hs_writes


def editable(stack: Any, ids: list[str]) -> list[str]:
    found = with_status(stack, ids, "Pending Submission")
    assert found, "the seeded book has no opportunity in Pending Submission"
    return found


def canonical_pc(stack: Any, oid: str) -> dict[str, Any]:
    from cosell_sync.config import load_config
    from cosell_sync.mapping import opportunities_to_frame

    cfg = load_config()
    frame = opportunities_to_frame([stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)], cfg)
    return {f: frame.iloc[0][f] for f in cfg.field_names()}


def canonical_hs(stack: Any, oid: str) -> dict[str, Any]:
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


def new_value(field: Any, current: Any) -> str:
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
    from cosell_sync.pc_model import pc_shape, shape_at

    # Stay inside what Partner Central accepts for the member (enums, lengths), as a real edit would.
    shape = shape_at(pc_shape("GetOpportunity", "output"), field.partner_central)
    enum = list(getattr(shape, "enum", None) or [])
    if enum:
        return next(v for v in enum if v != current)
    value = f"Changed {field.name.replace('_', ' ')} on purpose for the test"
    limit = (getattr(shape, "metadata", None) or {}).get("max")
    return value[: int(limit)] if limit else value


def set_pc(stack: Any, oid: str, changes: dict[str, str]) -> None:
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


def set_hs(stack: Any, oid: str, changes: dict[str, str]) -> None:
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


def mapped_fields(direction: str) -> list[Any]:
    from cosell_sync.config import load_config

    return [f for f in load_config().fields if f.direction in ("both", direction)]


def config_with(tmp_path: Any, monkeypatch: Any, conflicts: dict[str, Any]) -> None:
    import yaml

    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["conflicts"] = conflicts
    path = tmp_path / "sync_config.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))


def hubspot_total(stack: Any, plural: str) -> int:
    """How many objects of a type HubSpot holds (its search ``total``): record counts in fault tests."""
    import requests

    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/{plural}/search",
        headers={"Authorization": "Bearer test-token"},
        json={"limit": 1, "filterGroups": []},
        timeout=30,
    )
    r.raise_for_status()
    return int(r.json()["total"])


def xcom(run: Any, task_id: str) -> Any:
    """What task ``task_id`` of a ``dag.test()`` run returned (its XCom)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
            .filter(TaskInstance.task_id == task_id)
            .one()
        )
        return ti.xcom_pull(task_ids=task_id, session=session)


# ---------------------------------------------------------------------------------------------------
def hs_call(stack: Any, method: str, path: str, body: Any = None) -> Any:
    """One call to the HubSpot emulator's API (checked): its JSON answer, None when empty."""
    import requests

    r = requests.request(
        method, f"{stack.hs_url}{path}", headers={"Authorization": "Bearer test-token"}, json=body, timeout=30
    )
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:300]}"
    return r.json() if r.content else None


def run_notes(stack: Any, deal_id: str, run_id: str) -> list[str]:
    """The bodies of the deal's notes that carry run ``run_id``'s reference (each note names its run)."""
    from cosell_sync.writers.hubspot import NOTE_REF_PREFIX

    linked = hs_call(stack, "GET", f"/crm/v4/objects/deals/{deal_id}/associations/notes")["results"]
    bodies = [
        str(
            hs_call(stack, "GET", f"/crm/v3/objects/notes/{n['toObjectId']}?properties=hs_note_body")[
                "properties"
            ].get("hs_note_body")
            or ""
        )
        for n in linked
    ]
    return [b for b in bodies if f"{NOTE_REF_PREFIX}{run_id}" in b]


def new_contact(stack: Any, email: str, first: str, last: str) -> str:
    """A new HubSpot contact (job title ``Buyer``): its id."""
    made = hs_call(
        stack,
        "POST",
        "/crm/v3/objects/contacts",
        {"properties": {"email": email, "firstname": first, "lastname": last, "jobtitle": "Buyer"}},
    )
    return str(made["id"])


def contact_ids_of(stack: Any, deal_id: str) -> list[str]:
    """The ids of a deal's associated contacts."""
    page = hs_call(stack, "GET", f"/crm/v4/objects/deals/{deal_id}/associations/contacts")
    return [str(r["toObjectId"]) for r in page["results"]]


def pc_contact_emails(stack: Any, oid: str) -> list[str]:
    """The e-mails of an opportunity's ``Customer.Contacts``, in order."""
    opp = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    return [c.get("Email") for c in opp["Customer"].get("Contacts") or []]


def deal_with_three_contacts(sync_stack: Any) -> tuple[str, dict[str, str]]:
    """A co-sell deal with three contacts, the newest on the ``Primary`` label: (deal id, name -> id)."""
    deal_id = sync_stack.hs_control("seed", {"deals": 1, "contacts": 1, "companies": 1, "seed": 11})["deals"][
        0
    ]
    # Start from a known set: the seed's contact(s) off the deal, then three contacts in creation order.
    for cid in contact_ids_of(sync_stack, deal_id):
        hs_call(sync_stack, "DELETE", f"/crm/v4/objects/deals/{deal_id}/associations/contacts/{cid}")
    oldest = new_contact(sync_stack, "olga.oldest@customer.example", "Olga", "Oldest")
    middle = new_contact(sync_stack, "mo.middle@customer.example", "Mo", "Middle")
    chosen = new_contact(sync_stack, "pia.primary@customer.example", "Pia", "Primary")
    label = hs_call(
        sync_stack,
        "POST",
        "/crm/v4/associations/deals/contacts/labels",
        {"label": "Primary", "name": "primary"},
    )
    primary_type = next(t["typeId"] for t in label["results"] if t.get("label") == "Primary")
    for cid in (oldest, middle):
        hs_call(sync_stack, "PUT", f"/crm/v4/objects/deals/{deal_id}/associations/default/contacts/{cid}")
    hs_call(
        sync_stack,
        "PUT",
        f"/crm/v4/objects/deals/{deal_id}/associations/contacts/{chosen}",
        [{"associationCategory": "USER_DEFINED", "associationTypeId": primary_type}],
    )
    sync_stack.update_deal(deal_id, {"aws_sync_enabled": "true"})
    return str(deal_id), {"oldest": oldest, "middle": middle, "chosen": chosen}
