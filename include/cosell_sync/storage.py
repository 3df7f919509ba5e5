"""S3 Parquet/JSON snapshots, and the DynamoDB primitives shared by the state and audit stores.

Everything a run produces that is bigger than a handful of values (extracts, plans, change sets, the
baseline) is written here as one Parquet object and passed between tasks by *key*, never through XCom.

Key layout under the store's prefix (``run_key`` builds the first two):

* ``runs/{catalog}/{run_id}/{name}.parquet``: extracts, plans and change sets of one run.
* ``runs/{catalog}/{run_id}/report.json``: the run's summary.
* ``state/{catalog}/baseline.parquet`` and ``state/{catalog}/baseline/{run_id}.parquet``: see ``state``.
* ``state/{catalog}/{name}.parquet`` and ``state/{catalog}/{name}.json``: what a step (``insights``,
  ``engagements``) last wrote, see ``StepState``.

The module works on boto3 *clients* handed in by the caller (the DAG builds them with Airflow's
S3Hook/DynamoDBHook), so it runs the same against AWS, moto or any S3-compatible endpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from cosell_sync.errors import NotFoundError, ThrottledError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

# zstd gives ~5-10x on CRM text columns at a compression speed close to snappy; every reader we care
# about (pyarrow, pandas, Athena, DuckDB) decodes it.
PARQUET_COMPRESSION = "zstd"

# DynamoDB's BatchWriteItem accepts at most 25 put/delete requests per call.
BATCH_WRITE_LIMIT = 25
# BatchGetItem accepts at most 100 keys per call.
BATCH_GET_LIMIT = 100
# How many times unprocessed items are re-sent before giving up; with the backoff below this waits up to
# ~25 s in total, long enough to ride out on-demand throttling of a freshly created table.
MAX_BATCH_ATTEMPTS = 8
_BACKOFF_BASE_S = 0.1
_BACKOFF_CAP_S = 5.0


def run_key(catalog: str, run_id: str, name: str) -> str:
    """The key (relative to a store's prefix) of an artefact of one run.

    Args:
        catalog: Partner Central catalog (``AWS`` or ``Sandbox``).
        run_id: the Airflow run id.
        name: the artefact name; ``.parquet`` is appended unless it already has an extension
            (``report.json`` stays as is).

    Returns:
        ``runs/{catalog}/{run_id}/{name}.parquet`` (or ``.../{name}`` when ``name`` has an extension).
    """
    _check_part("catalog", catalog)
    _check_part("run_id", run_id)
    _check_part("name", name)
    filename = name if "." in name else f"{name}.parquet"
    return f"runs/{catalog}/{run_id}/{filename}"


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    """Serialise a DataFrame (with its index) to zstd-compressed Parquet bytes.

    Args:
        df: the frame.

    Returns:
        The Parquet file's bytes.
    """
    import pyarrow as pa

    return table_to_parquet(pa.Table.from_pandas(df, preserve_index=True))


def table_to_parquet(table: pa.Table) -> bytes:
    """Serialise an Arrow table to zstd-compressed Parquet bytes.

    Args:
        table: the table (with pandas metadata if it should read back with an index).

    Returns:
        The Parquet file's bytes.
    """
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression=PARQUET_COMPRESSION)
    return buf.getvalue()


def _check_part(label: str, value: str) -> None:
    # A "/" or an empty part would silently nest or collapse keys, and another run's or catalog's
    # objects could then be read or overwritten.
    if not value or "/" in value or value in {".", ".."}:
        raise ValueError(f"invalid {label} for an S3 key part: {value!r}")


class SnapshotStore:
    """Parquet and JSON objects under one S3 prefix.

    Args:
        s3_client: a boto3 S3 client (``S3Hook(...).get_conn()``).
        bucket: the bucket name.
        prefix: the folder every key is relative to (for example ``cosell-sync``); may be empty.
    """

    def __init__(self, s3_client: Any, bucket: str, prefix: str) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def full_key(self, key: str) -> str:
        """The object key in the bucket for a key relative to the prefix.

        Args:
            key: a key relative to the prefix.

        Returns:
            ``prefix/key``, or ``key`` when the prefix is empty.
        """
        key = key.lstrip("/")
        if not key:
            raise ValueError("empty S3 key")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    # -- Parquet -------------------------------------------------------------------------------------

    def put_frame(self, df: pd.DataFrame, key: str, **put_kwargs: Any) -> str:
        """Write a DataFrame (with its index) as one zstd-compressed Parquet object.

        Args:
            df: the frame; its index (named or not) is kept and restored by ``get_frame``.
            key: a key relative to the prefix.
            **put_kwargs: extra ``put_object`` arguments (``IfMatch``, ``IfNoneMatch``, ``Metadata``).

        Returns:
            The full object key (``prefix/key``), the value to pass on through XCom.
        """
        data = frame_to_parquet(df)
        full = self.put_parquet(data, key, **put_kwargs)
        log.info("wrote s3://%s/%s (%d rows, %d bytes)", self.bucket, full, len(df), len(data))
        return full

    def put_parquet(self, data: bytes, key: str, **put_kwargs: Any) -> str:
        """Write Parquet bytes already produced by ``frame_to_parquet`` (to write one frame to several keys).

        Args:
            data: the Parquet file's bytes.
            key: a key relative to the prefix.
            **put_kwargs: extra ``put_object`` arguments (``IfMatch``, ``IfNoneMatch``, ``Metadata``).

        Returns:
            The full object key.
        """
        full = self.full_key(key)
        self.s3.put_object(
            Bucket=self.bucket,
            Key=full,
            Body=data,
            ContentType="application/vnd.apache.parquet",
            **put_kwargs,
        )
        return full

    def get_frame(
        self, key: str, columns: list[str] | None = None, exclude: list[str] | None = None
    ) -> pd.DataFrame:
        """Read a Parquet object written by ``put_frame``.

        Args:
            key: a key relative to the prefix.
            columns: read only these columns (the index is always restored); saves memory on wide frames.
            exclude: read every column but these (a wide text column a step does not need, ``_raw``).

        Returns:
            The frame, with its original index.

        Raises:
            NotFoundError: the object does not exist.
        """
        frame, _ = self.get_frame_with_etag(key, columns=columns, exclude=exclude)
        return frame

    def get_frame_with_etag(
        self, key: str, columns: list[str] | None = None, exclude: list[str] | None = None
    ) -> tuple[pd.DataFrame, str]:
        """Like ``get_frame``, also returning the object's ETag for a later conditional write.

        Args:
            key: a key relative to the prefix.
            columns: read only these columns (the index is always restored).
            exclude: read every column but these.

        Returns:
            ``(frame, etag)``.

        Raises:
            NotFoundError: the object does not exist.
        """
        table, etag = self.get_table_with_etag(key, columns=columns, exclude=exclude)
        # self_destruct frees each Arrow column as soon as it is converted, so the peak is about one
        # copy of the data rather than two.
        return table.to_pandas(split_blocks=True, self_destruct=True), etag

    def get_table_with_etag(
        self, key: str, columns: list[str] | None = None, exclude: list[str] | None = None
    ) -> tuple[pa.Table, str]:
        """Read a Parquet object as an Arrow table (no pandas conversion), with its ETag.

        Args:
            key: a key relative to the prefix.
            columns: read only these columns (index columns are always included).
            exclude: read every column but these (ignored when ``columns`` is given).

        Returns:
            ``(table, etag)``; a frame's index is a regular column of the table.

        Raises:
            NotFoundError: the object does not exist.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        data, etag = self._get_bytes(key)
        if exclude and columns is None:
            names = pq.read_schema(pa.BufferReader(data)).names
            columns = [n for n in names if n not in set(exclude)]
        table = pq.read_table(pa.BufferReader(data), columns=columns, use_pandas_metadata=True)
        return table, etag

    # -- JSON ----------------------------------------------------------------------------------------

    def put_json(self, obj: Any, key: str) -> str:
        """Write a JSON document (datetimes and Decimals are written as strings).

        Args:
            obj: any JSON-serialisable value.
            key: a key relative to the prefix.

        Returns:
            The full object key.
        """
        body = json.dumps(obj, default=str, sort_keys=True, indent=1).encode()
        full = self.full_key(key)
        self.s3.put_object(Bucket=self.bucket, Key=full, Body=body, ContentType="application/json")
        return full

    def get_json(self, key: str) -> Any:
        """Read a JSON document.

        Args:
            key: a key relative to the prefix.

        Returns:
            The decoded document.

        Raises:
            NotFoundError: the object does not exist.
        """
        data, _ = self._get_bytes(key)
        return json.loads(data)

    # -- Keys ----------------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        """Whether an object exists.

        Args:
            key: a key relative to the prefix.

        Returns:
            True when the object exists.
        """
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as err:
            if _is_not_found(err):
                return False
            raise
        return True

    def etag(self, key: str) -> str | None:
        """The object's ETag (its content version), or None when it does not exist.

        Args:
            key: a key relative to the prefix.
        """
        try:
            return str(self.s3.head_object(Bucket=self.bucket, Key=self.full_key(key))["ETag"])
        except ClientError as err:
            if _is_not_found(err):
                return None
            raise

    def list_keys(self, under: str) -> list[dict[str, Any]]:
        """The objects under a folder, paginated.

        Args:
            under: a folder relative to the prefix (``state/AWS/baseline/``).

        Returns:
            One dict per object: ``key`` (relative to the prefix), ``last_modified``, ``size``.
        """
        folder = self.full_key(under).rstrip("/") + "/"
        out: list[dict[str, Any]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            for obj in page.get("Contents", []):
                out.append(
                    {
                        "key": self._relative(obj["Key"]),
                        "last_modified": obj["LastModified"],
                        "size": obj["Size"],
                    }
                )
        return out

    def copy(self, source_key: str, dest_key: str) -> str:
        """Server-side copy of one object to another key (no download).

        Args:
            source_key: a key relative to the prefix.
            dest_key: a key relative to the prefix.

        Returns:
            The full destination key.

        Raises:
            NotFoundError: the source does not exist.
        """
        dest = self.full_key(dest_key)
        try:
            self.s3.copy_object(
                Bucket=self.bucket,
                Key=dest,
                CopySource={"Bucket": self.bucket, "Key": self.full_key(source_key)},
            )
        except ClientError as err:
            if _is_not_found(err):
                raise NotFoundError(f"s3 object {source_key} not found", code="NoSuchKey") from err
            raise
        return dest

    def _get_bytes(self, key: str) -> tuple[bytes, str]:
        full = self.full_key(key)
        try:
            resp = self.s3.get_object(Bucket=self.bucket, Key=full)
        except ClientError as err:
            if _is_not_found(err):
                raise NotFoundError(f"s3://{self.bucket}/{full} not found", code="NoSuchKey") from err
            raise
        return resp["Body"].read(), resp["ETag"]


class StepState:
    """What one sync step last wrote for a catalog: a frame and a small JSON document beside it.

    The frame is ``state/{catalog}/{name}.parquet`` and the document ``state/{catalog}/{name}.json``
    (relative to the store's prefix); the step compares the next run's values with them.

    Args:
        snapshots: the S3 store.
        catalog: Partner Central catalog (``AWS`` or ``Sandbox``).
        name: the step's state name (``insights``, ``engagements``).
    """

    def __init__(self, snapshots: SnapshotStore, catalog: str, name: str) -> None:
        _check_part("catalog", catalog)
        _check_part("name", name)
        self.snapshots = snapshots
        self.frame_key = f"state/{catalog}/{name}.parquet"
        self.meta_key = f"state/{catalog}/{name}.json"

    def load(self) -> tuple[pd.DataFrame | None, dict[str, Any]]:
        """The stored frame and document.

        Returns:
            ``(frame, meta)``; ``(None, {})`` when either is missing (the step has not run yet).
        """
        try:
            frame = self.snapshots.get_frame(self.frame_key)
            meta = self.snapshots.get_json(self.meta_key)
        except NotFoundError:
            return None, {}
        return frame, dict(meta or {})

    def save_frame(self, frame: pd.DataFrame) -> str:
        """Replace the stored frame; returns its full key."""
        return self.snapshots.put_frame(frame, self.frame_key)

    def save_meta(self, meta: Mapping[str, Any]) -> str:
        """Replace the stored document; returns its full key."""
        return self.snapshots.put_json(meta, self.meta_key)


def _is_not_found(err: ClientError) -> bool:
    code = err.response.get("Error", {}).get("Code", "")
    return code in {"404", "NoSuchKey", "NotFound"}


# -- DynamoDB primitives ----------------------------------------------------------------------------
# The state and audit stores use the low-level client (what DynamoDBHook.get_conn() hands out for the
# "dynamodb" client type), so items are converted with boto3's own (de)serialisers.

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo_value(value: Any) -> Any:
    # TypeSerializer rejects floats (binary floats cannot round-trip through DynamoDB's decimal numbers)
    # and tuples; str(value) keeps the value as printed rather than its binary expansion.
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {str(k): _to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo_value(v) for v in value]
    if hasattr(value, "isoformat"):  # datetime / date / pandas Timestamp
        return value.isoformat()
    return value


def _from_dynamo_value(value: Any) -> Any:
    # Numbers come back as Decimal; integers are by far the common case (counts, epoch seconds, ms).
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_value(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo_value(v) for v in value}
    return value


def to_item(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Serialise a plain dict into a DynamoDB item (``{"attr": {"S": ...}}``).

    Floats become Decimals, datetimes ISO strings, ``None`` the NULL type.

    Args:
        obj: attribute name -> Python value.

    Returns:
        The item in the low-level client's wire format.
    """
    return {k: _serializer.serialize(_to_dynamo_value(v)) for k, v in obj.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialise a DynamoDB item into plain Python values (Decimals -> int or float).

    Args:
        item: an item in the low-level client's wire format.

    Returns:
        attribute name -> Python value.
    """
    return {k: _from_dynamo_value(_deserializer.deserialize(v)) for k, v in item.items()}


def to_value(value: Any) -> dict[str, Any]:
    """Serialise one value for ``ExpressionAttributeValues``.

    Args:
        value: a Python value.

    Returns:
        The value in the low-level client's wire format.
    """
    return _serializer.serialize(_to_dynamo_value(value))


def _backoff(attempt: int) -> None:
    # Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"): spreads retries of
    # parallel tasks instead of having them hit the partition again in lockstep.
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))


def batch_write(
    dynamodb_client: Any,
    table: str,
    requests: Iterable[dict[str, Any]],
    *,
    max_attempts: int = MAX_BATCH_ATTEMPTS,
) -> int:
    """Send put/delete requests with ``BatchWriteItem``, 25 at a time, re-sending unprocessed items.

    Requests for the same key within one call are rejected by DynamoDB, so callers must de-duplicate
    (``AuditTrail.write`` and ``RetryQueue`` do).

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the table name.
        requests: ``{"PutRequest": {"Item": ...}}`` or ``{"DeleteRequest": {"Key": ...}}`` dicts.
        max_attempts: how many times one chunk's unprocessed items are sent before giving up.

    Returns:
        The number of requests written.

    Raises:
        ThrottledError: items were still unprocessed after ``max_attempts``; the batch is safe to
            retry (puts and deletes are idempotent).
    """
    written = 0
    for chunk in _chunks(requests, BATCH_WRITE_LIMIT):
        pending: dict[str, list[dict[str, Any]]] = {table: chunk}
        for attempt in range(max_attempts):
            resp = dynamodb_client.batch_write_item(RequestItems=pending)
            pending = resp.get("UnprocessedItems") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            left = sum(len(v) for v in pending.values())
            raise ThrottledError(
                f"{left} items still unprocessed by BatchWriteItem on {table} after {max_attempts} attempts",
                service="dynamodb",
                code="UnprocessedItems",
            )
        written += len(chunk)
    return written


def batch_get(dynamodb_client: Any, table: str, keys: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Read items by key with ``BatchGetItem``, 100 at a time, re-requesting unprocessed keys.

    Reads are strongly consistent: callers use this to read-modify-write.

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the table name.
        keys: keys in wire format (``{"PK": {"S": ...}, "SK": {"S": ...}}``).

    Returns:
        The items found (wire format), in no particular order.

    Raises:
        ThrottledError: keys were still unprocessed after the maximum number of attempts.
    """
    found: list[dict[str, Any]] = []
    for chunk in _chunks(keys, BATCH_GET_LIMIT):
        pending: dict[str, Any] = {table: {"Keys": chunk, "ConsistentRead": True}}
        for attempt in range(MAX_BATCH_ATTEMPTS):
            resp = dynamodb_client.batch_get_item(RequestItems=pending)
            found.extend(resp.get("Responses", {}).get(table, []))
            pending = resp.get("UnprocessedKeys") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            raise ThrottledError(
                f"keys still unprocessed by BatchGetItem on {table}",
                service="dynamodb",
                code="UnprocessedKeys",
            )
    return found


def query_all(
    dynamodb_client: Any, *, limit: int | None = None, **query_kwargs: Any
) -> Iterator[dict[str, Any]]:
    """Run a ``Query`` and yield every item across pages (optionally stopping after ``limit`` items).

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        limit: stop after this many items (the per-page ``Limit`` is left to DynamoDB's 1 MB pages,
            because a ``FilterExpression`` applies after ``Limit``).
        **query_kwargs: ``Query`` arguments (``TableName``, ``KeyConditionExpression``, ...).

    Yields:
        Items in wire format.
    """
    count = 0
    for page in dynamodb_client.get_paginator("query").paginate(**query_kwargs):
        for item in page.get("Items", []):
            yield item
            count += 1
            if limit is not None and count >= limit:
                return


def partition_items(
    dynamodb_client: Any, table: str, pk: str, large: LargeItems | None = None
) -> list[dict[str, Any]]:
    """Every item of one partition (``PK = pk``), read consistently, as plain dicts.

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the table.
        pk: the partition key value.
        large: puts back attributes an oversized item keeps in S3 (a lost object costs the item those
            attributes, never the caller its read).

    Returns:
        The items, ``PK``/``SK`` included.
    """
    items = (
        from_item(i)
        for i in query_all(
            dynamodb_client,
            TableName=table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )
    )
    return [large.restore(i, missing_ok=True) if large else i for i in items]


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def is_conditional_check_failed(err: ClientError) -> bool:
    """Whether a DynamoDB error is a failed ``ConditionExpression``.

    Args:
        err: the botocore error.

    Returns:
        True for ``ConditionalCheckFailedException``.
    """
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def utc_iso(value: datetime) -> str:
    """A fixed-width UTC ISO-8601 string (``2026-02-18T10:00:00.000000Z``) for keys and comparisons.

    Fixed width matters: sort keys and watermark strings are compared as strings, and
    ``10:00:00Z`` would sort *after* ``10:00:00.5Z``.

    Args:
        value: a timezone-aware datetime.

    Returns:
        The UTC timestamp with microseconds and a ``Z`` suffix.

    Raises:
        ValueError: ``value`` is naive (its time zone would be a guess).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- Large values: S3 with a pointer in the DynamoDB item --------------------------------------------
# DynamoDB refuses an item over 400 KB, and one refused put fails its whole BatchWriteItem: one record
# with six 65,000-character HubSpot texts in its audit entry used to stop every commit. Such an item's
# largest attributes go to one S3 object (written first, so a pointer never dangles) and the item keeps
# its keys, its small attributes and a pointer; readers put the attributes back.

#: DynamoDB's limit on one item: attribute names and values, UTF-8.
DYNAMODB_ITEM_LIMIT = 400 * 1024
#: Items estimated above this move their largest attributes to S3. The estimate (the JSON of the plain
#: record) over-counts a little; the margin keeps the item, pointer included, well inside the limit.
OFFLOAD_THRESHOLD = 300 * 1024
#: The item attribute holding the pointer: ``{"key", "attributes", "bytes"}``.
OFFLOADED = "offloaded"
_KEY_ATTRIBUTES = frozenset({"PK", "SK"})


def record_size(record: Mapping[str, Any]) -> int:
    """An upper estimate of a plain record's DynamoDB item size, in bytes.

    Args:
        record: attribute name -> Python value (before ``to_item``).

    Returns:
        The length of its compact UTF-8 JSON, which counts every name and value plus some punctuation.
    """
    return len(json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":")).encode())


class LargeItems:
    """Keeps DynamoDB items of one table under the size limit by moving large attributes to S3.

    ``shrink`` before a put, ``restore`` after a read; items that were never too large pass through
    untouched (no S3 call). Objects live at ``offload/{table}/{sha256(PK, SK)}.json`` under the store's
    prefix: one per item key, so a retried write overwrites its own object. An object is not deleted
    with its item (a TTL expiry or a dequeue), and a later small item of the same key simply has no
    pointer: give ``offload/`` an S3 lifecycle rule at least as long as the audit retention.

    Args:
        snapshots: the S3 store (the storage bucket); None leaves oversized items to fail as before.
        table: the DynamoDB table the items belong to (part of the object key).
        threshold: the estimated size above which attributes move.
        content_addressed: also key objects by the moved content (for a table whose items are never
            overwritten, the audit trail): a refused second write then leaves the kept item's object as
            it was instead of replacing it.
    """

    def __init__(
        self,
        snapshots: SnapshotStore | None,
        table: str,
        threshold: int = OFFLOAD_THRESHOLD,
        *,
        content_addressed: bool = False,
    ) -> None:
        self.snapshots = snapshots
        self.table = table
        self.threshold = threshold
        self.content_addressed = content_addressed

    def object_key(self, pk: str, sk: str, content: Mapping[str, Any] | None = None) -> str:
        """The S3 key (relative to the store's prefix) of one item's moved attributes.

        Args:
            pk: the item's partition key.
            sk: the item's sort key.
            content: the moved attributes, with ``content_addressed`` (their digest joins the key).
        """
        _check_part("table", self.table)
        digest = hashlib.sha256(f"{pk}\x00{sk}".encode()).hexdigest()
        if content is not None:
            body = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
            digest += "-" + hashlib.sha256(body.encode()).hexdigest()[:16]
        return f"offload/{self.table}/{digest}.json"

    def shrink(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record to put: itself when small, else without its largest attributes plus a pointer.

        Attributes move largest first until the rest is under the threshold; the keys never move.

        Args:
            record: a plain record with ``PK`` and ``SK``.

        Returns:
            The record to serialise with ``to_item`` (a new dict when anything moved).
        """
        size = record_size(record)
        if size <= self.threshold or self.snapshots is None:
            return record
        sizes = sorted(
            ((record_size({k: v}), k) for k, v in record.items() if k not in _KEY_ATTRIBUTES),
            reverse=True,
        )
        moved: dict[str, Any] = {}
        for attr_size, name in sizes:
            if size <= self.threshold:
                break
            moved[name] = record[name]
            size -= attr_size
        key = self.object_key(str(record["PK"]), str(record["SK"]), moved if self.content_addressed else None)
        self.snapshots.put_json(
            {"table": self.table, "PK": record["PK"], "SK": record["SK"], "attributes": moved}, key
        )
        kept = {k: v for k, v in record.items() if k not in moved}
        kept[OFFLOADED] = {"key": key, "attributes": sorted(moved), "bytes": record_size(moved)}
        # Sizes only, never values: these are field values and error texts.
        log.info("%s: item %s moved %d attribute(s) to S3", self.table, record["SK"], len(moved))
        return kept

    def restore(self, record: dict[str, Any], *, missing_ok: bool = False) -> dict[str, Any]:
        """The record as it was written: moved attributes read back from S3, the pointer removed.

        Args:
            record: a record read from the table (``from_item``).
            missing_ok: when the S3 object is gone, return the record as stored (pointer kept) instead
                of raising.

        Returns:
            The full record.

        Raises:
            NotFoundError: the object is missing (and ``missing_ok`` is False), or there is no store.
        """
        pointer = record.get(OFFLOADED)
        if not isinstance(pointer, Mapping):
            return record
        try:
            if self.snapshots is None:
                raise NotFoundError(f"{self.table}: item {record.get('SK')} points to S3 but no store is set")
            stored = self.snapshots.get_json(str(pointer["key"]))
        except NotFoundError:
            if missing_ok:
                log.warning("%s: item %s lost its S3 attributes %s", self.table, record.get("SK"), pointer)
                return record
            raise
        full = {k: v for k, v in record.items() if k != OFFLOADED}
        full.update(stored.get("attributes") or {})
        return full
