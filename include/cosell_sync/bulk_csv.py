"""The CSV template of Partner Central bulk jobs (our assumption: AWS has not published the template).

AWS documents that ``StartOpportunityBulkJob`` reads "a plain-text CSV file no larger than 100 MB" whose
"column headers ... determine whether the job creates or updates opportunities", and that
``StartCustomerAccountBulkJob`` reads a file of customer accounts to create. It does not publish the columns.
This module is the single place that defines them, for the product (which writes the files) and the Partner
Central emulator (which reads them), so a change to the real template is a change to this file only.

The template is model-driven (botocore's ``partnercentral-selling`` model):

* The first column is ``RequestId``: the caller's own record id, unique in the file, echoed in the job
  results.
* An update file also has ``Identifier`` (the resource id) and ``LastModifiedDate`` (ISO-8601, the optimistic
  lock) columns; their presence makes the file ``BULK_UPDATE``, their absence ``BULK_CREATE``.
* Every other column is a dotted path of the single-record operation's input shape
  (``CreateOpportunity``/``UpdateOpportunity``, ``CreateCustomerAccount``/``UpdateCustomerAccount``):
  ``Customer.Account.CompanyName``; list items indexed ``Customer.Contacts[0].Email``; lists of strings
  ``PrimaryNeedsFromAws[0]``. ``Catalog`` and ``ClientToken`` are not columns (a job has one catalog, and the
  service derives record tokens itself).
* An empty cell means the field is absent. For an update that means null: like ``UpdateOpportunity``, a bulk
  update replaces the whole record, so every field to keep must be in the row. List items whose cells are all
  empty are dropped and the remaining items close up (``[0]`` and ``[2]`` become the first two items).
* Values are text as the API's JSON would carry them: strings verbatim, numbers in JSON notation, booleans
  ``true``/``false``, timestamps ISO-8601 UTC with a ``Z``.
* Encoding UTF-8 (a byte-order mark is accepted on read), RFC 4180 quoting, CRLF line ends.

A failed-records report uses the same columns plus :data:`REPORT_COLUMNS`.

Error messages here name the record and the column, never a value: the values are customer data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cosell_sync.pc_model import parse_path, pc_shape

if TYPE_CHECKING:
    from botocore.model import Shape

__all__ = [
    "BULK_CREATE",
    "BULK_UPDATE",
    "CUSTOMER_ACCOUNT",
    "IDENTIFIER",
    "LAST_MODIFIED_DATE",
    "MAX_FILE_BYTES",
    "OPPORTUNITY",
    "REPORT_COLUMNS",
    "REQUEST_ID",
    "BulkFileError",
    "BulkReportRow",
    "BulkRow",
    "read_csv",
    "read_report",
    "write_csv",
    "write_report",
]

OPPORTUNITY = "opportunity"
CUSTOMER_ACCOUNT = "customer_account"

BULK_CREATE = "BULK_CREATE"
BULK_UPDATE = "BULK_UPDATE"

#: "The file must be a plain-text CSV file no larger than 100 MB" (API reference, StartOpportunityBulkJob).
MAX_FILE_BYTES = 100 * 1024 * 1024

REQUEST_ID = "RequestId"
IDENTIFIER = "Identifier"
LAST_MODIFIED_DATE = "LastModifiedDate"

#: Extra columns of a report, after the template's: the record's outcome, as ListBulkJobResults returns it.
REPORT_COLUMNS = ("Status", "ResourceIdentifier", "ErrorCode", "ErrorMessage")

# The single-record operations whose input shapes define the template, per kind: (create, update).
_OPERATIONS = {
    OPPORTUNITY: ("CreateOpportunity", "UpdateOpportunity"),
    CUSTOMER_ACCOUNT: ("CreateCustomerAccount", "UpdateCustomerAccount"),
}
# Top-level members that are not path columns: the job's catalog, record tokens, and the update columns.
_NOT_PATHS = frozenset({"Catalog", "ClientToken", IDENTIFIER, LAST_MODIFIED_DATE})
# Highest list index accepted where the model sets no maximum (it bounds a file's column count).
_DEFAULT_MAX_ITEMS = 100
_SCALARS = frozenset({"string", "integer", "long", "double", "float", "boolean", "timestamp"})


class BulkFileError(ValueError):
    """A bulk file that does not follow the template.

    Args:
        row: the record number (1 for the first record after the header), 0 for the header, None for the
            whole file.
        column: the column concerned, if any.
        message: what is wrong; never a cell value.
    """

    def __init__(self, row: int | None, column: str | None, message: str) -> None:
        self.row = row
        self.column = column
        self.message = message
        where = []
        if row is not None:
            where.append("header" if row == 0 else f"record {row}")
        if column:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class BulkRow:
    """One record of a bulk file.

    Attributes:
        request_id: the caller's record id (``RequestId``).
        identifier: the resource to update (``Identifier``), None in a create file.
        last_modified_date: ``LastModifiedDate`` as written (ISO-8601), None in a create file.
        request: the single-record request without ``Catalog``, ``ClientToken``, ``Identifier`` and
            ``LastModifiedDate``, with the model's types.
    """

    request_id: str
    identifier: str | None
    last_modified_date: str | None
    request: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BulkReportRow:
    """One record of a bulk job report: the record as submitted and its outcome.

    Attributes:
        row: the record.
        status: ``SUCCEEDED`` or ``FAILED``.
        resource_identifier: the resource created or updated (also set for a record that failed after its
            resource was created).
        error_code: why the record failed.
        error_message: a description of the failure.
    """

    row: BulkRow
    status: str
    resource_identifier: str | None = None
    error_code: str | None = None
    error_message: str | None = None


# ------------------------------------------------------------------------------------------------ model
def _operation(kind: str, update: bool) -> str:
    if kind not in _OPERATIONS:
        raise ValueError(f"unknown bulk kind {kind!r}; use {OPPORTUNITY!r} or {CUSTOMER_ACCOUNT!r}")
    return _OPERATIONS[kind][1 if update else 0]


def _root(kind: str, update: bool) -> Shape:
    return pc_shape(_operation(kind, update), "input")


@lru_cache(maxsize=4096)
def _column(kind: str, update: bool, path: str) -> tuple[Shape, tuple[int, ...]] | None:
    """The leaf shape of a path column and its model-order sort key, or None if it is not a column."""
    try:
        keys = parse_path(path)
    except ValueError:
        return None
    if keys[0] in _NOT_PATHS:
        return None
    shape = _root(kind, update)
    order: list[int] = []
    for key in keys:
        if isinstance(key, int):
            if shape.type_name != "list":
                return None
            limit = shape.metadata.get("max", _DEFAULT_MAX_ITEMS)
            if key >= limit:
                return None
            order.append(key)
            shape = shape.member
        else:
            if shape.type_name != "structure" or key not in shape.members:
                return None
            order.append(list(shape.members).index(key))
            shape = shape.members[key]
    if shape.type_name not in _SCALARS:
        return None
    return shape, tuple(order)


# ------------------------------------------------------------------------------------------------ write
def _iso(value: Any) -> str:
    """A timestamp as ISO-8601 UTC with milliseconds and ``Z`` (datetime, epoch seconds or ISO text)."""
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parsed = dt.datetime.fromtimestamp(value, dt.UTC)
    else:
        raise TypeError("not a timestamp")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    parsed = parsed.astimezone(dt.UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


def _render(shape: Shape, value: Any) -> str:
    """A scalar as the API's JSON would carry it; TypeError when it does not fit the shape."""
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise TypeError("expected a boolean")
        return "true" if value else "false"
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an integer")
        return str(value)
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TypeError("expected a number")
        return json.dumps(value)
    return _iso(value)


