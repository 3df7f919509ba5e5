"""The daily export of the audit trail to S3 as Parquet, partitioned by date (``cosell_audit_export``).

Layout, under the storage bucket and prefix (``storage.bucket`` / ``storage.prefix``)::

    {prefix}/audit/date=YYYY-MM-DD/part-0000.parquet      one row per audit entry of that day
    {prefix}/audit/date=YYYY-MM-DD/part-0001.parquet      (a new part every ``ROWS_PER_PART`` rows)
    {prefix}/audit/date=YYYY-MM-DD/_manifest.json         {date, table, rows, parts}

``date=`` is a Hive partition: Athena (``PARTITIONED BY (date string)``, see the README) and
``pandas.read_parquet`` of the ``audit/`` folder read it as a ``date`` column; both skip files whose name
starts with ``_``, so the manifest is invisible to them. The day of an entry is the UTC date of its run
timestamp (``timestamp``, the start of its sort key), not of the moment it was written.

Idempotent: exporting a day again writes the same keys with the same rows (the rows of each part are
sorted by key) and removes parts of an earlier export the new one no longer needs. A day without
entries writes no part, only its manifest (``rows: 0``), so "exported, nothing happened" and "not
exported" stay apart.

Selection: the audit table is keyed by record (``PK``) and run (``SK``) and has no index by date, so a
day is a ``Scan`` with a filter on ``timestamp``, read page by page (1 MB each). It reads, and is billed
for, the whole table once per export: fine for a daily job on the volumes co-sell sync writes (a few
thousand entries a day; a seven-year trail of 20M entries of ~500 bytes is some 10 GB, ~1.3M
eventually consistent read units per export); a table far larger would want an index by day. ``segments``
runs a parallel scan to shorten it.

Values: entries are stored with the config's ``audit.value_policy`` already applied (``AuditTrail.write``),
and the export writes what is stored: a hashed field stays a hash, a dropped one stays null. Entries
too large for DynamoDB are exported whole (their S3 attributes read back). Nested attributes
(``changes``, ``error``, ``metadata``, ``valuePolicy``) are JSON strings, so every part has one schema
whatever the entries hold; ``json_extract`` in Athena and ``json.loads`` in pandas read them.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.storage import LargeItems, from_item

if TYPE_CHECKING:
    import pyarrow as pa

    from cosell_sync.storage import SnapshotStore

log = logging.getLogger(__name__)

#: The folder of the export, relative to the storage prefix.
AUDIT_FOLDER = "audit"
#: Rows per Parquet part: bounds the export's memory whatever the size of the day.
ROWS_PER_PART = 50_000
MANIFEST = "_manifest.json"

#: Column -> (Arrow type name, description); the Athena table of the README lists the same columns.
COLUMNS: dict[str, tuple[str, str]] = {
    "pk": ("string", "partition key: opportunity id, or deal#{deal_id} before one exists"),
    "sk": ("string", "sort key: {timestamp}#{run_id}#{direction}#{action}[#{event id}]"),
    "timestamp": ("string", "the run's timestamp, ISO 8601 UTC (fixed width)"),
    "run_id": ("string", "the Airflow run id"),
    "opportunity_id": ("string", "Partner Central opportunity id"),
    "deal_id": ("string", "HubSpot deal id"),
    "direction": ("string", "e.g. HUBSPOT_TO_PARTNER_CENTRAL"),
    "action": ("string", "e.g. UPDATE_OPPORTUNITY"),
    "source": ("string", "HUBSPOT or PARTNER_CENTRAL"),
    "user": ("string", "principal id, e.g. airflow:cosell_reconcile"),
    "success": ("bool", "whether the action succeeded"),
    "error_code": ("string", "the error's code when it failed"),
    "sync_duration_ms": ("int64", "duration in milliseconds"),
    "api_calls": ("list<string>", "API operations the action made"),
    "changes": ("string", "JSON {field: {old, new}}, values as the audit value policy keeps them"),
    "value_policy": ("string", "JSON {field: hash|drop} for fields whose values were not kept"),
    "error": ("string", "JSON of the error"),
    "metadata": ("string", "JSON of the ids and run details"),
    "ttl": ("int64", "epoch seconds at which DynamoDB expires the entry"),
}


def _schema() -> pa.Schema:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int64": pa.int64(),
        "list<string>": pa.list_(pa.string()),
    }
    return pa.schema([(name, types[kind]) for name, (kind, _) in COLUMNS.items()])


def partition_folder(day: date) -> str:
    """The folder (relative to the storage prefix) of one day: ``audit/date=YYYY-MM-DD``."""
    return f"{AUDIT_FOLDER}/date={day.isoformat()}"


def part_key(day: date, number: int) -> str:
    """The key (relative to the storage prefix) of one part: ``.../part-0000.parquet``."""
    return f"{partition_folder(day)}/part-{number:04d}.parquet"


def parse_day(value: str | date | datetime) -> date:
    """A day from ``YYYY-MM-DD`` (the DAG's ``date`` param), a date or a datetime (its UTC date).

    Args:
        value: the day.

    Returns:
        The date.

    Raises:
        ValueError: not a date in that form.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime: pass a timezone-aware one")
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, got {value!r}") from None


def _json(value: Any) -> str | None:
    if value is None or value == {}:
        return None
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def to_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """One export row from a stored audit item (plain values, offloaded attributes put back).

    Args:
        item: an item of the audit table after ``from_item``.

    Returns:
        Column -> value, the columns of ``COLUMNS``.
    """
    metadata = item.get("metadata") or {}
    error = item.get("error")
    return {
        "pk": item.get("PK"),
        "sk": item.get("SK"),
        "timestamp": item.get("timestamp"),
        "run_id": metadata.get("runId"),
        "opportunity_id": item.get("opportunityId"),
        "deal_id": None if metadata.get("dealId") is None else str(metadata["dealId"]),
        "direction": item.get("direction"),
        "action": item.get("action"),
        "source": item.get("source"),
        "user": item.get("user"),
        "success": item.get("success"),
        "error_code": error.get("code") if isinstance(error, Mapping) else None,
        "sync_duration_ms": item.get("syncDurationMs"),
        "api_calls": [str(c) for c in item.get("apiCalls") or []],
        "changes": _json(item.get("changes")),
        "value_policy": _json(item.get("valuePolicy")),
        "error": _json(error),
        "metadata": _json(metadata),
        "ttl": item.get("ttl"),
    }


def _day_items(ddb: Any, table: str, day: date, segment: int, segments: int) -> Iterator[dict[str, Any]]:
    # Fixed-width ISO timestamps compare as strings, so one day is a string range.
    start, end = f"{day.isoformat()}T00:00:00.000000Z", f"{day.isoformat()}T23:59:59.999999Z"
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#ts BETWEEN :start AND :end",
        "ExpressionAttributeNames": {"#ts": "timestamp"},  # a reserved word in expressions
        "ExpressionAttributeValues": {":start": {"S": start}, ":end": {"S": end}},
    }
    if segments > 1:
        kwargs.update(Segment=segment, TotalSegments=segments)
    for page in ddb.get_paginator("scan").paginate(**kwargs):
        yield from page.get("Items", [])


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows.sort(key=lambda r: (r["pk"], r["sk"]))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), buffer, compression="snappy")
    return buffer.getvalue()


