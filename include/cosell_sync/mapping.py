"""Field mapping between Partner Central opportunities and HubSpot deals, companies and contacts.

Reading: :func:`opportunities_to_frame` and :func:`hubspot_to_frame` turn each side's records into
frames of canonical values (one column per mapped field, indexed by opportunity id) for the diff.

Writing: :func:`changes_to_hubspot` builds HubSpot property dicts; :func:`merge_into_opportunity`
builds a full ``UpdateOpportunity`` request from a ``GetOpportunity`` response, because
UpdateOpportunity replaces the whole record ("If any field is omitted, the API assumes that the
field is set to null", docs/api-rules.md); :func:`new_opportunity_request` and
:func:`new_deal_properties` build creations.

A value that cannot be converted never aborts a batch: the frame builders record it in ``_error``
(field and rule, never the value) and list the field in ``_skip_fields`` so the diff treats that field
as unchanged on that side. The plan turns the HubSpot frame's errors into per-record failures
(:func:`conversion_errors`), so a value that can never be written is reported, not silently skipped.
A HubSpot value that was normalised (a phone completed with the default region, a country name turned
into its code) is noted in ``_normalised`` for the audit of the write.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosell_sync.common import COLLABORATORS_PROPERTY
from cosell_sync.config import WRITES_HUBSPOT, WRITES_PARTNER_CENTRAL
from cosell_sync.pc_model import parse_path, pc_shape, shape_at
from cosell_sync.transforms import Converter, TransformError, converters_for

if TYPE_CHECKING:
    from botocore.model import Shape

    from cosell_sync.config import SyncConfig

__all__ = [
    "ERROR_COLUMN",
    "NORMALISED_COLUMN",
    "SKIP_COLUMN",
    "SOLUTIONS_COLUMN",
    "changes_to_hubspot",
    "client_token",
    "conversion_errors",
    "get_path",
    "hubspot_to_frame",
    "merge_into_opportunity",
    "new_deal_properties",
    "new_opportunity_request",
    "normalised_values",
    "opportunities_to_frame",
    "set_path",
]

#: Column with ``"field: reason; ..."`` for records whose values could not all be converted.
ERROR_COLUMN = "_error"
#: Column with comma-separated field names whose value on this side is unknown (conversion error,
#: or the associated HubSpot company/contact is missing): the diff treats them as unchanged.
SKIP_COLUMN = "_skip_fields"
#: Column of HubSpot frames with ``"field: rule; ..."`` for values that were normalised on the way to
#: canonical (see ``Converter.normalisation``); the audit of a write of such a field says so.
NORMALISED_COLUMN = "_normalised"
#: Column of HubSpot frames: the deal's partner solution ids (``;``-separated), as the seller set them.
SOLUTIONS_COLUMN = "_solution_ids"
#: Column of HubSpot frames: the deal's tags text (``tags.property``), for the ``sync_tags`` step.
TAGS_COLUMN = "_tags"
#: Column of HubSpot frames: the deal's owner then its collaborators (owner ids, ';'-separated), the
#: ``OpportunityTeam`` of a create (``cosell_sync.team``).
TEAM_COLUMN = "_team_owner_ids"
#: Column of HubSpot frames: the deal's ``owners.business_title_property`` value (the team's title).
TEAM_TITLE_COLUMN = "_team_title"
#: Column of HubSpot frames: the deal's ``hubspot_owner_id`` (the ``sync_owners`` step reads it here
#: instead of reading the changed deals again).
OWNER_COLUMN = "_owner_id"
#: Column of HubSpot frames: the deal's ``hs_all_collaborator_owner_ids`` as HubSpot holds it.
COLLABORATORS_COLUMN = "_collaborator_ids"

_OBJECTS = ("deal", "company", "contact")


# --- Paths ----------------------------------------------------------------------------------------
def get_path(obj: Mapping[str, Any] | None, path: str) -> Any:
    """The value at a dotted path (``Customer.Contacts[0].Email``), or ``None`` if any step is missing.

    Args:
        obj: a nested dict/list structure.
        path: dotted path with list indexes.

    Returns:
        The value or ``None``.
    """
    value: Any = obj
    for key in parse_path(path):
        if value is None:
            return None
        if isinstance(key, int):
            if not isinstance(value, list) or key >= len(value):
                return None
            value = value[key]
        else:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
    return value


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path, creating dicts and lists (padded with ``{}``) on the way.

    Args:
        obj: the dict to modify in place.
        path: dotted path with list indexes.
        value: the value to store.
    """
    keys = parse_path(path)
    node: Any = obj
    for key, nxt in pairwise(keys):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(key, int):
            while len(node) <= key:
                node.append({} if not isinstance(nxt, int) else [])
            if node[key] is None:
                node[key] = empty
            node = node[key]
        else:
            if node.get(key) is None:
                node[key] = empty
            node = node[key]
    last = keys[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def _delete_path(obj: dict[str, Any], path: str) -> None:
    """Remove the leaf at ``path`` if present (PC reads an omitted member as null)."""
    keys = parse_path(path)
    node: Any = obj
    for key in keys[:-1]:
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                return
            node = node[key]
        else:
            if not isinstance(node, dict) or key not in node:
                return
            node = node[key]
    last = keys[-1]
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = None


# --- Reading ----------------------------------------------------------------------------------------
def _to_utc(values: list[Any]) -> pd.DatetimeIndex:
    """Parse a list of datetimes / ISO strings / epoch-ms strings into tz-aware UTC timestamps."""
    cleaned = [
        pd.Timestamp(int(v), unit="ms", tz="UTC") if isinstance(v, str) and v.isdigit() else v for v in values
    ]
    return pd.DatetimeIndex(pd.to_datetime(cleaned, utc=True, format="ISO8601", errors="coerce"))


def _empty_frame(cfg: SyncConfig, extra: list[str]) -> pd.DataFrame:
    cols = [*cfg.field_names(), *extra]
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    frame.index = pd.Index([], dtype=object, name="opportunity_id")
    frame["_last_modified"] = pd.Series([], dtype="datetime64[ns, UTC]")
    return frame


def _finish(
    ids: list[str], columns: dict[str, list[Any]], modified: list[Any] | pd.DatetimeIndex, cfg: SyncConfig
) -> pd.DataFrame:
    data = {name: np.array(values, dtype=object) for name, values in columns.items()}
    # dtype=object: pandas 3 would otherwise infer its Arrow-backed "str" dtype; canonical columns
    # hold str or None and the contract is object columns.
    frame = pd.DataFrame(data, index=pd.Index(ids, dtype=object, name="opportunity_id"), dtype=object)
    frame["_last_modified"] = modified if isinstance(modified, pd.DatetimeIndex) else _to_utc(modified)
    if frame.index.has_duplicates:
        # The watermark overlap re-reads records; the last occurrence is the freshest.
        frame = frame[~frame.index.duplicated(keep="last")]
    return frame


def opportunities_to_frame(opps: Iterable[Mapping[str, Any]], cfg: SyncConfig) -> pd.DataFrame:
    """Canonical values of Partner Central opportunities, one row per opportunity.

    Args:
        opps: ``GetOpportunity`` responses (or ``ListOpportunities`` summaries; fields they lack are null).
        cfg: the sync configuration.

    Returns:
        A frame indexed by ``opportunity_id`` with one object column per mapped field (canonical
        string or ``None``), ``_last_modified`` (UTC), ``_review_status``,
        ``_partner_opportunity_identifier``, ``_error`` (``"field: reason; ..."``) and
        ``_skip_fields`` (comma-separated names of fields that could not be converted).
    """
    convs = converters_for(cfg)
    names = list(convs)
    # Fields sharing a parent (Customer.Account.Address.*) are read with one walk to the parent:
    # this loop runs once per opportunity, so it is kept tight.
    groups: dict[tuple[str | int, ...], list[tuple[str | int, int, Any]]] = {}
    for j, name in enumerate(names):
        keys = parse_path(cfg.field(name).partner_central)
        groups.setdefault(keys[:-1], []).append((keys[-1], j, convs[name].fast_from_partner_central()))
    plan = list(groups.items())
    ids: list[str] = []
    modified: list[Any] = []
    review: list[Any] = []
    partner_ids: list[Any] = []
    errors: list[str | None] = []
    skips: list[str | None] = []
    columns: list[list[Any]] = [[] for _ in names]
    appenders = [c.append for c in columns]
    for opp in opps:
        ids.append(str(opp.get("Id")))
        modified.append(opp.get("LastModifiedDate"))
        lifecycle = opp.get("LifeCycle")
        review.append(lifecycle.get("ReviewStatus") if lifecycle else None)
        partner_ids.append(opp.get("PartnerOpportunityIdentifier"))
        record_errors: list[Any] | None = None
        for parent_keys, leaves in plan:
            node: Any = opp
            for key in parent_keys:
                if type(key) is int:
                    node = node[key] if type(node) is list and key < len(node) else None
                elif isinstance(node, dict):
                    node = node.get(key)
                else:
                    node = None
                    break
            is_dict = isinstance(node, dict)
            for leaf, j, convert in leaves:
                if type(leaf) is str:
                    value = node.get(leaf) if is_dict else None
                else:
                    value = node[leaf] if type(node) is list and leaf < len(node) else None
                try:
                    appenders[j](convert(value))
                except TransformError as err:
                    appenders[j](None)
                    if record_errors is None:
                        record_errors = []
                    record_errors.append((j, err.message))
        if record_errors is None:
            errors.append(None)
            skips.append(None)
        else:
            record_errors.sort()
            errors.append("; ".join(message for _, message in record_errors))
            skips.append(",".join(names[j] for j, _ in record_errors))
    if not ids:
        return _empty_frame(
            cfg, ["_review_status", "_partner_opportunity_identifier", ERROR_COLUMN, SKIP_COLUMN]
        )
    data = dict(zip(names, columns, strict=True))
    data["_review_status"] = review
    data["_partner_opportunity_identifier"] = partner_ids
    data[ERROR_COLUMN] = errors
    data[SKIP_COLUMN] = skips
    return _finish(ids, data, modified, cfg)


def _hs_modified(obj: Mapping[str, Any] | None) -> Any:
    if not obj:
        return None
    props = obj.get("properties") or {}
    return props.get("hs_lastmodifieddate") or props.get("lastmodifieddate") or obj.get("updatedAt")


def hubspot_to_frame(
    deals: Iterable[Mapping[str, Any]],
    companies: Mapping[str, Mapping[str, Any]],
    contacts: Mapping[str, Mapping[str, Any]],
    deal_company: Mapping[str, str],
    deal_contact: Mapping[str, str],
    cfg: SyncConfig,
) -> pd.DataFrame:
    """Canonical values of linked HubSpot deals with their primary company and contact.

    Deals without the link property are not linked yet and are left out. ``_last_modified`` is the
    latest ``hs_lastmodifieddate`` of the deal and its company and contact, because company and
    contact fields are part of the same co-sell record for last-write-wins.

    Args:
        deals: HubSpot deal objects (``{"id", "properties", "updatedAt"}``).
        companies: company id -> company object.
        contacts: contact id -> contact object.
        deal_company: deal id -> associated company id.
        deal_contact: deal id -> associated contact id.
        cfg: the sync configuration.

    Returns:
        A frame indexed by ``opportunity_id`` with one object column per mapped field, ``_deal_id``,
        ``_last_modified`` (UTC), ``_company_id``, ``_contact_id``, ``_error`` and ``_skip_fields``.
        A field whose company/contact is not associated is listed in ``_skip_fields`` (unknown,
        not cleared).
    """
    convs = converters_for(cfg)
    specs = [
        (name, cfg.field(name).object, cfg.field(name).hubspot, conv.fast_from_hubspot())
        for name, conv in convs.items()
    ]
    # Only converters that may rewrite what the user typed are asked for a note (phone, country).
    noting = {
        name: conv.normalisation
        for name, conv in convs.items()
        if type(conv).normalisation is not Converter.normalisation
    }
    link = cfg.link_property
    ids: list[str] = []
    deal_ids: list[str] = []
    company_ids: list[str | None] = []
    contact_ids: list[str | None] = []
    modified_deal: list[Any] = []
    modified_company: list[Any] = []
    modified_contact: list[Any] = []
    errors: list[str | None] = []
    skips: list[str | None] = []
    notes: list[str | None] = []
    solution_ids: list[str | None] = []
    solutions_prop = cfg.submission.solution_ids_property
    tags: list[str | None] = []
    teams: list[str | None] = []
    team_titles: list[str | None] = []
    owners: list[str | None] = []
    collaborator_ids: list[str | None] = []
    title_prop = cfg.owners.business_title_property
    columns: list[list[Any]] = [[] for _ in specs]
    for deal in deals:
        deal_props = deal.get("properties") or {}
        oid = deal_props.get(link)
        if oid is None or not str(oid).strip():
            continue
        deal_id = str(deal.get("id"))
        company_id = deal_company.get(deal_id)
        contact_id = deal_contact.get(deal_id)
        company = companies.get(company_id) if company_id is not None else None
        contact = contacts.get(contact_id) if contact_id is not None else None
        sources = {
            "deal": deal_props,
            "company": (company.get("properties") or {}) if company else None,
            "contact": (contact.get("properties") or {}) if contact else None,
        }
        ids.append(str(oid).strip())
        deal_ids.append(deal_id)
        solution_ids.append(deal_props.get(solutions_prop) or None)
        tags.append(deal_props.get(cfg.tags.property) or None)
        teams.append(_team_owner_ids(deal_props))
        team_titles.append((deal_props.get(title_prop) or None) if title_prop else None)
        owners.append(str(deal_props.get("hubspot_owner_id") or "").strip() or None)
        collaborator_ids.append(deal_props.get(COLLABORATORS_PROPERTY) or None)
        company_ids.append(company_id if company else None)
        contact_ids.append(contact_id if contact else None)
        modified_deal.append(_hs_modified(deal))
        modified_company.append(_hs_modified(company))
        modified_contact.append(_hs_modified(contact))
        record_errors: list[str] = []
        record_skips: list[str] = []
        record_notes: list[str] = []
        for (name, obj, prop, convert), column in zip(specs, columns, strict=True):
            props = sources[obj]
            if props is None:
                column.append(None)
                record_skips.append(name)
                continue
            raw = props.get(prop)
            try:
                value = convert(raw)
            except TransformError as err:
                column.append(None)
                record_errors.append(err.message)
                record_skips.append(name)
                continue
            column.append(value)
            if value is not None and name in noting:
                note = noting[name](raw)
                if note:
                    record_notes.append(f"{name}: {note}")
        errors.append("; ".join(record_errors) or None)
        skips.append(",".join(record_skips) or None)
        notes.append("; ".join(record_notes) or None)
    extra = [
        "_deal_id",
        "_company_id",
        "_contact_id",
        SOLUTIONS_COLUMN,
        TAGS_COLUMN,
        TEAM_COLUMN,
        TEAM_TITLE_COLUMN,
        OWNER_COLUMN,
        COLLABORATORS_COLUMN,
        ERROR_COLUMN,
        SKIP_COLUMN,
        NORMALISED_COLUMN,
    ]
    if not ids:
        return _empty_frame(cfg, extra)
    data: dict[str, list[Any]] = {
        name: column for (name, _, _, _), column in zip(specs, columns, strict=True)
    }
    data["_deal_id"] = deal_ids
    data["_company_id"] = company_ids
    data["_contact_id"] = contact_ids
    data[SOLUTIONS_COLUMN] = solution_ids
    data[TAGS_COLUMN] = tags
    data[TEAM_COLUMN] = teams
    data[TEAM_TITLE_COLUMN] = team_titles
    data[OWNER_COLUMN] = owners
    data[COLLABORATORS_COLUMN] = collaborator_ids
    data[ERROR_COLUMN] = errors
    data[SKIP_COLUMN] = skips
    data[NORMALISED_COLUMN] = notes
    stamps = pd.DataFrame(
        {
            "deal": _to_utc(modified_deal),
            "company": _to_utc(modified_company),
            "contact": _to_utc(modified_contact),
        }
    )
    return _finish(ids, data, pd.DatetimeIndex(stamps.max(axis=1, skipna=True)), cfg)


def _team_owner_ids(deal_props: Mapping[str, Any]) -> str | None:
    """The deal's owner, then its collaborators (``hs_all_collaborator_owner_ids``), once each."""
    ids = [str(deal_props.get("hubspot_owner_id") or "").strip()]
    ids += str(deal_props.get(COLLABORATORS_PROPERTY) or "").split(";")
    unique = list(dict.fromkeys(i.strip() for i in ids if i and i.strip()))
    return ";".join(unique) or None


def _field_notes(text: Any) -> dict[str, str]:
    """``"field: rule; field: rule"`` (an ``_error``/``_normalised`` cell) as ``{field: rule}``."""
    if not isinstance(text, str) or not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split("; "):
        name, sep, rule = part.partition(": ")
        if sep:
            out.setdefault(name, rule)
    return out


def conversion_errors(frame: pd.DataFrame, cfg: SyncConfig) -> dict[str, dict[str, str]]:
    """Per record, the fields bound for Partner Central whose HubSpot value could not be converted.

    Args:
        frame: a :func:`hubspot_to_frame` frame.
        cfg: the sync configuration (only fields written to Partner Central count: a one-way
            Partner Central field is never written from HubSpot, so its HubSpot value blocks nothing).

    Returns:
        Index label (opportunity id) -> field -> the rule the value broke (never the value).
    """
    if ERROR_COLUMN not in frame.columns or frame.empty:
        return {}
    out: dict[str, dict[str, str]] = {}
    for key, text in frame[ERROR_COLUMN].dropna().items():
        fields = {
            name: rule
            for name, rule in _field_notes(text).items()
            if name in cfg.field_names() and cfg.field(name).direction in WRITES_PARTNER_CENTRAL
        }
        if fields:
            out[str(key)] = fields
    return out


def normalised_values(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per record, the HubSpot values that were normalised on their way to canonical, with the rule.

    Args:
        frame: a :func:`hubspot_to_frame` frame.

    Returns:
        Index label (opportunity id) -> field -> the normalisation applied.
    """
    if NORMALISED_COLUMN not in frame.columns or frame.empty:
        return {}
    return {str(k): _field_notes(v) for k, v in frame[NORMALISED_COLUMN].dropna().items() if v}


# --- Writing: HubSpot ---------------------------------------------------------------------------------
def changes_to_hubspot(changes: Mapping[str, str | None], cfg: SyncConfig) -> dict[str, dict[str, str]]:
    """HubSpot property updates for canonical field changes, grouped by object.

    Args:
        changes: field name -> canonical value (``None`` clears the property).
        cfg: the sync configuration.

    Returns:
        ``{"deal"|"company"|"contact": {property: value}}``; only objects with changes appear.
        ``None`` becomes ``""`` because HubSpot clears a property set to an empty string.

    Raises:
        KeyError: a name is not a field mapping.
        ValueError: the field is never written to HubSpot (direction ``hubspot_to_partner_central``).
        TransformError: the value has no HubSpot form (e.g. an enum value outside the map).
    """
    convs = converters_for(cfg)
    out: dict[str, dict[str, str]] = {}
    for name, value in changes.items():
        field = cfg.field(name)
        if field.direction not in WRITES_HUBSPOT:
            raise ValueError(f"{name}: direction {field.direction!r} never writes HubSpot")
        out.setdefault(field.object, {})[field.hubspot] = convs[name].to_hubspot(value)
    return out


def new_deal_properties(
    opp_canonical: Mapping[str, str | None], opportunity_id: str, cfg: SyncConfig
) -> dict[str, dict[str, str]]:
    """Properties for creating a deal (and its company and contact) from an opportunity.

    Null values are left out (nothing to clear on a new record). The deal gets the link property,
    the pipeline and the co-sell flag so the next run sees it as linked.

    Args:
        opp_canonical: field name -> canonical value (e.g. a row of :func:`opportunities_to_frame`).
        opportunity_id: the PC opportunity id.
        cfg: the sync configuration.

    Returns:
        ``{"deal": {...}, "company": {...}, "contact": {...}}`` (company/contact may be empty).
    """
    convs = converters_for(cfg)
    out: dict[str, dict[str, str]] = {obj: {} for obj in _OBJECTS}
    for field in cfg.fields:
        value = opp_canonical.get(field.name)
        if field.direction not in WRITES_HUBSPOT or value is None or _isna(value):
            continue
        out[field.object][field.hubspot] = convs[field.name].to_hubspot(value)
    out["deal"][cfg.link_property] = opportunity_id
    out["deal"]["pipeline"] = cfg.pipeline
    out["deal"][cfg.cosell_property] = "true"
    return out


def _isna(value: Any) -> bool:
    return value is pd.NA or (isinstance(value, float) and value != value)


# --- Writing: Partner Central ------------------------------------------------------------------------
def _filter_to_shape(value: Any, shape: Shape) -> Any:
    """Keep only what ``shape`` accepts, recursively (drops read-only members like Arn, CreatedDate)."""
    if shape.type_name == "structure":
        if not isinstance(value, Mapping):
            return None
        out = {}
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None or item is None:
                continue
            kept = _filter_to_shape(item, member)
            if kept is not None:
                out[key] = kept
        return out
    if shape.type_name == "list":
        if not isinstance(value, list):
            return None
        return [kept for item in value if (kept := _filter_to_shape(item, shape.member)) is not None]
    return value


def _spend_defaults(cfg: SyncConfig) -> dict[str, str]:
    # ExpectedCustomerSpend requires CurrencyCode, Frequency and TargetCompany (botocore model), which
    # HubSpot's single "amount" does not carry.
    return {
        "CurrencyCode": cfg.defaults.currency_code,
        "Frequency": cfg.defaults.spend_frequency,
        "TargetCompany": cfg.defaults.spend_target_company,
    }


def _complete_required(request: dict[str, Any], cfg: SyncConfig) -> None:
    spend = (request.get("Project") or {}).get("ExpectedCustomerSpend")
    if isinstance(spend, list):
        for i, entry in enumerate(spend):
            if not entry:
                spend[i] = entry = {}
            for key, default in _spend_defaults(cfg).items():
                entry.setdefault(key, default)
    contacts = (request.get("Customer") or {}).get("Contacts")
    if isinstance(contacts, list):
        # A contact padded in by set_path for a higher index would be an empty object; PC rejects
        # neither, but it carries no information, so drop it.
        request["Customer"]["Contacts"] = [c for c in contacts if c]


#: A model pattern that only bounds the length (``(?s).{0,255}``): its rule reads as a length.
_LENGTH_PATTERN = re.compile(r"^\(\?s\)\.\{(\d+),(\d+)\}$")


def _check_against_model(name: str, path: str, value: Any, root: Shape) -> None:
    """Reject a value the PC model would refuse (pattern/length/enum), naming the field and the rule.

    The rule is stated without the value (``project_title: is 300 characters; Partner Central
    Project.Title takes at most 255``): the message is logged and shown on the deal.
    """
    leaf = shape_at(root, path)
    if leaf is None or not isinstance(value, str):
        return
    enum = getattr(leaf, "enum", None)
    if enum and value not in enum:
        raise TransformError(name, value, f"is not one of the Partner Central {leaf.name} values")
    low, high = leaf.metadata.get("min"), leaf.metadata.get("max")
    pattern = leaf.metadata.get("pattern")
    bounds = _LENGTH_PATTERN.match(pattern or "")
    if bounds:
        low, high = int(bounds.group(1)), int(bounds.group(2))
    if (low is not None and len(value) < int(low)) or (high is not None and len(value) > int(high)):
        limits = f"{low or 0} to {high}" if high is not None else f"at least {low}"
        raise TransformError(
            name, value, f"is {len(value)} characters; Partner Central {path} takes {limits} characters"
        )
    if bounds is None and pattern and "\\p{" not in pattern and re.fullmatch(pattern, value) is None:
        raise TransformError(name, value, f"does not match the Partner Central {path} pattern {pattern!r}")


def _apply_changes(
    request: dict[str, Any], changes: Mapping[str, str | None], cfg: SyncConfig, root: Shape
) -> None:
    convs = converters_for(cfg)
    for name, canonical in changes.items():
        field = cfg.field(name)
        if field.direction not in WRITES_PARTNER_CENTRAL:
            raise ValueError(f"{name}: direction {field.direction!r} never writes Partner Central")
        value = convs[name].to_partner_central(None if canonical is None or _isna(canonical) else canonical)
        if value is None:
            _delete_path(request, field.partner_central)
        else:
            _check_against_model(name, field.partner_central, value, root)
            set_path(request, field.partner_central, value)


def merge_into_opportunity(
    current: Mapping[str, Any], changes: Mapping[str, str | None], cfg: SyncConfig
) -> dict[str, Any]:
    """The full ``UpdateOpportunity`` request: the current record with ``changes`` applied.

    UpdateOpportunity replaces the whole record and treats an omitted member as null, and it
    rejects a stale ``LastModifiedDate`` with ``ConflictException`` (docs/api-rules.md). So every
    member the UpdateOpportunity input accepts is carried over from ``current`` (read-only ones such
    as ``Arn``/``CreatedDate``/``Id`` are dropped), ``Identifier``/``Catalog``/``LastModifiedDate``
    come from ``current``, and only then are the changes applied. A change to ``None`` removes the
    member (PC reads an omitted member as null).

    Args:
        current: a ``GetOpportunity`` response (fresh: its LastModifiedDate is the lock).
        changes: field name -> canonical value.
        cfg: the sync configuration.

    Returns:
        The request dict for ``update_opportunity(**request)``.

    Raises:
        TransformError: a changed value cannot be written (names the field); the caller records it
            for this record.
    """
    root = pc_shape("UpdateOpportunity", "input")
    request: dict[str, Any] = _filter_to_shape(current, root) or {}
    request["Identifier"] = current["Id"]
    # The record's own catalog: GetOpportunity always returns it. Never the config's catalog, which
    # may name production while the run works on Sandbox.
    request["Catalog"] = current["Catalog"]
    request["LastModifiedDate"] = current["LastModifiedDate"]
    _apply_changes(request, changes, cfg, root)
    _complete_required(request, cfg)
    return request


def client_token(catalog: str, deal_id: str) -> str:
    """The CreateOpportunity ``ClientToken`` for a HubSpot deal.

    Derived from the deal, never random: a retried or re-run creation reuses the token, and PC
    returns the same opportunity instead of creating a duplicate (docs/api-rules.md). Stays within
    the model's 255 characters by hashing unusually long ids.

    Args:
        catalog: ``AWS`` or ``Sandbox``.
        deal_id: the HubSpot deal id.

    Returns:
        The token.
    """
    token = f"cosell-sync:{catalog}:hubspot-deal:{deal_id}"
    if len(token) > 255:
        token = (
            f"cosell-sync:{catalog}:hubspot-deal-sha256:{hashlib.sha256(str(deal_id).encode()).hexdigest()}"
        )
    return token


def new_opportunity_request(
    deal_canonical: Mapping[str, str | None], deal_id: str, cfg: SyncConfig, catalog: str
) -> dict[str, Any]:
    """A ``CreateOpportunity`` request for a HubSpot deal (with its company and contact values).

    Args:
        deal_canonical: field name -> canonical value (e.g. a row of :func:`hubspot_to_frame`).
        deal_id: the HubSpot deal id; it becomes ``PartnerOpportunityIdentifier`` and keys the
            idempotent ``ClientToken``.
        cfg: the sync configuration (``defaults``).
        catalog: the run's effective catalog (``SyncEnv.catalog``), for ``Catalog`` and the token.

    Returns:
        The request dict for ``create_opportunity(**request)``.

    Raises:
        TransformError: a value cannot be written to PC (names the field).
    """
    d = cfg.defaults
    request: dict[str, Any] = {
        "Catalog": catalog,
        "ClientToken": client_token(catalog, deal_id),
        "PartnerOpportunityIdentifier": str(deal_id),
        "Origin": d.origin,
        "OpportunityType": d.opportunity_type,
        "NationalSecurity": d.national_security,
        "PrimaryNeedsFromAws": list(d.primary_needs_from_aws),
        "Project": {"DeliveryModels": list(d.delivery_models), "SalesActivities": list(d.sales_activities)},
    }
    if d.customer_use_case:
        request["Project"]["CustomerUseCase"] = d.customer_use_case
    changes = {
        f.name: deal_canonical[f.name]
        for f in cfg.fields
        if f.direction in WRITES_PARTNER_CENTRAL
        and deal_canonical.get(f.name) is not None
        and not _isna(deal_canonical.get(f.name))
    }
    _apply_changes(request, changes, cfg, pc_shape("CreateOpportunity", "input"))
    _complete_required(request, cfg)
    return request


def as_timestamp(value: Any) -> pd.Timestamp | None:
    """A PC/HubSpot timestamp (datetime, ISO string or epoch-ms string) as a UTC Timestamp."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return pd.Timestamp(value).tz_convert("UTC") if value.tzinfo else pd.Timestamp(value, tz="UTC")
    stamp = _to_utc([value])[0]
    return None if pd.isna(stamp) else stamp