def _flatten(
    shape: Shape, value: Any, path: str, out: dict[str, str], request_id: str, top: bool = False
) -> None:
    """Collect the leaf cells of ``value`` by column path, checking each against the model."""
    if value is None or value == "" or value == [] or value == {}:
        return  # absent (null and empty mean the same to the API)
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ValueError(f"request {request_id}: field {path or '(request)'} must be an object")
        for name, item in value.items():
            if top and name in _NOT_PATHS:
                continue
            sub = f"{path}.{name}" if path else name
            if name not in shape.members:
                raise ValueError(f"request {request_id}: field {sub} is not in the bulk template")
            _flatten(shape.members[name], item, sub, out, request_id)
        return
    if kind == "list":
        if not isinstance(value, list | tuple):
            raise ValueError(f"request {request_id}: field {path} must be a list")
        limit = shape.metadata.get("max", _DEFAULT_MAX_ITEMS)
        if len(value) > limit:
            raise ValueError(f"request {request_id}: field {path} has more than {limit} items")
        for i, item in enumerate(value):
            _flatten(shape.member, item, f"{path}[{i}]", out, request_id)
        return
    if kind not in _SCALARS:
        raise ValueError(f"request {request_id}: field {path} is not supported in the bulk template")
    try:
        out[path] = _render(shape, value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"request {request_id}: field {path} has the wrong type ({err})") from None


