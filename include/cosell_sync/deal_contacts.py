"""A deal's contacts in ``Customer.Contacts``: the primary contact first, then the others.

The mapped ``contact_*`` fields (``sync_config.yaml``) are ``Customer.Contacts[0]``: the deal's
*primary* contact, diffed both ways like any field. This module chooses that contact and builds the
*other* contacts, ``Customer.Contacts[1..]``: which contacts a record has follows the deal (HubSpot to
Partner Central), and edits of their details come back (see the end of this doc):

- **Order.** The primary is the deal -> contact association carrying ``deal_contacts.primary_label``
  (HubSpot defines no primary label between deals and contacts, so this is a label the portal creates,
  ``Primary`` by default; matched on the label text, any category). Without one, the *oldest
  association* stands in as primary, approximated by the **lowest contact id**: HubSpot ids grow with
  creation time, and the v4 associations batch read returns neither the association's creation time nor
  a stable order. The other contacts follow in the same order (lowest id first).
- **Values.** Each other contact gets the same transforms and model checks as the primary's fields
  (e-mail, names, phone, business title). A contact without a valid e-mail is left out with a per-deal
  warning naming the field and the rule, never the value; so is a contact repeating an e-mail already
  sent. Another invalid member is left out of that contact, with a warning.
- **Limit.** The Partner Central model sets no maximum for ``Customer.Contacts``; the request carries
  at most ``deal_contacts.max_contacts`` contacts (the primary included), so one deal with hundreds of
  associated contacts cannot make an oversized request.

**Linked deals.** An existing opportunity's other contacts follow its deal too. The extract reads a
linked deal's associations again only when they can have changed: its ``num_associated_contacts``
(HubSpot's calculated count, read with the deal) differs from the baseline's ``contact_count``, or one of
its other contacts (the baseline's ``other_contact_ids``) changed. The update then carries them
(``PartnerCentralWriter.update(other_contacts=...)``), and only when they differ from Partner Central's.
Partner Central's own other contacts (AWS's, a console user's) are kept after the deal's: only contacts the
sync sent before and the deal no longer has are removed (:func:`merge_other_contacts`, the baseline's
``other_contact_emails``).

**Partner Central's edits come back.** The baseline's ``other_contacts_agreed`` holds, per e-mail, the
members both sides last agreed on (what the sync sent, or wrote back). When a console user or AWS edits
one of those contacts (a name, a phone, a title: the e-mail is how Partner Central tells contacts apart,
so it is the key, not a value that comes back), the change is found with the same three-way rule as
deal fields (:func:`partner_central_contact_changes`): changed in Partner Central only, it is written to
the HubSpot contact (found by its e-mail, one batch read); changed on both sides to different values, it
is a conflict, decided by the field's strategy (``partner_central_wins`` takes Partner Central's value;
the others keep HubSpot's, which the next update sends). Contacts Partner Central added itself stay
Partner Central's: they have no HubSpot contact to write to.

Nothing here calls an API: the extract reads the associations (one v4 batch read per 100 deals, the
call it already made for the primary) and the contacts (batch reads, 100 per call).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cosell_sync.config import WRITES_PARTNER_CENTRAL
from cosell_sync.mapping import _check_against_model  # the primary's model check: same rules for all
from cosell_sync.pc_model import parse_path, pc_shape
from cosell_sync.transforms import TransformError, converters_for

if TYPE_CHECKING:
    from cosell_sync.config import FieldMapping, SyncConfig

__all__ = [
    "AGREED_COLUMN",
    "CONTACT_COUNT_COLUMN",
    "NUM_ASSOCIATED_CONTACTS",
    "OTHER_CONTACTS_COLUMN",
    "OTHER_CONTACT_IDS_COLUMN",
    "PC_OTHER_CONTACTS_COLUMN",
    "AssociatedContact",
    "ContactChanges",
    "OtherContacts",
    "agreed_of",
    "contact_members",
    "emails_of",
    "member_of_field",
    "merge_other_contacts",
    "order_contacts",
    "other_contacts_of",
    "other_contacts_request",
    "others_key",
    "partner_central_contact_changes",
    "with_other_contacts",
]

#: Column of HubSpot frames: the deal's other contacts (``Customer.Contacts[1..]``, ready for the
#: request), as a JSON list, in order. New deals always; linked deals only where they were read this run
#: (empty elsewhere: the opportunity keeps the ones it has).
OTHER_CONTACTS_COLUMN = "_other_contacts"
#: Column of linked HubSpot frames: the ids of the other contacts read this run, ``;``-separated, in order
#: (the baseline's ``other_contact_ids``: a later change of one of them finds its deal without a call).
OTHER_CONTACT_IDS_COLUMN = "_other_contact_ids"
#: Column of Partner Central frames: the opportunity's ``Customer.Contacts[1..]`` as read (JSON list,
#: the mapped members only; None when it has no other contact).
PC_OTHER_CONTACTS_COLUMN = "_pc_other_contacts"
#: Baseline column: e-mail (case-folded) -> the other contact's members both sides last agreed on (JSON).
AGREED_COLUMN = "other_contacts_agreed"
#: Column of HubSpot frames: the deal's ``num_associated_contacts`` (the baseline's ``contact_count``).
CONTACT_COUNT_COLUMN = "_contact_count"
#: HubSpot's calculated deal property counting its contacts: an association added or removed changes it
#: and modifies the deal, so a changed count is when a linked deal's contacts are read again.
NUM_ASSOCIATED_CONTACTS = "num_associated_contacts"

_CONTACTS_PATH = ("Customer", "Contacts")


@dataclass(frozen=True)
class AssociatedContact:
    """One deal -> contact association as the v4 batch read returns it.

    Attributes:
        contact_id: the contact's id.
        labels: the labels of its association types (unlabelled types have none).
    """

    contact_id: str
    labels: tuple[str, ...] = ()


@dataclass
class OtherContacts:
    """The other contacts of one deal, ready for the request, and why some were left out.

    Attributes:
        contacts: ``Customer.Contacts`` entries (``Email``, ``FirstName``...), in order.
        warnings: ``"contact 2: contact_email: is empty; ..."`` (position, field and rule; no value).
    """

    contacts: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _id_key(contact_id: str) -> tuple[int, int | str]:
    # HubSpot ids are numeric; a non-numeric one (never seen) sorts after them, by text.
    return (0, int(contact_id)) if contact_id.isdigit() else (1, contact_id)


def order_contacts(associated: Iterable[AssociatedContact], primary_label: str | None) -> list[str]:
    """The deal's contact ids, primary first (see the module doc for the rule).

    Args:
        associated: the deal's contact associations (one entry per contact; repeats are merged).
        primary_label: the association label naming the primary contact (compared case-insensitively);
            None or empty: the lowest id is the primary.

    Returns:
        Contact ids: the labelled primary (the lowest id if several carry the label), then the others by
        ascending id.
    """
    labels: dict[str, set[str]] = {}
    for item in associated:
        labels.setdefault(str(item.contact_id), set()).update(lbl.casefold() for lbl in item.labels if lbl)
    ids = sorted(labels, key=_id_key)
    wanted = (primary_label or "").casefold()
    primary = next((i for i in ids if wanted and wanted in labels[i]), None)
    if primary is None:
        return ids
    return [primary, *(i for i in ids if i != primary)]


def contact_members(cfg: SyncConfig) -> dict[str, FieldMapping]:
    """The mapped fields of ``Customer.Contacts[0]`` written to Partner Central, by contact member.

    Returns:
        Member (``Email``, ``FirstName``...) -> its field mapping; only ``contact`` fields whose path is
        ``Customer.Contacts[0].<member>`` and whose direction writes Partner Central.
    """
    out: dict[str, FieldMapping] = {}
    for f in cfg.fields:
        keys = parse_path(f.partner_central)
        if (
            f.object == "contact"
            and f.direction in WRITES_PARTNER_CENTRAL
            and len(keys) == 4
            and tuple(keys[:2]) == _CONTACTS_PATH
            and keys[2] == 0
            and isinstance(keys[3], str)
        ):
            out[keys[3]] = f
    return out


def member_of_field(cfg: SyncConfig) -> dict[str, str]:
    """Mapping name -> its ``Customer.Contacts`` member (``contact_job_title`` -> ``BusinessTitle``)."""
    return {f.name: m for m, f in contact_members(cfg).items()}


def other_contacts_request(
    contacts: Iterable[Mapping[str, Any]],
    cfg: SyncConfig,
    *,
    primary_email: str | None = None,
) -> OtherContacts:
    """``Customer.Contacts[1..]`` for a deal's other contacts (HubSpot objects, in order).

    Args:
        contacts: HubSpot contact objects (``{"id", "properties"}``), the primary excluded, in order.
        cfg: the sync configuration (the ``contact_*`` mappings and ``deal_contacts.max_contacts``).
        primary_email: the primary contact's canonical e-mail: an other contact with the same e-mail
            is the same person in Partner Central's eyes, so it is left out.

    Returns:
        The contacts to send (at most ``max_contacts - 1``) and the warnings for those left out.
    """
    members = contact_members(cfg)
    convs = converters_for(cfg)
    root = pc_shape("UpdateOpportunity", "input")
    email_field = members.get("Email")
    out = OtherContacts()
    seen = {primary_email.casefold()} if primary_email else set()
    limit = max(cfg.deal_contacts.max_contacts - 1, 0)
    for position, contact in enumerate(contacts, start=2):
        props = contact.get("properties") or {}
        entry: dict[str, str] = {}
        problems: list[str] = []
        for member, f in members.items():
            conv = convs[f.name]
            try:
                canonical = conv.from_hubspot(props.get(f.hubspot))
                value = conv.to_partner_central(canonical)
                if value is not None:
                    _check_against_model(f.name, f.partner_central, value, root)
            except TransformError as err:
                problems.append(err.message)
                if f is email_field:
                    break
                continue
            if value is not None:
                entry[member] = value
        if email_field is not None and "Email" not in entry:
            # Partner Central tells contacts apart by e-mail; one without is not sent.
            rule = problems[-1] if problems else f"{email_field.name}: is empty"
            out.warnings.append(f"contact {position}: {rule}; contact left out")
            continue
        if email_field is not None and entry["Email"].casefold() in seen:
            out.warnings.append(
                f"contact {position}: {email_field.name}: repeats an e-mail already sent; contact left out"
            )
            continue
        if len(out.contacts) >= limit:
            out.warnings.append(
                f"contact {position}: over deal_contacts.max_contacts ({cfg.deal_contacts.max_contacts}); "
                "contact left out"
            )
            continue
        out.warnings += [f"contact {position}: {p}; member left out" for p in problems]
        if email_field is not None:
            seen.add(entry["Email"].casefold())
        out.contacts.append(entry)
    return out


def with_other_contacts(request: dict[str, Any], others: list[dict[str, str]] | None) -> bool:
    """Put ``others`` after the primary contact of a Create/UpdateOpportunity request, in place.

    ``None`` leaves the request's ``Customer.Contacts[1..]`` as they are: an UpdateOpportunity request
    built from ``GetOpportunity`` keeps Partner Central's other contacts (the update replaces the
    whole record, so dropping them would delete them).

    Args:
        request: the request (its ``Customer.Contacts[0]`` is the primary, from the mapped fields).
        others: the other contacts, in order (``[]`` removes them); None: unchanged.

    Returns:
        True when the request's other contacts were set; False when it has no primary contact, so the
        others are not sent (the first of them would be read back as the primary next run).
    """
    if others is None:
        return False
    contacts = (request.get("Customer") or {}).get("Contacts") or []
    if not contacts or not contacts[0]:
        return False
    request["Customer"]["Contacts"] = [contacts[0], *(dict(c) for c in others)]
    return True


def others_key(contacts: Iterable[Mapping[str, Any]]) -> str:
    """A comparable text of some ``Customer.Contacts`` entries: their non-empty members, in order."""
    return json.dumps(
        [{k: str(v) for k, v in sorted(c.items()) if v not in (None, "")} for c in contacts],
        sort_keys=True,
    )


def emails_of(contacts: Iterable[Mapping[str, Any]]) -> list[str]:
    """The e-mails of some ``Customer.Contacts`` entries, case-folded, in order (none: skipped)."""
    return [str(c["Email"]).casefold() for c in contacts if c.get("Email")]


def merge_other_contacts(
    hubspot: list[dict[str, str]],
    current: list[dict[str, str]],
    dropped: Iterable[str] = (),
    primary_email: str | None = None,
) -> list[dict[str, str]]:
    """``Customer.Contacts[1..]`` to send: HubSpot's, then Partner Central's own that are kept.

    Partner Central's other contacts are people too (AWS's, or a console user's): one is removed only when
    the sync sent it earlier and the deal no longer has it (``dropped``, by e-mail). So the first time a
    record's contacts are read nothing is removed, and an e-mail edited in HubSpot replaces the old one.

    Args:
        hubspot: the deal's other contacts, in order (``other_contacts_request``).
        current: the opportunity's ``Customer.Contacts[1..]`` now (``other_contacts_of``).
        dropped: e-mails the sync sent before that the deal no longer has.
        primary_email: the primary's e-mail; a kept contact repeating it is left out.

    Returns:
        HubSpot's contacts, then Partner Central's whose e-mail is neither HubSpot's nor dropped.
    """
    skip = {*emails_of(hubspot), *(e.casefold() for e in dropped)}
    if primary_email:
        skip.add(primary_email.casefold())
    kept = [c for c in current if not c.get("Email") or str(c["Email"]).casefold() not in skip]
    return [*(dict(c) for c in hubspot), *kept]


def other_contacts_of(
    opportunity: Mapping[str, Any], cfg: SyncConfig, members: Mapping[str, FieldMapping] | None = None
) -> list[dict[str, str]]:
    """An opportunity's ``Customer.Contacts[1..]``, limited to the members the sync writes.

    Args:
        opportunity: a ``GetOpportunity`` answer.
        cfg: the sync configuration (which contact members are mapped).
        members: ``contact_members(cfg)``, when the caller converts many records (computed once).

    Returns:
        The entries after the primary, each with the mapped members it holds.
    """
    members = contact_members(cfg) if members is None else members
    contacts = (opportunity.get("Customer") or {}).get("Contacts") or []
    return [
        {m: str(c[m]) for m in members if c.get(m) not in (None, "")}
        for c in contacts[1:]
        if isinstance(c, Mapping)
    ]


def agreed_of(contacts: Iterable[Mapping[str, Any]]) -> str | None:
    """The baseline's ``other_contacts_agreed`` for some ``Customer.Contacts`` entries (JSON; None: none)."""
    agreed = {str(c["Email"]).casefold(): dict(c) for c in contacts if c.get("Email")}
    return json.dumps(agreed, sort_keys=True) if agreed else None


