"""HTTP handlers: turn requests into backend calls and backend results into HubSpot's JSON shapes.

Each handler takes the werkzeug request plus the URL variables and returns ``(status, body)``; ``body`` None
means an empty answer (204). Shapes follow the schemas of HubSpot's public OpenAPI specs
(``SimplePublicObject``, ``BatchResponseSimplePublicObject[WithErrors]``, ``CollectionResponse...``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from werkzeug.wrappers import Request

from emulators.hubspot import schema
from emulators.hubspot.exceptions import NotFound, ValidationError, standard_error
from emulators.hubspot.models import BATCH_MAX_WITH_HISTORY, HubSpotBackend, Record, iso, now_ms

Result = tuple[int, Any]


def json_body(request: Request) -> Any:
    """The parsed JSON body, or HubSpot's 400 for malformed JSON."""
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValidationError(
            f"Invalid input JSON on line {getattr(exc, 'lineno', 1)}, column "
            f"{getattr(exc, 'colno', 1)}: {exc}"
        ) from None


def list_param(request: Request, name: str) -> list[str] | None:
    """A list query parameter given repeated (``a=1&a=2``, the SDK's style) or comma-separated."""
    values = request.args.getlist(name)
    if not values:
        return None
    out: list[str] = []
    for v in values:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def bool_param(request: Request, name: str) -> bool:
    """A boolean query parameter (HubSpot accepts ``true``/``false``)."""
    return request.args.get(name, "false").lower() == "true"


def int_param(request: Request, name: str, default: int) -> int:
    """An integer query parameter, or a 400 naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"Invalid value for {name}: {raw}") from None


def batch_envelope(
    results: list[Any], errors: list[dict[str, Any]] | None = None, started: int | None = None
) -> dict[str, Any]:
    """HubSpot's batch response (``status``, ``results``, timestamps, and ``errors``/``numErrors`` on 207)."""
    stamp = iso(now_ms())
    out: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started) if started else stamp,
        "completedAt": stamp,
    }
    if errors:
        out["errors"] = errors
        out["numErrors"] = len(errors)
    return out


