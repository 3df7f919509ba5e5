"""The audit trail: one DynamoDB item per record, run, direction and action, kept for ``retention_days``.

Item shape (the shared design's audit table, with keys made deterministic)::

    PK              opportunity id, or "deal#{deal_id}" while no opportunity exists yet
    SK              "{run_timestamp}#{run_id}#{direction}#{action}"
    timestamp       the run timestamp (fixed-width ISO UTC)
    action          CREATE_OPPORTUNITY | UPDATE_OPPORTUNITY | CREATE_DEAL | ... (``AuditAction``)
    source          HUBSPOT | PARTNER_CENTRAL (where the change came from)
    user            "airflow:cosell_reconcile" (a principal id, never an email)
    changes         {field: {old, new}}
    success, error, syncDurationMs, apiCalls
    metadata        {dealId, runId, dagId, triggeredBy, ...}: ids only
    ttl             epoch seconds = run timestamp + retention (the table's TTL attribute)
    offloaded       only on an entry too large for DynamoDB: {key, attributes, bytes}, the S3 object holding
                    its largest attributes (``storage.LargeItems``); reads put them back

The sort key is derived from the *run* (its logical timestamp and id), never from the wall clock, so a
retried task produces the same keys again instead of adding copies. The contract names
``{run_timestamp}#{run_id}#{direction}``; the action is appended because one record can get several
entries in one run and direction (an update and a submit, say), which would otherwise collide. Where one
record can even get several entries of one action in one run (two conflicting fields, two engagements),
the entry's event id from ``metadata`` (``conflictId``, ``engagementId``, ``invitationId``) is appended
too. Range queries on the timestamp prefix are unaffected.

Immutable: the trail is append-only. Each entry is written with a conditional ``PutItem``
(``attribute_not_exists(PK)``), never ``UpdateItem``, ``DeleteItem`` or ``BatchWriteItem`` (which cannot
take a condition), so the IAM policy of the README grants ``dynamodb:PutItem`` and no update or delete.
An entry whose key already exists is left as it is: a retried task re-writing its entries succeeds
without copies, and a second, different version of an entry (a re-audit of a dead run's journal by
a later run, say) is refused and counted in a warning; the first one written stays.

PII: ``changes`` holds field values (what the audit is for), so access to the table is the control;
``user`` and ``metadata`` are validated to contain no email address, and this module never logs an
entry's values, only counts. What ``changes`` keeps of each field is set per field by the config's
``audit.value_policy`` (default ``audit.default_value_policy``, ``keep``), applied here as entries are
written:

- ``keep``: the old and new values, as they are: a rollback can restore them;
- ``hash``: ``sha256:<hex>`` of each value (unsalted: it shows that a value changed and can confirm a
  known value, it does not hide a guessable one); a rollback refuses the field;
- ``drop``: no values (``None``); a rollback refuses the field.

An item written under ``hash``/``drop`` lists those fields in ``valuePolicy``, so :meth:`AuditTrail.state_at`
returns :class:`ValueNotKept` for them instead of a hash or a null a rollback would write back. Entries
expire ``retention_days`` after their run (``audit.retention_days``, seven years by default).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cosell_sync.common import AuditAction
from cosell_sync.errors import NotFoundError, ThrottledError
from cosell_sync.storage import (
    LargeItems,
    from_item,
    is_conditional_check_failed,
    query_all,
    run_key,
    to_item,
    utc_iso,
)

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.storage import SnapshotStore

log = logging.getLogger(__name__)

DEFAULT_USER = "airflow:cosell_reconcile"


#: Threads for :meth:`AuditTrail.write`: one conditional PutItem per entry (see there).
WRITE_THREADS = 8

#: Metadata ids that tell apart several entries of one record, run, direction and action (see the
#: module docstring); the first one present joins the sort key. ``eventId``: an EventBridge event
#: (``cosell_events`` audits each event of a run under one partition).
EVENT_ID_KEYS = ("conflictId", "engagementId", "invitationId", "eventId")

#: DynamoDB error codes of a request refused for throughput (after botocore's own retries).
_THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)

#: The condition that makes a put append-only: no item with this key exists yet.
_ONLY_NEW = "attribute_not_exists(PK)"


# Entries whose `changes` were written to a system: only these move a field's value in `state_at`.
# CONFLICT_DETECTED, DEFERRED and SKIPPED describe proposed changes that were *not* applied.
APPLIED_ACTIONS = frozenset(
    {
        AuditAction.CREATE_OPPORTUNITY,
        AuditAction.UPDATE_OPPORTUNITY,
        AuditAction.CREATE_DEAL,
        AuditAction.UPDATE_DEAL,
        AuditAction.CONFLICT_RESOLVED,
        AuditAction.ROLLBACK,
    }
)

#: What the audit keeps of a field's values (config ``audit.value_policy``; see the module docstring).
VALUE_POLICIES = ("keep", "hash", "drop")


class ValueNotKept:
    """A field value the audit did not keep (policy ``hash`` or ``drop``): a rollback cannot restore it.

    Args:
        policy: ``hash`` or ``drop``.
    """

    __slots__ = ("policy",)

    def __init__(self, policy: str) -> None:
        self.policy = policy

    def __repr__(self) -> str:
        return f"ValueNotKept({self.policy!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValueNotKept) and other.policy == self.policy

    def __hash__(self) -> int:
        return hash(("ValueNotKept", self.policy))


def _hashed(value: Any) -> str | None:
    return None if value is None else "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()


def apply_value_policy(record: dict[str, Any], policy_for: Callable[[str], str]) -> dict[str, Any]:
    """The stored record with each field's values kept, hashed or dropped as its policy says.

    Args:
        record: an ``AuditEntry.to_record`` dict (not modified).
        policy_for: field name -> ``keep``/``hash``/``drop``.

    Returns:
        The record to store; fields not kept are listed in ``valuePolicy``.
    """
    changes = record.get("changes") or {}
    policies = {name: policy_for(name) for name in changes}
    reduced = {name: p for name, p in policies.items() if p != "keep"}
    if not reduced:
        return record
    out_changes = dict(changes)
    for name, p in reduced.items():
        change = changes[name]
        if p == "hash":
            out_changes[name] = {"old": _hashed(change.get("old")), "new": _hashed(change.get("new"))}
        else:
            out_changes[name] = {"old": None, "new": None}
    return {**record, "changes": out_changes, "valuePolicy": reduced}


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ACTION = re.compile(r"^[A-Z][A-Z_]*$")


def _contains_email(value: Any) -> bool:
    if isinstance(value, str):
        # Most values are ids: no "@", no regex search (10,000 entries of a load are validated).
        return "@" in value and bool(_EMAIL.search(value))
    if isinstance(value, Mapping):
        return any(_contains_email(k) or _contains_email(v) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return any(_contains_email(v) for v in value)
    return False


class FieldChange(BaseModel):
    """One field's change: the value before and after (canonical values, None when unset)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    old: Any = None
    new: Any = None


