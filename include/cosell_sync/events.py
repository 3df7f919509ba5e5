"""Partner Central EventBridge events: validate them, say which records they name, deduplicate them by id.

``cosell_events`` is started with the events in its run conf (``{"event": <EventBridge event>}`` from an
API destination, or ``{"events": [...]}`` for a batch) and syncs only the records they name, through the
same steps as ``cosell_reconcile``. This module holds the parts that need no Airflow:

- :func:`parse_event` validates one event (pydantic) and classifies it; it never raises. The envelope is
  EventBridge's (``id``, ``detail-type``, ``source``, ``time``, ``detail``...); the detail shapes are the
  AWS Partner Central developer guide's samples ("Notifications for the AWS Partner Central Selling API")
  and the EventBridge reference "AWS Partner Central Selling events": ``detail`` carries ``catalog`` and the
  identifiers only, never the record, so the sync reads the record itself.
- :func:`plan_events` groups valid events into the work of one run: opportunity ids (the opportunity
  steps), whether to run the invitation step, engagement ids (the engagement step).
- :class:`EventLedger` remembers processed event ids in the state table (conditional puts), so an event
  delivered twice (a redelivery, or both the API destination and the SQS path) is synced once.
- :func:`event_audit_entries` makes one audit entry per event: processed, ignored (unknown detail-type,
  malformed, another catalog or source) or duplicate.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cosell_sync.storage import is_conditional_check_failed

log = logging.getLogger(__name__)

SOURCE = "aws.partnercentral-selling"

#: Identifier patterns of botocore's partnercentral-selling model (OpportunityIdentifier,
#: EngagementIdentifier, EngagementInvitationArnOrIdentifier without the ARN form).
OPPORTUNITY_ID = re.compile(r"^O[0-9]{1,19}$")
ENGAGEMENT_ID = re.compile(r"^eng-[0-9a-z]{14}$")
INVITATION_ID = re.compile(r"^engi-[0-9a-z]{13}$")

#: How long a processed event id is remembered. EventBridge retries a delivery for at most 24 hours
#: and SQS keeps a message at most 14 days, so a duplicate cannot arrive later than that.
DEDUPE_SECONDS = 14 * 24 * 3600


class EventKind(StrEnum):
    """What an event makes ``cosell_events`` do."""

    OPPORTUNITY = "opportunity"  # sync the named opportunities (extract .. commit), then their engagements
    INVITATION = "invitation"  # run the invitation step
    ENGAGEMENT = "engagement"  # run the engagement step for the named engagements


#: Every detail-type AWS documents for ``aws.partnercentral-selling``: the EventBridge reference lists
#: twelve, the developer guide adds "Engagement Created" and "Engagement Updated" (with samples).
DETAIL_TYPES: dict[str, EventKind] = {
    "Opportunity Created": EventKind.OPPORTUNITY,
    "Opportunity Updated": EventKind.OPPORTUNITY,
    "Opportunity Accepted": EventKind.OPPORTUNITY,
    "Opportunity Rejected": EventKind.OPPORTUNITY,
    "Engagement Invitation Created": EventKind.INVITATION,
    "Engagement Invitation Accepted": EventKind.INVITATION,
    "Engagement Invitation Rejected": EventKind.INVITATION,
    "Engagement Invitation Expired": EventKind.INVITATION,
    "Engagement Member Added": EventKind.ENGAGEMENT,
    "Engagement Member Joined": EventKind.ENGAGEMENT,
    "Engagement Resource Snapshot Created": EventKind.ENGAGEMENT,
    "Resource Snapshot Created": EventKind.ENGAGEMENT,
    "Engagement Created": EventKind.ENGAGEMENT,
    "Engagement Updated": EventKind.ENGAGEMENT,
}


class Outcome(StrEnum):
    """What became of one event; also the audit action (``EVENT_<OUTCOME>``)."""

    PROCESSED = "PROCESSED"
    IGNORED = "IGNORED"
    DUPLICATE = "DUPLICATE"


# -- the shapes --------------------------------------------------------------------------------------
class EventEnvelope(BaseModel):
    """The EventBridge envelope (the keys EventBridge always sends; ``detail`` is checked per type)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1, max_length=128)
    detail_type: str = Field(alias="detail-type", min_length=1)
    source: str
    account: str | None = None
    time: datetime | None = None
    region: str | None = None
    resources: list[str] = Field(default_factory=list)
    detail: dict[str, Any]

    @field_validator("id")
    @classmethod
    def _id_chars(cls, value: str) -> str:
        # The id becomes part of a DynamoDB key and the Airflow run id: no separators, no spaces.
        if not re.fullmatch(r"[A-Za-z0-9._:-]+", value):
            raise ValueError("id may hold only letters, digits and . _ : -")
        return value


