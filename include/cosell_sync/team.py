"""The opportunity team: a new opportunity's ``OpportunityTeam`` from its deal, and Partner Central's team.

**On create.** The deal's owner (``hubspot_owner_id``), then its collaborators
(``hs_all_collaborator_owner_ids``, owner ids ';'-separated), both read with the deal by the HubSpot extract
(no extra call), become ``CreateOpportunity.OpportunityTeam``: one ``Contact`` per owner, owner first, at most
:func:`max_team` (the model's ``PartnerOpportunityTeamMembersList`` maximum, 10). A contact is built like an
``AssignOpportunity`` assignee (:func:`cosell_sync.owners.assignee`): e-mail in lower case, first and last
name from HubSpot's owners API, business title from ``owners.business_title_property`` on the deal, else
``owners.default_business_title``. Owners are read page by page once per step
(:class:`~cosell_sync.owners.OwnerDirectory`), and only in a step that creates at least one opportunity whose
deal has an owner. An owner that cannot be sent (not an active owner, no e-mail or one the model's pattern
refuses, no name) is left out with a log line naming the deal, the owner id and the rule, never the value;
the create goes on with the others. The ``ClientToken`` stays derived from the deal alone.
``owners.enabled: false`` sends no team (and reads no owners).

**Afterwards.** ``UpdateOpportunity`` has no ``OpportunityTeam`` member (only ``CreateOpportunity`` takes
one; ``AssignOpportunity`` replaces the owner), so a later collaborator change in HubSpot cannot reach
Partner Central: the ``sync_owners`` step adds a note saying so to the deal. The deal shows Partner
Central's team: ``aws_opportunity_team`` (a JSON array of ``{email, first_name, last_name,
business_title}``, in Partner Central's order) and ``aws_team_last_sync`` (when it was written).
``apply_hubspot`` writes them with the run's other deal writes whenever the run holds the opportunity's
full record anyway: the read-back after a create and the extract's ``GetOpportunity`` of a changed record;
no read is made for the team. A bulk-created record has no read-back: its team is the one the job was sent
until its first change is read. A team is written only when it differs from the one last written to the
deal (``state/{catalog}/team``: a digest per deal, no e-mails), so a re-run writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from cosell_sync.common import clean
from cosell_sync.owners import OwnerDirectory, OwnerError, assignee
from cosell_sync.storage import StepState, utc_iso

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

TEAM_PROPERTY = "aws_opportunity_team"
TEAM_SYNC_PROPERTY = "aws_team_last_sync"
#: The member a team contact is for, named in the rule of a refused owner.
TEAM_MEMBER = "CreateOpportunity OpportunityTeam[]"
STATE_NAME = "team"
STATE_COLUMNS = ["opportunity_id", "digest"]


@cache
def max_team() -> int:
    """The most ``OpportunityTeam`` members a create takes (botocore model; 10)."""
    from cosell_sync.pc_model import pc_shape

    shape = pc_shape("CreateOpportunity", "input").members["OpportunityTeam"]
    return int(shape.metadata.get("max") or 10)


# -- on create -------------------------------------------------------------------------------------------
def team_contacts(
    deal_id: str,
    owner_ids: Iterable[str],
    directory: OwnerDirectory,
    business_title: str | None,
    default_title: str,
) -> list[dict[str, str]]:
    """The ``OpportunityTeam`` of a deal: one ``Contact`` per sendable owner, in order, at most the maximum.

    Args:
        deal_id: the deal (for the log).
        owner_ids: the deal's owner first, then its collaborators (HubSpot owner ids).
        directory: the step's owner directory (one read of every page per step).
        business_title: the deal's ``owners.business_title_property`` value (None: ``default_title``).
        default_title: ``owners.default_business_title``.

    Returns:
        The contacts; owners that cannot be sent are left out and logged (owner id and rule only).
    """
    team: list[dict[str, str]] = []
    seen: set[str] = set()
    wanted = [str(o).strip() for o in owner_ids if str(o or "").strip()]
    limit = max_team()
    for position, owner_id in enumerate(dict.fromkeys(wanted)):
        if len(team) >= limit:
            log.warning(
                "Deal %s: %d team member(s) not sent (CreateOpportunity OpportunityTeam holds at most %d)",
                deal_id,
                len(dict.fromkeys(wanted)) - position,
                limit,
            )
            break
        owner = directory.get(owner_id)
        if owner is None:
            log.warning(
                "Deal %s: team member %s not sent: not an active HubSpot owner (GET /crm/v3/owners)",
                deal_id,
                owner_id,
            )
            continue
        try:
            member = assignee(owner, business_title, default_title, where=TEAM_MEMBER)
        except OwnerError as err:
            log.warning("Deal %s: team member %s not sent: %s", deal_id, owner_id, err.message)
            continue
        if member["Email"] in seen:
            continue  # two owners with one address: Partner Central knows users by e-mail
        seen.add(member["Email"])
        team.append(member)
    return team


def resolve_teams(
    env: SyncEnv, items: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, list[dict[str, str]]], Counter[str]]:
    """The ``OpportunityTeam`` of each planned create (``cosell_sync.plan`` items), with one owners read.

    Args:
        env: clients and stores.
        items: ``plan.create_opportunities`` items (``deal_id``, ``team_owner_ids``, ``team_title``).

    Returns:
        ``(deal id -> contacts, HubSpot calls made)``; deals without a sendable owner are left out. No call
        when ``owners.enabled`` is false or no deal has an owner.
    """
    from cosell_sync.hubspot_api import HubSpotGateway

    cfg = env.config.owners
    wanted = {str(i["deal_id"]): i for i in items if i.get("team_owner_ids")}
    if not cfg.enabled or not wanted:
        return {}, Counter()
    gw = HubSpotGateway(env.hubspot)
    directory = OwnerDirectory(gw, cfg.page_size)
    teams: dict[str, list[dict[str, str]]] = {}
    for deal_id, item in wanted.items():
        team = team_contacts(
            deal_id, item["team_owner_ids"], directory, item.get("team_title"), cfg.default_business_title
        )
        if team:
            teams[deal_id] = team
    return teams, Counter(gw.calls)


# -- Partner Central's team on the deal ------------------------------------------------------------------
def team_json(team: Iterable[Mapping[str, Any]] | None) -> str:
    """``aws_opportunity_team``: Partner Central's ``OpportunityTeam`` as a JSON array (its order kept)."""
    return json.dumps(
        [
            {
                "email": member.get("Email"),
                "first_name": member.get("FirstName"),
                "last_name": member.get("LastName"),
                "business_title": member.get("BusinessTitle"),
            }
            for member in team or []
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def teams_from_records(pc: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Opportunity id -> ``OpportunityTeam`` of the records the extract read in full (its ``_raw``)."""
    if "_raw" not in pc.columns:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for oid, raw in pc["_raw"].items():
        if clean(raw):
            out[str(oid)] = json.loads(raw).get("OpportunityTeam") or []
    return out


class TeamMirror:
    """Which deals need ``aws_opportunity_team`` written: those whose Partner Central team changed.

    The step collects the teams it holds (:meth:`add`), writes :meth:`properties` with its other deal
    writes, then :meth:`save` records the digests of what was written (deals whose write failed are
    tried again next time the record is read).
    """

    def __init__(self, env: SyncEnv, catalog: str) -> None:
        self._state = StepState(env.snapshots, catalog, STATE_NAME)
        frame, self._meta = self._state.load()
        self._rows: dict[str, dict[str, Any]] = {}
        if frame is not None and len(frame):
            self._rows = {
                str(d): {c: clean(row.get(c)) for c in STATE_COLUMNS}
                for d, row in frame.to_dict(orient="index").items()
            }
        self._pending: dict[str, dict[str, Any]] = {}
        self._now = utc_iso(datetime.now(UTC))

    def add(
        self, deal_id: str, opportunity_id: str, team: Iterable[Mapping[str, Any]] | None
    ) -> dict[str, str]:
        """The team properties to write on the deal ({} when the deal already shows this team)."""
        text = team_json(team)
        digest = _digest(text)
        if (self._rows.get(str(deal_id)) or {}).get("digest") == digest:
            self._pending.pop(str(deal_id), None)
            return {}
        self._pending[str(deal_id)] = {"opportunity_id": str(opportunity_id), "digest": digest}
        return {TEAM_PROPERTY: text, TEAM_SYNC_PROPERTY: self._now}

    def new_deal_properties(self, team: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
        """The team properties of a deal being created (recorded by :meth:`add` once it has an id)."""
        return {TEAM_PROPERTY: team_json(team), TEAM_SYNC_PROPERTY: self._now}

    @property
    def pending(self) -> set[str]:
        """Deals with team properties to write."""
        return set(self._pending)

    def save(self, failed: Iterable[str] = (), run_id: str | None = None) -> int:
        """Record the teams written (all pending deals but ``failed``); returns how many."""
        import pandas as pd

        failed_set = {str(d) for d in failed}
        written = {d: row for d, row in self._pending.items() if d not in failed_set}
        if not written:
            return 0
        self._rows.update(written)
        frame = pd.DataFrame.from_dict(
            {d: {c: row.get(c) for c in STATE_COLUMNS} for d, row in self._rows.items()},
            orient="index",
            columns=STATE_COLUMNS,
        ).astype(object)
        frame.index.name = "deal_id"
        self._state.save_frame(frame)
        self._state.save_meta({**self._meta, "last_run_id": run_id})
        self._pending.clear()
        return len(written)
