"""HubSpot webhook batches: verify their signature, name them, and map their events to opportunities.

HubSpot posts a JSON array of at most 100 events to the app's target URL. The receiver (the plugin's
``cosell_runtime.webhooks`` app) and ``cosell_events`` share this module; it needs no Airflow.

Contract, in the receiver's order (each step is safe to repeat, because HubSpot retries a delivery that
fails, times out or answers non-2xx, up to 10 times over 24 hours, with a new timestamp and signature and
``attemptNumber`` + 1):

1. :func:`verify_v3` checks ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, method + URI +
   raw body + timestamp)) in constant time and refuses a ``X-HubSpot-Request-Timestamp`` older than
   :data:`MAX_AGE_SECONDS` (HubSpot developer docs, "Validating requests", v3; the signed URI is the one
   HubSpot called, with the characters in :data:`_HUBSPOT_DECODED` percent-decoded, see :func:`signed_uri`).
2. :func:`parse_batch` validates the events (:class:`HubSpotWebhookEvent`); a malformed one is kept as
   ignored, never an error. :func:`event_key` is the dedupe key of an event (``hs-<portal>-<eventId>-<sub>``);
   :func:`batch_id` names a batch by its event keys, so a retried delivery (other timestamp, other
   ``attemptNumber``) has the same id, the same S3 key and the same Airflow run id (:func:`run_id`).
3. The receiver reserves the event keys in the state table (``events.EventLedger.reserve``), stores the raw
   body at :func:`batch_key` and only then triggers ``cosell_events`` and answers 200.

In the run, :func:`resolve_opportunities` turns each event into the opportunities to sync: deal events
name a deal, company and contact events the deals associated with them (v4 batch association reads),
association changes the deal on either side; the deals' link property (``aws_opportunity_id``, one batch
read per 100 deals) names the opportunities. A deal that no longer exists (deletion) is looked up in the
last synced baseline. :func:`parsed_events` makes ``events.ParsedEvent`` of them, so dedupe, planning and
audit are ``cosell_events``' own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosell_sync.events import EventKind, ParsedEvent

#: HubSpot: "Reject the request if the timestamp is older than 5 minutes".
MAX_AGE_SECONDS = 300
SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
#: HubSpot's v3 instructions: decode these URL-encoded characters of the request URI before signing
#: (and only these: others stay encoded).
_HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ENCODED = re.compile("|".join(_HUBSPOT_DECODED), re.IGNORECASE)
#: The CRM objects whose webhooks the sync subscribes to, and the v4 association object type names.
OBJECT_TYPES = {"deal": "deals", "company": "companies", "contact": "contacts"}
SUBSCRIPTION_KINDS = ("creation", "propertyChange", "deletion", "associationChange")


class SignatureError(Exception):
    """A webhook request that cannot be shown to come from HubSpot; ``reason`` names the rule only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- signature ---------------------------------------------------------------------------------------
def signed_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed percent-encoded characters decoded (any hex case)."""
    return _ENCODED.sub(lambda m: _HUBSPOT_DECODED[m.group(0).upper()], uri)


def sign_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature of a request (base64 HMAC-SHA256 of method + URI + body + timestamp)."""
    source = method.upper().encode() + signed_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(client_secret.encode(), source, hashlib.sha256).digest()).decode()