class Handlers:
    """Request handlers bound to one backend."""

    def __init__(self, backend: HubSpotBackend) -> None:
        self.b = backend

    # ------------------------------------------------------------------ rendering
    def render(
        self,
        rec: Record,
        props: list[str] | None = None,
        history: list[str] | None = None,
        associations: list[str] | None = None,
    ) -> dict[str, Any]:
        """A record as ``SimplePublicObject`` (plus ``propertiesWithHistory``/``associations`` when asked).

        With no ``properties`` requested HubSpot returns the type's default properties; with some, it returns
        those plus ``hs_object_id`` and the create/modify dates. Requested properties without a value are
        ``null`` (as HubSpot answers), unknown names are ignored.
        """
        b = self.b
        ot = schema.OBJECT_TYPES[rec.object_type]
        defs = b.properties[rec.object_type]
        names = list(props) if props else list(ot.default_props)
        if props:
            names += [n for n in ("hs_object_id", ot.created_prop, ot.modified_prop) if n not in names]
        out_props = {n: b.value(rec, n) for n in names if n in defs}
        out: dict[str, Any] = {
            "id": rec.id,
            "properties": out_props,
            "createdAt": iso(rec.created_ms),
            "updatedAt": iso(rec.updated_ms),
            "archived": rec.archived,
        }
        if rec.archived and rec.archived_ms:
            out["archivedAt"] = iso(rec.archived_ms)
        if history:
            out["propertiesWithHistory"] = {n: self._history(rec, n) for n in history if n in defs}
        if associations:
            assoc_out = {}
            for name in associations:
                to_type = schema.object_type_name(name)
                if to_type is None:
                    continue
                pairs = b.associations_of(rec.object_type, rec.id, to_type)
                results = [{"id": tid, "type": b.assoc_type_name(t)} for tid, types in pairs for t in types]
                if results:
                    assoc_out[to_type] = {"results": results}
            if assoc_out:
                out["associations"] = assoc_out
        return out

    def _history(self, rec: Record, name: str) -> list[dict[str, Any]]:
        ot = schema.OBJECT_TYPES[rec.object_type]
        if name in (ot.modified_prop, "hs_object_id") or (
            name == ot.created_prop and name not in rec.history
        ):
            value = self.b.value(rec, name)
            stamp = rec.updated_ms if name == ot.modified_prop else rec.created_ms
            return [{"value": value, "timestamp": iso(stamp), "sourceType": "CALCULATED"}] if value else []
        entries = rec.history.get(name)
        if not entries:
            value = rec.properties.get(name)
            return (
                [{"value": value, "timestamp": iso(rec.created_ms), "sourceType": "IMPORT"}] if value else []
            )
        return [
            {"value": v, "timestamp": iso(ts), "sourceType": src, "sourceId": "emulator-private-app"}
            for v, ts, src in reversed(entries)
        ]

    def _object_type(self, value: str) -> str:
        return self.b.object_type(value)

    # ------------------------------------------------------------------ objects
    def list_objects(self, request: Request, object_type: str) -> Result:
        """``GET /crm/v3/objects/{type}``: one page in id order with ``paging.next.after``."""
        ot = self._object_type(object_type)
        history = list_param(request, "propertiesWithHistory")
        limit = int_param(request, "limit", 10)
        limit = max(1, min(limit, BATCH_MAX_WITH_HISTORY if history else 100))
        page, nxt = self.b.list_records(ot, limit, request.args.get("after"), bool_param(request, "archived"))
        with self.b.lock:
            results = [
                self.render(
                    r, list_param(request, "properties"), history, list_param(request, "associations")
                )
                for r in page
            ]
        body: dict[str, Any] = {"results": results}
        if nxt:
            body["paging"] = {"next": {"after": nxt, "link": f"{request.base_url}?after={nxt}"}}
        return 200, body

    def get_object(self, request: Request, object_type: str, object_id: str) -> Result:
        """``GET /crm/v3/objects/{type}/{id}`` (``idProperty`` supported for unique properties)."""
        ot = self._object_type(object_type)
        rec = self.b.get_record(
            ot, object_id, bool_param(request, "archived"), request.args.get("idProperty")
        )
        with self.b.lock:
            return 200, self.render(
                rec,
                list_param(request, "properties"),
                list_param(request, "propertiesWithHistory"),
                list_param(request, "associations"),
            )

    def create_object(self, request: Request, object_type: str) -> Result:
        """``POST /crm/v3/objects/{type}`` -> 201."""
        ot = self._object_type(object_type)
        body = json_body(request)
        rec = self.b.create(ot, body.get("properties") or {}, body.get("associations") or [])
        with self.b.lock:
            return 201, self.render(rec, list((body.get("properties") or {}).keys()) or None)

    def update_object(self, request: Request, object_type: str, object_id: str) -> Result:
        """``PATCH /crm/v3/objects/{type}/{id}``."""
        ot = self._object_type(object_type)
        body = json_body(request)
        rec = self.b.update(ot, object_id, body.get("properties") or {}, request.args.get("idProperty"))
        with self.b.lock:
            return 200, self.render(rec, list((body.get("properties") or {}).keys()) or None)

    def archive_object(self, request: Request, object_type: str, object_id: str) -> Result:
        """``DELETE /crm/v3/objects/{type}/{id}`` -> 204."""
        self.b.archive(self._object_type(object_type), object_id)
        return 204, None

    # ------------------------------------------------------------------ batch
    def _not_found_error(self, object_type: str, ids: list[str]) -> dict[str, Any]:
        label = schema.OBJECT_TYPES[object_type].singular.upper()
        return standard_error(
            f"Could not get some {label} objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "OBJECT_NOT_FOUND",
            context={"ids": ids},
        )

    def _failure_errors(self, object_type: str, failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
        errors = []
        missing = [f["id"] for f in failures if f["kind"] == "missing"]
        if missing:
            errors.append(self._not_found_error(object_type, missing))
        for f in failures:
            if f["kind"] == "fault":
                errors.append(
                    standard_error(
                        f"Object {f['id']} could not be updated (failure injected by emulator fail_ids)",
                        "VALIDATION_ERROR",
                        context={"ids": [f["id"]]},
                    )
                )
        return errors

    def batch_read(self, request: Request, object_type: str) -> Result:
        """``POST .../batch/read``: 200, or 207 with OBJECT_NOT_FOUND for missing ids."""
        ot = self._object_type(object_type)
        body = json_body(request)
        history = body.get("propertiesWithHistory") or None
        started = now_ms()
        found, missing = self.b.batch_read(ot, body.get("inputs"), body.get("idProperty"), bool(history))
        with self.b.lock:
            results = [self.render(r, body.get("properties") or None, history) for r in found]
        errors = [self._not_found_error(ot, missing)] if missing else []
        return (207 if errors else 200), batch_envelope(results, errors, started)

    def batch_create(self, request: Request, object_type: str) -> Result:
        """``POST .../batch/create`` -> 201."""
        ot = self._object_type(object_type)
        body = json_body(request)
        started = now_ms()
        recs = self.b.batch_create(ot, body.get("inputs"))
        inputs = body.get("inputs") or []
        with self.b.lock:
            results = [
                self.render(r, list((i.get("properties") or {}).keys()) or None)
                for r, i in zip(recs, inputs, strict=True)
            ]
        return 201, batch_envelope(results, None, started)

    def batch_update(self, request: Request, object_type: str) -> Result:
        """``POST .../batch/update``: 200, or 207 when some items failed."""
        ot = self._object_type(object_type)
        body = json_body(request)
        started = now_ms()
        recs, failures = self.b.batch_update(ot, body.get("inputs"), body.get("idProperty"))
        by_id = {str(i.get("id")): i for i in body.get("inputs") or []}
        with self.b.lock:
            results = [
                self.render(r, list((by_id.get(r.id, {}).get("properties") or {}).keys()) or None)
                for r in recs
            ]
        errors = self._failure_errors(ot, failures)
        return (207 if errors else 200), batch_envelope(results, errors, started)

    def batch_upsert(self, request: Request, object_type: str) -> Result:
        """``POST .../batch/upsert`` by a unique ``idProperty``: results carry ``new``."""
        ot = self._object_type(object_type)
        body = json_body(request)
        started = now_ms()
        pairs, failures = self.b.batch_upsert(ot, body.get("inputs"))
        with self.b.lock:
            results = []
            for rec, created in pairs:
                item = self.render(rec)
                item["new"] = created
                results.append(item)
        errors = self._failure_errors(ot, failures)
        return (207 if errors else 200), batch_envelope(results, errors, started)

    def batch_archive(self, request: Request, object_type: str) -> Result:
        """``POST .../batch/archive`` -> 204."""
        ot = self._object_type(object_type)
        self.b.batch_archive(ot, json_body(request).get("inputs"))
        return 204, None

    def search(self, request: Request, object_type: str) -> Result:
        """``POST /crm/v3/objects/{type}/search``."""
        ot = self._object_type(object_type)
        body = json_body(request)
        total, page, nxt = self.b.search(ot, body)
        with self.b.lock:
            results = [self.render(r, body.get("properties") or None) for r in page]
        out: dict[str, Any] = {"total": total, "results": results}
        if nxt is not None:
            out["paging"] = {"next": {"after": nxt}}
        return 200, out

    # ------------------------------------------------------------------ properties
    def list_properties(self, request: Request, object_type: str) -> Result:
        """``GET /crm/v3/properties/{type}``."""
        return 200, {
            "results": self.b.list_properties(self._object_type(object_type), bool_param(request, "archived"))
        }

    def create_property(self, request: Request, object_type: str) -> Result:
        """``POST /crm/v3/properties/{type}`` -> 201."""
        return 201, self.b.create_property(self._object_type(object_type), json_body(request))

    def get_property(self, request: Request, object_type: str, property_name: str) -> Result:
        """``GET /crm/v3/properties/{type}/{name}``."""
        return 200, self.b.get_property(self._object_type(object_type), property_name)

    def update_property(self, request: Request, object_type: str, property_name: str) -> Result:
        """``PATCH /crm/v3/properties/{type}/{name}``."""
        return 200, self.b.update_property(self._object_type(object_type), property_name, json_body(request))

    def archive_property(self, request: Request, object_type: str, property_name: str) -> Result:
        """``DELETE /crm/v3/properties/{type}/{name}`` -> 204."""
        self.b.archive_property(self._object_type(object_type), property_name)
        return 204, None

    def batch_create_properties(self, request: Request, object_type: str) -> Result:
        """``POST /crm/v3/properties/{type}/batch/create``: 201, or 207 with per-property errors."""
        from emulators.hubspot.exceptions import HubSpotError

        ot = self._object_type(object_type)
        inputs = self.b.check_batch_size(json_body(request).get("inputs"))
        results, errors = [], []
        for item in inputs:
            try:
                results.append(self.b.create_property(ot, item))
            except HubSpotError as exc:
                errors.append(
                    standard_error(exc.message, exc.category, context={"name": [str(item.get("name"))]})
                )
        return (207 if errors else 201), batch_envelope(results, errors)

    def batch_read_properties(self, request: Request, object_type: str) -> Result:
        """``POST /crm/v3/properties/{type}/batch/read``."""
        ot = self._object_type(object_type)
        body = json_body(request)
        results, missing = [], []
        for item in self.b.check_batch_size(body.get("inputs")):
            try:
                results.append(self.b.get_property(ot, str(item.get("name"))))
            except NotFound:
                missing.append(str(item.get("name")))
        errors = (
            [standard_error("Could not find some properties", "OBJECT_NOT_FOUND", context={"names": missing})]
            if missing
            else []
        )
        return (207 if errors else 200), batch_envelope(results, errors)

    def batch_archive_properties(self, request: Request, object_type: str) -> Result:
        """``POST /crm/v3/properties/{type}/batch/archive`` -> 204."""
        ot = self._object_type(object_type)
        for item in self.b.check_batch_size(json_body(request).get("inputs")):
            with contextlib.suppress(NotFound):
                self.b.archive_property(ot, str(item.get("name")))
        return 204, None

    def list_groups(self, request: Request, object_type: str) -> Result:
        """``GET /crm/v3/properties/{type}/groups``."""
        ot = self._object_type(object_type)
        with self.b.lock:
            return 200, {"results": [dict(g) for g in self.b.groups[ot].values() if not g["archived"]]}

    def create_group(self, request: Request, object_type: str) -> Result:
        """``POST /crm/v3/properties/{type}/groups`` -> 201."""
        return 201, self.b.create_group(self._object_type(object_type), json_body(request))

    def get_group(self, request: Request, object_type: str, group_name: str) -> Result:
        """``GET /crm/v3/properties/{type}/groups/{name}``."""
        return 200, self.b.get_group(self._object_type(object_type), group_name)

    def update_group(self, request: Request, object_type: str, group_name: str) -> Result:
        """``PATCH /crm/v3/properties/{type}/groups/{name}``."""
        return 200, self.b.update_group(self._object_type(object_type), group_name, json_body(request))

    def archive_group(self, request: Request, object_type: str, group_name: str) -> Result:
        """``DELETE /crm/v3/properties/{type}/groups/{name}`` -> 204."""
        self.b.archive_group(self._object_type(object_type), group_name)
        return 204, None

    # ------------------------------------------------------------------ owners
    def list_owners(self, request: Request) -> Result:
        """``GET /crm/v3/owners/`` (``email``, ``limit`` up to 500, ``after``, ``archived``)."""
        owners = self.b.list_owners(request.args.get("email"), bool_param(request, "archived"))
        limit = max(1, min(int_param(request, "limit", 100), 500))
        start = int_param(request, "after", 0)
        page = owners[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(owners):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return 200, body

    def get_owner(self, request: Request, owner_id: str) -> Result:
        """``GET /crm/v3/owners/{ownerId}`` (``idProperty`` = ``id`` or ``userId``)."""
        return 200, self.b.get_owner(owner_id, request.args.get("idProperty", "id"))

    # ------------------------------------------------------------------ pipelines
    def list_pipelines(self, request: Request, object_type: str) -> Result:
        """``GET /crm/v3/pipelines/{type}``."""
        return 200, {"results": self.b.list_pipelines(self._object_type(object_type))}

    def create_pipeline(self, request: Request, object_type: str) -> Result:
        """``POST /crm/v3/pipelines/{type}`` -> 201."""
        return 201, self.b.create_pipeline(self._object_type(object_type), json_body(request))

    def get_pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Result:
        """``GET /crm/v3/pipelines/{type}/{id}``."""
        return 200, self.b.get_pipeline(self._object_type(object_type), pipeline_id)

    def update_pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Result:
        """``PATCH /crm/v3/pipelines/{type}/{id}``."""
        return 200, self.b.update_pipeline(self._object_type(object_type), pipeline_id, json_body(request))

    def archive_pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Result:
        """``DELETE /crm/v3/pipelines/{type}/{id}`` -> 204."""
        self.b.archive_pipeline(self._object_type(object_type), pipeline_id)
        return 204, None

    def list_stages(self, request: Request, object_type: str, pipeline_id: str) -> Result:
        """``GET /crm/v3/pipelines/{type}/{id}/stages``."""
        return 200, {"results": self.b.get_pipeline(self._object_type(object_type), pipeline_id)["stages"]}

    def create_stage(self, request: Request, object_type: str, pipeline_id: str) -> Result:
        """``POST /crm/v3/pipelines/{type}/{id}/stages`` -> 201."""
        return 201, self.b.create_stage(self._object_type(object_type), pipeline_id, json_body(request))

    def get_stage(self, request: Request, object_type: str, pipeline_id: str, stage_id: str) -> Result:
        """``GET /crm/v3/pipelines/{type}/{id}/stages/{stageId}``."""
        pipe = self.b.get_pipeline(self._object_type(object_type), pipeline_id)
        for stage in pipe["stages"]:
            if stage["id"] == stage_id:
                return 200, stage
        raise NotFound(f"Unable to find stage {stage_id} in pipeline {pipeline_id}")

    # ------------------------------------------------------------------ associations v4
    def _pair(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: list[int]
    ) -> dict[str, Any]:
        return {
            "fromObjectTypeId": schema.OBJECT_TYPES[from_type].type_id,
            "fromObjectId": str(from_id),
            "toObjectTypeId": schema.OBJECT_TYPES[to_type].type_id,
            "toObjectId": str(to_id),
            "labels": [lbl for lbl in (self.b.assoc_types[t].label for t in type_ids) if lbl],
        }

    def _multi(self, to_id: str, type_ids: list[int]) -> dict[str, Any]:
        return {"toObjectId": str(to_id), "associationTypes": [self.b.label_of(t) for t in type_ids]}

    def v4_list(self, request: Request, object_type: str, object_id: str, to_object_type: str) -> Result:
        """``GET /crm/v4/objects/{type}/{id}/associations/{toType}`` (``limit`` up to 500, ``after``)."""
        ft, tt = self._object_type(object_type), self._object_type(to_object_type)
        pairs = self.b.associations_of(ft, object_id, tt)
        limit = max(1, min(int_param(request, "limit", 500), 500))
        start = int_param(request, "after", 0)
        body: dict[str, Any] = {
            "results": [self._multi(tid, types) for tid, types in pairs[start : start + limit]]
        }
        if start + limit < len(pairs):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return 200, body

    def v4_create(
        self, request: Request, object_type: str, object_id: str, to_object_type: str, to_object_id: str
    ) -> Result:
        """``PUT /crm/v4/objects/{type}/{id}/associations/{toType}/{toId}`` with labels -> 201."""
        ft, tt = self._object_type(object_type), self._object_type(to_object_type)
        specs = json_body(request)
        if not isinstance(specs, list):
            raise ValidationError("Invalid input JSON: expected an array of association specs")
        self.b.associate(ft, object_id, tt, to_object_id, specs)
        type_ids = self.b.check_specs(ft, tt, specs)
        return 201, self._pair(ft, object_id, tt, to_object_id, type_ids)

    def v4_delete(
        self, request: Request, object_type: str, object_id: str, to_object_type: str, to_object_id: str
    ) -> Result:
        """``DELETE /crm/v4/objects/{type}/{id}/associations/{toType}/{toId}`` -> 204."""
        self.b.dissociate(
            self._object_type(object_type), object_id, self._object_type(to_object_type), to_object_id
        )
        return 204, None

    def _default_result(self, ft: str, from_id: str, tt: str, to_id: str) -> dict[str, Any]:
        type_id = self.b.default_assoc[(ft, tt)]
        return {
            "from": {"id": str(from_id)},
            "to": {"id": str(to_id)},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
        }

    def v4_create_default(
        self, request: Request, object_type: str, object_id: str, to_object_type: str, to_object_id: str
    ) -> Result:
        """``PUT /crm/v4/objects/{type}/{id}/associations/default/{toType}/{toId}`` -> 200, both ways."""
        ft, tt = self._object_type(object_type), self._object_type(to_object_type)
        self.b.associate(ft, object_id, tt, to_object_id, None)
        return 200, batch_envelope(
            [
                self._default_result(ft, object_id, tt, to_object_id),
                self._default_result(tt, to_object_id, ft, object_id),
            ]
        )

    def v4_batch_create(self, request: Request, from_object_type: str, to_object_type: str) -> Result:
        """``POST /crm/v4/associations/{from}/{to}/batch/create``: 201, or 207 with per-item errors."""
        ft, tt = self._object_type(from_object_type), self._object_type(to_object_type)
        inputs = self.b.check_batch_size(json_body(request).get("inputs"), 2000)
        started = now_ms()
        for item in inputs:  # invalid type ids fail the whole request, as in HubSpot
            self.b.check_specs(ft, tt, item.get("types") or [])
        results, errors = [], []
        for item in inputs:
            fid, tid = str((item.get("from") or {}).get("id")), str((item.get("to") or {}).get("id"))
            if fid in self.b.fail_ids or tid in self.b.fail_ids:
                errors.append(
                    standard_error(
                        f"Association {fid} -> {tid} failed (failure injected by emulator fail_ids)",
                        "VALIDATION_ERROR",
                        context={"ids": [fid, tid]},
                    )
                )
                continue
            try:
                self.b.associate(ft, fid, tt, tid, item.get("types"))
            except NotFound as exc:
                errors.append(standard_error(exc.message, "VALIDATION_ERROR", context={"ids": [fid, tid]}))
                continue
            results.append(self._pair(ft, fid, tt, tid, self.b.check_specs(ft, tt, item["types"])))
        return (207 if errors else 201), batch_envelope(results, errors, started)

    def v4_batch_default(self, request: Request, from_object_type: str, to_object_type: str) -> Result:
        """``POST /crm/v4/associations/{from}/{to}/batch/associate/default`` -> 200."""
        ft, tt = self._object_type(from_object_type), self._object_type(to_object_type)
        inputs = self.b.check_batch_size(json_body(request).get("inputs"), 2000)
        results, errors = [], []
        for item in inputs:
            fid, tid = str((item.get("from") or {}).get("id")), str((item.get("to") or {}).get("id"))
            try:
                self.b.associate(ft, fid, tt, tid, None)
            except NotFound as exc:
                errors.append(standard_error(exc.message, "VALIDATION_ERROR", context={"ids": [fid, tid]}))
                continue
            results += [self._default_result(ft, fid, tt, tid), self._default_result(tt, tid, ft, fid)]
        return 200, batch_envelope(results, errors)

    def v4_batch_read(self, request: Request, from_object_type: str, to_object_type: str) -> Result:
        """``POST /crm/v4/associations/{from}/{to}/batch/read``: 207 lists ids without associations."""
        ft, tt = self._object_type(from_object_type), self._object_type(to_object_type)
        inputs = self.b.check_batch_size(json_body(request).get("inputs"), 1000)
        results, errors = [], []
        for item in inputs:
            fid = str(item.get("id"))
            pairs = self.b.associations_of(ft, fid, tt)
            if not pairs:
                errors.append(
                    standard_error(
                        f"No {schema.OBJECT_TYPES[tt].singular} is associated with "
                        f"{schema.OBJECT_TYPES[ft].singular} {fid}.",
                        "OBJECT_NOT_FOUND",
                        context={"fromIds": [fid]},
                    )
                )
                continue
            results.append({"from": {"id": fid}, "to": [self._multi(t, types) for t, types in pairs]})
        return (207 if errors else 200), batch_envelope(results, errors)

    def v4_batch_archive(self, request: Request, from_object_type: str, to_object_type: str) -> Result:
        """``POST /crm/v4/associations/{from}/{to}/batch/archive`` -> 204 (removes all types per pair)."""
        ft, tt = self._object_type(from_object_type), self._object_type(to_object_type)
        for item in self.b.check_batch_size(json_body(request).get("inputs"), 2000):
            fid = str((item.get("from") or {}).get("id"))
            for to in item.get("to") or []:
                self.b.dissociate(ft, fid, tt, str(to.get("id")))
        return 204, None

    def v4_batch_archive_labels(self, request: Request, from_object_type: str, to_object_type: str) -> Result:
        """``POST /crm/v4/associations/{from}/{to}/batch/labels/archive`` -> 204 (only those types)."""
        ft, tt = self._object_type(from_object_type), self._object_type(to_object_type)
        for item in self.b.check_batch_size(json_body(request).get("inputs"), 2000):
            type_ids = self.b.check_specs(ft, tt, item.get("types") or [])
            self.b.dissociate(
                ft,
                str((item.get("from") or {}).get("id")),
                tt,
                str((item.get("to") or {}).get("id")),
                type_ids,
            )
        return 204, None

    def v4_labels(self, request: Request, from_object_type: str, to_object_type: str) -> Result:
        """``GET /crm/v4/associations/{from}/{to}/labels``."""
        ft, tt = self._object_type(from_object_type), self._object_type(to_object_type)
        return 200, {"results": self.b.labels_between(ft, tt)}

    def v4_create_label(self, request: Request, from_object_type: str, to_object_type: str) -> Result:
        """``POST /crm/v4/associations/{from}/{to}/labels`` (``label``, ``name``, ``inverseLabel``)."""
        ft, tt = self._object_type(from_object_type), self._object_type(to_object_type)
        body = json_body(request)
        if not body.get("label"):
            raise ValidationError("label is required")
        type_ids = self.b.create_label(ft, tt, str(body["label"]), body.get("inverseLabel"))
        return 200, {"results": [self.b.label_of(t) for t in type_ids]}