class AuditEntry(BaseModel):
    """One audited action on one record in one run (see the module docstring for the stored shape).

    Build it with the Python names (``sync_duration_ms``) or the stored ones (``syncDurationMs``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    opportunity_id: str | None = None
    deal_id: str | None = None
    run_id: str
    run_timestamp: datetime = Field(description="the run's logical timestamp, timezone-aware")
    direction: str = Field(description="e.g. HUBSPOT_TO_PARTNER_CENTRAL; part of the sort key")
    action: str
    source: Literal["HUBSPOT", "PARTNER_CENTRAL"]
    user: str = DEFAULT_USER
    changes: dict[str, FieldChange] = Field(default_factory=dict)
    success: bool = True
    error: dict[str, Any] | None = None
    sync_duration_ms: int = Field(default=0, ge=0, alias="syncDurationMs")
    api_calls: list[str] = Field(default_factory=list, alias="apiCalls")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("run_timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        utc_iso(value)  # raises on naive datetimes: a guessed time zone would misplace the entry
        return value

    @field_validator("action")
    @classmethod
    def _action_name(cls, value: str) -> str:
        value = str(value)
        if not _ACTION.match(value):
            raise ValueError(f"action must be an upper-case name like UPDATE_OPPORTUNITY, got {value!r}")
        return value

    @field_validator("run_id", "direction")
    @classmethod
    def _key_part(cls, value: str) -> str:
        # "#" separates the sort key's parts; one inside a part would make range queries ambiguous.
        if not value or "#" in value:
            raise ValueError(f"must be non-empty and contain no '#': {value!r}")
        return value

    @field_validator("user", "metadata")
    @classmethod
    def _no_email(cls, value: Any) -> Any:
        if _contains_email(value):
            raise ValueError("user and metadata must not contain email addresses (PII); use ids")
        return value

    @model_validator(mode="after")
    def _has_record(self) -> AuditEntry:
        if not self.opportunity_id and not self.deal_id:
            raise ValueError("an audit entry needs an opportunity_id or a deal_id")
        return self

    @staticmethod
    def deal_pk(deal_id: str) -> str:
        """The partition of a deal's entries before it has an opportunity.

        Args:
            deal_id: the HubSpot deal id.

        Returns:
            ``deal#{deal_id}``.
        """
        return f"deal#{deal_id}"

    @property
    def pk(self) -> str:
        """The partition key: the opportunity id, else ``deal#{deal_id}``."""
        return self.opportunity_id or self.deal_pk(str(self.deal_id))

    @property
    def sk(self) -> str:
        """The sort key, deterministic from the run: ``{run_timestamp}#{run_id}#{direction}#{action}``.

        An entry whose metadata names an event (``EVENT_ID_KEYS``) gets ``#{event id}`` appended, so two
        conflicts of one record in one run are two entries, never one key claimed twice.
        """
        key = f"{utc_iso(self.run_timestamp)}#{self.run_id}#{self.direction}#{self.action}"
        event = next((self.metadata[k] for k in EVENT_ID_KEYS if self.metadata.get(k)), None)
        return f"{key}#{str(event).replace('#', '_')}" if event is not None else key

    def to_record(self, retention_days: int) -> dict[str, Any]:
        """The stored attributes, in the audit table's naming.

        Args:
            retention_days: how long DynamoDB keeps the entry (TTL from the run timestamp).

        Returns:
            A plain dict ready for ``storage.to_item``.
        """
        expires = self.run_timestamp + timedelta(days=retention_days)
        metadata = {
            "runId": self.run_id,
            **({"dealId": self.deal_id} if self.deal_id else {}),
            **self.metadata,
        }
        return {
            "PK": self.pk,
            "SK": self.sk,
            "timestamp": utc_iso(self.run_timestamp),
            "opportunityId": self.opportunity_id,
            "direction": self.direction,
            "action": self.action,
            "source": self.source,
            "user": self.user,
            "success": self.success,
            "error": self.error,
            "syncDurationMs": self.sync_duration_ms,
            "apiCalls": list(self.api_calls),
            "ttl": int(expires.timestamp()),
            # The nested maps last: DynamoDB ignores attribute order, but moto (the local stack) sums the
            # sizes of all attributes already set each time it sets one, so a large map set early is
            # measured again for every later attribute.
            "metadata": metadata,
            "changes": {k: v.model_dump() for k, v in self.changes.items()},
        }