def _path_key(kind: str, update: bool, path: str) -> tuple[int, ...]:
    found = _column(kind, update, path)
    assert found is not None  # _flatten only produces model paths
    return found[1]


def _to_bytes(header: list[str], records: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\r\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().encode("utf-8")


def _cells(
    kind: str, update: bool, request_id: str, request: dict[str, Any], seen: set[str]
) -> dict[str, str]:
    """The cells of one record (fixed columns and paths), checked against the model."""
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("every record needs a non-empty request id")
    if request_id in seen:
        raise ValueError(f"request {request_id}: the request id is used twice")
    seen.add(request_id)
    cells: dict[str, str] = {REQUEST_ID: request_id}
    if update:
        ident = request.get(IDENTIFIER)
        if ident not in (None, ""):
            if not isinstance(ident, str):
                raise ValueError(f"request {request_id}: field {IDENTIFIER} must be a string")
            cells[IDENTIFIER] = ident
        stamp = request.get(LAST_MODIFIED_DATE)
        if stamp not in (None, ""):
            try:
                cells[LAST_MODIFIED_DATE] = _iso(stamp)
            except (TypeError, ValueError):
                raise ValueError(
                    f"request {request_id}: field {LAST_MODIFIED_DATE} is not a timestamp"
                ) from None
    else:
        for name in (IDENTIFIER, LAST_MODIFIED_DATE):
            if request.get(name) is not None:
                raise ValueError(f"request {request_id}: field {name} belongs in an update file")
    paths: dict[str, str] = {}
    _flatten(_root(kind, update), request, "", paths, request_id, top=True)
    cells.update(paths)
    return cells


def _header(kind: str, update: bool, records: list[dict[str, str]], extra: tuple[str, ...] = ()) -> list[str]:
    fixed = [REQUEST_ID, IDENTIFIER, LAST_MODIFIED_DATE] if update else [REQUEST_ID]
    paths = {p for r in records for p in r if p not in fixed and p not in extra}
    return fixed + sorted(paths, key=lambda p: _path_key(kind, update, p)) + list(extra)


def write_csv(kind: str, rows: Iterable[tuple[str, dict[str, Any]]], *, update: bool = False) -> bytes:
    """A bulk job file for ``rows``.

    Args:
        kind: :data:`OPPORTUNITY` or :data:`CUSTOMER_ACCOUNT`.
        rows: ``(request_id, request)`` pairs; ``request`` is the single-record request (CreateOpportunity,
            UpdateOpportunity, ...) without ``Catalog`` and ``ClientToken``; for an update it carries
            ``Identifier`` and ``LastModifiedDate``.
        update: write an update file (``Identifier`` and ``LastModifiedDate`` columns).

    Returns:
        The UTF-8 CSV bytes: ``RequestId`` (+ ``Identifier``, ``LastModifiedDate``) and the union of the
        paths present, in model order.

    Raises:
        ValueError: a field path that is not in the model, a value of the wrong type, a duplicate or empty
            request id, or a file over :data:`MAX_FILE_BYTES`. The message names the request id and the
            field path, never the value.
    """
    seen: set[str] = set()
    records = [_cells(kind, update, rid, request, seen) for rid, request in rows]
    data = _to_bytes(_header(kind, update, records), records)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"the file would be {len(data)} bytes, over the {MAX_FILE_BYTES}-byte limit")
    return data