class _Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class OpportunityRef(_Ref):
    """``detail.opportunity`` of the opportunity events."""

    identifier: str = Field(pattern=OPPORTUNITY_ID.pattern)


class OpportunityDetail(_Ref):
    """Opportunity Created / Updated / Accepted / Rejected."""

    catalog: str = Field(pattern=r"^[a-zA-Z]+$")
    opportunity: OpportunityRef


class InvitationRef(_Ref):
    """``detail.engagementInvitation`` of the invitation events."""

    id: str = Field(pattern=INVITATION_ID.pattern)
    engagement_id: str | None = Field(default=None, alias="engagementId")
    participant_type: str | None = Field(default=None, alias="participantType")


class InvitationDetail(_Ref):
    """Engagement Invitation Created / Accepted / Rejected / Expired."""

    catalog: str = Field(pattern=r"^[a-zA-Z]+$")
    engagement_invitation: InvitationRef = Field(alias="engagementInvitation")


class EngagementRef(_Ref):
    """``detail.engagement``: ``engagementId`` in Engagement Created/Updated, ``id`` in Member Added."""

    engagement_id: str | None = Field(default=None, alias="engagementId", pattern=ENGAGEMENT_ID.pattern)
    id: str | None = Field(default=None, pattern=ENGAGEMENT_ID.pattern)

    @property
    def any_id(self) -> str | None:
        """Whichever of the two spellings the event used."""
        return self.engagement_id or self.id


class SnapshotRef(_Ref):
    """``detail.resourceSnapshot`` of the snapshot events."""

    engagement_id: str = Field(alias="engagementId", pattern=ENGAGEMENT_ID.pattern)
    resource_type: str | None = Field(default=None, alias="resourceType")
    resource_id: str | None = Field(default=None, alias="resourceId")


class EngagementDetail(_Ref):
    """Engagement Created / Updated / Member Added / Member Joined, and the resource snapshot events."""

    catalog: str = Field(pattern=r"^[a-zA-Z]+$")
    engagement: EngagementRef | None = None
    resource_snapshot: SnapshotRef | None = Field(default=None, alias="resourceSnapshot")


