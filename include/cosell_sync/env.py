"""What every step of a run works with: the config, the run's catalog, the two API clients and the stores.

The Airflow glue (``plugins/cosell_runtime``) builds one :class:`SyncEnv` per task from the Connections;
tests build it from the emulators. The domain modules only ever see this object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosell_sync.audit import AuditTrail
    from cosell_sync.clients import HubSpotApi, PartnerCentralApi
    from cosell_sync.config import SyncConfig
    from cosell_sync.conflict_store import ConflictStore
    from cosell_sync.journal import WriteJournal
    from cosell_sync.state import BaselineStore, RetryQueue, WatermarkStore
    from cosell_sync.storage import SnapshotStore


@dataclass
class SyncEnv:
    """Everything a step needs: config, API clients and stores.

    Attributes:
        config: the validated sync configuration.
        catalog: the run's effective Partner Central catalog, fixed once by ``prepare`` (run param, else
            the connection's ``catalog`` extra, else the config); every call, ClientToken, store
            partition and S3 key uses this value, never ``config.catalog``.
        partner_central: the Partner Central client (bound to ``catalog``).
        hubspot: the HubSpot client.
        snapshots: the S3 store of run artefacts.
        baseline: the last-synced values, per catalog.
        watermarks: how far each side has been read.
        retry: records to read again next run.
        conflicts: manual conflicts waiting for a person.
        audit: the audit trail.
        journal: intents and outcomes of Partner Central writes, until commit audits them (None:
            writes are not journaled, e.g. in tools that write nothing).
        announce: publishes one new conflict's message (a JSON-ready dict without values) and returns the
            message id; None: new conflicts are not announced (``conflicts.sns_topic_arn`` empty). The
            Airflow glue passes an SNS publisher in, so this package never imports Airflow.
    """

    config: SyncConfig
    catalog: str
    partner_central: PartnerCentralApi
    hubspot: HubSpotApi
    snapshots: SnapshotStore
    baseline: BaselineStore
    watermarks: WatermarkStore
    retry: RetryQueue
    conflicts: ConflictStore
    audit: AuditTrail
    journal: WriteJournal | None = None
    announce: Callable[[dict[str, Any]], str | None] | None = None