class AuditTrail:
    """Writes and reads audit entries in the audit table.

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the audit table (PK/SK strings, TTL on ``ttl``).
        retention_days: how long entries are kept (the shared design uses 2555, seven years).
        snapshots: the S3 store that takes the values of entries too large for one DynamoDB item
            (``storage.LargeItems``); reads put them back, so callers never see the difference.
        value_policy: field -> ``keep``/``hash``/``drop``: what entries keep of its values (see the
            module docstring); config ``audit.value_policy``.
        default_value_policy: the policy of fields not in ``value_policy`` (``keep``).
    """

    def __init__(
        self,
        dynamodb_client: Any,
        table: str,
        retention_days: int,
        snapshots: SnapshotStore | None = None,
        value_policy: Mapping[str, str] | None = None,
        default_value_policy: str = "keep",
    ) -> None:
        if retention_days <= 0:
            raise ValueError(f"retention_days must be positive, got {retention_days}")
        for name, p in {**(value_policy or {}), "(default)": default_value_policy}.items():
            if p not in VALUE_POLICIES:
                raise ValueError(f"audit value policy of {name} must be one of {', '.join(VALUE_POLICIES)}")
        self.ddb = dynamodb_client
        self.table = table
        self.retention_days = retention_days
        #: field -> keep/hash/drop; fields not listed get ``default_value_policy``.
        self.value_policy = dict(value_policy or {})
        self.default_value_policy = default_value_policy
        # Content-addressed: a refused second version of an oversized entry leaves the kept one's object.
        self.large = LargeItems(snapshots, table, content_addressed=True)

    def policy_for(self, name: str) -> str:
        """The value policy of field ``name`` (``keep``, ``hash`` or ``drop``)."""
        return self.value_policy.get(name, self.default_value_policy)

    def write(self, entries: Iterable[AuditEntry]) -> int:
        """Append entries: one conditional ``PutItem`` each, on a few threads; an existing key is kept.

        Idempotent and append-only: entries have deterministic keys and each put carries
        ``attribute_not_exists(PK)``, so writing them again (a retried task) adds no copy and raises
        nothing, and no entry already stored is ever replaced. An entry refused because its key holds
        *different* content is counted in a warning (keys only, no values); the stored one stays.

        ``BatchWriteItem`` would take 25 items per call but no condition, and ``TransactWriteItems`` (100
        conditional puts per call) doubles the write cost and cancels the whole call when one entry
        exists, which is what a retry meets: so one conditional put per entry, in parallel.

        Args:
            entries: the entries.

        Returns:
            The number of distinct entries now in the trail (written by this call or already there); an
            entry repeated in ``entries`` counts once, the first one is written.

        Raises:
            ThrottledError: DynamoDB still refused a put for throughput after botocore's retries; the
                call is safe to repeat.
        """
        records: dict[tuple[str, str], dict[str, Any]] = {}
        differs: list[tuple[str, str]] = []
        for entry in entries:
            record = apply_value_policy(entry.to_record(self.retention_days), self.policy_for)
            key = (record["PK"], record["SK"])
            if key not in records:
                records[key] = record
            elif records[key] != record:
                differs.append(key)

        def put(record: dict[str, Any]) -> str:
            # An entry over DynamoDB's 400 KB item limit would be refused: its largest attributes go to
            # S3 first, under a key that includes their digest, so a refused second version of the entry
            # cannot replace the object the kept item points to.
            item = to_item(self.large.shrink(record))
            try:
                self.ddb.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression=_ONLY_NEW,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return "written"
            except ClientError as err:
                if not is_conditional_check_failed(err):
                    code = err.response.get("Error", {}).get("Code", "")
                    if code in _THROTTLED:
                        raise ThrottledError(
                            f"audit table {self.table} refused a put for throughput ({code}); "
                            "entries written so far stay, repeating the write is safe",
                            service="dynamodb",
                            code=code,
                        ) from err
                    raise
                stored = err.response.get("Item")
                if stored is None:  # an emulator without ReturnValuesOnConditionCheckFailure
                    key = {"PK": item["PK"], "SK": item["SK"]}
                    stored = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
                same = stored is not None and from_item(stored) == from_item(item)
                return "present" if same else "differs"

        values = list(records.values())
        if len(values) <= 1:
            outcomes = [put(r) for r in values]
        else:
            # Each put is a round trip: a load of 10k entries goes out on a few threads (boto3 clients
            # are thread-safe); each thread converts its own entries, overlapping conversion and sending.
            with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
                outcomes = list(pool.map(put, values))
        differs += [(r["PK"], r["SK"]) for r, o in zip(values, outcomes, strict=True) if o == "differs"]
        written = outcomes.count("written")
        log.info(
            "audit: %d entries written to %s, %d already there",
            written,
            self.table,
            len(values) - written,
        )
        if differs:
            # Keys are ids and run timestamps, never field values.
            log.warning(
                "audit: %d entries not written to %s: an entry with the same key holds different content "
                "and the trail is append-only (the first one is kept); e.g. %s",
                len(differs),
                self.table,
                ", ".join(f"{pk} {sk}" for pk, sk in differs[:5]),
            )
        return len(values)

    def history(
        self,
        opportunity_id: str,
        limit: int | None = 50,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """One record's entries, newest first.

        Args:
            opportunity_id: the opportunity id (or ``AuditEntry.deal_pk(deal_id)`` for a deal's
                entries from before it had an opportunity).
            limit: at most this many entries (None for all).
            start: only entries of runs at or after this time.
            end: only entries of runs at or before this time.

        Returns:
            The entries as plain dicts.
        """
        return [
            self.large.restore(from_item(i))
            for i in self._query(opportunity_id, start, end, newest_first=True, limit=limit)
        ]

    def state_at(
        self, opportunity_id: str, timestamp: datetime, deal_id: str | None = None
    ) -> dict[str, Any]:
        """The value each audited field had at a point in time (what a rollback restores).

        Replays the ``changes`` of successful entries that were applied (``APPLIED_ACTIONS``) up to and
        including runs at ``timestamp``. A field never changed by the sync before then is absent: its
        value is whatever the systems held, which the audit cannot know.

        Args:
            opportunity_id: the opportunity id.
            timestamp: the point in time (timezone-aware).
            deal_id: also replay the deal's entries from before it had an opportunity.

        Returns:
            Field -> value; :class:`ValueNotKept` for a field whose last applied entry did not keep its
            value (``audit.value_policy`` hash/drop), which a rollback must refuse.
        """
        items = [
            self.large.restore(from_item(i))
            for i in self._query(opportunity_id, None, timestamp, newest_first=False)
        ]
        if deal_id:
            items += [
                self.large.restore(from_item(i))
                for i in self._query(AuditEntry.deal_pk(deal_id), None, timestamp, newest_first=False)
            ]
            items.sort(key=lambda i: i["SK"])
        state: dict[str, Any] = {}
        for item in items:
            if not item.get("success") or item.get("action") not in APPLIED_ACTIONS:
                continue
            not_kept = item.get("valuePolicy") or {}
            for field, change in (item.get("changes") or {}).items():
                # A hash or a dropped value is no value to restore: say so instead of returning it.
                state[field] = ValueNotKept(not_kept[field]) if field in not_kept else change.get("new")
        return state

    def _query(
        self,
        pk: str,
        start: datetime | None,
        end: datetime | None,
        *,
        newest_first: bool,
        limit: int | None = None,
    ) -> Iterable[dict[str, Any]]:
        # Sort keys start with a fixed-width timestamp, so a time window is a key range. "~" sorts after
        # "#" and every digit, so entries *at* `end` are included.
        condition = "PK = :pk"
        values: dict[str, Any] = {":pk": {"S": pk}}
        if start is not None and end is not None:
            condition += " AND SK BETWEEN :start AND :end"
        elif start is not None:
            condition += " AND SK >= :start"
        elif end is not None:
            condition += " AND SK <= :end"
        if start is not None:
            values[":start"] = {"S": utc_iso(start)}
        if end is not None:
            values[":end"] = {"S": utc_iso(end) + "~"}
        return query_all(
            self.ddb,
            limit=limit,
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=not newest_first,
        )


def summarise(entries: Iterable[AuditEntry]) -> dict[str, Any]:
    """Counts for a run report: entries per action, failures, API calls (no values, no ids).

    Args:
        entries: the run's entries.

    Returns:
        ``{"entries": n, "failed": n, "by_action": {...}, "api_calls": n}``.
    """
    by_action: dict[str, int] = {}
    total = failed = api_calls = 0
    for entry in entries:
        total += 1
        failed += not entry.success
        api_calls += len(entry.api_calls)
        by_action[entry.action] = by_action.get(entry.action, 0) + 1
    return {
        "entries": total,
        "failed": failed,
        "by_action": dict(sorted(by_action.items())),
        "api_calls": api_calls,
    }


def entries_to_frame(entries: Iterable[AuditEntry]) -> pd.DataFrame:
    """Flatten entries into a change set: one row per field change (or per entry without changes).

    Args:
        entries: the run's entries.

    Returns:
        Columns ``opportunity_id, deal_id, direction, action, source, success, field, old, new,
        error_code``; values as strings (or None) so the Parquet schema is stable.
    """
    import pandas as pd

    rows: list[tuple[Any, ...]] = []
    for e in entries:
        code = (e.error or {}).get("code")
        base = (e.opportunity_id, e.deal_id, e.direction, e.action, e.source, e.success)
        if not e.changes:
            rows.append((*base, None, None, None, code))
        for field, change in e.changes.items():
            rows.append((*base, field, _as_str(change.old), _as_str(change.new), code))
    columns = [
        "opportunity_id",
        "deal_id",
        "direction",
        "action",
        "source",
        "success",
        "field",
        "old",
        "new",
        "error_code",
    ]
    return pd.DataFrame.from_records(rows, columns=columns)


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)


