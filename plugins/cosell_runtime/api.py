"""The Co-sell API and page: conflicts, audit trail, rollback and sync runs, served by Airflow's API server.

Mounted by the plugin (``cosell_plugin.CoSellPlugin.fastapi_apps``) under ``/cosell``. Routes (request and
response shapes of the shared design's feature 5):

- ``GET /audit-trail/{recordId}``: one opportunity's audit entries, newest first (``limit``,
  ``startDate``, ``nextToken``); a HubSpot deal id (digits) finds its entries from before it had an
  opportunity and, when linked, the opportunity's;
- ``GET /conflicts/pending``: the conflicts waiting for a person, both values, their sources and times;
- ``POST /conflicts/resolve``: triggers ``cosell_resolve_conflict`` and returns the run id;
- ``POST /rollback``: triggers ``cosell_rollback`` (``dryRun`` by default, as the DAG) and returns the run id;
- ``GET /runs``: the last ``cosell_reconcile`` runs: state, note and the report's counts;
- ``GET /ui``: the Co-sell page (the plugin's ``external_views`` entry shows it in the Airflow UI);
- ``POST /hubspot/webhooks``: HubSpot's webhook batches, authenticated by HubSpot's signature instead of a
  JWT (``cosell_runtime.webhooks``).

**Authentication.** Airflow does not authenticate plugin apps, so every route here does, with Airflow's
own machinery: ``airflow.api_fastapi.core_api.security.get_user`` (a bearer JWT, else the UI's ``_token``
cookie, validated by the configured auth manager's ``get_user_from_token``) and ``requires_access_dag`` for
authorization. The only change: a missing, forged, expired or revoked token is a 401 here (Airflow's
``get_user`` answers 403 for an invalid one). A valid token without the permission is a 403: reads need
read access to ``cosell_reconcile``'s runs, resolving needs the right to trigger
``cosell_resolve_conflict``, a rollback the right to trigger ``cosell_rollback``.

The stores are built with :func:`cosell_runtime.env.build_env`, from the same Connections as the tasks.
PII: responses carry values (what the page is for); logs and error messages never do, and request
validation errors leave out the rejected input.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

# Airflow's API modules load its ORM models: fine here, this module is imported by the API server only,
# on the first request (``cosell_runtime.lazy_app``), never when the plugin is loaded.
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

#: Where the plugin mounts this app on Airflow's API server.
URL_PREFIX = "/cosell"
RECONCILE_DAG = "cosell_reconcile"
RESOLVE_DAG = "cosell_resolve_conflict"
ROLLBACK_DAG = "cosell_rollback"
PAGE = Path(__file__).with_name("static") / "cosell.html"

#: A HubSpot deal id: digits. Anything else is read as a Partner Central opportunity id.
_DEAL_ID = re.compile(r"^\d+$")
#: The ``resolved_by`` param of ``cosell_resolve_conflict``: a user id, never an email address.
_USER_ID = re.compile(r"^[^@\s]+$")

#: The authenticated Airflow user of a request (``get_user`` is overridden by :func:`authenticated_user`).
CurrentUser = Annotated[BaseUser, Depends(get_user)]

_bearer = HTTPBearer(auto_error=False, description="Airflow's JWT (POST /auth/token on the API server).")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticated_user(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> BaseUser:
    """Airflow's ``get_user`` (bearer JWT, else the UI's cookie), with every rejection as a 401.

    Installed as the app's override of ``security.get_user``, so Airflow's ``requires_access_dag``
    authenticates with it too.

    Raises:
        HTTPException: 401 without a token, or with one the auth manager does not accept.
    """
    try:
        return await get_user(request, _oauth_token=None, bearer_credentials=bearer)
    except HTTPException as err:
        if err.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
            # Airflow says 403 "Invalid JWT token" for a forged one: for a client that is unauthenticated.
            raise _unauthorized(
                "Not authenticated: send Airflow's JWT as 'Authorization: Bearer <token>'"
            ) from None
        raise


# -- request and response bodies ---------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ResolveRequest(_Body):
    """``POST /conflicts/resolve``: which side wins a pending conflict (shared design, feature 5)."""

    conflict_id: str = Field(alias="conflictId", min_length=1, pattern=r"^conf-[0-9a-zA-Z]+$")
    resolution: Literal["USE_HUBSPOT_VALUE", "USE_PARTNER_CENTRAL_VALUE", "CUSTOM_VALUE"]
    reason: str = Field(default="", max_length=2000)
    custom_value: str | None = Field(default=None, alias="customValue")
    resolved_by: str | None = Field(
        default=None, alias="resolvedBy", description="a user id (not an email); default: airflow:<user id>"
    )

    @model_validator(mode="after")
    def _custom(self) -> ResolveRequest:
        if self.resolution == "CUSTOM_VALUE" and self.custom_value is None:
            raise ValueError("resolution CUSTOM_VALUE needs customValue")
        if self.resolution != "CUSTOM_VALUE" and self.custom_value is not None:
            raise ValueError("customValue goes with resolution CUSTOM_VALUE only")
        if self.resolved_by is not None and not _USER_ID.match(self.resolved_by):
            raise ValueError("resolvedBy must be a user id without spaces, not an email address")
        return self


class RollbackRequest(_Body):
    """``POST /rollback``: a record back to a point in time, or one sync run undone (``cosell_rollback``)."""

    opportunity_id: str | None = Field(default=None, alias="opportunityId", min_length=1)
    deal_id: str | None = Field(default=None, alias="dealId", pattern=r"^\d+$")
    run_id: str | None = Field(default=None, alias="runId", min_length=1, description="a sync run to undo")
    target_timestamp: str | None = Field(default=None, alias="targetTimestamp")
    fields: list[str] | None = None
    systems: Literal["both", "hubspot", "partner_central"] = "both"
    dry_run: bool = Field(default=True, alias="dryRun", description="plan only (the DAG's default)")

    @model_validator(mode="after")
    def _target(self) -> RollbackRequest:
        given = [k for k in ("opportunity_id", "deal_id", "run_id") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of opportunityId, dealId, runId")
        if self.run_id and self.target_timestamp:
            raise ValueError("targetTimestamp goes with opportunityId or dealId, not with runId")
        if not self.run_id and not self.target_timestamp:
            raise ValueError("targetTimestamp is required with opportunityId or dealId")
        if self.target_timestamp:
            _parse_time(self.target_timestamp, "targetTimestamp")
        return self

    def conf(self) -> dict[str, Any]:
        """The run conf: the DAG's param names, only those given."""
        conf: dict[str, Any] = {
            k: getattr(self, k)
            for k in ("opportunity_id", "deal_id", "run_id", "target_timestamp", "fields")
            if getattr(self, k)
        }
        return {**conf, "systems": self.systems, "dry_run": self.dry_run}


