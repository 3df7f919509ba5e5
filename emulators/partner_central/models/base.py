"""Shared core of the Partner Central backend: stores, clock, ids, ARNs, events, idempotency, helpers.

Every resource mixin in this package builds on :class:`BackendBase`. Timestamps are stored as integer epoch
milliseconds; the response layer renders them as ISO-8601 with milliseconds, so a ``LastModifiedDate`` a
client read and sends back compares equal at millisecond precision.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from emulators.partner_central import shapes
from emulators.partner_central.events import EventBus
from emulators.partner_central.exceptions import ConflictException, ValidationException

ACCOUNT_ID = "123456789012"
AWS_ACCOUNT = "aws"  # how AWS appears as sender/member (matches the AwsAccount pattern \w{1,12})
REGION = "us-east-1"
CATALOGS = ("AWS", "Sandbox")

iso = shapes.iso_ms


def parse_ts(value: Any) -> int:
    """A request timestamp (epoch seconds as botocore sends them, or ISO-8601) as epoch milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value * 1000)
    text = str(value).replace("Z", "+00:00")
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return round(parsed.timestamp() * 1000)


def get_path(record: dict[str, Any] | None, path: str) -> Any:
    """Value at a dotted path, or None."""
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def is_empty(value: Any) -> bool:
    """True for None and empty strings, lists and dicts (the API treats them as omitted)."""
    return value is None or value == [] or value == {} or value == ""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted path; lists are leaves; empty values are dropped (null == omitted)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    elif not is_empty(value):
        out[prefix] = value
    return out


