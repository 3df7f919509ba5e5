"""WSGI app and routing (werkzeug ``Map``/``Rule``), plus :class:`HubSpotEmulator` to run it in a thread.

Every API request goes through the same pipeline, in HubSpot's order: authentication (401), rate limits
(429, injected ones first), injected faults (5xx), then the handler. Requests under ``/_emulator/`` are
test controls: no auth, no limits, not counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from emulators.common.server import ThreadedServer
from emulators.hubspot import schema
from emulators.hubspot.controls import CallLog, Faults
from emulators.hubspot.exceptions import (
    HubSpotError,
    InternalError,
    RateLimited,
    Unauthorized,
    correlation_id,
)
from emulators.hubspot.limits import RateLimiter
from emulators.hubspot.models import HubSpotBackend
from emulators.hubspot.responses import Handlers
from emulators.hubspot.seed import seed
from emulators.hubspot.webhooks import WebhookDispatcher

_OBJ = "/crm/v3/objects/<object_type>"
_PROP = "/crm/v3/properties/<object_type>"
_PIPE = "/crm/v3/pipelines/<object_type>"
_V4O = "/crm/v4/objects/<object_type>/<object_id>/associations"
_V4A = "/crm/v4/associations/<from_object_type>/<to_object_type>"

ROUTES: list[tuple[str, str, str]] = [
    ("GET", _OBJ, "list_objects"),
    ("POST", _OBJ, "create_object"),
    ("GET", _OBJ + "/<object_id>", "get_object"),
    ("PATCH", _OBJ + "/<object_id>", "update_object"),
    ("DELETE", _OBJ + "/<object_id>", "archive_object"),
    ("POST", _OBJ + "/batch/read", "batch_read"),
    ("POST", _OBJ + "/batch/create", "batch_create"),
    ("POST", _OBJ + "/batch/update", "batch_update"),
    ("POST", _OBJ + "/batch/upsert", "batch_upsert"),
    ("POST", _OBJ + "/batch/archive", "batch_archive"),
    ("POST", _OBJ + "/search", "search"),
    ("GET", _PROP, "list_properties"),
    ("POST", _PROP, "create_property"),
    ("POST", _PROP + "/batch/create", "batch_create_properties"),
    ("POST", _PROP + "/batch/read", "batch_read_properties"),
    ("POST", _PROP + "/batch/archive", "batch_archive_properties"),
    ("GET", _PROP + "/groups", "list_groups"),
    ("POST", _PROP + "/groups", "create_group"),
    ("GET", _PROP + "/groups/<group_name>", "get_group"),
    ("PATCH", _PROP + "/groups/<group_name>", "update_group"),
    ("DELETE", _PROP + "/groups/<group_name>", "archive_group"),
    ("GET", _PROP + "/<property_name>", "get_property"),
    ("PATCH", _PROP + "/<property_name>", "update_property"),
    ("DELETE", _PROP + "/<property_name>", "archive_property"),
    ("GET", "/crm/v3/owners", "list_owners"),
    ("GET", "/crm/v3/owners/<owner_id>", "get_owner"),
    ("GET", _PIPE, "list_pipelines"),
    ("POST", _PIPE, "create_pipeline"),
    ("GET", _PIPE + "/<pipeline_id>", "get_pipeline"),
    ("PATCH", _PIPE + "/<pipeline_id>", "update_pipeline"),
    ("DELETE", _PIPE + "/<pipeline_id>", "archive_pipeline"),
    ("GET", _PIPE + "/<pipeline_id>/stages", "list_stages"),
    ("POST", _PIPE + "/<pipeline_id>/stages", "create_stage"),
    ("GET", _PIPE + "/<pipeline_id>/stages/<stage_id>", "get_stage"),
    ("GET", _V4O + "/<to_object_type>", "v4_list"),
    ("PUT", _V4O + "/<to_object_type>/<to_object_id>", "v4_create"),
    ("DELETE", _V4O + "/<to_object_type>/<to_object_id>", "v4_delete"),
    ("PUT", _V4O + "/default/<to_object_type>/<to_object_id>", "v4_create_default"),
    ("POST", _V4A + "/batch/create", "v4_batch_create"),
    ("POST", _V4A + "/batch/associate/default", "v4_batch_default"),
    ("POST", _V4A + "/batch/read", "v4_batch_read"),
    ("POST", _V4A + "/batch/archive", "v4_batch_archive"),
    ("POST", _V4A + "/batch/labels/archive", "v4_batch_archive_labels"),
    ("GET", _V4A + "/labels", "v4_labels"),
    ("POST", _V4A + "/labels", "v4_create_label"),
]

_TYPE_VARS = {"object_type", "from_object_type", "to_object_type"}
_VAR_NAMES = {
    "object_id": "id",
    "to_object_id": "toObjectId",
    "property_name": "propertyName",
    "group_name": "groupName",
    "owner_id": "ownerId",
    "pipeline_id": "pipelineId",
    "stage_id": "stageId",
}


def endpoint_key(method: str, rule: str, args: dict[str, str]) -> str:
    """``METHOD /route/template`` with object types replaced by their names (``0-3`` -> ``deals``)."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        if var in _TYPE_VARS:
            return schema.object_type_name(args.get(var, "")) or args.get(var, "")
        return "{" + _VAR_NAMES.get(var, var) + "}"

    return f"{method} " + re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", sub, rule)


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        resp = Response(status=status)
    else:
        resp = Response(json.dumps(body), status=status, mimetype="application/json")
    resp.headers["X-HubSpot-Correlation-Id"] = correlation_id()
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


