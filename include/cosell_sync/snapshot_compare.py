"""What a resource snapshot held against the opportunity now: ``cosell_snapshot``'s ``compare_revision``.

Partner Central has no restore of a snapshot (no operation takes one back), so recovery of synced data is the
audit-trail rollback (``cosell_rollback``); this comparison shows what a snapshot revision held and how the
opportunity differs from it today, so a seller can decide what to change by hand or roll back.

One ``GetResourceSnapshot`` (the revision, template ``snapshots.template``; its ``Payload`` is the template's
view: ``OpportunitySummary``, or ``AwsOpportunitySummaryFullView`` for an AWS-side template) and one read of
the record now (``GetOpportunity``, or ``GetAwsOpportunitySummary`` for the AWS view), projected onto the same
view shape of the botocore model so that only fields the snapshot can hold are compared. Both are flattened
to dotted paths (``Customer.Account.Address.City``, ``OpportunityTeam[0].Email``; lists by position), and the
report lists each path whose value differs. The report (values included: it is the user's artefact, like the
run's extracts) goes to S3 under the run's folder, ``runs/{catalog}/{run_id}/snapshot-compare.json``; the log
and the task's return value (XCom) carry the key, the counts and the field *names* only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.errors import NotFoundError, ParamError
from cosell_sync.snapshots import RESOURCE_TYPE, SnapshotRun, check_params, locate
from cosell_sync.storage import run_key, utc_iso

if TYPE_CHECKING:
    from botocore.model import Shape

    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

REPORT_NAME = "snapshot-compare.json"
#: Payload member -> (operation that reads the record now, its boto3 method, the view's renamed members).
#: ``OpportunitySummaryView`` names the lifecycle ``Lifecycle``; ``GetOpportunity`` answers ``LifeCycle``.
_CURRENT = {
    "OpportunitySummary": ("GetOpportunity", "get_opportunity", "Identifier", {"Lifecycle": "LifeCycle"}),
    "AwsOpportunitySummaryFullView": (
        "GetAwsOpportunitySummary",
        "get_aws_opportunity_summary",
        "RelatedOpportunityIdentifier",
        {},
    ),
}


def check_revision(revision: Any) -> int:
    """``compare_revision`` as a revision number (0 or none: no comparison).

    Raises:
        ParamError: not a whole number of at least 0.
    """
    if revision in (None, "", 0, "0"):
        return 0
    try:
        number = int(str(revision))
    except ValueError:
        number = -1
    if number < 0:
        raise ParamError("compare_revision: must be a revision number (1 or more), or 0 for no comparison")
    return number


def _plain(value: Any) -> Any:
    return utc_iso(value) if isinstance(value, datetime) else value


def project(shape: Shape, value: Any, renames: dict[str, str] | None = None) -> Any:
    """``value`` reduced to the members ``shape`` has (``renames``: view member -> member in ``value``)."""
    if value is None:
        return None
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            return None
        out = {}
        for name, member in shape.members.items():
            got = project(member, value.get((renames or {}).get(name, name)))
            if got is not None:
                out[name] = got
        return out
    if shape.type_name == "list":
        return [project(shape.member, v) for v in value] if isinstance(value, list) else None
    if shape.type_name == "map":
        return {k: project(shape.value, v) for k, v in value.items()} if isinstance(value, dict) else None
    return _plain(value)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to the scalar values of ``value`` (empty lists and structures add no path)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
    elif value is not None:
        out[prefix] = value
    return out


def differences(snapshot: Any, now: Any) -> list[dict[str, Any]]:
    """The fields whose value differs, sorted by path: ``{"field", "snapshot", "now"}`` (None: no value)."""
    before, after = flatten(snapshot), flatten(now)
    return [
        {"field": path, "snapshot": before.get(path), "now": after.get(path)}
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


def compare_snapshot(
    env: SyncEnv, run: dict[str, Any], deal_id: str, opportunity_id: str, revision: int
) -> dict[str, Any]:
    """Compare one snapshot revision of a linked opportunity with the opportunity now; report to S3.

    Args:
        env: clients and stores.
        run: ``run_id`` and ``catalog``.
        deal_id: the deal param (or ``opportunity_id``).
        opportunity_id: the opportunity param.
        revision: the revision to compare (0: no comparison, nothing read).

    Returns:
        ``key`` (the S3 report), ``revision``, ``template``, ``fields_compared``, ``differences`` (count) and
        ``fields`` (the names that differ); or ``skipped``.

    Raises:
        ParamError: bad params.
        NotFoundError: no linked deal, no engagement, or no such revision of the template.
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.pc_model import pc_shape

    if not revision:
        return {"skipped": "compare_revision is 0: no comparison"}
    check_params(deal_id, opportunity_id)
    r = SnapshotRun(env, run)
    gw = HubSpotGateway(env.hubspot)
    outcome = "nothing was compared"
    deal_id, oid, eid = locate(env, r, gw, deal_id, opportunity_id, outcome)
    template = env.config.snapshots.template
    try:
        snap = r.read(
            "GetResourceSnapshot",
            "get_resource_snapshot",
            EngagementIdentifier=eid,
            ResourceType=RESOURCE_TYPE,
            ResourceIdentifier=oid,
            ResourceSnapshotTemplateIdentifier=template,
            Revision=revision,
        )
    except NotFoundError as err:
        raise NotFoundError(
            f"opportunity {oid}: no revision {revision} of template {template} in engagement {eid}; {outcome}"
        ) from err
    payload = snap.get("Payload") or {}
    kind = next((k for k in _CURRENT if k in payload), None)
    if kind is None:
        raise NotFoundError(
            f"opportunity {oid}: revision {revision} holds no view this DAG compares; {outcome}"
        )
    operation, method, id_param, renames = _CURRENT[kind]
    current = r.read(operation, method, **{id_param: oid})
    view = pc_shape("GetResourceSnapshot", "output").members["Payload"].members[kind]
    held = project(view, payload[kind])
    now = project(view, current, renames)
    diff = differences(held, now)
    created = snap.get("CreatedAt")
    report = {
        "opportunity_id": oid,
        "deal_id": deal_id,
        "engagement_id": eid,
        "template": template,
        "revision": revision,
        "view": kind,
        "snapshot_created_at": utc_iso(created) if isinstance(created, datetime) else created,
        "compared_at": utc_iso(datetime.now(UTC)),
        "fields_compared": len(flatten(held).keys() | flatten(now).keys()),
        "differences": diff,
    }
    key = run_key(run["catalog"], run["run_id"], REPORT_NAME)
    env.snapshots.put_json(report, key)
    fields = [d["field"] for d in diff]
    # Names only: the values (customer, contacts, amounts) stay in the S3 report.
    log.info(
        "Opportunity %s, template %s revision %s vs now: %d of %d fields differ%s; report %s",
        oid,
        template,
        revision,
        len(diff),
        report["fields_compared"],
        f" ({', '.join(fields)})" if fields else "",
        key,
    )
    return {
        "key": key,
        "opportunity_id": oid,
        "deal_id": deal_id,
        "revision": revision,
        "template": template,
        "fields_compared": report["fields_compared"],
        "differences": len(diff),
        "fields": fields,
        "api_calls": dict(r.calls),
    }


__all__ = ["REPORT_NAME", "check_revision", "compare_snapshot", "differences", "flatten", "project"]