def verify_v3(
    client_secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now_ms: int,
    max_age_seconds: int = MAX_AGE_SECONDS,
) -> None:
    """Check a request's v3 signature and timestamp.

    Args:
        client_secret: the HubSpot app's client secret.
        method: the HTTP method of the request.
        uri: the full URI HubSpot called (scheme, host, path, query), as registered in the app.
        body: the raw request body, byte for byte (never re-serialised JSON).
        timestamp: ``X-HubSpot-Request-Timestamp`` (epoch milliseconds).
        signature: ``X-HubSpot-Signature-v3``.
        now_ms: the current time in epoch milliseconds.
        max_age_seconds: the oldest timestamp accepted; one as far in the future is refused too.

    Raises:
        SignatureError: no secret, a missing header, a stale or unreadable timestamp, or a bad signature.
    """
    if not client_secret:
        raise SignatureError("no client secret configured")
    if not signature or not timestamp:
        raise SignatureError(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    try:
        sent_ms = int(timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not epoch milliseconds") from None
    if abs(now_ms - sent_ms) > max_age_seconds * 1000:
        raise SignatureError(f"{TIMESTAMP_HEADER} is more than {max_age_seconds}s from now")
    expected = sign_v3(client_secret, method, uri, body, timestamp)
    # Constant time, as HubSpot recommends: the comparison leaks nothing about the expected value.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match")


# -- events ------------------------------------------------------------------------------------------
class HubSpotWebhookEvent(BaseModel):
    """One event of a HubSpot webhook batch (the CRM object subscriptions the sync uses).

    ``propertyValue`` is deliberately not kept: it can be PII, and the run reads the record anyway.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    event_id: int = Field(alias="eventId", ge=0)
    subscription_id: int = Field(default=0, alias="subscriptionId", ge=0)
    portal_id: int = Field(alias="portalId", ge=0)
    app_id: int | None = Field(default=None, alias="appId")
    occurred_at: int = Field(alias="occurredAt", ge=0, description="epoch milliseconds")
    subscription_type: str = Field(
        alias="subscriptionType",
        pattern=rf"^({'|'.join(OBJECT_TYPES)})\.({'|'.join(SUBSCRIPTION_KINDS)})$",
    )
    attempt_number: int = Field(default=0, alias="attemptNumber", ge=0)
    object_id: int | None = Field(default=None, alias="objectId", ge=0)
    property_name: str | None = Field(default=None, alias="propertyName")
    change_source: str | None = Field(default=None, alias="changeSource")
    association_type: str | None = Field(default=None, alias="associationType")
    from_object_id: int | None = Field(default=None, alias="fromObjectId", ge=0)
    to_object_id: int | None = Field(default=None, alias="toObjectId", ge=0)
    association_removed: bool | None = Field(default=None, alias="associationRemoved")

    @property
    def object_type(self) -> str:
        """``deal``, ``company`` or ``contact``."""
        return self.subscription_type.partition(".")[0]

    @property
    def kind(self) -> str:
        """``creation``, ``propertyChange``, ``deletion`` or ``associationChange``."""
        return self.subscription_type.partition(".")[2]

    @property
    def key(self) -> str:
        """The dedupe key (see :func:`event_key`)."""
        return f"hs-{self.portal_id}-{self.event_id}-{self.subscription_id}"

    def targets(self) -> list[tuple[str, str]]:
        """The (object type, id) pairs whose deals the event concerns.

        An association change names both ends (``associationType`` e.g. ``DEAL_TO_COMPANY``); when one
        end is a deal only that deal matters, else both ends' deals.
        """
        if self.kind != "associationChange":
            return [(self.object_type, str(self.object_id))] if self.object_id is not None else []
        from_type, _, to_type = (self.association_type or "").lower().partition("_to_")
        ends = [
            (t, str(i))
            for t, i in ((from_type, self.from_object_id), (to_type, self.to_object_id))
            if t in OBJECT_TYPES and i is not None
        ]
        deals = [end for end in ends if end[0] == "deal"]
        return deals or ends


def event_key(raw: Mapping[str, Any]) -> str | None:
    """The dedupe key of a raw event: ``hs-<portalId>-<eventId>-<subscriptionId>``; None if it has none.

    HubSpot documents ``eventId`` as not guaranteed unique on its own: with the portal and the
    subscription it names one event of one subscription, and a retried delivery keeps all three.
    """
    event_id, portal = raw.get("eventId"), raw.get("portalId")
    if not isinstance(event_id, int) or not isinstance(portal, int) or isinstance(event_id, bool):
        return None
    sub = raw.get("subscriptionId")
    return f"hs-{portal}-{event_id}-{sub if isinstance(sub, int) else 0}"


@dataclass(frozen=True)
class WebhookBatch:
    """A received batch: its events (valid ones parsed) and the keys that name it.

    Attributes:
        events: ``(key, parsed event or None, reason)`` per raw event, in delivery order.
        batch_id: SHA-256 (hex) of the sorted event keys (of the raw body when no event has a key).
    """

    events: list[tuple[str | None, HubSpotWebhookEvent | None, str | None]] = field(default_factory=list)
    batch_id: str = ""

    @property
    def keys(self) -> list[str]:
        """The dedupe keys of the events that have one, in order, once each."""
        return list(dict.fromkeys(k for k, _, _ in self.events if k))

    def object_ids(self) -> dict[str, list[str]]:
        """The object ids the valid events name, per object type (for the run's conf, ids only)."""
        out: dict[str, set[str]] = {}
        for _, event, _ in self.events:
            for object_type, object_id in event.targets() if event else ():
                out.setdefault(object_type, set()).add(object_id)
        return {k: sorted(v, key=int) for k, v in sorted(out.items())}


def _problem(err: ValidationError) -> str:
    """Field names and rules only: values never reach logs or the audit."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc') or ()) or 'event'}: {e.get('type', 'invalid')}"
        for e in err.errors()[:3]
    )


class MalformedBatchError(ValueError):
    """The body is not a JSON array (HubSpot always sends one): the request is refused, not stored."""


def parse_batch(body: bytes | str | list[Any]) -> WebhookBatch:
    """Parse a webhook body; a malformed event is kept (reason set), never an error.

    Raises:
        MalformedBatchError: the body is not a JSON array.
    """
    raw = body
    if isinstance(body, bytes | str):
        try:
            raw = json.loads(body)
        except ValueError:
            raise MalformedBatchError("the body is not JSON") from None
    if not isinstance(raw, list):
        raise MalformedBatchError("the body is not a JSON array of events")
    events: list[tuple[str | None, HubSpotWebhookEvent | None, str | None]] = []
    for item in raw:
        if not isinstance(item, Mapping):
            events.append((None, None, "malformed: not a JSON object"))
            continue
        key = event_key(item)
        try:
            events.append((key, HubSpotWebhookEvent.model_validate(item), None))
        except ValidationError as err:
            events.append((key, None, f"malformed: {_problem(err)}"))
    keys = sorted({k for k, _, _ in events if k})
    if keys:
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    else:
        digest = hashlib.sha256(body if isinstance(body, bytes) else json.dumps(raw).encode()).hexdigest()
    return WebhookBatch(events=events, batch_id=digest)


def batch_key(batch_id: str, received: datetime) -> str:
    """The S3 key of a batch, relative to the storage prefix: ``webhooks/hubspot/YYYY/MM/DD/<id>.json``."""
    return f"webhooks/hubspot/{received.astimezone(UTC):%Y/%m/%d}/{batch_id}.json"


def run_id(batch_id: str) -> str:
    """The ``cosell_events`` run id of a batch: a retried delivery cannot start a second run."""
    return f"hs-{batch_id[:40]}"


# -- in the run: events to opportunities -------------------------------------------------------------
@dataclass
class Resolution:
    """What :func:`resolve_opportunities` found: opportunities per event key, reasons for the rest."""

    opportunities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    #: ``company``/``contact`` -> {object id: [deal ids]}: what the run's HubSpot extract must read
    #: (a restricted run reads deals only and takes companies and contacts from the baseline).
    related: dict[str, dict[str, list[str]]] = field(default_factory=dict)


def resolve_opportunities(
    gateway: Any,
    batch: WebhookBatch,
    link_property: str,
    known_links: Mapping[str, str] | None = None,
) -> Resolution:
    """The opportunities each valid event of ``batch`` concerns.

    API calls: one v4 association read per object type with events (companies, contacts: at most 2 per
    100 objects) and one deal batch read per 100 deals, counted in ``gateway.calls``.

    Args:
        gateway: a ``hubspot_api.HubSpotGateway``.
        batch: the parsed batch.
        link_property: the deal property holding the opportunity id (``aws_opportunity_id``).
        known_links: deal id -> opportunity id of the last synced baseline: how a deleted deal (which the
            batch read no longer returns) still names its opportunity.
    """
    known_links = known_links or {}
    targets = {k: e.targets() for k, e, _ in batch.events if k and e is not None}
    via: dict[str, set[str]] = {}
    for pairs in targets.values():
        for object_type, object_id in pairs:
            if object_type != "deal":
                via.setdefault(object_type, set()).add(object_id)
    deals_of: dict[tuple[str, str], list[str]] = {}
    for object_type, ids in sorted(via.items()):
        found = gateway.associations(OBJECT_TYPES[object_type], "deals", sorted(ids))
        for object_id in ids:
            deals_of[(object_type, object_id)] = found.get(object_id, [])
    deal_ids_of: dict[str, list[str]] = {}
    for key, pairs in targets.items():
        ids: list[str] = []
        for object_type, object_id in pairs:
            ids += [object_id] if object_type == "deal" else deals_of.get((object_type, object_id), [])
        deal_ids_of[key] = list(dict.fromkeys(ids))
    all_deals = sorted({d for ids in deal_ids_of.values() for d in ids}, key=int)
    link: dict[str, str] = {}
    if all_deals:
        found, _errors = gateway.batch_read("deals", all_deals, [link_property])
        for deal in found:
            value = (deal.get("properties") or {}).get(link_property)
            if value:
                link[str(deal["id"])] = str(value)
    out = Resolution()
    for (object_type, object_id), deal_ids in sorted(deals_of.items()):
        if deal_ids:
            out.related.setdefault(object_type, {})[object_id] = sorted(deal_ids, key=int)
    for key, deal_ids in deal_ids_of.items():
        opportunities = [link.get(d) or known_links.get(d) for d in deal_ids]
        named = tuple(sorted({o for o in opportunities if o}))
        if named:
            out.opportunities[key] = named
        elif not deal_ids:
            out.reasons[key] = "no deal is associated with the object"
        else:
            # A new deal gets its opportunity from the scheduled run (creates are planned over the book).
            out.reasons[key] = "no linked opportunity (the scheduled run handles new deals)"
    return out


def parsed_events(batch: WebhookBatch, resolution: Resolution, catalog: str) -> list[ParsedEvent]:
    """``cosell_events``' view of a batch: one ``ParsedEvent`` per event, in delivery order.

    Events naming opportunities are opportunity events of ``catalog`` (a HubSpot portal feeds one
    deployment); malformed ones and those naming none are ignored with their reason.
    """
    out = []
    for key, event, reason in batch.events:
        detail_type = f"hubspot:{event.subscription_type}" if event else "hubspot:?"
        occurred = datetime.fromtimestamp(event.occurred_at / 1000, tz=UTC).isoformat() if event else None
        base: dict[str, Any] = {"catalog": catalog, "time": occurred, "source": "HUBSPOT"}
        if event is None or key is None:
            out.append(ParsedEvent(key, detail_type, reason=reason or "malformed: no eventId", **base))
        elif key in resolution.opportunities:
            out.append(
                ParsedEvent(
                    key,
                    detail_type,
                    kind=EventKind.OPPORTUNITY,
                    opportunity_ids=resolution.opportunities[key],
                    **base,
                )
            )
        else:
            out.append(ParsedEvent(key, detail_type, reason=resolution.reasons.get(key), **base))
    return out