class HubSpotApp:
    """The emulator's WSGI application.

    Args:
        access_tokens: accepted Bearer tokens; None accepts any non-empty token.
    """

    def __init__(self, access_tokens: Iterable[str] | None = None) -> None:
        self.access_tokens = set(access_tokens) if access_tokens is not None else None
        self.backend = HubSpotBackend()
        self.handlers = Handlers(self.backend)
        self.limiter = RateLimiter()
        self.calls = CallLog()
        self.faults = Faults()
        self.webhooks = WebhookDispatcher(self.backend)
        self.url_map = Map(
            [Rule(path, endpoint=name, methods=[method]) for method, path, name in ROUTES],
            strict_slashes=False,
            merge_slashes=False,
        )
        self.controls: dict[tuple[str, str], Callable[[Request], tuple[int, Any]]] = {
            ("POST", "reset"): self._reset,
            ("POST", "seed"): self._seed,
            ("POST", "owners"): self._add_owner,
            ("GET", "calls"): lambda r: (200, self.calls.snapshot()),
            ("DELETE", "calls"): self._clear_calls,
            ("GET", "faults"): lambda r: (200, self._faults_state()),
            ("POST", "faults"): self._set_faults,
            ("GET", "quotas"): lambda r: (200, self.limiter.settings()),
            ("POST", "quotas"): self._set_quotas,
            ("GET", "webhooks"): lambda r: (200, self.webhooks.config()),
            ("POST", "webhooks"): self._set_webhooks,
            ("GET", "webhooks/deliveries"): lambda r: (
                200,
                {"deliveries": list(self.webhooks.deliveries), "pending": self.webhooks.pending()},
            ),
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """WSGI entry point."""
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    # ------------------------------------------------------------------ API
    def dispatch(self, request: Request) -> Response:
        """Route one request through controls or auth -> limits -> faults -> handler."""
        path = request.path
        if path.startswith("/_emulator/"):
            return self._control(request, path[len("/_emulator/") :].strip("/"))
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            rule, args = adapter.match(return_rule=True)
        except MethodNotAllowed:
            self.calls.record(f"{request.method} {path}")
            return _json_response(
                405,
                {
                    "status": "error",
                    "message": f"Method {request.method} not allowed",
                    "correlationId": correlation_id(),
                    "category": "VALIDATION_ERROR",
                },
            )
        except RouteNotFound:
            self.calls.record(f"{request.method} {path}")
            return _json_response(
                404,
                {
                    "status": "error",
                    "message": "resource not found",
                    "correlationId": correlation_id(),
                    "category": "OBJECT_NOT_FOUND",
                },
            )
        key = endpoint_key(request.method, rule.rule, args)
        headers: dict[str, str] = {}
        try:
            token = self._authenticate(request)
            if self.faults.throttled():
                self.calls.record(key, throttled=True)
                headers = {"Retry-After": str(self.faults.retry_after_s)}
                raise RateLimited("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
            try:
                headers = self.limiter.check(token, is_search=rule.endpoint == "search")
            except HubSpotError:
                self.calls.record(key, throttled=True)
                raise
            self.calls.record(key)
            self.faults.apply()
            fault = self.faults.take(key)
            if fault and fault["when"] == "before":
                raise InternalError(fault["status"])
            status, body = getattr(self.handlers, str(rule.endpoint))(request, **args)
            if fault:
                self.faults.fail_after(fault)
        except HubSpotError as exc:
            if exc.status == 401:
                self.calls.record(key)
            return _json_response(exc.status, exc.body(), headers)
        return _json_response(status, body, headers)

    def _authenticate(self, request: Request) -> str:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized()
        if self.access_tokens is not None and token not in self.access_tokens:
            raise Unauthorized()
        return token

    # ------------------------------------------------------------------ controls
    def _control(self, request: Request, name: str) -> Response:
        handler = self.controls.get((request.method, name))
        if handler is None:
            return _json_response(404, {"error": f"no control {request.method} /_emulator/{name}"})
        try:
            status, body = handler(request)
        except (ValueError, TypeError, KeyError) as exc:
            return _json_response(400, {"error": str(exc)})
        except HubSpotError as exc:
            return _json_response(exc.status, exc.body())
        return _json_response(status, body)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        raw = request.get_data()
        if not raw:
            return {}
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("control body must be a JSON object")
        return body

    def reset(self) -> None:
        """Fresh portal: state, limits (real values), faults, call counts and webhooks all reset."""
        self.backend.reset()
        self.limiter.reset()
        self.faults.reset()
        self.calls.clear()
        self.webhooks.reset()

    def _reset(self, request: Request) -> tuple[int, Any]:
        self.reset()
        return 200, {"status": "reset"}

    def _seed(self, request: Request) -> tuple[int, Any]:
        body = self._body(request)
        result = seed(
            self.backend,
            deals=int(body.get("deals", 0)),
            contacts=int(body.get("contacts", 0)),
            companies=int(body.get("companies", 0)),
            seed_value=int(body.get("seed", 0)),
            modified_at=body.get("modified_at"),
            deal_properties=body.get("deal_properties"),
        )
        return 200, result

    def _add_owner(self, request: Request) -> tuple[int, Any]:
        """``POST /_emulator/owners`` ``{"firstName", "lastName", "email"}``: a new active owner.

        ``email`` may be absent, null or any string: HubSpot's ``PublicOwner`` does not require one, so a
        test can give the sync an owner it cannot assign.
        """
        body = self._body(request)
        first, last = body.get("firstName"), body.get("lastName")
        email = body.get("email")
        for name, value in (("firstName", first), ("lastName", last), ("email", email)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or null")
        return 200, self.backend.add_owner(first, last, email)

    def _clear_calls(self, request: Request) -> tuple[int, Any]:
        self.calls.clear()
        return 200, self.calls.snapshot()

    def _faults_state(self) -> dict[str, Any]:
        return {
            "error_rate": self.faults.error_rate,
            "throttle_rate": self.faults.throttle_rate,
            "retry_after_s": self.faults.retry_after_s,
            "latency_ms": self.faults.latency_ms,
            "seed": self.faults.seed,
            "fail_ids": sorted(self.backend.fail_ids),
            "endpoint_faults": {k: dict(v) for k, v in self.faults.endpoint_faults.items()},
        }

    def _set_faults(self, request: Request) -> tuple[int, Any]:
        body = self._body(request)
        self.faults.configure(body)
        if "fail_ids" in body:
            with self.backend.lock:
                self.backend.fail_ids = {str(i) for i in body["fail_ids"] or []}
        return 200, self._faults_state()

    def _set_quotas(self, request: Request) -> tuple[int, Any]:
        body = self._body(request)
        return 200, self.limiter.configure(body.get("enabled"), body.get("time_scale"), body.get("tier"))

    def _set_webhooks(self, request: Request) -> tuple[int, Any]:
        return 200, self.webhooks.configure(self._body(request))


class HubSpotEmulator:
    """The HubSpot emulator on a background thread.

    Args:
        host: interface to bind.
        port: TCP port; 0 picks a free one.
        access_tokens: accepted Bearer tokens; None accepts any non-empty token.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, access_tokens: Iterable[str] | None = None
    ) -> None:
        self.app = HubSpotApp(access_tokens)
        self._server = ThreadedServer(self.app, host=host, port=port)

    @property
    def backend(self) -> HubSpotBackend:
        """In-memory state, for white-box assertions."""
        return self.app.backend

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return self._server.url

    def start(self) -> HubSpotEmulator:
        """Start serving and return self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and the webhook thread."""
        self._server.stop()
        self.app.webhooks.stop()

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