def _parse_time(value: str, name: str) -> datetime:
    """An ISO date or date-time; UTC when it has no offset. Raises ValueError naming ``name`` only."""
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- audit trail pagination --------------------------------------------------------------------------


def _encode_token(end: str, skip: int) -> str:
    raw = json.dumps({"e": end, "s": skip}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[datetime, str, int]:
    """(end as datetime, end as stored, entries at ``end`` already returned) of a ``nextToken``."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        end, skip = str(data["e"]), int(data["s"])
        return datetime.fromisoformat(end), end, max(skip, 0)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "nextToken is not one this API returned") from None


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    """An audit item as the API shows it: the design's fields, then ids; no table keys or TTL."""
    meta = item.get("metadata") or {}
    out = {
        "timestamp": item.get("timestamp"),
        "action": item.get("action"),
        "source": item.get("source"),
        "user": item.get("user"),
        "changes": item.get("changes") or {},
        "success": item.get("success"),
        "error": item.get("error"),
        "opportunityId": item.get("opportunityId"),
        "dealId": meta.get("dealId"),
        "runId": meta.get("runId"),
        "direction": item.get("direction"),
        "metadata": meta,
    }
    if item.get("valuePolicy"):
        out["valuePolicy"] = item["valuePolicy"]
    return out


def _count(env: SyncEnv, pk: str, start: datetime | None) -> int:
    """How many audit entries a partition holds (from ``start`` on): a COUNT query, no items read."""
    from cosell_sync.storage import utc_iso

    condition, values = "PK = :pk", {":pk": {"S": pk}}
    if start is not None:
        condition += " AND SK >= :start"
        values[":start"] = {"S": utc_iso(start)}
    total, kwargs = 0, {}
    while True:
        page = env.audit.ddb.query(
            TableName=env.audit.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            Select="COUNT",
            **kwargs,
        )
        total += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            return total
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def _partitions(env: SyncEnv, record_id: str) -> tuple[list[str], str | None, str | None]:
    """The audit partitions of a record: (partition keys, opportunity id, deal id).

    A deal id (digits) has its own partition for entries from before it had an opportunity, and the
    opportunity's once linked (``rollback.resolve_deal``: the baseline's pair, else the deal's link
    property). An opportunity's deal comes from the baseline, when the sync has paired them.
    """
    from cosell_sync.audit import AuditEntry
    from cosell_sync.errors import NotFoundError

    if _DEAL_ID.match(record_id):
        from cosell_sync.rollback import resolve_deal

        try:
            opportunity_id: str | None = resolve_deal(env, record_id)
        except NotFoundError:
            opportunity_id = None  # not (or no longer) linked: its own entries only
        pks = [AuditEntry.deal_pk(record_id), *([opportunity_id] if opportunity_id else [])]
        return pks, opportunity_id, record_id
    deal_id = None
    base = env.baseline.load()
    if "deal_id" in base.columns and record_id in base.index:
        value = base.loc[record_id, "deal_id"]
        deal_id = str(value) if isinstance(value, str | int) and str(value) else None
    return [record_id, *([AuditEntry.deal_pk(deal_id)] if deal_id else [])], record_id, deal_id


def audit_page(
    env: SyncEnv, record_id: str, limit: int, start: datetime | None, token: str | None
) -> dict[str, Any]:
    """One page of a record's audit trail, newest first, with the total and the next page's token.

    The token holds the timestamp of the page's last entry and how many entries at that timestamp were
    returned: the next page asks ``AuditTrail.history`` for entries up to that time and skips those.
    """
    pks, opportunity_id, deal_id = _partitions(env, record_id)
    end, end_raw, skip = (None, None, 0) if token is None else _decode_token(token)
    wanted = skip + limit + 1
    items: list[dict[str, Any]] = []
    for pk in pks:
        items += env.audit.history(pk, limit=wanted, start=start, end=end)
    # Sort keys begin with the fixed-width run timestamp: one order across both partitions.
    items.sort(key=lambda i: (str(i.get("SK")), str(i.get("PK"))), reverse=True)
    page = items[skip : skip + limit]
    next_token = None
    if len(items) > skip + limit and page:
        last = str(page[-1].get("timestamp"))
        at_last = sum(1 for i in page if str(i.get("timestamp")) == last)
        next_token = _encode_token(last, at_last + (skip if last == end_raw else 0))
    return {
        "recordId": record_id,
        "opportunityId": opportunity_id,
        "dealId": deal_id,
        "entries": [_entry(i) for i in page],
        "total": sum(_count(env, pk, start) for pk in pks),
        "nextToken": next_token,
    }


# -- conflicts, runs, triggers ----------------------------------------------------------------------


def _conflict(item: dict[str, Any]) -> dict[str, Any]:
    """A stored conflict in the design's shape (``conflictType`` and the task id added)."""
    return {
        "id": item.get("conflict_id"),
        "opportunityId": item.get("opportunity_id"),
        "dealId": item.get("deal_id"),
        "field": item.get("field"),
        "conflictType": item.get("conflict_type"),
        "hubspotValue": item.get("hubspot_value"),
        "partnerCentralValue": item.get("partner_central_value"),
        "hubspotTimestamp": item.get("hubspot_timestamp"),
        "partnerCentralTimestamp": item.get("partner_central_timestamp"),
        "detectedAt": item.get("detected_at"),
        "lastDetectedAt": item.get("last_detected_at"),
        "status": item.get("status"),
        "taskId": item.get("task_id"),
        "catalog": item.get("catalog"),
    }


def _env() -> SyncEnv:
    """The stores and clients, from the tasks' Connections (``build_env``)."""
    from cosell_runtime.env import build_env

    return build_env()


def recent_runs(limit: int) -> list[dict[str, Any]]:
    """The last ``cosell_reconcile`` runs, newest first: state, times, note and the report's counts."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out = []
    with create_session() as session:
        runs = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == RECONCILE_DAG)
            .order_by(DagRun.run_after.desc())
            .limit(limit)
        ).all()
        for run in runs:
            row = session.execute(
                select(XComModel.value).where(
                    XComModel.dag_run_id == run.id,
                    XComModel.task_id == "report",
                    XComModel.key == "return_value",
                )
            ).first()
            report = XComModel.deserialize_value(row) if row is not None else None
            counts = {k: v for k, v in report.items() if k != "note"} if isinstance(report, dict) else None
            out.append(
                {
                    "runId": run.run_id,
                    "state": str(getattr(run.state, "value", run.state)),
                    "runType": str(getattr(run.run_type, "value", run.run_type)),
                    "runAfter": run.run_after,
                    "startDate": run.start_date,
                    "endDate": run.end_date,
                    "note": run.note,
                    "report": counts,
                }
            )
    return out


def trigger(dag_id: str, conf: dict[str, Any], user: BaseUser, request: Request) -> dict[str, Any]:
    """Create a queued manual run of ``dag_id`` with ``conf``, as Airflow's own trigger endpoint does.

    Raises:
        HTTPException: 404 when the DAG is not in Airflow's database (not parsed yet), 400 when the conf
            does not satisfy the DAG's params (the message names no value).
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.utils.types import DagRunTriggeredByType

    # As the core API does: a request from a page (it sends a Referer) is a UI trigger.
    by = DagRunTriggeredByType.UI if request.headers.get("referer") else DagRunTriggeredByType.REST_API
    try:
        run = trigger_dag(dag_id, triggered_by=by, triggering_user_name=user.get_name(), conf=conf)
    except DagNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"DAG {dag_id} is not in Airflow (not parsed yet?)"
        ) from None
    except ValueError as err:  # ParamValidationError is one: its message can quote the value
        log.info("co-sell api: %s run refused by its params (%s)", dag_id, type(err).__name__)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"the request does not satisfy {dag_id}'s params"
        ) from None
    if run is None:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"{dag_id}: no run was created")
    log.info("co-sell api: %s run %s queued", dag_id, run.run_id)
    return {
        "dagId": dag_id,
        "runId": run.run_id,
        "state": str(getattr(run.state, "value", run.state)),
        "url": f"/dags/{dag_id}/runs/{run.run_id}",
    }


