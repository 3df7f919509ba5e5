"""WSGI app: AWS JSON 1.0 dispatch on ``X-Amz-Target`` plus the ``/_emulator/`` controls.

botocore sends ``POST /`` with ``X-Amz-Target: AWSPartnerCentralSelling.<Operation>`` and a JSON body;
errors go
back as ``{"__type": <code>, "Message": ...}`` (with ``Reason``/``ErrorList`` for validation), which botocore
turns into ``ClientError`` with the modeled members. Signatures are accepted without verification.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from emulators.common.server import ThreadedServer
from emulators.partner_central import controls, shapes
from emulators.partner_central.exceptions import (
    ConflictException,
    InternalServerException,
    PartnerCentralError,
    ResourceNotFoundException,
    ThrottlingException,
    UnknownOperationException,
    ValidationException,
    business_error,
)
from emulators.partner_central.instruments import CallLog, Faults
from emulators.partner_central.models import PartnerCentralBackend
from emulators.partner_central.quotas import Quotas, is_read
from emulators.partner_central.responses import HANDLERS

log = logging.getLogger(__name__)
TARGET_PREFIX = "AWSPartnerCentralSelling."
CONTENT_TYPE = "application/x-amz-json-1.0"


class PartnerCentralApp:
    """The WSGI application holding backend, quotas, faults and call log.

    Args:
        state_file: optional JSON file to load state from and save it to after each write.
    """

    def __init__(self, state_file: str | None = None) -> None:
        self.backend = PartnerCentralBackend()
        self.quotas = Quotas()
        self.faults = Faults()
        self.calls = CallLog()
        self.state_file = Path(state_file) if state_file else None
        if self.state_file and self.state_file.exists():
            self.backend.load(json.loads(self.state_file.read_text()))

    def reset(self) -> None:
        """Back to a fresh emulator: empty state, default quotas, no faults, no event target."""
        self.backend.reset()
        self.backend.events.set_target(None)
        self.backend.task_delay_ms = 200
        self.backend.events.enabled = True
        self.quotas.configure(enabled=True, time_scale=1.0)
        self.faults.configure({})
        self.faults.clear_refusals()
        self.calls.reset()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:  # noqa: D102
        request = Request(environ)
        if request.path.startswith("/_emulator/") or request.path == "/_emulator":
            response = self._control(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    def _control(self, request: Request) -> Response:
        try:
            body = json.loads(request.get_data() or b"{}") if request.method in ("POST", "PUT") else {}
            status, payload = controls.handle(self, request.method, request.path, body, dict(request.args))
        except PartnerCentralError as err:
            status, payload = err.status if err.status != 400 else 400, err.body()
        except (ValueError, KeyError, TypeError) as err:
            status, payload = 400, {"error": f"{type(err).__name__}: {err}"}
        if isinstance(payload, bytes):
            # A download (bulk job reports), not a JSON control answer.
            return Response(payload, status=status, content_type="text/csv; charset=utf-8")
        return Response(json.dumps(payload, default=str), status=status, content_type="application/json")

    def _error(self, err: PartnerCentralError) -> Response:
        return Response(
            json.dumps(err.body()),
            status=err.status,
            content_type=CONTENT_TYPE,
            headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": err.code},
        )

    def _api(self, request: Request) -> Response:
        target = request.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if operation not in HANDLERS:
            return self._error(UnknownOperationException(f"Unknown operation {target!r}"))
        self.calls.record(operation)
        throttle, fail = self.faults.draw()
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        try:
            if throttle:
                raise ThrottlingException("Rate exceeded")
            reason = self.quotas.admit(operation)
            if reason:
                raise ThrottlingException(reason)
        except ThrottlingException as err:
            self.calls.record_throttled()
            return self._error(err)
        if not is_read(operation):
            self.calls.record_write()
        try:
            if fail:
                raise InternalServerException("An internal error occurred (injected fault)")
            refused = self.faults.refusal(operation)
            if refused is not None:
                raise _refusal(refused)
            try:
                params = json.loads(request.get_data() or b"{}")
            except ValueError:
                return self._error(_serialization_error())
            # Report URLs (GetOpportunityBulkJobReportUrl...) point at the host the client called.
            self.backend.base_url = request.host_url.rstrip("/")
            self.backend.run_due_tasks()
            shapes.validate_input(operation, params)
            result = HANDLERS[operation](self.backend, params)
            out_shape = shapes.output_shape(operation)
            body = shapes.project(out_shape, result or {}) if out_shape is not None else {}
        except PartnerCentralError as err:
            return self._error(err)
        if self.state_file and not is_read(operation):
            self._save()
        return Response(
            json.dumps(body),
            status=200,
            content_type=CONTENT_TYPE,
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _save(self) -> None:
        assert self.state_file is not None
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.backend.dump()))
        tmp.replace(self.state_file)


def _refusal(refused: dict[str, Any]) -> PartnerCentralError:
    """The error a ``/_emulator/faults/refuse`` refusal answers with (a business rule, as AWS words it)."""
    if refused["code"] == "ConflictException":
        return ConflictException(refused["message"])
    if refused["code"] == "ResourceNotFoundException":
        return ResourceNotFoundException(refused["message"])
    if refused.get("field"):
        return business_error(refused["field"], refused["message"], "INVALID_RESOURCE_STATE")
    return ValidationException(refused["message"], reason="BUSINESS_VALIDATION_FAILED")


def _serialization_error() -> PartnerCentralError:
    err = PartnerCentralError("Request body is not valid JSON")
    err.code = "SerializationException"
    return err


class PartnerCentralEmulator(ThreadedServer):
    """The emulator on a background thread: ``PartnerCentralEmulator(port=0).start()``, ``.url``.

    Args:
        host: interface to bind.
        port: TCP port; 0 picks a free one.
        state_file: optional JSON file persisting state across restarts.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state_file: str | None = None) -> None:
        self.app = PartnerCentralApp(state_file)
        super().__init__(self.app, host=host, port=port)

    @property
    def backend(self) -> PartnerCentralBackend:
        """The in-memory state, for white-box assertions."""
        return self.app.backend

    def start(self) -> PartnerCentralEmulator:
        """Start serving and return self."""
        super().start()
        return self

    def __enter__(self) -> PartnerCentralEmulator:
        return self.start()
