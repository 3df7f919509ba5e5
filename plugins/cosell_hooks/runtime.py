"""Glue between Airflow tasks and ``cosell_sync``: build clients and stores from Connections, run a step.

DAG files stay wiring only: each task calls :func:`run_step` with its XCom inputs. This module turns the
Airflow context into plain values, builds the hooks (one per external system, each driven by its
Connection) and the S3/DynamoDB stores, and calls the matching function in ``cosell_sync``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosell_sync.reconcile import SyncEnv

log = logging.getLogger(__name__)

PARTNER_CENTRAL_CONN_ID = "partner_central_default"
HUBSPOT_CONN_ID = "hubspot_default"
AWS_CONN_ID = "aws_default"


def build_env(catalog: str | None = None) -> SyncEnv:
    """Build the :class:`~cosell_sync.reconcile.SyncEnv` for a task from the three Connections."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from cosell_hooks.hubspot import HubSpotHook
    from cosell_hooks.partner_central import PartnerCentralHook
    from cosell_sync.audit import AuditTrail
    from cosell_sync.config import load_config
    from cosell_sync.reconcile import SyncEnv
    from cosell_sync.state import BaselineStore, ConflictStore, RetryQueue, WatermarkStore
    from cosell_sync.storage import SnapshotStore

    cfg = load_config()
    quotas = cfg.quotas
    pc = PartnerCentralHook(
        PARTNER_CENTRAL_CONN_ID,
        catalog=catalog,
        read_rate_per_s=quotas.partner_central_reads_per_second,
        write_rate_per_s=quotas.partner_central_writes_per_second,
    )
    hs = HubSpotHook(
        HUBSPOT_CONN_ID,
        requests_per_10s=quotas.hubspot_requests_per_10s,
        search_requests_per_s=quotas.hubspot_search_per_second,
    )
    s3 = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
    dynamodb = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="dynamodb").get_conn()
    effective_catalog = catalog or pc.catalog
    snapshots = SnapshotStore(s3, cfg.storage.bucket, cfg.storage.prefix)
    return SyncEnv(
        config=cfg,
        catalog=effective_catalog,
        partner_central=pc,
        hubspot=hs,
        snapshots=snapshots,
        baseline=BaselineStore(snapshots, effective_catalog),
        watermarks=WatermarkStore(dynamodb, cfg.storage.state_table),
        retry=RetryQueue(dynamodb, cfg.storage.state_table, effective_catalog),
        conflicts=ConflictStore(dynamodb, cfg.storage.state_table, effective_catalog),
        audit=AuditTrail(dynamodb, cfg.storage.audit_table, cfg.audit.retention_days),
    )


def _run_info(context: dict[str, Any]) -> dict[str, Any]:
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    return {
        "run_id": context.get("run_id") or getattr(dag_run, "run_id", None),
        "dag_id": getattr(context.get("dag"), "dag_id", None) or getattr(dag_run, "dag_id", None),
        "run_type": getattr(run_type, "value", run_type),
        "data_interval_start": _iso(context.get("data_interval_start")),
        "data_interval_end": _iso(context.get("data_interval_end")),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_step(name: str, *args: Any) -> dict[str, Any]:
    """Run the reconcile step ``name`` with the task's inputs; returns the step's small result dict."""
    from cosell_sync import reconcile

    if name == "prepare":
        context = args[0]
        params = dict(context.get("params") or {})
        env = build_env(params.get("catalog"))
        return reconcile.prepare(env, params, _run_info(context))
    run = args[0]
    env = build_env(run["catalog"])
    if name == "report":
        return report(env, *args)
    step = getattr(reconcile, name)
    return step(env, *args)


def report(
    env: SyncEnv, run: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any], committed: dict[str, Any]
) -> dict[str, Any]:
    """Log the run's summary table, with the API calls of every step."""
    from cosell_sync.reconcile import format_report

    summary = committed["report"]
    calls = dict(summary.get("api_calls") or {})
    for extract in (pc, hs):
        for op, count in (extract.get("api_calls") or {}).items():
            calls[op] = calls.get(op, 0) + count
    pc_calls = sum(v for k, v in calls.items() if k[:1].isupper())
    hs_calls = sum(v for k, v in calls.items() if not k[:1].isupper())
    summary = {
        **summary,
        "api_calls": calls,
        "api_calls_total": {"partner_central": pc_calls, "hubspot": hs_calls},
    }
    if summary.get("report_key") and not run.get("dry_run"):
        from cosell_sync.audit import RunReport

        # report.json gets every step's API calls, not only the apply steps' the commit saw.
        RunReport(env.snapshots, run["catalog"], run["run_id"]).write_report(summary)
    log.info("\n%s", format_report(summary, pc_calls, hs_calls))
    return {
        "report_key": summary.get("report_key"),
        "partner_central_calls": pc_calls,
        "hubspot_calls": hs_calls,
        **{k: summary[k] for k in ("partner_central_to_hubspot", "hubspot_to_partner_central", "conflicts")},
    }


def run_setup_step(name: str) -> dict[str, Any]:
    """Run a step of ``cosell_hubspot_setup``."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from cosell_hooks.hubspot import HubSpotHook
    from cosell_sync import setup
    from cosell_sync.config import load_config

    cfg = load_config()
    if name == "ensure_storage":
        s3 = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
        dynamodb = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="dynamodb").get_conn()
        return setup.ensure_storage(cfg, s3, dynamodb)
    if name == "ensure_properties":
        return setup.ensure_properties(cfg, HubSpotHook(HUBSPOT_CONN_ID))
    raise ValueError(f"unknown setup step {name!r}")


def _run_timestamp(context: dict[str, Any]) -> Any:
    """The run's fixed timestamp for audit keys: a retried task must write the same keys again."""
    from datetime import UTC, datetime

    dag_run = context.get("dag_run")
    for value in (
        getattr(dag_run, "run_after", None),
        context.get("logical_date"),
        getattr(dag_run, "start_date", None),
    ):
        if value is not None:
            return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


def run_resolution_step(context: dict[str, Any]) -> dict[str, Any]:
    """Run ``cosell_resolve_conflict``: apply a person's decision on one manual conflict."""
    from cosell_sync import resolution

    params = dict(context.get("params") or {})
    info = _run_info(context)
    return resolution.resolve_conflict(
        build_env(),
        str(params.get("conflict_id") or "").strip(),
        str(params.get("resolution") or ""),
        params.get("reason"),
        str(params.get("resolved_by") or "").strip(),
        str(info["run_id"]),
        run_timestamp=_run_timestamp(context),
        dag_id=str(info.get("dag_id") or "cosell_resolve_conflict"),
    )


def run_rollback_step(context: dict[str, Any]) -> dict[str, Any]:
    """Run ``cosell_rollback``: restore one record's fields to their values at a point in time."""
    from cosell_sync import rollback

    params = dict(context.get("params") or {})
    info = _run_info(context)
    dag_id = str(info.get("dag_id") or "cosell_rollback")
    return rollback.rollback(
        build_env(),
        str(params.get("opportunity_id") or "").strip(),
        str(params.get("target_timestamp") or ""),
        list(params.get("fields") or []),
        bool(params.get("dry_run", True)),
        str(info["run_id"]),
        f"airflow:{dag_id}",
        run_timestamp=_run_timestamp(context),
        dag_id=dag_id,
    )