# -- the app -------------------------------------------------------------------------------------------


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each rejected field and the rule, never the value (FastAPI's default echoes it)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _stores_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 when the stores or a Connection cannot be used: the error's type, never its values."""
    log.warning("co-sell api: %s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(
        {
            "detail": f"the co-sell stores could not be used ({type(exc).__name__}): check the "
            "aws_default, partner_central_default and hubspot_default connections and the API server's log"
        },
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


def create_app() -> FastAPI:
    """The Co-sell FastAPI app (the plugin mounts it under :data:`URL_PREFIX`)."""
    from airflow.exceptions import AirflowNotFoundException
    from botocore.exceptions import BotoCoreError, ClientError

    from cosell_sync.errors import NotFoundError, SyncError

    app = FastAPI(
        title="Co-sell sync",
        description=__doc__,
        # Every route needs a token: the generated docs are served by the authenticated route below.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.dependency_overrides[get_user] = authenticated_user
    app.add_exception_handler(RequestValidationError, _validation_error)
    # A missing Connection, an unreachable store or a sync error: 503 with the error's type, not a bare 500.
    for unavailable in (AirflowNotFoundException, BotoCoreError, ClientError, SyncError):
        app.add_exception_handler(unavailable, _stores_unavailable)
    # HubSpot's webhooks: authenticated by their signature, not by Airflow's JWT (cosell_runtime.webhooks).
    from cosell_runtime.webhooks import router as hubspot_webhooks

    app.include_router(hubspot_webhooks)
    can_read = [Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=RECONCILE_DAG))]
    can_resolve = [Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=RESOLVE_DAG))]
    can_roll_back = [Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=ROLLBACK_DAG))]

    @app.get("/ui", response_class=HTMLResponse, dependencies=can_read)
    def page() -> HTMLResponse:
        """The Co-sell page: pending conflicts, the audit trail of a record, the last sync runs."""
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    @app.get("/openapi.json", dependencies=can_read, include_in_schema=False)
    def openapi() -> dict[str, Any]:
        """The API's OpenAPI document."""
        return app.openapi()

    @app.get("/audit-trail/{record_id}", dependencies=can_read)
    def audit_trail(
        record_id: str,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        start_date: Annotated[str | None, Query(alias="startDate")] = None,
        next_token: Annotated[str | None, Query(alias="nextToken")] = None,
    ) -> dict[str, Any]:
        """A record's audit entries, newest first: an opportunity id, or a HubSpot deal id."""
        try:
            start = _parse_time(start_date, "startDate") if start_date else None
        except ValueError as err:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(err)) from None
        result = audit_page(_env(), record_id.strip(), limit, start, next_token)
        log.info("co-sell api: audit trail of %s, %d entries", record_id, len(result["entries"]))
        return jsonable_encoder(result)

    @app.get("/conflicts/pending", dependencies=can_read)
    def pending_conflicts(
        opportunity_id: Annotated[str | None, Query(alias="opportunityId")] = None,
    ) -> dict[str, Any]:
        """The conflicts waiting for a person, oldest first."""
        env = _env()
        items = sorted(env.conflicts.pending(opportunity_id), key=lambda c: str(c.get("detected_at")))
        return jsonable_encoder({"catalog": env.catalog, "conflicts": [_conflict(c) for c in items]})

    @app.post("/conflicts/resolve", dependencies=can_resolve, status_code=status.HTTP_201_CREATED)
    def resolve(body: ResolveRequest, user: CurrentUser, request: Request) -> dict[str, Any]:
        """Trigger ``cosell_resolve_conflict`` for a pending conflict; returns the run id."""
        try:
            current = _env().conflicts.get(body.conflict_id)
        except NotFoundError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"conflict {body.conflict_id} not found") from None
        if current.get("status") != "PENDING":
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"conflict {body.conflict_id} is {current.get('status')} with {current.get('resolution')}",
            )
        resolved_by = body.resolved_by or f"airflow:{user.get_id()}"
        if not _USER_ID.match(resolved_by):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "your Airflow user id is an email address: send resolvedBy (a user id) instead",
            )
        conf = {
            "conflict_id": body.conflict_id,
            "resolution": body.resolution,
            "reason": body.reason,
            "resolved_by": resolved_by,
            **({"custom_value": body.custom_value} if body.custom_value is not None else {}),
        }
        return {**trigger(RESOLVE_DAG, conf, user, request), "conflictId": body.conflict_id}

    @app.post("/rollback", dependencies=can_roll_back, status_code=status.HTTP_201_CREATED)
    def rollback(body: RollbackRequest, user: CurrentUser, request: Request) -> dict[str, Any]:
        """Trigger ``cosell_rollback`` (a dry run unless ``dryRun`` is false); returns the run id."""
        conf = body.conf()
        return {**trigger(ROLLBACK_DAG, conf, user, request), "dryRun": conf["dry_run"]}

    @app.get("/runs", dependencies=can_read)
    def runs(limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
        """The last ``cosell_reconcile`` runs' outcomes."""
        return jsonable_encoder({"dagId": RECONCILE_DAG, "runs": recent_runs(limit)})

    return app