def write_report(kind: str, entries: Iterable[BulkReportRow], *, update: bool = False) -> bytes:
    """A job report: the template's columns for each record plus :data:`REPORT_COLUMNS`.

    Args:
        kind: :data:`OPPORTUNITY` or :data:`CUSTOMER_ACCOUNT`.
        entries: the records and their outcomes.
        update: the job was an update job.

    Returns:
        The UTF-8 CSV bytes.
    """
    seen: set[str] = set()
    records = []
    for entry in entries:
        request = dict(entry.row.request)
        if update:
            request[IDENTIFIER] = entry.row.identifier
            request[LAST_MODIFIED_DATE] = entry.row.last_modified_date
        cells = _cells(kind, update, entry.row.request_id, request, seen)
        outcome = (entry.status, entry.resource_identifier, entry.error_code, entry.error_message)
        cells.update({c: v for c, v in zip(REPORT_COLUMNS, outcome, strict=True) if v})
        records.append(cells)
    return _to_bytes(_header(kind, update, records, REPORT_COLUMNS), records)


# ------------------------------------------------------------------------------------------------- read
def _convert(shape: Shape, text: str, row: int, column: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("double", "float"):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError("not finite")
            return number
        if kind == "boolean":
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError("not a boolean")
            return lowered == "true"
        if kind == "timestamp":
            _iso(text)  # must parse; kept as written (botocore accepts ISO-8601 strings)
            return text
    except (TypeError, ValueError):
        raise BulkFileError(row, column, f"the value is not a valid {kind}") from None
    return text


def _set(tree: dict[Any, Any], keys: tuple[str | int, ...], value: Any) -> None:
    """Set a leaf in a tree whose list levels are dicts keyed by index (made into lists by ``_lists``)."""
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _lists(node: Any) -> Any:
    """Turn index-keyed dicts into lists, in index order, closing gaps left by absent items."""
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(k, int) for k in node):
        return [_lists(node[k]) for k in sorted(node)]
    return {k: _lists(v) for k, v in node.items()}