class RunReport:
    """A run's change set and summary in S3, next to its other artefacts.

    ``runs/{catalog}/{run_id}/changes.parquet`` holds values (like the audit); ``report.json`` should
    hold counts and keys only, since it is what operators open and paste into tickets.

    Args:
        snapshots: the S3 store.
        catalog: Partner Central catalog.
        run_id: the Airflow run id.
    """

    def __init__(self, snapshots: SnapshotStore, catalog: str, run_id: str) -> None:
        self.snapshots = snapshots
        self.catalog = catalog
        self.run_id = run_id
        self.changes_key = run_key(catalog, run_id, "changes")
        self.report_key = run_key(catalog, run_id, "report.json")

    def write_changes(self, changes: pd.DataFrame | Iterable[AuditEntry]) -> str:
        """Write the change set (a frame, or audit entries flattened by ``entries_to_frame``).

        Args:
            changes: the change set.

        Returns:
            The full S3 key.
        """
        import pandas as pd

        frame = changes if isinstance(changes, pd.DataFrame) else entries_to_frame(changes)
        return self.snapshots.put_frame(frame, self.changes_key)

    def add_changes(self, entries: Iterable[AuditEntry]) -> str:
        """Add entries audited for this run by a later run to its change set (created if it has none).

        A run that died before its commit wrote no change set; the run that audits its writes later
        (``journalStatus``) adds them here, so the dead run can be rolled back by its id like any other.
        Rows already in the set are not added twice: a retried commit adds the same rows again.

        Args:
            entries: the entries written under this run's id by another run.

        Returns:
            The full S3 key.
        """
        import pandas as pd

        frame = entries_to_frame(entries)
        try:
            held = self.read_changes()
        except NotFoundError:
            held = frame.iloc[0:0]
        if not held.empty:
            frame = pd.concat([held, frame], ignore_index=True) if not frame.empty else held
        return self.snapshots.put_frame(frame.drop_duplicates(ignore_index=True), self.changes_key)

    def write_report(self, report: Mapping[str, Any]) -> str:
        """Write the run's summary (``catalog`` and ``run_id`` are added).

        Args:
            report: counts, keys, durations; no field values or personal data.

        Returns:
            The full S3 key.
        """
        return self.snapshots.put_json(
            {"catalog": self.catalog, "run_id": self.run_id, **report}, self.report_key
        )

    def read_report(self) -> dict[str, Any]:
        """The run's summary.

        Returns:
            The report document.

        Raises:
            NotFoundError: the run wrote no report.
        """
        return self.snapshots.get_json(self.report_key)

    def read_changes(self) -> pd.DataFrame:
        """The run's change set.

        Returns:
            The change set frame.

        Raises:
            NotFoundError: the run wrote no change set.
        """
        return self.snapshots.get_frame(self.changes_key)
