"""Static HubSpot account data: object types, default properties, association types, default pipeline, owners.

Everything here mirrors what a fresh HubSpot portal serves without any setup. Sources: HubSpot developer docs
"CRM objects" (object type ids), "Associations v4" (association type ids), "Pipelines" (the default sales
pipeline and its stage ids), and the properties a portal lists under ``/crm/v3/properties/{objectType}``.
Custom ``aws_*`` properties are deliberately absent: the product's setup DAG creates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ObjectType:
    """A CRM object type HubSpot serves under ``/crm/v3/objects/{name}`` and ``/crm/v3/objects/{type_id}``.

    Attributes:
        name: plural API name (``deals``).
        type_id: HubSpot object type id (``0-3``).
        singular: singular name used in association type names and webhooks (``deal``).
        created_prop: the property holding the creation timestamp.
        modified_prop: the property holding the last-modified timestamp (``lastmodifieddate`` on contacts).
        default_props: properties returned when a request names none.
        query_props: properties the search ``query`` string matches.
    """

    name: str
    type_id: str
    singular: str
    created_prop: str
    modified_prop: str
    default_props: tuple[str, ...]
    query_props: tuple[str, ...]
    aliases: tuple[str, ...] = field(default=())


OBJECT_TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType(
            "contacts",
            "0-1",
            "contact",
            "createdate",
            "lastmodifieddate",
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            ("firstname", "lastname", "email", "phone", "mobilephone", "company"),
        ),
        ObjectType(
            "companies",
            "0-2",
            "company",
            "createdate",
            "hs_lastmodifieddate",
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
            ("name", "domain", "website", "phone"),
        ),
        ObjectType(
            "deals",
            "0-3",
            "deal",
            "createdate",
            "hs_lastmodifieddate",
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
            ("dealname", "pipeline", "dealstage", "description", "dealtype"),
        ),
        ObjectType(
            "notes",
            "0-46",
            "note",
            "hs_createdate",
            "hs_lastmodifieddate",
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            ("hs_note_body",),
        ),
        ObjectType(
            "tasks",
            "0-27",
            "task",
            "hs_createdate",
            "hs_lastmodifieddate",
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            ("hs_task_subject", "hs_task_body"),
        ),
        ObjectType(
            "products",
            "0-7",
            "product",
            "createdate",
            "hs_lastmodifieddate",
            ("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name", "price"),
            ("name", "description", "hs_sku"),
        ),
        ObjectType(
            "line_items",
            "0-8",
            "line_item",
            "createdate",
            "hs_lastmodifieddate",
            ("amount", "createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"),
            ("name", "description"),
        ),
    )
}

_ALIASES: dict[str, str] = {}
for _t in OBJECT_TYPES.values():
    for _alias in (_t.name, _t.type_id, _t.singular):
        _ALIASES[_alias.lower()] = _t.name
_ALIASES["lineitems"] = "line_items"
_ALIASES["line_item"] = "line_items"
_ALIASES["lineitem"] = "line_items"


def object_type_name(value: str) -> str | None:
    """Canonical plural name for a name, singular name or type id (``0-3`` -> ``deals``), else None."""
    return _ALIASES.get(value.lower())


# Read-only system properties HubSpot computes; writing them is rejected (READ_ONLY_VALUE).
READ_ONLY = {
    "hs_object_id",
    "hs_lastmodifieddate",
    "lastmodifieddate",
    "hs_createdate",
    "num_associated_contacts",
}

# --- HubSpot's company "industry" enumeration (values as HubSpot stores them). ---
INDUSTRIES = (
    "ACCOUNTING",
    "AIRLINES_AVIATION",
    "ALTERNATIVE_DISPUTE_RESOLUTION",
    "ALTERNATIVE_MEDICINE",
    "ANIMATION",
    "APPAREL_FASHION",
    "ARCHITECTURE_PLANNING",
    "ARTS_AND_CRAFTS",
    "AUTOMOTIVE",
    "AVIATION_AEROSPACE",
    "BANKING",
    "BIOTECHNOLOGY",
    "BROADCAST_MEDIA",
    "BUILDING_MATERIALS",
    "BUSINESS_SUPPLIES_AND_EQUIPMENT",
    "CAPITAL_MARKETS",
    "CHEMICALS",
    "CIVIC_SOCIAL_ORGANIZATION",
    "CIVIL_ENGINEERING",
    "COMMERCIAL_REAL_ESTATE",
    "COMPUTER_NETWORK_SECURITY",
    "COMPUTER_GAMES",
    "COMPUTER_HARDWARE",
    "COMPUTER_NETWORKING",
    "COMPUTER_SOFTWARE",
    "INTERNET",
    "CONSTRUCTION",
    "CONSUMER_ELECTRONICS",
    "CONSUMER_GOODS",
    "CONSUMER_SERVICES",
    "COSMETICS",
    "DAIRY",
    "DEFENSE_SPACE",
    "DESIGN",
    "EDUCATION_MANAGEMENT",
    "E_LEARNING",
    "ELECTRICAL_ELECTRONIC_MANUFACTURING",
    "ENTERTAINMENT",
    "ENVIRONMENTAL_SERVICES",
    "EVENTS_SERVICES",
    "EXECUTIVE_OFFICE",
    "FACILITIES_SERVICES",
    "FARMING",
    "FINANCIAL_SERVICES",
    "FINE_ART",
    "FISHERY",
    "FOOD_BEVERAGES",
    "FOOD_PRODUCTION",
    "FUND_RAISING",
    "FURNITURE",
    "GAMBLING_CASINOS",
    "GLASS_CERAMICS_CONCRETE",
    "GOVERNMENT_ADMINISTRATION",
    "GOVERNMENT_RELATIONS",
    "GRAPHIC_DESIGN",
    "HEALTH_WELLNESS_AND_FITNESS",
    "HIGHER_EDUCATION",
    "HOSPITAL_HEALTH_CARE",
    "HOSPITALITY",
    "HUMAN_RESOURCES",
    "IMPORT_AND_EXPORT",
    "INDIVIDUAL_FAMILY_SERVICES",
    "INDUSTRIAL_AUTOMATION",
    "INFORMATION_SERVICES",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "INSURANCE",
    "INTERNATIONAL_AFFAIRS",
    "INTERNATIONAL_TRADE_AND_DEVELOPMENT",
    "INVESTMENT_BANKING",
    "INVESTMENT_MANAGEMENT",
    "JUDICIARY",
    "LAW_ENFORCEMENT",
    "LAW_PRACTICE",
    "LEGAL_SERVICES",
    "LEGISLATIVE_OFFICE",
    "LEISURE_TRAVEL_TOURISM",
    "LIBRARIES",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "LUXURY_GOODS_JEWELRY",
    "MACHINERY",
    "MANAGEMENT_CONSULTING",
    "MARITIME",
    "MARKET_RESEARCH",
    "MARKETING_AND_ADVERTISING",
    "MECHANICAL_OR_INDUSTRIAL_ENGINEERING",
    "MEDIA_PRODUCTION",
    "MEDICAL_DEVICES",
    "MEDICAL_PRACTICE",
    "MENTAL_HEALTH_CARE",
    "MILITARY",
    "MINING_METALS",
    "MOTION_PICTURES_AND_FILM",
    "MUSEUMS_AND_INSTITUTIONS",
    "MUSIC",
    "NANOTECHNOLOGY",
    "NEWSPAPERS",
    "NON_PROFIT_ORGANIZATION_MANAGEMENT",
    "OIL_ENERGY",
    "ONLINE_MEDIA",
    "OUTSOURCING_OFFSHORING",
    "PACKAGE_FREIGHT_DELIVERY",
    "PACKAGING_AND_CONTAINERS",
    "PAPER_FOREST_PRODUCTS",
    "PERFORMING_ARTS",
    "PHARMACEUTICALS",
    "PHILANTHROPY",
    "PHOTOGRAPHY",
    "PLASTICS",
    "POLITICAL_ORGANIZATION",
    "PRIMARY_SECONDARY_EDUCATION",
    "PRINTING",
    "PROFESSIONAL_TRAINING_COACHING",
    "PROGRAM_DEVELOPMENT",
    "PUBLIC_POLICY",
    "PUBLIC_RELATIONS_AND_COMMUNICATIONS",
    "PUBLIC_SAFETY",
    "PUBLISHING",
    "RAILROAD_MANUFACTURE",
    "RANCHING",
    "REAL_ESTATE",
    "RECREATIONAL_FACILITIES_AND_SERVICES",
    "RELIGIOUS_INSTITUTIONS",
    "RENEWABLES_ENVIRONMENT",
    "RESEARCH",
    "RESTAURANTS",
    "RETAIL",
    "SECURITY_AND_INVESTIGATIONS",
    "SEMICONDUCTORS",
    "SHIPBUILDING",
    "SPORTING_GOODS",
    "SPORTS",
    "STAFFING_AND_RECRUITING",
    "SUPERMARKETS",
    "TELECOMMUNICATIONS",
    "TEXTILES",
    "THINK_TANKS",
    "TOBACCO",
    "TRANSLATION_AND_LOCALIZATION",
    "TRANSPORTATION_TRUCKING_RAILROAD",
    "UTILITIES",
    "VENTURE_CAPITAL_PRIVATE_EQUITY",
    "VETERINARY",
    "WAREHOUSING",
    "WHOLESALE",
    "WINE_AND_SPIRITS",
    "WIRELESS",
    "WRITING_AND_EDITING",
    "MOBILE_GAMES",
)

LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)


def _label(value: str) -> str:
    return value.replace("_", " ").title()


def _options(values: tuple[str, ...], labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "label": (labels or {}).get(v, _label(v)),
            "value": v,
            "displayOrder": i,
            "hidden": False,
            "description": "",
        }
        for i, v in enumerate(values)
    ]


# (name, label, type, fieldType, group, extra) per object type.
_S, _N, _D, _DT, _E, _B = "string", "number", "date", "datetime", "enumeration", "bool"


def _defs() -> dict[str, list[tuple[str, str, str, str, str, dict[str, Any]]]]:
    owner = (
        "hubspot_owner_id",
        "Owner",
        _E,
        "select",
        "",
        {"externalOptions": True, "referencedObjectType": "OWNER"},
    )
    contact_info = "contactinformation"
    company_info = "companyinformation"
    deal_info = "dealinformation"
    return {
        "contacts": [
            ("email", "Email", _S, "text", contact_info, {"hasUniqueValue": True}),
            ("firstname", "First Name", _S, "text", contact_info, {}),
            ("lastname", "Last Name", _S, "text", contact_info, {}),
            ("phone", "Phone Number", _S, "phonenumber", contact_info, {}),
            ("mobilephone", "Mobile Phone Number", _S, "phonenumber", contact_info, {}),
            ("jobtitle", "Job Title", _S, "text", contact_info, {}),
            ("company", "Company Name", _S, "text", contact_info, {}),
            ("website", "Website URL", _S, "text", contact_info, {}),
            ("address", "Street Address", _S, "text", contact_info, {}),
            ("city", "City", _S, "text", contact_info, {}),
            ("state", "State/Region", _S, "text", contact_info, {}),
            ("zip", "Postal Code", _S, "text", contact_info, {}),
            ("country", "Country/Region", _S, "text", contact_info, {}),
            (
                "lifecyclestage",
                "Lifecycle Stage",
                _E,
                "radio",
                contact_info,
                {"options": _options(LIFECYCLE_STAGES)},
            ),
            (owner[0], "Contact owner", owner[2], owner[3], contact_info, owner[5]),
            ("createdate", "Create Date", _DT, "date", contact_info, {}),
            ("lastmodifieddate", "Last Modified Date", _DT, "date", contact_info, {"readOnly": True}),
            ("hs_object_id", "Record ID", _N, "number", contact_info, {"readOnly": True}),
        ],
        "companies": [
            ("name", "Company name", _S, "text", company_info, {}),
            ("domain", "Company Domain Name", _S, "text", company_info, {}),
            ("website", "Website URL", _S, "text", company_info, {}),
            ("phone", "Phone Number", _S, "phonenumber", company_info, {}),
            ("address", "Street Address", _S, "text", company_info, {}),
            ("address2", "Street Address 2", _S, "text", company_info, {}),
            ("city", "City", _S, "text", company_info, {}),
            ("state", "State/Region", _S, "text", company_info, {}),
            ("zip", "Postal Code", _S, "text", company_info, {}),
            ("country", "Country/Region", _S, "text", company_info, {}),
            ("industry", "Industry", _E, "select", company_info, {"options": _options(INDUSTRIES)}),
            ("description", "Description", _S, "textarea", company_info, {}),
            ("numberofemployees", "Number of Employees", _N, "number", company_info, {}),
            ("annualrevenue", "Annual Revenue", _N, "number", company_info, {}),
            (
                "lifecyclestage",
                "Lifecycle Stage",
                _E,
                "radio",
                company_info,
                {"options": _options(LIFECYCLE_STAGES)},
            ),
            (owner[0], "Company owner", owner[2], owner[3], company_info, owner[5]),
            ("createdate", "Create Date", _DT, "date", company_info, {}),
            ("hs_lastmodifieddate", "Last Modified Date", _DT, "date", company_info, {"readOnly": True}),
            ("hs_object_id", "Record ID", _N, "number", company_info, {"readOnly": True}),
        ],
        "deals": [
            ("dealname", "Deal Name", _S, "text", deal_info, {}),
            ("amount", "Amount", _N, "number", deal_info, {"numberDisplayHint": "currency"}),
            ("dealstage", "Deal Stage", _E, "radio", deal_info, {"dynamic": "dealstage"}),
            ("pipeline", "Pipeline", _E, "select", deal_info, {"dynamic": "pipeline"}),
            ("closedate", "Close Date", _DT, "date", deal_info, {}),
            (
                "dealtype",
                "Deal Type",
                _E,
                "radio",
                deal_info,
                {
                    "options": _options(
                        ("newbusiness", "existingbusiness"),
                        {"newbusiness": "New Business", "existingbusiness": "Existing Business"},
                    )
                },
            ),
            ("description", "Deal Description", _S, "textarea", deal_info, {}),
            # Default deal properties in every HubSpot portal ("Closed Lost Reason", "Closed Won Reason").
            ("closed_lost_reason", "Closed Lost Reason", _S, "textarea", deal_info, {}),
            ("closed_won_reason", "Closed Won Reason", _S, "textarea", deal_info, {}),
            (
                "deal_currency_code",
                "Currency",
                _E,
                "select",
                deal_info,
                {"options": _options(("USD", "EUR", "GBP", "JPY", "AUD", "CAD", "INR", "BRL"))},
            ),
            (
                "hs_priority",
                "Priority",
                _E,
                "select",
                deal_info,
                {"options": _options(("low", "medium", "high"))},
            ),
            ("hs_next_step", "Next step", _S, "textarea", deal_info, {}),
            (owner[0], "Deal owner", owner[2], owner[3], deal_info, owner[5]),
            # Default in every portal: the deal's collaborators, owner ids ';'-separated (multi-select).
            (
                "hs_all_collaborator_owner_ids",
                "Deal Collaborator",
                _E,
                "checkbox",
                deal_info,
                owner[5],
            ),
            ("createdate", "Create Date", _DT, "date", deal_info, {}),
            ("hs_lastmodifieddate", "Last Modified Date", _DT, "date", deal_info, {"readOnly": True}),
            ("hs_object_id", "Record ID", _N, "number", deal_info, {"readOnly": True}),
            # Calculated by HubSpot from the deal's contact associations (models.associations).
            (
                "num_associated_contacts",
                "Number of Associated Contacts",
                _N,
                "number",
                deal_info,
                {"readOnly": True, "calculated": True},
            ),
        ],
        "notes": [
            ("hs_note_body", "Note body", _S, "html", "engagement", {}),
            ("hs_timestamp", "Activity date", _DT, "date", "engagement", {}),
            (owner[0], "Activity assigned to", owner[2], owner[3], "engagement", owner[5]),
            (
                "hs_attachment_ids",
                "Attached file IDs",
                _E,
                "checkbox",
                "engagement",
                {"externalOptions": True},
            ),
            ("hs_createdate", "Created at", _DT, "date", "engagement", {"readOnly": True}),
            ("hs_lastmodifieddate", "Last Modified Date", _DT, "date", "engagement", {"readOnly": True}),
            ("hs_object_id", "Record ID", _N, "number", "engagement", {"readOnly": True}),
        ],
        "tasks": [
            ("hs_task_subject", "Task Title", _S, "text", "task", {}),
            ("hs_task_body", "Notes", _S, "html", "task", {}),
            (
                "hs_task_status",
                "Task Status",
                _E,
                "select",
                "task",
                {"options": _options(("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"))},
            ),
            (
                "hs_task_priority",
                "Priority",
                _E,
                "select",
                "task",
                {"options": _options(("NONE", "LOW", "MEDIUM", "HIGH"))},
            ),
            (
                "hs_task_type",
                "Task Type",
                _E,
                "select",
                "task",
                {"options": _options(("CALL", "EMAIL", "TODO", "LINKED_IN"))},
            ),
            ("hs_timestamp", "Due date", _DT, "date", "task", {}),
            (owner[0], "Assigned to", owner[2], owner[3], "task", owner[5]),
            ("hs_createdate", "Created at", _DT, "date", "task", {"readOnly": True}),
            ("hs_lastmodifieddate", "Last Modified Date", _DT, "date", "task", {"readOnly": True}),
            ("hs_object_id", "Record ID", _N, "number", "task", {"readOnly": True}),
        ],
        "products": [
            ("name", "Name", _S, "text", "productinformation", {}),
            ("description", "Description", _S, "textarea", "productinformation", {}),
            ("price", "Unit price", _N, "number", "productinformation", {}),
            ("hs_sku", "SKU", _S, "text", "productinformation", {}),
            ("hs_cost_of_goods_sold", "Unit cost", _N, "number", "productinformation", {}),
            (
                "recurringbillingfrequency",
                "Billing frequency",
                _E,
                "select",
                "productinformation",
                {"options": _options(("monthly", "quarterly", "annually"))},
            ),
            ("createdate", "Create Date", _DT, "date", "productinformation", {}),
            (
                "hs_lastmodifieddate",
                "Last Modified Date",
                _DT,
                "date",
                "productinformation",
                {"readOnly": True},
            ),
            ("hs_object_id", "Record ID", _N, "number", "productinformation", {"readOnly": True}),
        ],
        "line_items": [
            ("name", "Name", _S, "text", "lineiteminformation", {}),
            ("description", "Description", _S, "textarea", "lineiteminformation", {}),
            ("price", "Unit price", _N, "number", "lineiteminformation", {}),
            ("quantity", "Quantity", _N, "number", "lineiteminformation", {}),
            ("amount", "Net price", _N, "number", "lineiteminformation", {}),
            ("hs_product_id", "Product ID", _N, "number", "lineiteminformation", {}),
            ("hs_sku", "SKU", _S, "text", "lineiteminformation", {}),
            ("createdate", "Create Date", _DT, "date", "lineiteminformation", {}),
            (
                "hs_lastmodifieddate",
                "Last Modified Date",
                _DT,
                "date",
                "lineiteminformation",
                {"readOnly": True},
            ),
            ("hs_object_id", "Record ID", _N, "number", "lineiteminformation", {"readOnly": True}),
        ],
    }


DEFAULT_GROUPS: dict[str, list[tuple[str, str]]] = {
    "contacts": [("contactinformation", "Contact information"), ("contact_activity", "Contact activity")],
    "companies": [("companyinformation", "Company information"), ("company_activity", "Company activity")],
    "deals": [("dealinformation", "Deal information"), ("deal_activity", "Deal activity")],
    "notes": [("engagement", "Engagement")],
    "tasks": [("task", "Task information"), ("engagement", "Engagement")],
    "products": [("productinformation", "Product information")],
    "line_items": [("lineiteminformation", "Line item information")],
}


def default_properties(created_at: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Fresh property definitions (the ``Property`` schema) per object type, keyed by property name."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for obj, defs in _defs().items():
        props: dict[str, dict[str, Any]] = {}
        for order, (name, label, type_, field_type, group, extra) in enumerate(defs):
            extra = dict(extra)
            read_only = bool(extra.pop("readOnly", False))
            dynamic = extra.pop("dynamic", None)
            prop = {
                "name": name,
                "label": label,
                "type": type_,
                "fieldType": field_type,
                "description": "",
                "groupName": group,
                "options": extra.pop("options", []),
                "displayOrder": order,
                "calculated": False,
                "externalOptions": bool(extra.pop("externalOptions", False)),
                "hasUniqueValue": bool(extra.pop("hasUniqueValue", False)),
                "hidden": False,
                "hubspotDefined": True,
                "formField": obj in ("contacts", "companies") and not read_only,
                "createdAt": created_at,
                "updatedAt": created_at,
                "archived": False,
                "modificationMetadata": {
                    "archivable": False,
                    "readOnlyDefinition": True,
                    "readOnlyValue": read_only,
                    "readOnlyOptions": dynamic is None,
                },
            }
            prop.update(extra)
            if dynamic:
                prop["_dynamic"] = dynamic
            props[name] = prop
        out[obj] = props
    return out


@dataclass(frozen=True)
class AssociationType:
    """A HUBSPOT_DEFINED association type between two object types (HubSpot docs, "Association type IDs")."""

    from_type: str
    to_type: str
    type_id: int
    inverse_id: int
    label: str | None
    category: str = "HUBSPOT_DEFINED"


_ASSOC_ROWS = (
    ("contacts", "companies", 279, 280, None),
    ("contacts", "companies", 1, 2, "Primary"),
    ("deals", "contacts", 3, 4, None),
    ("deals", "companies", 341, 342, None),
    ("deals", "companies", 5, 6, "Primary"),
    ("notes", "contacts", 202, 201, None),
    ("notes", "companies", 190, 189, None),
    ("notes", "deals", 214, 213, None),
    ("tasks", "contacts", 204, 203, None),
    ("tasks", "companies", 192, 191, None),
    ("tasks", "deals", 216, 215, None),
    ("line_items", "deals", 20, 19, None),
)


def association_types() -> list[AssociationType]:
    """All HubSpot-defined association types, both directions."""
    out: list[AssociationType] = []
    for a, b, t, inv, label in _ASSOC_ROWS:
        out.append(AssociationType(a, b, t, inv, label))
        out.append(AssociationType(b, a, inv, t, label))
    return out


# HubSpot's default deal pipeline: id "default", label "Sales Pipeline", with its standard stage ids.
DEFAULT_DEAL_STAGES = (
    ("appointmentscheduled", "Appointment Scheduled", "0.2", False),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
    ("presentationscheduled", "Presentation Scheduled", "0.6", False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
    ("contractsent", "Contract Sent", "0.9", False),
    ("closedwon", "Closed Won", "1.0", True),
    ("closedlost", "Closed Lost", "0.0", True),
)

DEFAULT_OWNERS = (
    ("75480756", 10153601, "Alex", "Rivera", "alex.rivera@example.com"),
    ("75480757", 10153602, "Priya", "Natarajan", "priya.natarajan@example.com"),
    ("75480758", 10153603, "Jordan", "Kim", "jordan.kim@example.com"),
    ("75480759", 10153604, "Sofia", "Marchetti", "sofia.marchetti@example.com"),
    ("75480760", 10153605, "Daniel", "Okafor", "daniel.okafor@example.com"),
)