@dataclass
class ContactChanges:
    """What Partner Central changed in the other contacts of one opportunity since they were agreed.

    Attributes:
        to_hubspot: e-mail (case-folded) -> field name -> canonical value, for the HubSpot contact.
        positions: e-mail -> the contact's position in ``Customer.Contacts`` (for audit keys and notes).
        conflicts: ``{"email", "position", "field", "pc", "hs", "kept"}``: members changed on both sides
            to different values; ``kept`` is ``partner_central`` or ``hubspot``.
        warnings: members whose Partner Central value has no HubSpot form (field and rule, no value).
    """

    to_hubspot: dict[str, dict[str, str | None]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def partner_central_contact_changes(
    agreed: Mapping[str, Mapping[str, str]],
    pc_now: list[dict[str, str]],
    hubspot_now: list[dict[str, str]] | None,
    cfg: SyncConfig,
) -> ContactChanges:
    """The three-way diff of an opportunity's other contacts, Partner Central's side.

    Args:
        agreed: the baseline's ``other_contacts_agreed`` (e-mail -> members).
        pc_now: the opportunity's ``Customer.Contacts[1..]`` now (``other_contacts_of``).
        hubspot_now: the deal's other contacts as read this run (``other_contacts_request``); None when
            they were not read (no HubSpot contact of the deal changed in the window).
        cfg: the sync configuration (the members' field mappings, conflict strategies and transforms).

    Returns:
        The members to write to HubSpot, the conflicts and the warnings. Only contacts on both the
        baseline and the record are compared (a contact added or removed is membership, which follows
        the deal), and only members whose mapping writes HubSpot; the e-mail is the key, never a change.
    """
    from cosell_sync.config import WRITES_HUBSPOT

    members = {
        m: f for m, f in contact_members(cfg).items() if m != "Email" and f.direction in WRITES_HUBSPOT
    }
    convs = converters_for(cfg)
    hubspot = {str(c["Email"]).casefold(): c for c in hubspot_now or [] if c.get("Email")}
    out = ContactChanges()
    for position, entry in enumerate(pc_now, start=2):
        email = str(entry.get("Email") or "").casefold()
        was = agreed.get(email)
        if not email or was is None:
            continue
        for member, f in members.items():
            pc_value, old = entry.get(member), was.get(member)
            if pc_value == old:
                continue
            hs_value = hubspot[email].get(member) if email in hubspot else old
            if hs_value == pc_value:
                continue  # both sides made the same change: agreed, nothing to write
            if hs_value != old:
                kept = "partner_central" if cfg.strategy_for(f.name) == "partner_central_wins" else "hubspot"
                out.conflicts.append(
                    {
                        "email": email,
                        "position": position,
                        "field": f.name,
                        "pc": pc_value,
                        "hs": hs_value,
                        "kept": kept,
                    }
                )
                if kept == "hubspot":
                    continue
            try:
                canonical = convs[f.name].from_partner_central(pc_value)
                convs[f.name].to_hubspot(canonical)  # a value HubSpot cannot take is a warning, not a write
            except TransformError as err:
                out.warnings.append(f"contact {position}: {err.message}; not written to HubSpot")
                continue
            out.to_hubspot.setdefault(email, {})[f.name] = canonical
            out.positions[email] = position
    return out
