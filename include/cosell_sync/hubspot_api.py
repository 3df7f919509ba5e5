"""HubSpot reads and writes the sync needs, batched to the API's limits.

Built on hubspot-api-client (so the hook's retries, timeouts and rate limiter apply), but bulk calls
ask the SDK for the raw response (``_preload_content=False``) and parse the JSON directly: the SDK's
model deserialisation costs more CPU than the HTTP call on large books, and we only need plain dicts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cosell_sync.clients import HubSpotApi
from cosell_sync.common import parse_ts
from cosell_sync.errors import FatalError, ValidationError

log = logging.getLogger(__name__)

#: HubSpot batch endpoints take at most 100 inputs.
BATCH_SIZE = 100
#: Search returns at most 200 results a page and 10,000 per query (paging past them is a 400), which
#: :meth:`HubSpotGateway.search` never pages into.
SEARCH_PAGE = 200
#: Batch calls of one stream in flight at once (reads, updates, upserts, associations: all idempotent).
#: The hook's limiter paces every thread together, so this never sends more calls per 10 s than the
#: budget; it only stops each call from waiting for the previous answer. Creates stay one at a time.
CONCURRENT_BATCHES = 4
#: Unique and sortable on every CRM object: orders the records that share one timestamp.
ID_PROPERTY = "hs_object_id"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_T = TypeVar("_T")
_R = TypeVar("_R")


def _in_parallel(fn: Callable[[_T], _R], items: list[_T], threads: int = CONCURRENT_BATCHES) -> list[_R]:
    """``[fn(i) for i in items]`` on up to ``threads`` threads, results in the order of ``items``.

    The first error (in ``items`` order) is raised once the calls already started have finished; the
    calls not started yet are dropped, as a loop would not have reached them.
    """
    if threads <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    pool = ThreadPoolExecutor(max_workers=min(threads, len(items)))
    try:
        futures = [pool.submit(fn, i) for i in items]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def association_to(object_id: str, type_id: int) -> list[dict[str, Any]]:
    """The inline ``associations`` of a batch create: one HUBSPOT_DEFINED association to ``object_id``."""
    return [
        {
            "to": {"id": object_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
        }
    ]


def _filter(prop: str, operator: str, value: int | str) -> dict[str, str]:
    """One search filter (HubSpot compares datetimes given as epoch milliseconds)."""
    return {"propertyName": prop, "operator": operator, "value": str(value)}


def _has_next(page: dict[str, Any]) -> bool:
    """Whether a search page says more results match its query."""
    return bool(((page.get("paging") or {}).get("next") or {}).get("after"))


def _stamp(obj: dict[str, Any], prop: str, object_type: str) -> int:
    """``obj``'s datetime ``prop`` as epoch ms (HubSpot returns ISO-8601, filters compare in ms).

    Computed in integers, so an equality filter built from it matches the record it came from exactly.
    """
    value = str((obj.get("properties") or {}).get(prop) or "")
    if value.isdigit():
        return int(value)
    stamp = parse_ts(value)
    if stamp is None:
        raise _stalled(object_type, f"object {obj.get('id')} has no {prop}")
    return (stamp - _EPOCH) // timedelta(milliseconds=1)


def _within(cursor: tuple[str, int] | None, stamp: int) -> bool:
    """Whether ``stamp`` satisfies the search's lower bound (a sanity check on HubSpot's answer)."""
    if cursor is None:
        return True
    operator, bound = cursor
    return stamp > bound or (stamp == bound and operator == "GTE")


def _stalled(object_type: str, why: str) -> FatalError:
    """The error of a search that cannot be completed: its caller must not treat what it read as all."""
    return FatalError(
        f"HubSpot {object_type} search cannot be completed: {why}",
        service="hubspot",
        code="SEARCH_INCOMPLETE",
    )


def chunks(items: list[Any], size: int = BATCH_SIZE) -> Iterator[list[Any]]:
    """Split ``items`` into lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class BatchResult:
    """Outcome of a batch write: created/updated objects and per-item errors (from a 207)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class HubSpotGateway:
    """Batched, counted access to the HubSpot CRM endpoints the sync uses.

    Args:
        api: a :class:`~cosell_sync.clients.HubSpotApi` (the ``HubSpotHook``).
    """

    def __init__(self, api: HubSpotApi) -> None:
        self._api = api
        self.calls: Counter[str] = Counter()
        # Batch streams run on a few threads (see CONCURRENT_BATCHES): the counter is shared.
        self._calls_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------------
    def _objects(self, object_type: str) -> Any:
        crm = self._api.client.crm
        # Products and line items have their own SDK modules (``crm.products``, ``crm.line_items``).
        if object_type in ("deals", "contacts", "companies", "products", "line_items"):
            return getattr(crm, object_type)
        return getattr(crm.objects, object_type)

    def _raw(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call an SDK method for its raw JSON body, counting the call under ``name``."""
        with self._calls_lock:
            self.calls[name] += 1
        response = self._api.call(fn, *args, _preload_content=False, **kwargs)
        status = getattr(response, "status", 200)
        body = response.data if hasattr(response, "data") else response
        parsed: dict[str, Any] = json.loads(body) if body else {}
        parsed.setdefault("_status", status)
        return parsed

    @property
    def total_calls(self) -> int:
        """API requests made through this gateway."""
        return sum(self.calls.values())

    # -- reads ----------------------------------------------------------------------------------
    def search(
        self, object_type: str, filter_groups: list[dict[str, Any]], properties: list[str], sort_property: str
    ) -> Iterator[dict[str, Any]]:
        """Yield every object matching ``filter_groups``, however many match, or raise.

        HubSpot answers at most 200 results a page, refuses (400) to page past the 10,000th result of a
        query and takes one sort rule. So no page is reached with an ``after`` offset: each page is its
        own query (keyset paging), sorted ascending by ``sort_property`` (a modification timestamp every
        object has) from ``GTE`` the last timestamp seen, skipping what was already yielded at it. No
        query ever nears the cap, and a record modified while we read moves to a later timestamp where a
        later page finds it (with offsets, the same move would shift an unread record past the cursor).
        A page whose results all share one timestamp (a bulk import or a workflow writes thousands of
        records in one millisecond) cannot move the cursor: that timestamp is read on its own, by
        ``hs_object_id`` (see :meth:`_search_at`), and the search goes on ``GT`` it.

        The search never ends early quietly: a caller that gets to the end has every match up to now,
        and one that gets an exception must not advance any watermark (the extract task fails, so the
        run never commits). An object changed during the search may be yielded twice, the newer copy
        last: callers key by id.

        Args:
            object_type: ``deals``, ``companies``, ``contacts``...
            filter_groups: HubSpot filter groups (ORed; each one's filters ANDed); at most 4 filters in
                each, as the paging adds up to 2 to every group and HubSpot allows 6 (18 in all).
            properties: the properties to return.
            sort_property: a datetime property every match has (``hs_lastmodifieddate``).

        Yields:
            The matching objects (``id``, ``properties``...), in ascending ``sort_property`` order.

        Raises:
            SyncError: a page could not be read (from the hook, after its retries).
            FatalError: HubSpot's answers did not let the search go on safely (no progress, or an
                object without ``sort_property``).
        """
        search_api = self._objects(object_type).search_api
        groups = filter_groups or [{"filters": []}]
        # Where the next page starts: ("GTE" | "GT", epoch ms), and the ids yielded at a GTE bound.
        cursor: tuple[str, int] | None = None
        done_at_cursor: set[str] = set()
        while True:
            bound = [] if cursor is None else [_filter(sort_property, cursor[0], cursor[1])]
            page = self._search_page(object_type, search_api, groups, bound, properties, sort_property)
            results = page.get("results", [])
            for obj in results:
                if obj["id"] not in done_at_cursor:
                    yield obj
            if not _has_next(page):
                return
            if not results:
                raise _stalled(object_type, "an empty page that says more results follow")
            first = _stamp(results[0], sort_property, object_type)
            last = _stamp(results[-1], sort_property, object_type)
            if last < first or not _within(cursor, first):
                raise _stalled(object_type, f"results out of {sort_property} order")
            if first < last:
                # The next page starts at the last timestamp of this one (more records may share it).
                cursor = ("GTE", last)
                done_at_cursor = {o["id"] for o in results if _stamp(o, sort_property, object_type) == last}
                continue
            # A full page at one timestamp: read all of it by id, then go on after it.
            seen = {o["id"] for o in results} | (done_at_cursor if cursor and cursor[1] == last else set())
            yield from self._search_at(object_type, search_api, groups, properties, sort_property, last, seen)
            cursor, done_at_cursor = ("GT", last), set()

    def _search_at(
        self,
        object_type: str,
        search_api: Any,
        groups: list[dict[str, Any]],
        properties: list[str],
        sort_property: str,
        stamp: int,
        seen: set[str],
    ) -> Iterator[dict[str, Any]]:
        """Yield the matches whose ``sort_property`` is exactly ``stamp`` (epoch ms), except ``seen``.

        Any number of records may share one millisecond. ``hs_object_id`` is unique and sortable, so
        pages sorted by it and bounded by ``hs_object_id GT`` the last id read reach every one of them,
        200 a query, and no query needs an offset (so none meets the 10,000 cap).
        """
        last_id: int | None = None
        while True:
            bound = [_filter(sort_property, "EQ", stamp)]
            if last_id is not None:
                bound.append(_filter(ID_PROPERTY, "GT", last_id))
            page = self._search_page(object_type, search_api, groups, bound, properties, ID_PROPERTY)
            results = page.get("results", [])
            for obj in results:
                if obj["id"] not in seen:
                    yield obj
            if not _has_next(page):
                return
            if not results or (last_id is not None and int(results[-1]["id"]) <= last_id):
                raise _stalled(object_type, f"no progress past {ID_PROPERTY} {last_id}")
            last_id = int(results[-1]["id"])

    def _search_page(
        self,
        object_type: str,
        search_api: Any,
        groups: list[dict[str, Any]],
        bound: list[dict[str, str]],
        properties: list[str],
        sort_property: str,
    ) -> dict[str, Any]:
        """One search request: ``bound`` added to every filter group, the first ``SEARCH_PAGE`` results."""
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [*g.get("filters", []), *bound]} for g in groups],
            "properties": properties,
            "sorts": [{"propertyName": sort_property, "direction": "ASCENDING"}],
            "limit": SEARCH_PAGE,
        }
        return self._raw(f"search:{object_type}", search_api.do_search, public_object_search_request=body)

    def batch_read(
        self,
        object_type: str,
        ids: Iterable[str],
        properties: list[str],
        id_property: str | None = None,
        history: list[str] | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Read objects by id (or by a unique ``id_property``), 100 per call; returns (found, errors).

        ``history`` names properties whose past values come back too (``propertiesWithHistory``).
        """
        batch_api = self._objects(object_type).batch_api
        found: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []

        def read(chunk: list[str]) -> dict[str, Any]:
            body: dict[str, Any] = {"inputs": [{"id": i} for i in chunk], "properties": properties}
            if id_property:
                body["idProperty"] = id_property
            if history:
                body["propertiesWithHistory"] = history
            return self._raw(
                f"batch_read:{object_type}", batch_api.read, batch_read_input_simple_public_object_id=body
            )

        for page in _in_parallel(read, list(chunks(sorted(set(ids))))):
            found.extend(page.get("results", []))
            errors.extend(page.get("errors", []))
        return found, errors

    def contacts_by_email(self, emails: Iterable[str], properties: list[str]) -> dict[str, dict[str, Any]]:
        """Contacts read by e-mail (100 per call), keyed by their e-mail case-folded (as the plan keys them).

        ``email`` is always read; an address HubSpot has no contact for is absent from the result.
        """
        wanted = sorted(set(emails))
        if not wanted:
            return {}
        names = sorted({*properties, "email"})
        found, _ = self.batch_read("contacts", wanted, names, id_property="email")
        by_email: dict[str, dict[str, Any]] = {}
        for contact in found:
            email = (contact.get("properties") or {}).get("email")
            if email:
                by_email[str(email).casefold()] = contact
        return by_email

    def owners(self, email: str | None = None, page_size: int = 100) -> list[dict[str, Any]]:
        """Active HubSpot owners (``GET /crm/v3/owners``), every page; ``email`` filters on one address.

        Counted as ``owners`` once per page (the owners API has no batch read: a run reads the pages once).
        """
        owners_api = self._api.client.crm.owners.owners_api
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            args: dict[str, Any] = {"limit": page_size, "archived": False}
            if email is not None:
                args["email"] = email
            if after:
                args["after"] = after
            page = self._raw("owners", owners_api.get_page, **args)
            found.extend(page.get("results") or [])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return found

    def associations(self, from_type: str, to_type: str, ids: Iterable[str]) -> dict[str, list[str]]:
        """Associated ids per object (v4 batch read), 100 per call (well inside the API's limit)."""
        out: dict[str, list[str]] = {}
        for from_id, targets in self.labelled_associations(from_type, to_type, ids).items():
            out[from_id] = [to_id for to_id, _labels in targets]
        return out

    def labelled_associations(
        self, from_type: str, to_type: str, ids: Iterable[str]
    ) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        """Associated ids per object with their association labels (v4 batch read), 100 per call.

        The same call as :meth:`associations`: the v4 batch read returns each association's types
        (``associationTypes``: ``category``, ``typeId`` and, for a labelled type, ``label``).

        Returns:
            From id -> ``[(to id, labels)]`` in the order HubSpot returned them; an id with no
            association is left out (HubSpot lists it among the 207's errors).
        """
        batch_api = self._api.client.crm.associations.v4.batch_api
        out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}

        def read(chunk: list[str]) -> dict[str, Any]:
            return self._raw(
                f"associations:{from_type}->{to_type}",
                batch_api.get_page,
                from_object_type=from_type,
                to_object_type=to_type,
                batch_input_public_fetch_associations_batch_request={"inputs": [{"id": i} for i in chunk]},
            )

        for page in _in_parallel(read, list(chunks(sorted(set(ids))))):
            for row in page.get("results", []):
                out[str(row["_from"]["id"] if "_from" in row else row["from"]["id"])] = [
                    (
                        str(t["toObjectId"]),
                        tuple(str(a["label"]) for a in t.get("associationTypes") or [] if a.get("label")),
                    )
                    for t in row.get("to", [])
                ]
        return out

    # -- writes ---------------------------------------------------------------------------------
    def _batch_write(
        self,
        name: str,
        fn: Any,
        kwarg: str,
        inputs: list[dict[str, Any]],
        key: str = "id",
        *,
        idempotent: bool = True,
    ) -> BatchResult:
        """Write ``inputs`` 100 per call; idempotent writes go several calls at a time."""

        def write(chunk: list[dict[str, Any]]) -> BatchResult:
            part = BatchResult()
            self._write_chunk(name, fn, kwarg, chunk, key, part)
            return part

        result = BatchResult()
        for part in _in_parallel(write, list(chunks(inputs)), CONCURRENT_BATCHES if idempotent else 1):
            result.results.extend(part.results)
            result.errors.extend(part.errors)
        return result

    def _write_chunk(
        self, name: str, fn: Any, kwarg: str, chunk: list[dict[str, Any]], key: str, result: BatchResult
    ) -> None:
        """Write one chunk; when HubSpot rejects the whole batch (400), find the bad inputs by halving.

        HubSpot answers a batch holding one invalid input with a 400 for the entire batch, naming the
        property but not the record. Halving isolates the bad inputs in about 2*log2(n) calls, so one
        bad record costs a few requests instead of failing the other 99.
        """
        try:
            page = self._raw(name, fn, **{kwarg: {"inputs": chunk}})
        except ValidationError as err:
            if len(chunk) == 1:
                ident = chunk[0].get(key) or chunk[0].get("id")
                log.error("HubSpot rejected %s for %s: %s", name, ident, err.message)
                result.errors.append(
                    {
                        "status": "error",
                        "category": err.code or "VALIDATION_ERROR",
                        "message": err.message,
                        "context": {"ids": [str(ident)] if ident else []},
                    }
                )
                return
            middle = len(chunk) // 2
            self._write_chunk(name, fn, kwarg, chunk[:middle], key, result)
            self._write_chunk(name, fn, kwarg, chunk[middle:], key, result)
            return
        result.results.extend(page.get("results", []))
        result.errors.extend(page.get("errors", []))

    def batch_update(self, object_type: str, updates: dict[str, dict[str, str]]) -> BatchResult:
        """Update properties of existing objects (``{id: {property: value}}``), 100 per call."""
        inputs = [{"id": oid, "properties": props} for oid, props in updates.items()]
        return self._batch_write(
            f"batch_update:{object_type}",
            self._objects(object_type).batch_api.update,
            "batch_input_simple_public_object_batch_input",
            inputs,
        )

    def batch_upsert(
        self, object_type: str, id_property: str, rows: dict[str, dict[str, str]]
    ) -> BatchResult:
        """Create or update by a unique property (idempotent creates), 100 per call."""
        inputs = [{"id": key, "idProperty": id_property, "properties": props} for key, props in rows.items()]
        return self._batch_write(
            f"batch_upsert:{object_type}",
            self._objects(object_type).batch_api.upsert,
            "batch_input_simple_public_object_batch_input_upsert",
            inputs,
        )

    def batch_create(self, object_type: str, inputs: list[dict[str, Any]]) -> BatchResult:
        """Create objects (``[{"properties":..., "associations": [...]}]``), 100 per call."""
        return self._batch_write(
            f"batch_create:{object_type}",
            self._objects(object_type).batch_api.create,
            "batch_input_simple_public_object_batch_input_for_create",
            inputs,
            # A create is not idempotent: after an unclear answer the writer reads back what exists,
            # which is simplest when no later batch was already in flight.
            idempotent=False,
        )

    def batch_archive(self, object_type: str, ids: Iterable[str]) -> int:
        """Archive objects by id, 100 per call (HubSpot answers 204, also for ids already archived).

        Returns:
            The number of calls made.
        """
        batch_api = self._objects(object_type).batch_api
        parts = list(chunks(sorted(set(ids))))
        for chunk in parts:
            self._raw(
                f"batch_archive:{object_type}",
                batch_api.archive,
                batch_input_simple_public_object_id={"inputs": [{"id": i} for i in chunk]},
            )
        return len(parts)

    def associate_default(self, from_type: str, to_type: str, pairs: list[tuple[str, str]]) -> BatchResult:
        """Create default associations (idempotent: associating twice leaves one association)."""
        batch_api = self._api.client.crm.associations.v4.batch_api
        result = BatchResult()

        def associate(chunk: list[tuple[str, str]]) -> dict[str, Any]:
            return self._raw(
                f"associate:{from_type}->{to_type}",
                batch_api.create_default,
                from_object_type=from_type,
                to_object_type=to_type,
                batch_input_public_default_association_multi_post={
                    "inputs": [{"from": {"id": a}, "to": {"id": b}} for a, b in chunk]
                },
            )

        for page in _in_parallel(associate, list(chunks(pairs))):
            result.results.extend(page.get("results", []))
            result.errors.extend(page.get("errors", []))
        return result


def error_ids(errors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Map each failed input id named in a 207 error's ``context.ids`` to its error object."""
    out: dict[str, dict[str, Any]] = {}
    for err in errors:
        ids = (err.get("context") or {}).get("ids") or (err.get("context") or {}).get("id") or []
        for oid in ids if isinstance(ids, list) else [ids]:
            out[str(oid)] = {
                "category": err.get("category"),
                "message": err.get("message"),
                "status": err.get("status"),
            }
    return out
