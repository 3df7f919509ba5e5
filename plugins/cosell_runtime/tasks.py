"""What each task of the co-sell DAGs runs: one named function per task, each calling one domain step.

DAG files stay wiring only: a task imports its function from here and passes its XCom inputs. This
module turns the Airflow context into plain values, builds the task's :class:`~cosell_sync.env.SyncEnv`
(:mod:`cosell_runtime.env`) and calls the step in ``cosell_sync``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from cosell_runtime.env import AWS_CONN_ID, HUBSPOT_CONN_ID, build_env

log = logging.getLogger(__name__)


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


def _run_timestamp(context: dict[str, Any]) -> datetime:
    """The run's fixed timestamp for audit keys: a retried task must write the same keys again."""
    dag_run = context.get("dag_run")
    for value in (
        getattr(dag_run, "run_after", None),
        context.get("logical_date"),
        getattr(dag_run, "start_date", None),
    ):
        if value is not None:
            return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


# -- cosell_reconcile ----------------------------------------------------------------------------------
def reconcile_prepare(context: dict[str, Any]) -> dict[str, Any]:
    """``prepare``: fix the run's catalog (param, else connection extra, else config) and its window."""
    from cosell_sync import reconcile

    params = dict(context.get("params") or {})
    return reconcile.prepare(build_env(params.get("catalog")), params, _run_info(context))


def reconcile_extract_partner_central(run: dict[str, Any]) -> dict[str, Any]:
    """``extract_partner_central``."""
    from cosell_sync import reconcile

    return reconcile.extract_partner_central(build_env(run["catalog"]), run)


def reconcile_extract_hubspot(run: dict[str, Any], pc: dict[str, Any]) -> dict[str, Any]:
    """``extract_hubspot``."""
    from cosell_sync import reconcile

    return reconcile.extract_hubspot(build_env(run["catalog"]), run, pc)


def reconcile_plan(run: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any]) -> dict[str, Any]:
    """``plan``."""
    from cosell_sync import reconcile

    return reconcile.plan(build_env(run["catalog"]), run, pc, hs)


def reconcile_apply_partner_central(run: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """``apply_partner_central``."""
    from cosell_sync import reconcile

    return reconcile.apply_partner_central(build_env(run["catalog"]), run, planned)


def reconcile_apply_hubspot(
    run: dict[str, Any], planned: dict[str, Any], pc_applied: dict[str, Any]
) -> dict[str, Any]:
    """``apply_hubspot``."""
    from cosell_sync import reconcile

    return reconcile.apply_hubspot(build_env(run["catalog"]), run, planned, pc_applied)


def reconcile_commit(
    run: dict[str, Any], planned: dict[str, Any], pc_applied: dict[str, Any], hs_applied: dict[str, Any]
) -> dict[str, Any]:
    """``commit``."""
    from cosell_sync import reconcile

    return reconcile.commit(build_env(run["catalog"]), run, planned, pc_applied, hs_applied)


def reconcile_report(
    run: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any], committed: dict[str, Any]
) -> dict[str, Any]:
    """``report``: log the summary table with every step's API calls."""
    from cosell_sync import reconcile

    return reconcile.finish_report(build_env(run["catalog"]), run, pc, hs, committed)


# -- cosell_hubspot_setup ------------------------------------------------------------------------------
def setup_ensure_storage() -> dict[str, Any]:
    """Create the S3 bucket and the DynamoDB tables when missing."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from cosell_sync import setup
    from cosell_sync.config import load_config

    s3 = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
    dynamodb = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="dynamodb").get_conn()
    return setup.ensure_storage(load_config(), s3, dynamodb)


def setup_ensure_properties() -> dict[str, Any]:
    """Create or patch the HubSpot property group and custom properties."""
    from cosell_hooks.hubspot import HubSpotHook
    from cosell_sync import setup
    from cosell_sync.config import load_config

    return setup.ensure_properties(load_config(), HubSpotHook(HUBSPOT_CONN_ID))


# -- cosell_resolve_conflict and cosell_rollback ---------------------------------------------------------
def resolve_conflict(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_resolve_conflict``: apply a person's decision on one manual conflict."""
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


def rollback(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_rollback``: restore one record's fields to their values at a point in time."""
    from cosell_sync import rollback as rollback_module

    params = dict(context.get("params") or {})
    info = _run_info(context)
    dag_id = str(info.get("dag_id") or "cosell_rollback")
    return rollback_module.rollback(
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