def _decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise BulkFileError(None, None, f"the file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BulkFileError(None, None, "the file is not UTF-8 text") from None
    if "\x00" in text:
        raise BulkFileError(None, None, "the file is not plain text")
    return text


def _parse(
    kind: str, data: bytes, extra: tuple[str, ...]
) -> tuple[str, list[tuple[BulkRow, dict[str, str]]]]:
    """Rows of a file (template columns plus the ``extra`` columns, returned raw per row)."""
    reader = csv.reader(io.StringIO(_decode(data), newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header or header == [""]:
            raise BulkFileError(0, None, "the file has no header row")
        if len(set(header)) != len(header):
            dup = next(h for h in header if header.count(h) > 1)
            raise BulkFileError(0, dup, "the column appears more than once")
        if REQUEST_ID not in header:
            raise BulkFileError(0, REQUEST_ID, "the RequestId column is missing")
        update = IDENTIFIER in header
        if update and LAST_MODIFIED_DATE not in header:
            raise BulkFileError(0, LAST_MODIFIED_DATE, "an update file needs a LastModifiedDate column")
        if LAST_MODIFIED_DATE in header and not update:
            raise BulkFileError(0, IDENTIFIER, "a file with LastModifiedDate needs an Identifier column")
        fixed = {REQUEST_ID, IDENTIFIER, LAST_MODIFIED_DATE} if update else {REQUEST_ID}
        columns: list[tuple[str, Shape | None, tuple[str | int, ...]]] = []
        for name in header:
            if name in fixed or name in extra:
                columns.append((name, None, ()))
                continue
            found = _column(kind, update, name)
            if found is None:
                raise BulkFileError(0, name, "the column is not in the bulk template")
            columns.append((name, found[0], parse_path(name)))
        rows: list[tuple[BulkRow, dict[str, str]]] = []
        ids: set[str] = set()
        for number, cells in enumerate(reader, start=1):
            if not any(cells):
                continue  # blank line
            if len(cells) != len(header):
                raise BulkFileError(
                    number, None, f"the record has {len(cells)} cells, the header {len(header)}"
                )
            tree: dict[Any, Any] = {}
            fixed_values: dict[str, str] = {}
            raw: dict[str, str] = {}
            for (name, shape, keys), text in zip(columns, cells, strict=True):
                if shape is None:
                    (raw if name in extra else fixed_values)[name] = text
                elif text != "":
                    _set(tree, keys, _convert(shape, text, number, name))
            request_id = fixed_values[REQUEST_ID]
            if not request_id:
                raise BulkFileError(number, REQUEST_ID, "the RequestId is empty")
            if request_id in ids:
                raise BulkFileError(number, REQUEST_ID, "the RequestId is used by an earlier record")
            ids.add(request_id)
            stamp = fixed_values.get(LAST_MODIFIED_DATE) or None
            if stamp is not None:
                _convert(_root(kind, True).members[LAST_MODIFIED_DATE], stamp, number, LAST_MODIFIED_DATE)
            row = BulkRow(request_id, fixed_values.get(IDENTIFIER) or None, stamp, _lists(tree))
            rows.append((row, raw))
    except csv.Error as err:
        raise BulkFileError(reader.line_num or None, None, f"the file is not valid CSV ({err})") from None
    return (BULK_UPDATE if update else BULK_CREATE), rows


def read_csv(kind: str, data: bytes) -> tuple[str, list[BulkRow]]:
    """Parse a bulk job file.

    Args:
        kind: :data:`OPPORTUNITY` or :data:`CUSTOMER_ACCOUNT`.
        data: the file's bytes.

    Returns:
        ``("BULK_CREATE" | "BULK_UPDATE", rows)``; the operation type follows from the headers.

    Raises:
        BulkFileError: the file does not follow the template (not UTF-8 text, over 100 MB, no or an unknown
            or duplicate header, no RequestId column, an empty or duplicate RequestId, a cell that is not of
            the model's type, a record with the wrong number of cells).
    """
    _operation(kind, False)
    operation, rows = _parse(kind, data, ())
    return operation, [row for row, _ in rows]


def read_report(kind: str, data: bytes) -> tuple[str, list[BulkReportRow]]:
    """Parse a bulk job report (as :func:`write_report` and the service's report URL produce it).

    Args:
        kind: :data:`OPPORTUNITY` or :data:`CUSTOMER_ACCOUNT`.
        data: the report's bytes.

    Returns:
        The operation type and the records with their outcomes.

    Raises:
        BulkFileError: the report does not follow the template.
    """
    _operation(kind, False)
    operation, rows = _parse(kind, data, REPORT_COLUMNS)
    return operation, [
        BulkReportRow(
            row,
            raw.get("Status") or "FAILED",
            raw.get("ResourceIdentifier") or None,
            raw.get("ErrorCode") or None,
            raw.get("ErrorMessage") or None,
        )
        for row, raw in rows
    ]
