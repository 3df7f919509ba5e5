"""Build what a task works with from Airflow Connections: the two API hooks and the S3/DynamoDB stores."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from cosell_sync.env import SyncEnv
    from cosell_sync.lease import CatalogLease

PARTNER_CENTRAL_CONN_ID = "partner_central_default"
HUBSPOT_CONN_ID = "hubspot_default"
AWS_CONN_ID = "aws_default"


def build_env(catalog: str | None = None) -> SyncEnv:
    """Build the :class:`~cosell_sync.env.SyncEnv` for a task from the three Connections.

    Args:
        catalog: the run's catalog (the run param, or what ``prepare`` fixed); None falls back to the
            connection's ``catalog`` extra, else the sync config's ``catalog``.

    Returns:
        The environment, every part bound to one catalog.
    """
    from cosell_hooks.aws import aws_client
    from cosell_hooks.hubspot import HubSpotHook
    from cosell_hooks.partner_central import PartnerCentralHook
    from cosell_sync.audit import AuditTrail
    from cosell_sync.config import load_config
    from cosell_sync.conflict_store import ConflictStore
    from cosell_sync.env import SyncEnv
    from cosell_sync.journal import WriteJournal
    from cosell_sync.state import BaselineStore, RetryQueue, WatermarkStore
    from cosell_sync.storage import LargeItems, SnapshotStore

    cfg = load_config()
    quotas = cfg.quotas
    pc = PartnerCentralHook(
        PARTNER_CENTRAL_CONN_ID,
        catalog=catalog or None,
        default_catalog=cfg.catalog,
        read_rate_per_s=quotas.partner_central_reads_per_second,
        write_rate_per_s=quotas.partner_central_writes_per_second,
    )
    hs = HubSpotHook(
        HUBSPOT_CONN_ID,
        requests_per_10s=quotas.hubspot_requests_per_10s,
        search_requests_per_s=quotas.hubspot_search_per_second,
    )
    s3 = aws_client("s3", AWS_CONN_ID)
    dynamodb = _dynamodb_client()
    run_catalog = pc.catalog
    snapshots = SnapshotStore(s3, cfg.storage.bucket, cfg.storage.prefix)
    return SyncEnv(
        config=cfg,
        catalog=run_catalog,
        partner_central=pc,
        hubspot=hs,
        snapshots=snapshots,
        baseline=BaselineStore(snapshots, run_catalog),
        watermarks=WatermarkStore(dynamodb, cfg.storage.state_table),
        retry=RetryQueue(dynamodb, cfg.storage.state_table, run_catalog, snapshots),
        conflicts=ConflictStore(dynamodb, cfg.storage.state_table, run_catalog),
        audit=AuditTrail(
            dynamodb,
            cfg.storage.audit_table,
            cfg.audit.retention_days,
            snapshots,
            value_policy=cfg.audit.value_policy,
            default_value_policy=cfg.audit.default_value_policy,
        ),
        journal=WriteJournal(
            dynamodb, cfg.storage.state_table, run_catalog, LargeItems(snapshots, cfg.storage.state_table)
        ),
        announce=sns_announcer(cfg.conflicts.sns_topic_arn),
    )


def sns_announcer(topic_arn: str) -> Callable[[dict[str, Any]], str | None] | None:
    """A publisher of new-conflict messages on ``topic_arn`` through the amazon provider's SnsHook.

    Args:
        topic_arn: ``conflicts.sns_topic_arn``; empty: no announcements (returns None).

    Returns:
        ``publish(message) -> message id``: the message (ids, type, field, times; never values) as JSON,
        with ``conflictType`` and ``catalog`` as message attributes for subscription filters.
    """
    if not topic_arn:
        return None

    def publish(message: dict[str, Any]) -> str | None:
        import json

        from airflow.providers.amazon.aws.hooks.sns import SnsHook

        attributes = {k: str(message[k]) for k in ("conflictType", "catalog") if message.get(k)}
        response = SnsHook(aws_conn_id=AWS_CONN_ID).publish_to_target(
            target_arn=topic_arn,
            message=json.dumps(message, sort_keys=True),
            subject=f"Co-sell conflict {message.get('conflictId')}",
            message_attributes=attributes or None,
        )
        return (response or {}).get("MessageId")

    return publish


def _dynamodb_client() -> Any:
    """The state and audit tables' DynamoDB client, from the AWS connection, without parameter validation.

    botocore validates every nested value of a request before sending it: for the audit entries of a
    10,000-record load that is about 2.6 ms of CPU per entry, ~26 s of one task (measured with cProfile
    against moto). The items come from boto3's ``TypeSerializer`` and DynamoDB validates them again, so the
    check buys nothing; ``parameter_validation=False`` is botocore's documented switch for this. The
    connection's own botocore config (retries, timeouts) is kept.
    """
    from botocore.config import Config

    from cosell_hooks.aws import aws_client

    return aws_client("dynamodb", AWS_CONN_ID, Config(parameter_validation=False))


def build_lease(catalog: str) -> CatalogLease:
    """The catalog's run lease in the state table (``cosell_sync.lease``), from the AWS connection."""
    from cosell_hooks.aws import aws_client
    from cosell_sync.config import load_config
    from cosell_sync.lease import CatalogLease

    cfg = load_config()
    dynamodb = aws_client("dynamodb", AWS_CONN_ID)
    return CatalogLease(dynamodb, cfg.storage.state_table, catalog, ttl_seconds=cfg.lease.ttl_seconds)