def export_day(
    dynamodb_client: Any,
    table: str,
    snapshots: SnapshotStore,
    day: date,
    *,
    rows_per_part: int = ROWS_PER_PART,
    segments: int = 1,
) -> dict[str, Any]:
    """Export one UTC day of the audit trail to ``audit/date=YYYY-MM-DD/`` (see the module docstring).

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the audit table.
        snapshots: the S3 store (storage bucket and prefix); also where offloaded attributes live.
        day: the day.
        rows_per_part: rows per Parquet part (memory holds one part per segment).
        segments: parallel scan segments (1: one sequential scan).

    Returns:
        ``{"date", "rows", "parts": [full S3 keys], "manifest": full key, "removed": n}``.
    """
    if rows_per_part < 1 or segments < 1:
        raise ValueError("rows_per_part and segments must be at least 1")
    large = LargeItems(snapshots, table)

    def run_segment(segment: int) -> tuple[int, list[str]]:
        # Segment s writes parts s, s + segments, s + 2 * segments...: keys never clash across threads.
        rows: list[dict[str, Any]] = []
        keys: list[str] = []
        count = 0

        def flush() -> None:
            number = segment + len(keys) * segments
            keys.append(snapshots.put_parquet(_parquet(rows), part_key(day, number)))
            rows.clear()

        for item in _day_items(dynamodb_client, table, day, segment, segments):
            rows.append(to_row(large.restore(from_item(item), missing_ok=True)))
            count += 1
            if len(rows) >= rows_per_part:
                flush()
        if rows:
            flush()
        return count, keys

    if segments == 1:
        results = [run_segment(0)]
    else:
        with ThreadPoolExecutor(max_workers=segments) as pool:
            results = list(pool.map(run_segment, range(segments)))
    total = sum(n for n, _ in results)
    parts = sorted(k for _, keys in results for k in keys)
    removed = _remove_stale_parts(snapshots, day, set(parts))
    manifest = snapshots.put_json(
        {
            "date": day.isoformat(),
            "table": table,
            "rows": total,
            "parts": [k.rsplit("/", 1)[-1] for k in parts],
        },
        f"{partition_folder(day)}/{MANIFEST}",
    )
    log.info(
        "audit export %s: %d rows in %d part(s), %d stale part(s) removed", day, total, len(parts), removed
    )
    return {"date": day.isoformat(), "rows": total, "parts": parts, "manifest": manifest, "removed": removed}


def _remove_stale_parts(snapshots: SnapshotStore, day: date, keep: set[str]) -> int:
    """Delete parts of an earlier export of ``day`` that this one did not write (fewer rows now)."""
    stale = [
        snapshots.full_key(o["key"])
        for o in snapshots.list_keys(partition_folder(day))
        if o["key"].rsplit("/", 1)[-1].startswith("part-") and snapshots.full_key(o["key"]) not in keep
    ]
    for i in range(0, len(stale), 1000):  # DeleteObjects takes 1,000 keys per call
        snapshots.s3.delete_objects(
            Bucket=snapshots.bucket,
            Delete={"Objects": [{"Key": k} for k in stale[i : i + 1000]], "Quiet": True},
        )
    return len(stale)