@dataclass(frozen=True)
class ParsedEvent:
    """One event as ``cosell_events`` sees it.

    Attributes:
        event_id: the EventBridge id (None when even that is missing).
        detail_type: the ``detail-type`` as sent ("" when missing).
        kind: what it makes the run do; None when it is ignored.
        catalog: ``detail.catalog``.
        opportunity_ids / invitation_ids / engagement_ids: the records it names.
        reason: why it is ignored (names the rule, never a value).
        time: the event's ``time`` (for the event-to-update measurement).
    """

    event_id: str | None
    detail_type: str
    kind: EventKind | None = None
    catalog: str | None = None
    opportunity_ids: tuple[str, ...] = ()
    invitation_ids: tuple[str, ...] = ()
    engagement_ids: tuple[str, ...] = ()
    reason: str | None = None
    time: str | None = None
    #: Where the event came from: ``PARTNER_CENTRAL`` (EventBridge) or ``HUBSPOT`` (a webhook).
    source: str = "PARTNER_CENTRAL"

    @property
    def ignored(self) -> bool:
        """True when the event names nothing to sync."""
        return self.kind is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (XCom)."""
        return {
            "event_id": self.event_id,
            "detail_type": self.detail_type,
            "kind": self.kind.value if self.kind else None,
            "catalog": self.catalog,
            "opportunity_ids": list(self.opportunity_ids),
            "invitation_ids": list(self.invitation_ids),
            "engagement_ids": list(self.engagement_ids),
            "reason": self.reason,
            "time": self.time,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParsedEvent:
        """The inverse of :meth:`to_dict`."""
        return cls(
            event_id=data.get("event_id"),
            detail_type=str(data.get("detail_type") or ""),
            kind=EventKind(data["kind"]) if data.get("kind") else None,
            catalog=data.get("catalog"),
            opportunity_ids=tuple(data.get("opportunity_ids") or ()),
            invitation_ids=tuple(data.get("invitation_ids") or ()),
            engagement_ids=tuple(data.get("engagement_ids") or ()),
            reason=data.get("reason"),
            time=data.get("time"),
            source=str(data.get("source") or "PARTNER_CENTRAL"),
        )


def _problem(err: ValidationError) -> str:
    """A validation error as field names and rules only: the event's values never reach logs or audit."""
    parts = []
    for e in err.errors()[:3]:
        where = ".".join(str(p) for p in e.get("loc") or ()) or "event"
        parts.append(f"{where}: {e.get('type', 'invalid')}")
    return "; ".join(parts)


def parse_event(raw: Any) -> ParsedEvent:
    """Validate one EventBridge event and say what it names; never raises.

    Args:
        raw: the event as delivered: a dict, or its JSON text (an SQS message body).

    Returns:
        The parsed event; an unknown detail-type, another source or a malformed event comes back with
        ``kind`` None and a ``reason``.
    """
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            return ParsedEvent(None, "", reason="malformed: not JSON")
    if not isinstance(raw, Mapping):
        return ParsedEvent(None, "", reason="malformed: not a JSON object")
    try:
        env = EventEnvelope.model_validate(raw)
    except ValidationError as err:
        event_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        detail_type = raw.get("detail-type") if isinstance(raw.get("detail-type"), str) else ""
        if event_id is not None and not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", event_id):
            event_id = None
        return ParsedEvent(event_id, detail_type, reason=f"malformed envelope: {_problem(err)}")
    base = {
        "event_id": env.id,
        "detail_type": env.detail_type,
        "time": env.time.astimezone(UTC).isoformat() if env.time and env.time.tzinfo else None,
        "catalog": env.detail.get("catalog") if isinstance(env.detail.get("catalog"), str) else None,
    }
    if env.source != SOURCE:
        return ParsedEvent(**base, reason=f"source is not {SOURCE}")
    kind = DETAIL_TYPES.get(env.detail_type)
    if kind is None:
        return ParsedEvent(**base, reason="unknown detail-type")
    try:
        if kind is EventKind.OPPORTUNITY:
            opp = OpportunityDetail.model_validate(env.detail)
            return ParsedEvent(**base, kind=kind, opportunity_ids=(opp.opportunity.identifier,))
        if kind is EventKind.INVITATION:
            inv = InvitationDetail.model_validate(env.detail)
            return ParsedEvent(**base, kind=kind, invitation_ids=(inv.engagement_invitation.id,))
        eng = EngagementDetail.model_validate(env.detail)
    except ValidationError as err:
        return ParsedEvent(**base, reason=f"malformed detail: {_problem(err)}")
    engagement_id = eng.engagement.any_id if eng.engagement else None
    if eng.resource_snapshot is not None:
        engagement_id = engagement_id or eng.resource_snapshot.engagement_id
    if engagement_id is None:
        # Not every engagement event has a published sample (Engagement Member Joined): fall back on the
        # engagement ARN in ``resources`` (".../catalog/<catalog>/engagement/<id>[/...]").
        for arn in env.resources:
            found = re.search(r"/engagement/(eng-[0-9a-z]{14})(?:/|$)", arn)
            if found:
                engagement_id = found.group(1)
                break
    if engagement_id is None:
        return ParsedEvent(**base, reason="malformed detail: no engagement id")
    return ParsedEvent(**base, kind=kind, engagement_ids=(engagement_id,))


