"""Deterministic, realistic bulk data for ``POST /_emulator/seed``.

Property values, ids (after a reset) and associations depend only on the seed; timestamps are spread over
the 90 days before the seeding moment (distinct per record, all in the past), so later API writes always
move ``hs_lastmodifieddate`` forward. Seeding bypasses the API: it is not counted, not rate limited and fires
no webhooks. Each deal is in the default sales pipeline, owned by a seeded owner, associated to one company
(primary) and one or two of that company's contacts.

Two options reproduce bulk edits at scale without thousands of API calls: ``modified_at`` gives every seeded
record that one ``hs_lastmodifieddate`` (what a bulk import or a workflow touching many records in the same
millisecond leaves behind), and ``deal_properties`` sets the same properties on every seeded deal (for
example ``{"aws_sync_enabled": "true"}``). Both are checked against the portal's property definitions but,
like the rest of seeding, bypass the API.
"""

from __future__ import annotations

import random
from typing import Any

from emulators.hubspot.models import HubSpotBackend, Record, iso, now_ms, parse_time

_ADJ = (
    "Blue",
    "Northern",
    "Bright",
    "Summit",
    "Apex",
    "Silver",
    "Evergreen",
    "Granite",
    "Harbor",
    "Quantum",
    "Pioneer",
    "Cedar",
    "Atlas",
    "Nimbus",
    "Vertex",
    "Crimson",
    "Golden",
    "Urban",
    "Coastal",
    "Prairie",
)
_NOUN = (
    "Analytics",
    "Logistics",
    "Health",
    "Robotics",
    "Foods",
    "Energy",
    "Systems",
    "Media",
    "Capital",
    "Networks",
    "Labs",
    "Dynamics",
    "Retail",
    "Software",
    "Biotech",
    "Mobility",
    "Security",
    "Cloud",
)
_SUFFIX = ("Inc", "LLC", "Ltd", "Group", "Corp", "GmbH", "SA", "Co")
_FIRST = (
    "James",
    "Mary",
    "Wei",
    "Fatima",
    "Carlos",
    "Aisha",
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Hiroshi",
    "Ananya",
    "Lucas",
    "Sofia",
    "Mateo",
    "Chloe",
    "Ethan",
    "Zara",
    "Omar",
    "Ingrid",
    "Kofi",
    "Mei",
)
_LAST = (
    "Smith",
    "Garcia",
    "Chen",
    "Khan",
    "Müller",
    "Okafor",
    "Rossi",
    "Kowalski",
    "Nguyen",
    "Patel",
    "Johansson",
    "Silva",
    "Tanaka",
    "Dubois",
    "O'Brien",
    "Haddad",
    "Novak",
    "Ivanova",
    "Mensah",
    "Lopez",
)
_TITLES = (
    "CTO",
    "VP Engineering",
    "Head of IT",
    "Cloud Architect",
    "CFO",
    "Procurement Manager",
    "Director of Operations",
    "DevOps Lead",
    "CEO",
    "Data Platform Manager",
)
_PLACES = (
    ("Seattle", "WA", "98101", "United States"),
    ("Austin", "TX", "73301", "United States"),
    ("New York", "NY", "10001", "United States"),
    ("Toronto", "ON", "M5H 2N2", "Canada"),
    ("London", "", "EC1A 1BB", "United Kingdom"),
    ("Berlin", "", "10115", "Germany"),
    ("Sydney", "NSW", "2000", "Australia"),
    ("Bengaluru", "KA", "560001", "India"),
    ("São Paulo", "SP", "01000-000", "Brazil"),
    ("Tokyo", "", "100-0001", "Japan"),
)
_INDUSTRIES = (
    "COMPUTER_SOFTWARE",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "FINANCIAL_SERVICES",
    "HOSPITAL_HEALTH_CARE",
    "RETAIL",
    "TELECOMMUNICATIONS",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "INTERNET",
    "BIOTECHNOLOGY",
    "MARKETING_AND_ADVERTISING",
    "OIL_ENERGY",
    "EDUCATION_MANAGEMENT",
)
_PRODUCTS = (
    "Data Lake Migration",
    "SaaS Expansion",
    "Contact Center Modernization",
    "ML Platform",
    "Backup & DR",
    "SAP on AWS",
    "Security Assessment",
    "Analytics Renewal",
    "Edge Rollout",
    "Cost Optimization",
)
_STAGE_WEIGHTS = (
    ("appointmentscheduled", 22),
    ("qualifiedtobuy", 20),
    ("presentationscheduled", 15),
    ("decisionmakerboughtin", 12),
    ("contractsent", 9),
    ("closedwon", 12),
    ("closedlost", 10),
)
_OWNERS = (
    ("Maya", "Lindqvist"),
    ("Tomás", "Herrera"),
    ("Grace", "Adeyemi"),
    ("Ravi", "Subramanian"),
    ("Hannah", "Becker"),
)
_DAY_MS = 86_400_000


