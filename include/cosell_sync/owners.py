"""Deal owners to Partner Central: a HubSpot owner change reassigns the opportunity (``AssignOpportunity``).

Two entry points: :func:`sync_owners`, the ``sync_owners`` step of every ``cosell_reconcile`` run (after
``commit``), and :func:`assign_manually`, the ``cosell_assign`` DAG's one-off assignment.

**Who.** ``AssignOpportunity.Assignee`` needs ``Email``, ``FirstName``, ``LastName`` and ``BusinessTitle``
(botocore model, ``AssigneeContact``). The first three come from HubSpot's owners API
(``GET /crm/v3/owners``, read page by page once per run, and only in a run that has an owner change to
send). HubSpot owners have no title: it comes from the deal property ``owners.business_title_property``
when configured and set, else ``owners.default_business_title`` (``PartnerAccountManager``, the value the
model documents for the opportunity owner). The e-mail is sent in lower case: the model's ``Email``
pattern only has lower-case letters, and e-mail domains are case-insensitive. An owner without an e-mail,
with one the model's pattern refuses, or without a first or last name fails *that deal* with the field and
the rule (never the value) in ``aws_sync_error``, a failed audit entry and the retry queue; the rest of the
batch goes on.

**When.** Three ways per linked deal: the owner HubSpot has now, the owner last sent (or first seen) for
it, kept in ``state/{catalog}/owners.parquet``, and the owner a failed attempt wanted. A deal is assigned
only when its current owner differs from the last synced one, so a re-run or a retried task does not
assign again. The first sight of a deal (the step's first run reads every linked deal once, then each new
link) records its owner without assigning: the opportunity already has its owner in Partner Central, and
the API gives no list of Partner Central users to compare with. A deal whose owner was removed is recorded
and not assigned (the API cannot unassign). Deals looked at per run: those the HubSpot extract saw change
(their owner, collaborators and title come from the extract's frame, at no call), and, read here 100 per
batch read, the ones whose last attempt failed or waits and new links the extract did not see.

**After an assignment** the deal gets ``aws_assigned_partner_user`` (the assignee's e-mail) and the note
"Opportunity reassigned to <first> <last>". Notes are checkpointed under a key derived from the changes
(deal, old and new owner, and when the old one was recorded), so a retried task or a run after a crash
never writes one twice. Assignments done by an interrupted attempt of the same run are remembered
(``runs/.../owners-assigned.json``) and not sent again by its retry. Every ``AssignOpportunity`` (and every
refused one) is one ``ASSIGN_OPPORTUNITY`` audit entry whose changes name owner ids, never e-mails.

**Review state.** The model documents no review-state rule for ``AssignOpportunity``; its errors are
``ValidationException`` (also what a rejected or locked opportunity gets, e.g. the emulator's
``INVALID_RESOURCE_STATE`` for a ``Rejected`` one) and ``ResourceNotFoundException``. Either fails the deal
with Partner Central's message (values removed) and is retried next run; throttling and 5xx are retried
too. ``AccessDeniedException`` stops the step's assignments for the run (every deal would get it). A refused
deal costs one write per run until its owner changes or Partner Central takes it; an owner refused here
(no call) is audited once, not every run, while the reason stays the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from cosell_sync.common import COLLABORATORS_PROPERTY, DEAL, Direction, clean
from cosell_sync.errors import (
    AuthError,
    NotFoundError,
    ParamError,
    SyncError,
    ValidationError,
    without_values,
)
from cosell_sync.storage import StepState, run_key, utc_iso

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.env import SyncEnv
    from cosell_sync.hubspot_api import HubSpotGateway

log = logging.getLogger(__name__)

ASSIGN_OPERATION = "AssignOpportunity"
#: The audit action of an assignment (upper case, as ``AuditEntry.action`` requires).
ASSIGN_ACTION = "ASSIGN_OPPORTUNITY"
OWNER_PROPERTY = "hubspot_owner_id"
ASSIGNED_PROPERTY = "aws_assigned_partner_user"
SYNC_ERROR_PROPERTY = "aws_sync_error"
#: Retry-queue reason of a deal whose owner change did not reach Partner Central.
RETRY_REASON = "ASSIGN_FAILED"
STATE_NAME = "owners"
#: ``collaborators``: the deal's collaborator owner ids last seen (a JSON array; None: not seen yet).
STATE_COLUMNS = ["opportunity_id", "owner_id", "recorded_at", "wanted_owner_id", "error", "collaborators"]
#: The note of a collaborator change (``cosell_sync.team``): it cannot reach Partner Central.
TEAM_NOTE = (
    "<p><strong>AWS Partner Central</strong></p><p>Opportunity team changed in HubSpot; Partner Central's "
    "team is unchanged: UpdateOpportunity cannot change it</p>"
)


class OwnerError(ValidationError):
    """An owner that cannot be an ``AssignOpportunity`` assignee; the message names the field and rule."""


# -- pure helpers (unit-tested) ------------------------------------------------------------------------
def _member_shape(member: str) -> Any:
    from cosell_sync.pc_model import pc_shape

    return pc_shape(ASSIGN_OPERATION, "input").members["Assignee"].members[member]


def _pattern(member: str) -> re.Pattern[str]:
    return re.compile(_member_shape(member).metadata.get("pattern") or "(?s).*")


#: Where an assignee goes, for the rule a refused owner names.
ASSIGNEE = "AssignOpportunity Assignee"


def email_problem(email: str | None, where: str = ASSIGNEE) -> str | None:
    """Why an e-mail cannot be ``Assignee.Email`` (None: it can), naming the rule, never the value.

    The address is taken in lower case (see the module doc) before the model's pattern is applied.
    ``where`` names the member in the rule (a team member's ``Contact`` has the same patterns).
    """
    if email is None or not str(email).strip():
        return f"owner email: missing ({where}.Email is required)"
    if _pattern("Email").fullmatch(str(email).strip().lower()) is None:
        return (
            f"owner email: malformed ({where}.Email must be an address of at most 80 "
            "characters matching Partner Central's Email pattern)"
        )
    return None


def assignee(
    owner: dict[str, Any], business_title: str | None, default_title: str, where: str = ASSIGNEE
) -> dict[str, str]:
    """The ``AssignOpportunity.Assignee`` of a HubSpot owner (or an ``OpportunityTeam`` ``Contact``).

    Args:
        owner: a ``GET /crm/v3/owners`` result (``email``, ``firstName``, ``lastName``).
        business_title: the deal's title property value (None or empty: ``default_title``).
        default_title: ``owners.default_business_title``.
        where: the member the contact is for, named in a refusal's rule.

    Raises:
        OwnerError: a member the model needs is missing or refused (field and rule, no value).
    """
    problem = email_problem(owner.get("email"), where)
    if problem:
        raise OwnerError(problem)
    out = {"Email": str(owner["email"]).strip().lower()}
    for member, key, label in (
        ("FirstName", "firstName", "first name"),
        ("LastName", "lastName", "last name"),
    ):
        value = str(owner.get(key) or "").strip()
        if not value:
            raise OwnerError(f"owner {label}: missing ({where}.{member} is required)")
        if _pattern(member).fullmatch(value) is None:
            raise OwnerError(f"owner {label}: longer than 80 characters ({where}.{member})")
        out[member] = value
    title = str(business_title or "").strip() or default_title
    if _pattern("BusinessTitle").fullmatch(title) is None:
        raise OwnerError(f"business title: longer than 80 characters ({where}.BusinessTitle)")
    out["BusinessTitle"] = title
    return out


def display_name(member: dict[str, str]) -> str:
    """``First Last`` of an assignee."""
    return f"{member['FirstName']} {member['LastName']}".strip()


@dataclass(frozen=True)
class OwnerChange:
    """One deal whose owner differs from the last synced one."""

    deal_id: str
    opportunity_id: str
    old_owner_id: str | None
    new_owner_id: str
    recorded_at: str | None


def plan_changes(
    state: dict[str, dict[str, Any]], current: dict[str, tuple[str, str | None]]
) -> tuple[list[OwnerChange], dict[str, str | None]]:
    """Three ways per deal: current owner, last synced owner, and the owner a failed attempt wanted.

    Args:
        state: deal id -> stored row (``owner_id``, ``recorded_at``, ``wanted_owner_id``, ``error``).
        current: deal id -> (opportunity id, the owner HubSpot has now) for the deals read this run.

    Returns:
        ``(changes to assign, first sightings and settled deals: deal id -> owner to record)``. A deal not
        in ``state`` is recorded, never assigned; one whose owner was removed is recorded too (the API
        cannot unassign); one whose owner went back to the synced one is settled (its error cleared).
    """
    changes: list[OwnerChange] = []
    record: dict[str, str | None] = {}
    for deal_id, (oid, owner) in sorted(current.items()):
        row = state.get(deal_id)
        if row is None:
            record[deal_id] = owner
            continue
        synced = row.get("owner_id")
        if owner == synced:
            if row.get("wanted_owner_id") or row.get("error"):
                record[deal_id] = owner  # back to what Partner Central has: nothing pending any more
            continue
        if owner is None:
            record[deal_id] = None
            continue
        changes.append(OwnerChange(deal_id, oid, synced, owner, row.get("recorded_at")))
    return changes, record


def change_digest(changes: list[OwnerChange]) -> str:
    """A key for the notes of these changes: the same changes seen again give the same key."""
    parts = sorted((c.deal_id, c.old_owner_id or "", c.new_owner_id, c.recorded_at or "") for c in changes)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def note_body(name: str) -> str:
    """The deal note of an assignment."""
    return f"<p><strong>AWS Partner Central</strong></p><p>Opportunity reassigned to {escape(name)}</p>"


# -- API access ----------------------------------------------------------------------------------------
class OwnerDirectory:
    """HubSpot owners by id, read lazily: every page once, on the first lookup of a run."""

    def __init__(self, gw: HubSpotGateway, page_size: int) -> None:
        self.gw = gw
        self.page_size = page_size
        self._by_id: dict[str, dict[str, Any]] | None = None

    def get(self, owner_id: str) -> dict[str, Any] | None:
        """The active owner with this id, or None."""
        if self._by_id is None:
            self._by_id = {str(o["id"]): o for o in self.gw.owners(page_size=self.page_size)}
        return self._by_id.get(str(owner_id))


@dataclass
class _Outcome:
    """What the assignments of one step did."""

    assigned: dict[str, dict[str, str]] = field(default_factory=dict)  # deal -> assignee
    failed: dict[str, SyncError] = field(default_factory=dict)  # deal -> error
    audit: list[dict[str, Any]] = field(default_factory=list)


def _assign(env: SyncEnv, calls: Counter[str], opportunity_id: str, member: dict[str, str]) -> None:
    """One counted ``AssignOpportunity`` (paced by the client's write limiter)."""
    calls[ASSIGN_OPERATION] += 1
    env.partner_central.call(
        "assign_opportunity", Catalog=env.catalog, Identifier=opportunity_id, Assignee=member
    )


def _audit_record(
    oid: str,
    deal_id: str,
    old: str | None,
    new: str,
    error: SyncError | None,
    called: bool,
    **metadata: Any,
) -> dict[str, Any]:
    return {
        "opportunity_id": oid,
        "deal_id": deal_id,
        "changes": {OWNER_PROPERTY: {"old": old, "new": new}},
        "error": error.to_dict() if error else None,
        "api_calls": [ASSIGN_OPERATION] if called else [],
        "metadata": metadata,
    }


def write_audit(env: SyncEnv, run: dict[str, Any], records: list[dict[str, Any]], dag_id: str) -> int:
    """One ``ASSIGN_OPPORTUNITY`` entry per attempt (owner ids in ``changes``, never e-mails)."""
    from cosell_sync.audit import AuditEntry, FieldChange
    from cosell_sync.common import parse_ts

    if not records:
        return 0
    stamp = run.get("run_timestamp") or parse_ts(run["started_at"])
    entries = [
        AuditEntry(
            opportunity_id=r["opportunity_id"],
            deal_id=r["deal_id"],
            run_id=run["run_id"].replace("#", "_"),
            run_timestamp=stamp,
            direction=Direction.TO_PARTNER_CENTRAL.value,
            action=ASSIGN_ACTION,
            source="HUBSPOT",
            user=f"airflow:{dag_id}",
            changes={k: FieldChange(**v) for k, v in r["changes"].items()},
            success=r["error"] is None,
            error=r["error"],
            api_calls=r["api_calls"],
            metadata=r["metadata"],
        )
        for r in records
    ]
    return env.audit.write(entries)


# -- the reconcile step --------------------------------------------------------------------------------
def _rows(frame: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    if frame is None or not len(frame):
        return {}
    return {
        str(d): {c: clean(row.get(c)) for c in STATE_COLUMNS}
        for d, row in frame.to_dict(orient="index").items()
    }


def _frame(state: dict[str, dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame.from_dict(
        {d: {c: row.get(c) for c in STATE_COLUMNS} for d, row in state.items()},
        orient="index",
        columns=STATE_COLUMNS,
    ).astype(object)
    frame.index.name = "deal_id"
    return frame


def _links(env: SyncEnv) -> dict[str, str]:
    """Deal -> opportunity, from the baseline (the links the sync knows)."""
    try:
        base = env.baseline.load(columns=["deal_id"])
    except (NotFoundError, KeyError, ValueError):
        return {}
    return {str(d): str(o) for o, d in base["deal_id"].items() if clean(d) is not None}


def _extracted_deals(env: SyncEnv, hs: dict[str, Any] | None) -> dict[str, dict[str, Any]] | None:
    """The deals the HubSpot extract read this run, with their owner, collaborators, title and link.

    None when there is no extract to go by (every linked deal is read). The extract read these deals
    moments ago, so reading them again would only cost a batch read per 100 changed deals.
    """
    from cosell_sync.mapping import COLLABORATORS_COLUMN, OWNER_COLUMN, TEAM_TITLE_COLUMN

    if hs is None or not hs.get("key"):
        return None
    if not hs.get("deals"):
        return {}
    columns = [DEAL.frame_column, OWNER_COLUMN, COLLABORATORS_COLUMN, TEAM_TITLE_COLUMN]
    try:
        frame = env.snapshots.get_frame(hs["key"], columns=columns)
    except (KeyError, ValueError):
        # A frame written before these columns existed (an upgrade mid-run): read the deals instead.
        frame = env.snapshots.get_frame(hs["key"], columns=[DEAL.frame_column])
        return {str(d): {} for d in frame[DEAL.frame_column].dropna()}
    out: dict[str, dict[str, Any]] = {}
    for oid, row in frame.to_dict(orient="index").items():
        deal_id = clean(row.get(DEAL.frame_column))
        if deal_id is None:
            continue
        out[str(deal_id)] = {
            "opportunity_id": str(oid),
            OWNER_PROPERTY: clean(row.get(OWNER_COLUMN)),
            COLLABORATORS_PROPERTY: clean(row.get(COLLABORATORS_COLUMN)),
            "title": clean(row.get(TEAM_TITLE_COLUMN)),
        }
    return out


def sync_owners(env: SyncEnv, run: dict[str, Any], hs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send deal owner changes to Partner Central (see the module doc).

    Args:
        env: clients and stores.
        run: the run description (``run_id``, ``catalog``, ``started_at``, ``dry_run``, ``direction``).
        hs: the HubSpot extract's result (which deals changed); None reads every linked deal.

    Returns:
        Counts (``read``, ``recorded``, ``assigned``, ``failed``, ``notes``), ``key`` of the stored
        result and ``api_calls``; or ``skipped``.
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers.hubspot import Checkpoints, HubSpotWriter

    cfg = env.config.owners
    if not cfg.enabled:
        return {"skipped": "owners.enabled is false"}
    if run.get("dry_run"):
        return {"skipped": "dry run"}
    if run.get("direction") == Direction.TO_HUBSPOT.value:
        return {"skipped": "this run only writes to HubSpot"}
    catalog = run["catalog"]
    gw = HubSpotGateway(env.hubspot)
    calls: Counter[str] = Counter()
    step_state = StepState(env.snapshots, catalog, STATE_NAME)
    previous, meta = step_state.load()
    initial = previous is None
    state = _rows(previous)
    links = _links(env)
    dropped = [d for d in state if d not in links]
    state = {d: row for d, row in state.items() if d in links}
    if run.get("opportunity_ids"):
        wanted = set(run["opportunity_ids"])
        links = {d: o for d, o in links.items() if o in wanted}

    extracted = _extracted_deals(env, hs)
    changed = None if initial or extracted is None else set(extracted)
    due = [
        d
        for d in links
        if changed is None
        or d in changed
        or d not in state
        or state[d].get("wanted_owner_id")
        or state[d].get("error")
    ]
    # Deals this run's extract read come from its frame; only the others (a first run, deals new to the
    # step, retries of failed or waiting assignments) are read here.
    from_frame = {d: extracted[d] for d in due if extracted and extracted.get(d)}
    to_read = [d for d in due if d not in from_frame]
    title_prop = cfg.business_title_property
    props = [
        OWNER_PROPERTY,
        COLLABORATORS_PROPERTY,
        env.config.link_property,
        *([title_prop] if title_prop else []),
    ]
    found, _ = gw.batch_read(DEAL.plural, to_read, props) if to_read else ([], [])
    deals: list[tuple[str, str | None, str | None, str | None, str | None]] = [
        (d, row["opportunity_id"], row[OWNER_PROPERTY], row[COLLABORATORS_PROPERTY], row["title"])
        for d, row in from_frame.items()
    ]
    for deal in found:
        p = deal.get("properties") or {}
        deals.append(
            (
                str(deal["id"]),
                clean(p.get(env.config.link_property)),
                clean(p.get(OWNER_PROPERTY)),
                clean(p.get(COLLABORATORS_PROPERTY)),
                clean(p.get(title_prop)) if title_prop else None,
            )
        )
    current: dict[str, tuple[str, str | None]] = {}
    titles: dict[str, str | None] = {}
    collaborators: dict[str, str] = {}
    seen_collaborators = {d: row.get("collaborators") for d, row in state.items()}
    for deal_id, linked, owner_id, collaborator_ids, title in deals:
        # The deal's own link wins over the baseline's (a relinked deal is followed).
        oid = linked or links.get(deal_id)
        if oid:
            current[deal_id] = (str(oid), owner_id)
            titles[deal_id] = title
            ids = {i.strip() for i in str(collaborator_ids or "").split(";") if i.strip()}
            collaborators[deal_id] = json.dumps(sorted(ids))
    changes, record = plan_changes(state, current)
    now = utc_iso(datetime.now(UTC))
    for deal_id, owner in record.items():
        state[deal_id] = {
            "opportunity_id": current[deal_id][0],
            "owner_id": owner,
            "recorded_at": now,
            "wanted_owner_id": None,
            "error": None,
            "_clear_error": bool((state.get(deal_id) or {}).get("error")),
        }

    # Assignments a failed attempt of this same run already made are not sent again by its retry.
    done_key = run_key(catalog, run["run_id"], "owners-assigned.json")
    done: dict[str, Any] = env.snapshots.get_json(done_key) if env.snapshots.exists(done_key) else {}
    outcome = _Outcome()
    directory = OwnerDirectory(gw, cfg.page_size)
    denied: SyncError | None = None
    for change in changes:
        d, oid = change.deal_id, change.opportunity_id
        key = f"{d}:{change.new_owner_id}"
        called = False
        try:
            if denied is not None:
                raise denied
            owner = directory.get(change.new_owner_id)
            if owner is None:
                raise OwnerError("hubspot_owner_id: not an active HubSpot owner (GET /crm/v3/owners)")
            member = assignee(owner, titles.get(d), cfg.default_business_title)
            if key not in done:
                called = True
                _assign(env, calls, oid, member)
                done[key] = True
                env.snapshots.put_json(done, done_key)
            called = True  # now or by an earlier attempt of this run: its entry names the call
            outcome.assigned[d] = member
            error = None
        except AuthError as err:
            denied = err  # the caller's permission: every other deal would get the same answer
            error = err
        except SyncError as err:
            error = err
        if error is not None:
            outcome.failed[d] = error
            log.error("Deal %s: owner change not sent to Partner Central: %s", d, error.message)
            row = state.get(d) or {}
            if (
                not called
                and row.get("wanted_owner_id") == change.new_owner_id
                and row.get("error") == error.message
            ):
                continue  # refused here again, for the same reason, without a call: audited the first time
        outcome.audit.append(
            _audit_record(
                oid, d, change.old_owner_id, change.new_owner_id, error, called, dealOwnerChange="sync"
            )
        )

    write_audit(env, run, outcome.audit, str(run.get("dag_id") or "cosell_reconcile"))

    # HubSpot: the assignee on the deal and the error (set or cleared), 100 deals per call.
    updates: dict[str, dict[str, str]] = {}
    for change in changes:
        d = change.deal_id
        if d in outcome.assigned:
            updates[d] = {ASSIGNED_PROPERTY: outcome.assigned[d]["Email"]}
            if state[d].get("error"):
                updates[d][SYNC_ERROR_PROPERTY] = ""
        else:
            updates[d] = {
                SYNC_ERROR_PROPERTY: "Owner change not sent to Partner Central (AssignOpportunity): "
                + outcome.failed[d].message
            }
    for d, row in state.items():
        if row.pop("_clear_error", False):
            updates.setdefault(d, {})[SYNC_ERROR_PROPERTY] = ""
    writer = HubSpotWriter(env.config, gw)
    written = writer.update_objects({DEAL.plural: updates}, {(DEAL.plural, d): d for d in updates})
    for d, err in written.failed.items():
        log.error(
            "Deal %s: owner properties not written: %s", d, without_values(str(err.get("message") or ""))
        )

    notes = 0
    assigned_changes = [c for c in changes if c.deal_id in outcome.assigned]
    if assigned_changes:
        digest = change_digest(assigned_changes)
        checkpoints = Checkpoints(env.snapshots, {"notes": f"state/{catalog}/owner-notes/{digest}.json"})
        bodies = {c.deal_id: note_body(display_name(outcome.assigned[c.deal_id])) for c in assigned_changes}
        notes = HubSpotWriter(env.config, gw, checkpoints).write_notes(bodies, ref=f"owners-{digest}")

    for change in changes:
        d = change.deal_id
        row = state[d]
        if d in outcome.assigned:
            row.update(owner_id=change.new_owner_id, recorded_at=now, wanted_owner_id=None, error=None)
        else:
            row.update(wanted_owner_id=change.new_owner_id, error=outcome.failed[d].message)
    team_notes, team_changed = _note_team_changes(env, catalog, gw, state, seen_collaborators, collaborators)
    retry = [
        {
            "opportunity_id": c.opportunity_id,
            "deal_id": c.deal_id,
            "reason": RETRY_REASON,
            "error": outcome.failed[c.deal_id].to_dict(),
            "direction": Direction.TO_PARTNER_CENTRAL.value,
        }
        for c in changes
        if c.deal_id in outcome.failed
    ]
    if retry:
        env.retry.add(retry, run_id=run["run_id"])
    if initial or record or changes or dropped or team_changed:
        step_state.save_frame(_frame(state))
        step_state.save_meta({**meta, "last_run_id": run["run_id"]})
    calls.update(gw.calls)
    result = {
        "read": len(found),
        "recorded": len(record),
        "assigned": len(outcome.assigned),
        "failed": len(outcome.failed),
        "notes": notes,
        "team_notes": team_notes,
        "initial": initial,
    }
    key = run_key(catalog, run["run_id"], "owners.json")
    env.snapshots.put_json(
        {
            **result,
            "assigned_deals": sorted(outcome.assigned),
            "failed_deals": {d: e.message for d, e in outcome.failed.items()},
            "api_calls": dict(calls),
        },
        key,
    )
    log.info("Deal owners: %s", result)
    return {**result, "key": key, "api_calls": dict(calls)}


def _note_team_changes(
    env: SyncEnv,
    catalog: str,
    gw: HubSpotGateway,
    state: dict[str, dict[str, Any]],
    seen: dict[str, str | None],
    current: dict[str, str],
) -> tuple[int, bool]:
    """Collaborator changes: a note on the deal, never a write (``UpdateOpportunity`` has no team).

    A deal's first sight (or a state from before collaborators were kept) records them without a note.
    The note is checkpointed under a key derived from the changes, so a retried task writes it once.

    Returns:
        ``(notes written, whether the state changed)``.
    """
    from cosell_sync.writers.hubspot import Checkpoints, HubSpotWriter

    changed = False
    noted: list[tuple[str, str, str]] = []
    for deal_id, now in current.items():
        if deal_id not in state:
            continue
        before = seen.get(deal_id)
        if before is not None and before != now:
            noted.append((deal_id, before, now))
        if state[deal_id].get("collaborators") != now:
            state[deal_id]["collaborators"] = now
            changed = True
    if not noted:
        return 0, changed
    for deal_id, _before, _now in noted:
        # Owner ids and e-mails stay out of the log.
        log.info(
            "Deal %s: opportunity team changed in HubSpot; Partner Central's team is unchanged "
            "(UpdateOpportunity cannot change it): noted on the deal",
            deal_id,
        )
    digest = hashlib.sha256(json.dumps(sorted(noted)).encode()).hexdigest()[:20]
    checkpoints = Checkpoints(env.snapshots, {"notes": f"state/{catalog}/team-notes/{digest}.json"})
    writer = HubSpotWriter(env.config, gw, checkpoints)
    return writer.write_notes({d: TEAM_NOTE for d, _b, _n in noted}, ref=f"team-{digest}"), changed


# -- cosell_assign -------------------------------------------------------------------------------------
def check_params(deal_id: str, opportunity_id: str, assignee_email: str) -> None:
    """The ``cosell_assign`` params, checked before any call.

    Raises:
        ParamError: not exactly one of ``deal_id`` / ``opportunity_id``, or an e-mail the model refuses.
    """
    given = [n for n, v in (("deal_id", deal_id), ("opportunity_id", opportunity_id)) if v]
    if len(given) != 1:
        raise ParamError(
            "give exactly one of deal_id or opportunity_id (got "
            f"{', '.join(given) if given else 'none'}); nothing was assigned"
        )
    problem = email_problem(assignee_email)
    if problem:
        raise ParamError("assignee_email: " + problem.split(": ", 1)[1] + "; nothing was assigned")


def assign_manually(
    env: SyncEnv,
    run: dict[str, Any],
    deal_id: str,
    opportunity_id: str,
    assignee_email: str,
    dry_run: bool,
) -> dict[str, Any]:
    """``cosell_assign``: assign one opportunity to the HubSpot owner with this e-mail.

    Finds the owner (``GET /crm/v3/owners?email=``) and the linked deal (by id, or by the unique link
    property), shows the current Partner Central owner (``GetOpportunity``'s ``OpportunityTeam``) and the new
    one; unless a dry run, calls ``AssignOpportunity``, audits it, sets ``aws_assigned_partner_user`` and
    adds the note (once per run, whatever retries do). The deal's HubSpot owner is left as it is.

    Raises:
        ParamError: bad params (nothing read).
        NotFoundError: no active owner with that e-mail, no such deal or opportunity, or they are not linked.
        OwnerError: the owner cannot be an assignee (no first or last name).
        ValidationError: Partner Central refuses the assignment (e.g. the opportunity's review state).
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers.hubspot import Checkpoints, HubSpotWriter

    check_params(deal_id, opportunity_id, assignee_email)
    cfg = env.config
    gw = HubSpotGateway(env.hubspot)
    calls: Counter[str] = Counter()
    email = assignee_email.strip().lower()
    owners = [o for o in gw.owners(email=email, page_size=cfg.owners.page_size) if o.get("email")]
    owners = [o for o in owners if str(o["email"]).strip().lower() == email]
    if not owners:
        raise NotFoundError("assignee_email: no active HubSpot owner has this address; nothing was assigned")
    owner = owners[0]
    title_prop = cfg.owners.business_title_property
    props = [cfg.link_property, OWNER_PROPERTY, *([title_prop] if title_prop else [])]
    if deal_id:
        found, _ = gw.batch_read(DEAL.plural, [deal_id], props)
    else:
        found, _ = gw.batch_read(DEAL.plural, [opportunity_id], props, id_property=cfg.link_property)
    if not found:
        what = f"deal {deal_id}" if deal_id else f"opportunity {opportunity_id}"
        raise NotFoundError(f"{what}: no HubSpot deal linked to it; nothing was assigned")
    deal = found[0]
    deal_id = str(deal["id"])
    p = deal.get("properties") or {}
    oid = clean(p.get(cfg.link_property))
    if not oid:
        raise NotFoundError(f"deal {deal_id} is not linked to an opportunity; nothing was assigned")
    member = assignee(
        owner, clean(p.get(title_prop)) if title_prop else None, cfg.owners.default_business_title
    )
    calls["GetOpportunity"] += 1
    opp = env.partner_central.call("get_opportunity", Catalog=env.catalog, Identifier=oid)
    team = opp.get("OpportunityTeam") or []
    before = ", ".join(f"{m.get('FirstName', '')} {m.get('LastName', '')}".strip() for m in team) or "(none)"
    log.info(
        "Opportunity %s (deal %s)%s: owner %s -> %s (%s)",
        oid,
        deal_id,
        " DRY RUN, nothing written" if dry_run else "",
        before,
        display_name(member),
        member["BusinessTitle"],
    )
    result: dict[str, Any] = {
        "opportunity_id": oid,
        "deal_id": deal_id,
        "owner_id": str(owner["id"]),
        "assignee": display_name(member),
        "dry_run": dry_run,
        "assigned": False,
        "notes": 0,
        "api_calls": calls,
    }
    if dry_run:
        calls.update(gw.calls)
        return {**result, "api_calls": dict(calls)}
    error: SyncError | None = None
    try:
        _assign(env, calls, oid, member)
    except SyncError as err:
        error = err
        raise
    finally:
        write_audit(
            env,
            run,
            [
                _audit_record(
                    oid,
                    deal_id,
                    clean(p.get(OWNER_PROPERTY)),
                    str(owner["id"]),
                    error,
                    True,
                    dealOwnerChange="manual",
                )
            ],
            str(run.get("dag_id") or "cosell_assign"),
        )
    writer = HubSpotWriter(cfg, gw)
    writer.update_objects({DEAL.plural: {deal_id: {ASSIGNED_PROPERTY: member["Email"]}}}, {})
    ref = f"assign-{run['run_id']}"
    checkpoints = Checkpoints(
        env.snapshots, {"notes": run_key(env.catalog, run["run_id"], "assign-note.json")}
    )
    notes = HubSpotWriter(cfg, gw, checkpoints).write_notes(
        {deal_id: note_body(display_name(member))}, ref=ref
    )
    calls.update(gw.calls)
    return {**result, "assigned": True, "notes": notes, "api_calls": dict(calls)}
