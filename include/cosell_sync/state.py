"""What a run needs from the previous one: baseline, watermarks, retry queue and pending conflicts.

* ``BaselineStore`` (S3 Parquet): the last-synced canonical value of every field of every linked pair,
  the "common ancestor" of the three-way diff.
* ``WatermarkStore`` (DynamoDB): per catalog and side, the modification time up to which changes have
  been read *and committed*.
* ``RetryQueue`` (DynamoDB): records that must be reconsidered next run even if unchanged since the
  watermark (failed writes, records Partner Central would not let us edit yet).
* ``ConflictStore`` (:mod:`cosell_sync.conflict_store`): conflicts waiting for a human.

The DynamoDB items share one state table (PK/SK strings), each kind in its own partition per catalog:
``WATERMARK#{catalog}``, ``RETRY#{catalog}``, ``CONFLICT#{catalog}``.

Ordering contract with the DAG: every commit method here (``BaselineStore.commit``,
``WatermarkStore.advance``, ``RetryQueue.remove``) is called only after the writes it covers have
succeeded, so a failed run re-reads and re-does its work instead of skipping it. Every method is
idempotent, so a retried task never duplicates anything. Runs of one catalog must not overlap
(``max_active_runs=1``); the baseline commit detects an overlap and fails rather than lose an update.

PII: baselines, retry items and conflicts hold record ids and (for baselines and conflicts) field
values. Nothing here logs a value; log lines carry counts and keys only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cosell_sync.errors import ConflictError, NotFoundError
from cosell_sync.storage import (
    LargeItems,
    batch_get,
    batch_write,
    from_item,
    is_conditional_check_failed,
    partition_items,
    table_to_parquet,
    to_item,
    utc_iso,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from cosell_sync.storage import SnapshotStore

log = logging.getLogger(__name__)

BASELINE_INDEX = "opportunity_id"
# Columns the baseline always carries besides the synced fields.
BASELINE_BOOKKEEPING = ("deal_id", "pc_last_modified", "hs_last_modified", "synced_at", "run_id")

#: Watermark names: each side's, then the marks of ``cosell_sync.polling`` (the company/contact search's
#: own watermark, and when invitations were last listed in full).
SIDES = ("partner_central", "hubspot", "hubspot_related", "invitations")


def _now() -> datetime:
    return datetime.now(UTC)


# -- Baseline ---------------------------------------------------------------------------------------


class BaselineStore:
    """The last-synced canonical values of every linked opportunity/deal pair, one Parquet object.

    ``state/{catalog}/baseline.parquet`` is the current baseline; every commit also writes
    ``state/{catalog}/baseline/{run_id}.parquet`` so a rollback can restore a past state and operators
    can inspect history. (Consider an S3 lifecycle rule expiring ``state/*/baseline/`` after a few
    months: each version is a full copy.)

    Args:
        snapshots: the S3 store.
        catalog: Partner Central catalog (``AWS`` or ``Sandbox``).
    """

    def __init__(self, snapshots: SnapshotStore, catalog: str) -> None:
        self.snapshots = snapshots
        self.catalog = catalog
        self.current_key = f"state/{catalog}/baseline.parquet"
        self.history_folder = f"state/{catalog}/baseline/"

    def version_key(self, run_id: str) -> str:
        """The key of the baseline as committed by one run.

        Args:
            run_id: the Airflow run id.

        Returns:
            ``state/{catalog}/baseline/{run_id}.parquet`` (relative to the store's prefix).
        """
        if not run_id or "/" in run_id:
            raise ValueError(f"invalid run_id for a baseline version: {run_id!r}")
        return f"{self.history_folder}{run_id}.parquet"

    def load(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The current baseline.

        Args:
            columns: read only these columns (the ``opportunity_id`` index is always there).

        Returns:
            The baseline indexed by ``opportunity_id``; an empty frame with that index name (and the
            bookkeeping columns) before the first commit.
        """
        try:
            return self.snapshots.get_frame(self.current_key, columns=columns)
        except NotFoundError:
            return _empty_baseline(columns)

    def version(self) -> str | None:
        """The current baseline's version (its S3 ETag); None before the first commit.

        A plan is stamped with the version it was made from: a write step whose plan is older than the
        committed baseline refuses to write (see ``apply.load_plan``).
        """
        return self.snapshots.etag(self.current_key)

    def committed_by(self, run_id: str) -> str | None:
        """The version a run's own commit produced (the ETag of its copy), or None if it committed none."""
        try:
            return self.snapshots.etag(self.version_key(run_id))
        except ValueError:
            return None

    def load_with_version(self) -> tuple[pd.DataFrame, str | None]:
        """The current baseline and its version, read together (one GET)."""
        try:
            return self.snapshots.get_frame_with_etag(self.current_key)
        except NotFoundError:
            return _empty_baseline(None), None

    def load_version(self, run_id: str) -> pd.DataFrame:
        """The baseline as committed by one run.

        Args:
            run_id: the run whose version to read.

        Returns:
            That version.

        Raises:
            NotFoundError: the run committed no baseline.
        """
        return self.snapshots.get_frame(self.version_key(run_id))

    def get(self, opportunity_id: str) -> dict[str, Any] | None:
        """One pair's baseline values (reads the whole object: for spot checks, not for loops).

        Args:
            opportunity_id: the Partner Central opportunity id.

        Returns:
            Column -> value (missing values as None), or None when the pair has no baseline.
        """
        frame = self.load()
        if opportunity_id not in frame.index:
            return None
        row = frame.loc[opportunity_id]
        return {k: (None if _isna(v) else v) for k, v in row.items()}

    def commit(self, updates: pd.DataFrame, run_id: str, synced_at: datetime | None = None) -> str:
        """Upsert the pairs a run synced, keep a versioned copy, then replace the current baseline.

        Only the columns present in ``updates`` change; other columns keep their values (a new pair
        gets None in them). ``run_id`` and ``synced_at`` are set on every updated row. Re-committing
        the same ``run_id`` (a retried task, a cleared run) is idempotent: the upsert gives the same
        values and the version object is overwritten, not duplicated.

        Args:
            updates: one row per pair, indexed by ``opportunity_id`` (or with an ``opportunity_id``
                column), holding canonical values (strings or None).
            run_id: the Airflow run id.
            synced_at: when the values were synced (default: now).

        Returns:
            The full key of the versioned copy; when ``updates`` is empty nothing is written and the
            full key of the current baseline is returned.

        Raises:
            ValueError: ``updates`` has duplicate or missing opportunity ids.
            ConflictError: another commit replaced the baseline while this one ran (overlapping runs).
        """
        updates = _normalise_updates(updates)
        if updates.empty:
            log.info("baseline %s: no updates from run %s, nothing written", self.catalog, run_id)
            return self.snapshots.full_key(self.current_key)

        try:
            base, etag = self.snapshots.get_table_with_etag(self.current_key)
        except NotFoundError:
            base, etag = None, None

        updates = updates.copy(deep=False)
        updates["run_id"] = run_id
        if "synced_at" not in updates.columns:
            updates["synced_at"] = utc_iso(synced_at or _now())

        merged = _upsert(base, updates)
        del base
        data = table_to_parquet(merged)
        rows = merged.num_rows
        del merged

        # Version first: if the task dies between the two writes, the retry rewrites both, and the
        # current object is never ahead of its history.
        version = self.snapshots.put_parquet(data, self.version_key(run_id))
        # A conditional write turns a lost update (two runs committing at once) into an error.
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.snapshots.put_parquet(data, self.current_key, **condition)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in {"PreconditionFailed", "ConditionalRequestConflict", "412"}:
                raise ConflictError(
                    f"baseline {self.catalog} changed while run {run_id} committed; runs overlap",
                    code=code,
                ) from err
            raise
        log.info(
            "baseline %s: committed %d updated pairs from run %s (%d pairs, %d bytes)",
            self.catalog,
            len(updates),
            run_id,
            rows,
            len(data),
        )
        return version

    def history(self) -> list[str]:
        """The versioned baseline keys, oldest first.

        Returns:
            Keys relative to the store's prefix, ordered by write time (then key).
        """
        objects = self.snapshots.list_keys(self.history_folder)
        objects.sort(key=lambda o: (o["last_modified"], o["key"]))
        return [o["key"] for o in objects]

    def restore(self, from_run_id: str, run_id: str) -> str:
        """Make a past version current again (server-side copies; for the rollback DAG).

        The restored state is also recorded as the restoring run's version, so history shows it.

        Args:
            from_run_id: the run whose committed version to restore.
            run_id: the run doing the restore.

        Returns:
            The full key of the restoring run's version.

        Raises:
            NotFoundError: ``from_run_id`` committed no baseline.
        """
        version = self.snapshots.copy(self.version_key(from_run_id), self.version_key(run_id))
        self.snapshots.copy(self.version_key(run_id), self.current_key)
        log.info("baseline %s: restored version of run %s (by run %s)", self.catalog, from_run_id, run_id)
        return version


def _empty_baseline(columns: list[str] | None) -> pd.DataFrame:
    import pandas as pd

    cols = list(columns) if columns is not None else list(BASELINE_BOOKKEEPING)
    return pd.DataFrame(
        {c: pd.Series([], dtype=object) for c in cols},
        index=pd.Index([], dtype=object, name=BASELINE_INDEX),
    )


def _normalise_updates(updates: pd.DataFrame) -> pd.DataFrame:
    if BASELINE_INDEX in updates.columns:
        updates = updates.set_index(BASELINE_INDEX)
    elif updates.index.name != BASELINE_INDEX and not updates.empty:
        raise ValueError(f"baseline updates need an {BASELINE_INDEX!r} index or column")
    if updates.index.hasnans:
        raise ValueError("baseline updates contain rows without an opportunity_id")
    if updates.index.has_duplicates:
        dupes = updates.index[updates.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"baseline updates have duplicate opportunity ids, e.g. {dupes}")
    updates.index.name = BASELINE_INDEX
    return updates


def _upsert(base: pa.Table | None, updates: pd.DataFrame) -> pa.Table:
    # The upsert runs on Arrow tables and never converts the 100k-row baseline to pandas (a pandas
    # round trip costs several copies of the data and about a second). Rows stay in place; only the
    # columns present in `updates` are rebuilt, the others are reused without a copy; new pairs are
    # appended in the order given. Updated columns take the update's value even when it is None
    # (clearing a field is a real change); new pairs get nulls in the columns `updates` lacks.
    import pyarrow as pa
    import pyarrow.compute as pc

    upd = pa.Table.from_pandas(updates, preserve_index=True)
    # The baseline's values are strings. A column without a value has Arrow's null type, or double when
    # pandas filled it with NaN (a key only some rows have): typed as string either way, or a later run's
    # strings could not be merged with it ("Field other_contact_ids has incompatible types").
    upd = upd.cast(
        pa.schema(
            [pa.field(f.name, pa.large_string()) if _valueless(upd[f.name]) else f for f in upd.schema],
            metadata=upd.schema.metadata,
        )
    )
    if base is None or base.num_rows == 0:
        return upd
    upd_ids = upd.column(BASELINE_INDEX)
    base_ids = base.column(BASELINE_INDEX)
    # For each baseline row: the row of `updates` holding its new values, or null when not updated.
    position = pc.index_in(base_ids, value_set=upd_ids)
    updated = pc.is_valid(position)
    columns: dict[str, Any] = {}
    for name in base.column_names:
        current = base.column(name)
        if name == BASELINE_INDEX or name not in upd.column_names:
            columns[name] = current
            continue
        # A valueless baseline column (null type, or double from an older commit) takes the update's type.
        target = upd.schema.field(name).type if _valueless(current) else current.type
        aligned = upd.column(name).take(position).cast(target)
        columns[name] = pc.if_else(updated, aligned, current.cast(target))
    for name in upd.column_names:
        if name not in columns:  # a column the baseline did not have yet
            columns[name] = upd.column(name).take(position)
    existing = pa.table(columns)
    new_pairs = upd.filter(pc.invert(pc.is_in(upd_ids, value_set=base_ids)))
    # "permissive" unifies string/large_string and fills the new pairs' missing columns with nulls.
    merged = pa.concat_tables([existing, new_pairs], promote_options="permissive")
    # The pandas metadata makes opportunity_id the index again on read.
    return merged.replace_schema_metadata(base.schema.metadata)


def _valueless(column: Any) -> bool:
    """An Arrow column holding no value at all (every entry null), whatever type it was given."""
    return bool(column.null_count == len(column))


def _isna(value: Any) -> bool:
    try:
        return bool(value != value) or value is None  # NaN is the only value not equal to itself
    except (TypeError, ValueError):
        return False


# -- Watermarks -------------------------------------------------------------------------------------


class WatermarkStore:
    """Per catalog and side, the last-modified time up to which changes are read and committed.

    Items: ``PK = WATERMARK#{catalog}``, ``SK = side``, with ``watermark`` (ISO UTC) and
    ``watermark_us`` (epoch microseconds, the value the monotonic condition compares).

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the state table.
    """

    def __init__(self, dynamodb_client: Any, table: str) -> None:
        self.ddb = dynamodb_client
        self.table = table

    @staticmethod
    def _key(catalog: str, side: str) -> dict[str, Any]:
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}; expected one of {SIDES}")
        return {"PK": {"S": f"WATERMARK#{catalog}"}, "SK": {"S": side}}

    def get(self, catalog: str, side: str) -> datetime | None:
        """The committed watermark.

        Args:
            catalog: Partner Central catalog.
            side: ``partner_central`` or ``hubspot``.

        Returns:
            The watermark (UTC), or None before the first run (read everything).
        """
        resp = self.ddb.get_item(TableName=self.table, Key=self._key(catalog, side), ConsistentRead=True)
        item = resp.get("Item")
        if not item:
            return None
        return datetime.fromisoformat(item["watermark"]["S"])

    def advance(self, catalog: str, side: str, value: datetime, run_id: str) -> bool:
        """Move the watermark forward to ``value``; never backwards.

        Call it last, after the baseline commit: a watermark ahead of committed work would skip changes.

        Args:
            catalog: Partner Central catalog.
            side: ``partner_central`` or ``hubspot``.
            value: the new watermark (timezone-aware).
            run_id: the run advancing it (recorded for operators).

        Returns:
            True if the watermark moved; False if it was already at or past ``value`` (a retried task).
        """
        micros = _epoch_us(value)
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=self._key(catalog, side),
                UpdateExpression="SET #wm = :wm, #us = :us, #run = :run, #at = :at",
                ConditionExpression="attribute_not_exists(#us) OR #us < :us",
                ExpressionAttributeNames={
                    "#wm": "watermark",
                    "#us": "watermark_us",
                    "#run": "run_id",
                    "#at": "updated_at",
                },
                ExpressionAttributeValues={
                    ":wm": {"S": utc_iso(value)},
                    ":us": {"N": str(micros)},
                    ":run": {"S": run_id},
                    ":at": {"S": utc_iso(_now())},
                },
            )
        except ClientError as err:
            if is_conditional_check_failed(err):
                log.info("watermark %s/%s not moved: already at or past the new value", catalog, side)
                return False
            raise
        log.info("watermark %s/%s advanced to %s by run %s", catalog, side, utc_iso(value), run_id)
        return True

    def reset(self, catalog: str, side: str, value: datetime | None, run_id: str) -> None:
        """Set (or with None, delete) a watermark unconditionally: an operator's tool to re-read history.

        Args:
            catalog: Partner Central catalog.
            side: ``partner_central`` or ``hubspot``.
            value: the new watermark, or None to read everything next run.
            run_id: the run (or operator) doing it.
        """
        key = self._key(catalog, side)
        if value is None:
            self.ddb.delete_item(TableName=self.table, Key=key)
        else:
            item = {
                **key,
                "watermark": {"S": utc_iso(value)},
                "watermark_us": {"N": str(_epoch_us(value))},
                "run_id": {"S": run_id},
                "updated_at": {"S": utc_iso(_now())},
            }
            self.ddb.put_item(TableName=self.table, Item=item)
        log.warning("watermark %s/%s reset to %s by %s", catalog, side, value and utc_iso(value), run_id)


def _epoch_us(value: datetime) -> int:
    utc_iso(value)  # rejects naive datetimes
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- Retry queue ------------------------------------------------------------------------------------


RETRY_REASONS = ("FAILED", "REVIEW_IN_PROGRESS", "NOT_EDITABLE_IN_ACTION_REQUIRED")


class RetryQueue:
    """Records to reconsider next run even when unchanged since the watermark.

    Items: ``PK = RETRY#{catalog}``, ``SK = OPP#{opportunity_id}`` (or ``DEAL#{deal_id}`` for a deal
    not yet linked to an opportunity), with ``reason``, ``error`` (``SyncError.to_dict()`` or None),
    ``direction``, ``attempts``, ``first_seen``, ``last_seen``, ``last_run_id``. Items carry ids and
    error descriptions only, never field values.

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the state table.
        catalog: Partner Central catalog.
        snapshots: the S3 store that takes the attributes of an item too large for DynamoDB (a long
            error description, say; ``storage.LargeItems``). ``list`` reads them back.
    """

    def __init__(
        self, dynamodb_client: Any, table: str, catalog: str, snapshots: SnapshotStore | None = None
    ) -> None:
        self.ddb = dynamodb_client
        self.table = table
        self.catalog = catalog
        self.pk = f"RETRY#{catalog}"
        self.large = LargeItems(snapshots, table)

    @staticmethod
    def sort_key(record: Mapping[str, Any] | str) -> str:
        """The sort key of a record: ``OPP#{opportunity_id}``, else ``DEAL#{deal_id}``.

        Args:
            record: a dict with ``opportunity_id`` and/or ``deal_id``, or an existing sort key.

        Returns:
            The sort key.

        Raises:
            ValueError: the record has neither id.
        """
        if isinstance(record, str):
            if not record.startswith(("OPP#", "DEAL#")):
                raise ValueError(f"not a retry-queue sort key: {record!r}")
            return record
        if record.get("opportunity_id"):
            return f"OPP#{record['opportunity_id']}"
        if record.get("deal_id"):
            return f"DEAL#{record['deal_id']}"
        raise ValueError("a retry item needs an opportunity_id or a deal_id")

    def add(self, items: Iterable[Mapping[str, Any]], run_id: str | None = None) -> int:
        """Queue records, or refresh them if already queued (``attempts`` + 1, ``last_seen`` = now).

        Args:
            items: dicts with ``opportunity_id`` or ``deal_id``, ``reason``, ``error``, ``direction``;
                other keys are stored as given (ids and codes only, never field values).
            run_id: the run queueing them. Re-adding within the same run (a retried task) does not
                count as another attempt.

        Returns:
            The number of records written.
        """
        by_key: dict[str, Mapping[str, Any]] = {}
        for item in items:
            by_key[self.sort_key(item)] = item  # the last word on a record within one call wins
        if not by_key:
            return 0
        keys = [{"PK": {"S": self.pk}, "SK": {"S": sk}} for sk in by_key]
        existing = {i["SK"]: i for i in map(from_item, batch_get(self.ddb, self.table, keys))}
        now = utc_iso(_now())
        requests = []
        for sk, item in by_key.items():
            old = existing.get(sk)
            if old is None:
                attempts = 1
            elif run_id is not None and old.get("last_run_id") == run_id:
                attempts = int(old.get("attempts", 1))
            else:
                attempts = int(old.get("attempts", 0)) + 1
            record = {k: v for k, v in item.items() if k not in {"PK", "SK"}}
            record.update(
                {
                    "PK": self.pk,
                    "SK": sk,
                    "opportunity_id": item.get("opportunity_id"),
                    "deal_id": item.get("deal_id"),
                    "reason": item.get("reason", "FAILED"),
                    "error": item.get("error"),
                    "direction": item.get("direction"),
                    "attempts": attempts,
                    "first_seen": old.get("first_seen", now) if old else now,
                    "last_seen": now,
                    "last_run_id": run_id,
                }
            )
            # One item over 400 KB would fail the whole batch: its large attributes go to S3.
            requests.append({"PutRequest": {"Item": to_item(self.large.shrink(record))}})
        written = batch_write(self.ddb, self.table, requests)
        log.info(
            "retry queue %s: %d records queued (%d already queued)", self.catalog, written, len(existing)
        )
        return written

    def list(self) -> list[dict[str, Any]]:
        """Every queued record.

        Returns:
            The items as plain dicts (``PK``/``SK`` included).
        """
        # A lost S3 object costs an item its error text, never the run its retry queue.
        return partition_items(self.ddb, self.table, self.pk, self.large)

    def remove(self, keys: Iterable[Mapping[str, Any] | str]) -> int:
        """Dequeue records (call after the run that reconsidered them committed).

        Args:
            keys: items as returned by ``list``, dicts with ``opportunity_id``/``deal_id``, or sort keys.

        Returns:
            The number of delete requests sent (deleting an absent record is a no-op).
        """
        sks = dict.fromkeys(self.sort_key(k) for k in keys)
        requests = [{"DeleteRequest": {"Key": {"PK": {"S": self.pk}, "SK": {"S": sk}}}} for sk in sks]
        removed = batch_write(self.ddb, self.table, requests)
        log.info("retry queue %s: %d records removed", self.catalog, removed)
        return removed