def seed(
    backend: HubSpotBackend,
    deals: int = 0,
    contacts: int = 0,
    companies: int = 0,
    seed_value: int = 0,
    *,
    modified_at: Any = None,
    deal_properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create the records and return their ids per type (plus the owner ids used).

    Args:
        backend: the portal to seed.
        deals: how many deals to create.
        contacts: how many contacts to create.
        companies: how many companies to create.
        seed_value: the random seed (same seed, same data).
        modified_at: when given (epoch ms or ISO-8601), every seeded record's ``hs_lastmodifieddate``;
            otherwise timestamps are spread over the last 90 days.
        deal_properties: properties set on every seeded deal (over the generated ones).

    Raises:
        ValueError: ``modified_at`` is not a time, or a deal property is not defined in the portal or has
            unique values (one value on every deal would break the uniqueness HubSpot enforces).
    """
    rng = random.Random(seed_value)
    fixed_ms = None
    if modified_at is not None:
        fixed_ms = parse_time(modified_at)
        if fixed_ms is None:
            raise ValueError(f"modified_at is not a time: {modified_at!r}")
    extra = {str(k): str(v) for k, v in (deal_properties or {}).items()}
    with backend.lock:
        unknown = sorted(set(extra) - set(backend.properties["deals"]))
        if unknown:
            raise ValueError(f"deal_properties names properties deals do not have: {unknown}")
        unique = sorted(k for k in extra if backend.properties["deals"][k].get("hasUniqueValue"))
        if unique and deals > 1:
            raise ValueError(f"deal_properties cannot give one value to many deals for unique {unique}")
        backend.seeding = True
        try:
            return _seed(backend, rng, deals, contacts, companies, fixed_ms, extra)
        finally:
            backend.seeding = False


def _put(
    backend: HubSpotBackend, object_type: str, props: dict[str, str], created: int, updated: int
) -> Record:
    rec = Record(
        id=backend.next_id(),
        object_type=object_type,
        properties=props,
        created_ms=created,
        updated_ms=updated,
    )
    backend.objects[object_type][rec.id] = rec
    return rec


def _link(
    backend: HubSpotBackend, a_type: str, a_id: str, b_type: str, b_id: str, type_ids: tuple[int, ...]
) -> None:
    fwd = backend.assoc.setdefault((a_type, a_id, b_type), {}).setdefault(b_id, set())
    back = backend.assoc.setdefault((b_type, b_id, a_type), {}).setdefault(a_id, set())
    for t in type_ids:
        fwd.add(t)
        back.add(backend.assoc_types[t].inverse_id)


def _seed(
    backend: HubSpotBackend,
    rng: random.Random,
    n_deals: int,
    n_contacts: int,
    n_companies: int,
    fixed_ms: int | None = None,
    deal_extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    now = now_ms()
    start = now - 90 * _DAY_MS
    total = max(1, n_deals + n_contacts + n_companies)
    step = max(1, (89 * _DAY_MS) // total)
    clock = [start]

    def stamps() -> tuple[int, int]:
        clock[0] += step
        created = clock[0] - rng.randint(0, 30) * _DAY_MS // 4
        if fixed_ms is not None:
            # One modification time for every record: created no later than modified, as in HubSpot.
            return min(created, fixed_ms), fixed_ms
        return min(created, clock[0]), clock[0]

    owners = [o["id"] for o in backend.owners if not o["archived"]]
    known = {(o.get("firstName"), o.get("lastName")) for o in backend.owners}
    for first, last in _OWNERS:
        if (first, last) not in known:
            owners.append(backend.add_owner(first, last, f"{first.lower()}.{last.lower()}@example.com")["id"])

    company_ids: list[str] = []
    domains: list[str] = []
    names: list[str] = []
    for i in range(n_companies):
        name = f"{rng.choice(_ADJ)} {rng.choice(_NOUN)} {rng.choice(_SUFFIX)}"
        slug = "".join(ch for ch in name.lower().split(" ")[0] + name.lower().split(" ")[1] if ch.isalnum())
        domain = f"{slug}{i}.example.com"
        city, state, zip_code, country = rng.choice(_PLACES)
        created, updated = stamps()
        props = {
            "name": name,
            "domain": domain,
            "website": f"https://www.{domain}",
            "city": city,
            "state": state,
            "zip": zip_code,
            "country": country,
            "industry": rng.choice(_INDUSTRIES),
            "phone": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            "address": f"{rng.randint(1, 999)} {rng.choice(_ADJ)} Street",
            "numberofemployees": str(rng.choice((12, 45, 120, 480, 1500, 9000))),
            "annualrevenue": str(rng.choice((500_000, 2_000_000, 15_000_000, 120_000_000))),
            "lifecyclestage": rng.choice(("lead", "opportunity", "customer")),
            "hubspot_owner_id": rng.choice(owners),
            "createdate": iso(created),
        }
        props = {k: v for k, v in props.items() if v}
        rec = _put(backend, "companies", props, created, updated)
        company_ids.append(rec.id)
        domains.append(domain)
        names.append(name)

    contact_ids: list[str] = []
    by_company: dict[int, list[str]] = {}
    email_index = backend.unique.setdefault(("contacts", "email"), {})
    for i in range(n_contacts):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company_idx = i % n_companies if n_companies else None
        domain = domains[company_idx] if company_idx is not None else "example.org"
        local = "".join(
            ch for ch in f"{first}.{last}".lower() if ch.isascii() and (ch.isalnum() or ch == ".")
        )
        email = f"{local}{i}@{domain}"
        created, updated = stamps()
        props = {
            "email": email,
            "firstname": first,
            "lastname": last,
            "jobtitle": rng.choice(_TITLES),
            "phone": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            "lifecyclestage": rng.choice(("lead", "salesqualifiedlead", "opportunity", "customer")),
            "hubspot_owner_id": rng.choice(owners),
            "createdate": iso(created),
        }
        if company_idx is not None:
            props["company"] = names[company_idx]
        rec = _put(backend, "contacts", props, created, updated)
        email_index[email] = rec.id
        contact_ids.append(rec.id)
        if company_idx is not None:
            _link(backend, "contacts", rec.id, "companies", company_ids[company_idx], (279, 1))
            by_company.setdefault(company_idx, []).append(rec.id)

    stages = [s for s, _ in _STAGE_WEIGHTS]
    weights = [w for _, w in _STAGE_WEIGHTS]
    deal_ids: list[str] = []
    for i in range(n_deals):
        company_idx = rng.randrange(n_companies) if n_companies else None
        created, updated = stamps()
        stage = rng.choices(stages, weights)[0]
        close_day = (created // _DAY_MS + rng.randint(14, 180)) * _DAY_MS
        label = names[company_idx] if company_idx is not None else f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}"
        props = {
            "dealname": f"{label} - {rng.choice(_PRODUCTS)}",
            "amount": str(rng.randrange(5_000, 750_000, 500)),
            "pipeline": "default",
            "dealstage": stage,
            "closedate": iso(close_day),
            "dealtype": rng.choice(("newbusiness", "existingbusiness")),
            "hubspot_owner_id": rng.choice(owners),
            "deal_currency_code": "USD",
            "description": f"Opportunity {i + 1}: {rng.choice(_PRODUCTS).lower()} for {label}.",
            "createdate": iso(created),
            **(deal_extra or {}),
        }
        rec = _put(backend, "deals", props, created, updated)
        deal_ids.append(rec.id)
        if company_idx is not None:
            _link(backend, "deals", rec.id, "companies", company_ids[company_idx], (341, 5))
            pool = by_company.get(company_idx) or []
        else:
            pool = []
        if not pool and contact_ids:
            pool = [rng.choice(contact_ids)]
        for cid in rng.sample(pool, min(len(pool), rng.randint(1, 2))):
            _link(backend, "deals", rec.id, "contacts", cid, (3,))

    return {"deals": deal_ids, "contacts": contact_ids, "companies": company_ids, "owners": owners}