def events_from_conf(conf: Mapping[str, Any] | None) -> list[Any]:
    """The raw events of a ``cosell_events`` run conf: ``event`` (one), ``events`` (a batch), or both."""
    conf = conf or {}
    out: list[Any] = []
    if conf.get("event") is not None:
        out.append(conf["event"])
    batch = conf.get("events")
    if isinstance(batch, list):
        out.extend(batch)
    elif batch is not None:
        out.append(batch)
    return out


@dataclass
class EventWork:
    """The work of one ``cosell_events`` run, from its events.

    Attributes:
        events: every event of the conf, parsed (ignored ones included), deduplicated by id.
        opportunity_ids: opportunities to sync (extract .. commit), sorted.
        invitations: True when the invitation step must run.
        engagement_ids: engagements the engagement step must read, sorted.
    """

    events: list[ParsedEvent] = field(default_factory=list)
    opportunity_ids: list[str] = field(default_factory=list)
    invitations: bool = False
    engagement_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (XCom, the run description)."""
        return {
            "events": [e.to_dict() for e in self.events],
            "opportunity_ids": list(self.opportunity_ids),
            "invitations": self.invitations,
            "engagement_ids": list(self.engagement_ids),
        }


def plan_events(events: Iterable[ParsedEvent], catalog: str, skip_ids: Iterable[str] = ()) -> EventWork:
    """Group events into one run's work.

    Args:
        events: parsed events, in delivery order.
        catalog: the run's catalog; an event of another catalog is ignored (the rule filters by catalog,
            so one arriving here was routed to the wrong deployment).
        skip_ids: event ids already processed (the ledger's duplicates): kept in ``events``, not planned.

    Returns:
        The run's work; a second event with an id already seen in this batch is dropped.
    """
    skip = set(skip_ids)
    work = EventWork()
    seen: set[str] = set()
    opportunity_ids: set[str] = set()
    engagement_ids: set[str] = set()
    for event in events:
        if event.event_id is not None:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
        if not event.ignored and event.catalog != catalog:
            event = ParsedEvent(
                event.event_id, event.detail_type, catalog=event.catalog, time=event.time,
                reason=f"catalog is not the run's catalog {catalog}",
            )  # fmt: skip
        work.events.append(event)
        if event.ignored or event.event_id in skip:
            continue
        opportunity_ids.update(event.opportunity_ids)
        engagement_ids.update(event.engagement_ids)
        work.invitations = work.invitations or event.kind is EventKind.INVITATION
    work.opportunity_ids = sorted(opportunity_ids)
    work.engagement_ids = sorted(engagement_ids)
    return work


# -- dedupe ------------------------------------------------------------------------------------------
class EventLedger:
    """Processed event ids in the state table, so each event is synced once whatever delivers it.

    Item ``PK = EVENT#{event id}``, ``SK = event``: ``status`` (``claimed`` by a run that is working on it,
    or ``done``), ``owner`` (the run id), ``claim_expires_us`` and ``ttl`` (DynamoDB TTL, epoch seconds:
    :data:`DEDUPE_SECONDS` after the claim). A run claims its events with a conditional put while it holds
    the catalog's lease: free, a claim of its own (a retried task), or an expired claim of a run that died.
    ``done`` is final. A second run with the same event finds it claimed or done and leaves it alone.

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the state table.
        claim_seconds: how long a claim keeps other runs off (the lease's ttl: a dead run's events are
            taken up by a later delivery after that).
        clock: seconds since the epoch (tests pass a fake one).
    """

    def __init__(
        self, dynamodb_client: Any, table: str, claim_seconds: int = 900, clock: Any = time.time
    ) -> None:
        self.ddb = dynamodb_client
        self.table = table
        self.claim_seconds = claim_seconds
        self.clock = clock

    @staticmethod
    def key(event_id: str) -> dict[str, Any]:
        """The item key of an event id."""
        return {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": "event"}}

    def _put(
        self, event_id: str, owner: str, status: str, condition: str, reserved_for: str | None = None
    ) -> bool:
        now_us = int(self.clock() * 1_000_000)
        names = {"#owner": "owner", "#status": "status", "#exp": "claim_expires_us"}
        values = {":owner": {"S": owner}, ":now": {"N": str(now_us)}, ":claimed": {"S": "claimed"}}
        if reserved_for is not None:
            values[":reserved"] = {"S": reserved_for}
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={
                    **self.key(event_id),
                    "status": {"S": status},
                    "owner": {"S": owner},
                    "claim_expires_us": {"N": str(now_us + self.claim_seconds * 1_000_000)},
                    "ttl": {"N": str(int(self.clock()) + DEDUPE_SECONDS)},
                },
                ConditionExpression=condition,
                # DynamoDB refuses placeholders the condition does not use: pass only those it names.
                ExpressionAttributeNames={k: v for k, v in names.items() if k in condition},
                ExpressionAttributeValues={k: v for k, v in values.items() if k in condition},
            )
        except ClientError as err:
            if is_conditional_check_failed(err):
                return False
            raise
        return True

    def claim(
        self, event_ids: Iterable[str], owner: str, reserved_for: str | None = None
    ) -> tuple[list[str], list[str]]:
        """Claim events for run ``owner``.

        Args:
            event_ids: the events' ids.
            owner: the claiming run's id.
            reserved_for: the owner the events were reserved for (:meth:`reserve`; the HubSpot webhook
                receiver names the batch's run ``hs-<batch id>``): a run carrying that batch takes such a
                reservation over, even under another run id (a run started by hand with the same conf).

        Returns:
            (claimed, duplicates): ids this run now holds (new, already its own, or an expired claim taken
            over), and ids another run processed or is processing.
        """
        claimed, duplicates = [], []
        condition = "attribute_not_exists(PK) OR #owner = :owner OR (#status = :claimed AND #exp <= :now)"
        if reserved_for is not None and reserved_for != owner:
            condition += " OR (#owner = :reserved AND #status = :claimed)"
        for event_id in dict.fromkeys(event_ids):
            took = self._put(event_id, owner, "claimed", condition, reserved_for)
            (claimed if took else duplicates).append(event_id)
        return claimed, duplicates

    def reserve(self, event_ids: Iterable[str], owner: str) -> tuple[list[str], list[str]]:
        """Reserve events for a run not started yet (the HubSpot webhook receiver, before it triggers it).

        Like :meth:`claim`, but a ``done`` event stays done even for the same ``owner``: a batch delivered
        again after its run finished names the same run id, and must not be taken up again.

        Returns:
            (reserved, duplicates): ids now held for ``owner``, and ids another run holds or any run did.
        """
        reserved, duplicates = [], []
        condition = (
            "attribute_not_exists(PK) OR (#owner = :owner AND #status = :claimed) "
            "OR (#status = :claimed AND #exp <= :now)"
        )
        for event_id in dict.fromkeys(event_ids):
            (reserved if self._put(event_id, owner, "claimed", condition) else duplicates).append(event_id)
        return reserved, duplicates

    def done(self, event_ids: Iterable[str], owner: str) -> int:
        """Mark this run's claimed events processed; returns how many were (a retry marks none twice)."""
        marked = 0
        for event_id in dict.fromkeys(event_ids):
            marked += self._put(event_id, owner, "done", "#owner = :owner")
        return marked

    def status(self, event_id: str) -> dict[str, Any] | None:
        """The stored ``{"status", "owner"}`` of an event id, or None."""
        item = self.ddb.get_item(TableName=self.table, Key=self.key(event_id), ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return None
        return {"status": item["status"]["S"], "owner": item["owner"]["S"]}


# -- audit -------------------------------------------------------------------------------------------
def events_audit_pk(catalog: str) -> str:
    """The audit partition of a catalog's events: ``events#{catalog}``."""
    return f"events#{catalog}"


def event_audit_entries(
    run: Mapping[str, Any],
    events: Iterable[ParsedEvent],
    duplicates: Iterable[str] = (),
) -> list[Any]:
    """One audit entry per event of the run: ``EVENT_PROCESSED``, ``EVENT_IGNORED`` or ``EVENT_DUPLICATE``.

    Ids only in ``metadata`` (event id, detail-type, the records named, the reason); never the detail.
    An event without an id (malformed) is audited under ``no-id-{n}``.
    """
    from cosell_sync.audit import AuditEntry
    from cosell_sync.common import parse_ts

    dup = set(duplicates)
    out = []
    for n, event in enumerate(events):
        if event.ignored:
            outcome = Outcome.IGNORED
        elif event.event_id in dup:
            outcome = Outcome.DUPLICATE
        else:
            outcome = Outcome.PROCESSED
        metadata: dict[str, Any] = {
            "eventId": event.event_id or f"no-id-{n}",
            "detailType": event.detail_type or None,
            "dagId": run.get("dag_id"),
        }
        for name, ids in (
            ("opportunityIds", event.opportunity_ids),
            ("invitationIds", event.invitation_ids),
            ("engagementIds", event.engagement_ids),
        ):
            if ids:
                metadata[name] = list(ids)
        if event.reason:
            metadata["reason"] = event.reason
        out.append(
            AuditEntry(
                opportunity_id=events_audit_pk(str(run["catalog"])),
                run_id=str(run["run_id"]).replace("#", "_"),
                run_timestamp=parse_ts(str(run["started_at"])),
                direction=f"{event.source}_EVENT",
                action=f"EVENT_{outcome.value}",
                source="HUBSPOT" if event.source == "HUBSPOT" else "PARTNER_CENTRAL",
                user=f"airflow:{run.get('dag_id') or 'cosell_events'}",
                success=outcome is not Outcome.IGNORED,
                metadata={k: v for k, v in metadata.items() if v is not None},
            )
        )
    return out


def event_latencies(events: Iterable[ParsedEvent], now: datetime | None = None) -> dict[str, float]:
    """Seconds from each processed event's ``time`` to ``now`` (the event-to-update time of a run)."""
    now = now or datetime.now(UTC)
    out = {}
    for event in events:
        if event.ignored or not event.time or not event.event_id:
            continue
        out[event.event_id] = round((now - datetime.fromisoformat(event.time)).total_seconds(), 3)
    return out


def render_input_transformer(transformer: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    """What an EventBridge input transformer makes of ``event``: the body the API destination posts.

    Supports what the deploy template uses (``deploy/cloudformation/cosell-events.yaml``): ``InputPathsMap``
    entries with simple ``$.a.b`` paths, and the reserved ``<aws.events.event.json>`` (the whole event).
    Used to post events to a local Airflow exactly as AWS would, and to test the template.

    Args:
        transformer: the target's ``InputTransformer`` (``InputPathsMap``, ``InputTemplate``).
        event: the EventBridge event.
    """
    out = str(transformer["InputTemplate"]).replace("<aws.events.event.json>", json.dumps(event))
    for name, path in (transformer.get("InputPathsMap") or {}).items():
        value: Any = event
        for part in str(path).removeprefix("$.").split("."):
            value = value[part]
        out = out.replace(f"<{name}>", str(value))
    return out
