"""The shared vocabulary of the sync: sides, directions, HubSpot objects, audit actions, time and values.

Every other module speaks in these names, so a side, a direction or an object's API name is written in
one place only. Nothing here does I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "HUBSPOT_OBJECTS",
    "AuditAction",
    "Direction",
    "HubSpotObject",
    "Side",
    "clean",
    "json_default",
    "parse_ts",
    "ts_key",
]


class Side(StrEnum):
    """One of the two systems (also the watermark and store partition names)."""

    PARTNER_CENTRAL = "partner_central"
    HUBSPOT = "hubspot"


class Direction(StrEnum):
    """Which way a change flows (the ``direction`` run param, field mappings and audit entries)."""

    BOTH = "both"
    TO_HUBSPOT = "partner_central_to_hubspot"
    TO_PARTNER_CENTRAL = "hubspot_to_partner_central"
    #: Audit entries that record a detected conflict rather than a write.
    CONFLICT = "CONFLICT"


class AuditAction(StrEnum):
    """The actions the sync records (``AuditEntry.action`` also accepts other upper-case names)."""

    CREATE_OPPORTUNITY = "CREATE_OPPORTUNITY"
    UPDATE_OPPORTUNITY = "UPDATE_OPPORTUNITY"
    SUBMIT_OPPORTUNITY = "SUBMIT_OPPORTUNITY"
    ASSOCIATE_OPPORTUNITY = "ASSOCIATE_OPPORTUNITY"
    CREATE_DEAL = "CREATE_DEAL"
    UPDATE_DEAL = "UPDATE_DEAL"
    #: A HubSpot contact written from an other contact (``Customer.Contacts[1..]``) edited in Partner Central.
    UPDATE_CONTACT = "UPDATE_CONTACT"
    CONFLICT_DETECTED = "CONFLICT_DETECTED"
    CONFLICT_RESOLVED = "CONFLICT_RESOLVED"
    DEFERRED = "DEFERRED"
    SKIPPED = "SKIPPED"
    ROLLBACK = "ROLLBACK"
    #: ``cosell_reconcile`` held back a record's HubSpot writes because Partner Central rejected its update.
    AUTO_ROLLBACK = "AUTO_ROLLBACK"


@dataclass(frozen=True)
class HubSpotObject:
    """A HubSpot CRM object type as the sync uses it.

    Attributes:
        name: the mapping's object name (``deal``, ``company``, ``contact``).
        plural: the object type in API paths (``deals``).
        type_id: HubSpot's object type id (``0-3``), as the OpenAPI specs name paths.
        baseline_column: the baseline column holding the object's id.
        frame_column: the extract frame column holding the object's id.
        modified_property: the property holding the last modification time.
        to_deal_association: the HUBSPOT_DEFINED association type id from this object to a deal.
    """

    name: str
    plural: str
    type_id: str
    baseline_column: str
    frame_column: str
    modified_property: str
    to_deal_association: int | None = None


DEAL = HubSpotObject("deal", "deals", "0-3", "deal_id", "_deal_id", "hs_lastmodifieddate")
COMPANY = HubSpotObject(
    "company", "companies", "0-2", "company_id", "_company_id", "hs_lastmodifieddate", 342
)
# Contacts carry ``lastmodifieddate``; deals and companies ``hs_lastmodifieddate``.
CONTACT = HubSpotObject("contact", "contacts", "0-1", "contact_id", "_contact_id", "lastmodifieddate", 4)
#: The objects a co-sell record's HubSpot side lives on, by mapping name.
HUBSPOT_OBJECTS: dict[str, HubSpotObject] = {o.name: o for o in (DEAL, COMPANY, CONTACT)}
#: Association type ids (HUBSPOT_DEFINED) for engagements attached to a deal.
NOTE_TO_DEAL = 214
TASK_TO_DEAL = 216
#: Association type id (HUBSPOT_DEFINED) for a task attached to a company.
TASK_TO_COMPANY = 192
#: The deal's collaborators (HubSpot default deal property, owner ids ';'-separated): with the owner,
#: the opportunity team (``cosell_sync.team``, ``cosell_sync.owners``).
COLLABORATORS_PROPERTY = "hs_all_collaborator_owner_ids"


def ts_key(value: Any) -> str | None:
    """A timestamp as an ISO-8601 UTC string with milliseconds (how baselines and plans store them).

    Args:
        value: a datetime, pandas Timestamp or ISO string (``Z`` allowed); None or ``""`` gives None.

    Returns:
        ``2026-01-02T03:04:05.678+00:00`` or None.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_ts(value: str | None) -> datetime | None:
    """Parse an ISO timestamp (``Z`` allowed; no offset means UTC) to an aware UTC datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def clean(value: Any) -> str | None:
    """A stored value as the canonical string, or None for every kind of missing (None, NaN, NaT, NA)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def json_default(value: Any) -> Any:
    """``json.dumps`` default: datetimes as :func:`ts_key` strings."""
    if isinstance(value, datetime):
        return ts_key(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