def changed_paths(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Dotted paths whose value differs between two records."""
    a, b = flatten(old), flatten(new)
    return {p for p in a.keys() | b.keys() if a.get(p) != b.get(p)}


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` merged into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def digest(params: dict[str, Any]) -> str:
    """A stable hash of a request body (idempotency and NextToken binding)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def encode_token(payload: dict[str, Any]) -> str:
    """An opaque NextToken."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    """Decode a NextToken or fail the way AWS does (ValidationException on NextToken)."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError as err:
        raise ValidationException(
            "Invalid NextToken",
            [{"FieldName": "NextToken", "Message": "Invalid NextToken", "Code": "INVALID_VALUE"}],
        ) from err
    return payload


def paginate(items: list[Any], params: dict[str, Any], default_size: int) -> tuple[list[Any], str | None]:
    """Offset pagination for the small collections (engagements, invitations, tasks...)."""
    size = params.get("MaxResults") or default_size
    start = 0
    if params.get("NextToken"):
        start = int(decode_token(params["NextToken"]).get("o", 0))
    page = items[start : start + size]
    nxt = encode_token({"o": start + size}) if start + size < len(items) else None
    return page, nxt


def new_store() -> dict[str, Any]:
    """An empty per-catalog store."""
    return {
        "opportunities": {},
        "aws_summaries": {},
        "engagements": {},
        "invitations": {},
        "snapshots": {},
        "snapshot_jobs": {},
        "tasks": {
            "EngagementFromOpportunity": {},
            "EngagementByAcceptingInvitation": {},
            "OpportunityFromEngagement": {},
            "ProspectingFromEngagement": {},
        },
        "solutions": {},
        "settings": {},
        "next_opp": 1_000_000,
    }


def not_permitted(summary: str, paths: list[str], field_message: str) -> ValidationException:
    """The error AWS gives for fields the review state does not let a partner change."""
    return ValidationException(
        f"{summary}: {', '.join(paths)}",
        [{"FieldName": p, "Message": field_message, "Code": "ACTION_NOT_PERMITTED"} for p in paths],
        reason="BUSINESS_VALIDATION_FAILED",
    )


class BackendBase:
    """All Partner Central state for one partner account, thread-safe behind one re-entrant lock.

    Resource mixins add the operations; this class owns the stores, the clock, ids, ARNs, events and
    idempotency.

    Args:
        account_id: the partner's 12-digit AWS account id.
        region: region for ARNs and events.
    """

    def __init__(self, account_id: str = ACCOUNT_ID, region: str = REGION) -> None:
        self.account_id = account_id
        self.region = region
        self.lock = threading.RLock()
        self.events = EventBus(account_id, region)
        self.task_delay_ms = 200
        self.reset()

    # ----------------------------------------------------------------------------------------- plumbing
    def reset(self) -> None:
        """Forget everything (tags, idempotency tokens, events); mixins extend it (default solutions)."""
        with self.lock:
            self.stores: dict[str, dict[str, Any]] = {c: new_store() for c in CATALOGS}
            self.tags: dict[str, dict[str, str]] = {}
            self.idempotency: dict[str, tuple[str, Any]] = {}
            self.clock_offset_ms = 0
            self._last_ms = 0
            # Due time, catalog, kind, task id of each unfinished asynchronous task (tasks.py).
            self.pending_tasks: list[tuple[int, str, str, str]] = []
            # ListOpportunities sort results per filter, valid while data_version is unchanged.
            self.list_cache: dict[tuple[Any, ...], tuple[int, list[tuple[Any, str]]]] = {}
            self.data_version = 0
            self._rng = random.Random(7)  # ids only; deterministic so failures reproduce
            self.events.clear()

    def now(self) -> int:
        """Current time in epoch ms, strictly increasing across calls (LastModifiedDate must always move)."""
        with self.lock:
            ms = int(time.time() * 1000) + self.clock_offset_ms
            self._last_ms = max(ms, self._last_ms + 1)
            return self._last_ms

    def peek_now(self) -> int:
        """Current time in epoch ms without consuming a tick."""
        return max(int(time.time() * 1000) + self.clock_offset_ms, self._last_ms)

    def advance_clock_to(self, ms: int) -> None:
        """Make later ``now()`` values exceed ``ms`` (records written straight into the store, e.g. seeds)."""
        with self.lock:
            self._last_ms = max(self._last_ms, ms)

    def store(self, catalog: str) -> dict[str, Any]:
        """The catalog's store; AWS and Sandbox are separate (API reference: ``Catalog``)."""
        if catalog not in self.stores:
            raise ValidationException(
                f"Catalog {catalog} is not valid",
                [
                    {
                        "FieldName": "Catalog",
                        "Message": "Catalog must be AWS or Sandbox",
                        "Code": "INVALID_VALUE",
                    }
                ],
            )
        return self.stores[catalog]

    def rand_id(self, n: int) -> str:
        """``n`` random lowercase letters and digits (deterministic sequence per reset)."""
        return "".join(self._rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(n))

    def make_arn(self, catalog: str, kind: str, ident: str) -> str:
        """The ARN of a catalog resource."""
        return f"arn:aws:partnercentral:{self.region}:{self.account_id}:catalog/{catalog}/{kind}/{ident}"

    def emit(self, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        """Emit an EventBridge event stamped with the current time."""
        self.events.emit(detail_type, detail, resources, iso(self.peek_now()))

    def touch(self) -> None:
        """Note that opportunity data changed (invalidates the ListOpportunities cache)."""
        self.data_version += 1

    def on_opportunity_changed(self, opp: dict[str, Any]) -> None:
        """Hook run after every opportunity change; the snapshots mixin re-snapshots running jobs."""

    def on_aws_review(self, opp: dict[str, Any], review_status: str) -> None:
        """Hook run when AWS reviews a submitted opportunity; the tasks mixin answers its invitation."""

    def idempotent(
        self, catalog: str, operation: str, params: dict[str, Any], action: Callable[[], Any]
    ) -> Any:
        """Run ``action`` once per ClientToken (API reference, ``ClientToken``).

        The same token and body returns the first result; the same token with another body is a
        ``ConflictException``.
        """
        with self.lock:
            key = f"{catalog}|{operation}|{params['ClientToken']}"
            request_digest = digest(params)
            if key in self.idempotency:
                seen_digest, result = self.idempotency[key]
                if seen_digest != request_digest:
                    raise ConflictException(
                        f"ClientToken {params['ClientToken']} was already used with a different request"
                    )
                return copy.deepcopy(result)
            result = action()
            self.idempotency[key] = (request_digest, copy.deepcopy(result))
            return result

    # --------------------------------------------------------------------------------- persistence
    def dump(self) -> dict[str, Any]:
        """Everything needed to restore the state (``--state FILE``)."""
        with self.lock:
            return {
                "stores": self.stores,
                "tags": self.tags,
                "last_ms": self._last_ms,
                "idempotency": {k: list(v) for k, v in self.idempotency.items()},
            }

    def load(self, data: dict[str, Any]) -> None:
        """Restore what ``dump`` produced."""
        with self.lock:
            self.stores = data["stores"]
            self.tags = data["tags"]
            self._last_ms = data["last_ms"]
            self.idempotency = {k: (v[0], v[1]) for k, v in data["idempotency"].items()}
            self.touch()
