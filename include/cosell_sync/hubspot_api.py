"""HubSpot reads and writes the sync needs, batched to the API's limits.

Built on hubspot-api-client (so the hook's retries, timeouts and rate limiter apply), but bulk calls
ask the SDK for the raw response (``_preload_content=False``) and parse the JSON directly: the SDK's
model deserialisation costs more CPU than the HTTP call on large books, and we only need plain dicts.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cosell_sync.clients import HubSpotApi
from cosell_sync.errors import ValidationError

log = logging.getLogger(__name__)

#: HubSpot batch endpoints take at most 100 inputs.
BATCH_SIZE = 100
#: Search returns at most 200 results a page and 10,000 per query.
SEARCH_PAGE = 200
SEARCH_CAP = 10_000


def association_to(object_id: str, type_id: int) -> list[dict[str, Any]]:
    """The inline ``associations`` of a batch create: one HUBSPOT_DEFINED association to ``object_id``."""
    return [
        {
            "to": {"id": object_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
        }
    ]


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

    # -- plumbing -------------------------------------------------------------------------------
    def _objects(self, object_type: str) -> Any:
        crm = self._api.client.crm
        if object_type in ("deals", "contacts", "companies"):
            return getattr(crm, object_type)
        return getattr(crm.objects, object_type)

    def _raw(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call an SDK method for its raw JSON body, counting the call under ``name``."""
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
        """Yield every object matching ``filter_groups``, windowing past the 10,000-result cap.

        HubSpot refuses to page beyond 10,000 results of one query. We sort ascending by a
        modification timestamp and, when a window fills up, start a new query at ``GTE`` the last value
        seen, de-duplicating the overlap by id.
        """
        search_api = self._objects(object_type).search_api
        lower: str | None = None
        seen_at_lower: set[str] = set()
        while True:
            groups = filter_groups
            if lower is not None:
                groups = [
                    {
                        "filters": [
                            *g.get("filters", []),
                            {"propertyName": sort_property, "operator": "GTE", "value": lower},
                        ]
                    }
                    for g in filter_groups
                ]
            after: str | None = None
            fetched = 0
            last_value: str | None = None
            ids_at_last: set[str] = set()
            while True:
                body: dict[str, Any] = {
                    "filterGroups": groups,
                    "properties": properties,
                    "sorts": [{"propertyName": sort_property, "direction": "ASCENDING"}],
                    "limit": SEARCH_PAGE,
                }
                if after:
                    body["after"] = after
                page = self._raw(
                    f"search:{object_type}", search_api.do_search, public_object_search_request=body
                )
                for obj in page.get("results", []):
                    value = obj.get("properties", {}).get(sort_property)
                    if lower is not None and value == lower and obj["id"] in seen_at_lower:
                        continue
                    if value != last_value:
                        last_value, ids_at_last = value, set()
                    ids_at_last.add(obj["id"])
                    yield obj
                fetched += len(page.get("results", []))
                after = (page.get("paging") or {}).get("next", {}).get("after")
                if not after or fetched + SEARCH_PAGE > SEARCH_CAP:
                    break
            if not after:
                return
            if last_value is None or last_value == lower:
                # A single timestamp holds more than 10,000 records: nothing more can be windowed.
                log.warning(
                    "HubSpot search window stuck at %s=%s; remaining records are picked up by the next run",
                    sort_property,
                    lower,
                )
                return
            seen_at_lower = ids_at_last if last_value != lower else seen_at_lower | ids_at_last
            lower = last_value

    def batch_read(
        self, object_type: str, ids: Iterable[str], properties: list[str], id_property: str | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Read objects by id (or by a unique ``id_property``), 100 per call; returns (found, errors)."""
        batch_api = self._objects(object_type).batch_api
        found: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for chunk in chunks(sorted(set(ids))):
            body: dict[str, Any] = {"inputs": [{"id": i} for i in chunk], "properties": properties}
            if id_property:
                body["idProperty"] = id_property
            page = self._raw(
                f"batch_read:{object_type}", batch_api.read, batch_read_input_simple_public_object_id=body
            )
            found.extend(page.get("results", []))
            errors.extend(page.get("errors", []))
        return found, errors

    def associations(self, from_type: str, to_type: str, ids: Iterable[str]) -> dict[str, list[str]]:
        """Associated ids per object (v4 batch read), 100 per call (well inside the API's limit)."""
        batch_api = self._api.client.crm.associations.v4.batch_api
        out: dict[str, list[str]] = {}
        for chunk in chunks(sorted(set(ids))):
            page = self._raw(
                f"associations:{from_type}->{to_type}",
                batch_api.get_page,
                from_object_type=from_type,
                to_object_type=to_type,
                batch_input_public_fetch_associations_batch_request={"inputs": [{"id": i} for i in chunk]},
            )
            for row in page.get("results", []):
                out[str(row["_from"]["id"] if "_from" in row else row["from"]["id"])] = [
                    str(t["toObjectId"]) for t in row.get("to", [])
                ]
        return out

    # -- writes ---------------------------------------------------------------------------------
    def _batch_write(
        self, name: str, fn: Any, kwarg: str, inputs: list[dict[str, Any]], key: str = "id"
    ) -> BatchResult:
        result = BatchResult()
        for chunk in chunks(inputs):
            self._write_chunk(name, fn, kwarg, chunk, key, result)
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
        )

    def associate_default(self, from_type: str, to_type: str, pairs: list[tuple[str, str]]) -> BatchResult:
        """Create default associations (idempotent: associating twice leaves one association)."""
        batch_api = self._api.client.crm.associations.v4.batch_api
        result = BatchResult()
        for chunk in chunks(pairs):
            page = self._raw(
                f"associate:{from_type}->{to_type}",
                batch_api.create_default,
                from_object_type=from_type,
                to_object_type=to_type,
                batch_input_public_default_association_multi_post={
                    "inputs": [{"from": {"id": a}, "to": {"id": b}} for a, b in chunk]
                },
            )
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
