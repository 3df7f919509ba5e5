"""Fixtures for the domain steps' tests: a real :class:`SyncEnv` on the two emulators and moto.

One factory instead of a copy per test module: the connections, the storage and every store are wired the
way ``cosell_runtime.env`` wires them in a task, so a step under test sees what it sees in a DAG run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cosell_hooks import HubSpotHook, PartnerCentralHook
from cosell_sync.audit import AuditTrail
from cosell_sync.bootstrap import ensure_storage
from cosell_sync.config import SyncConfig, load_config
from cosell_sync.conflict_store import ConflictStore
from cosell_sync.env import SyncEnv
from cosell_sync.state import BaselineStore, RetryQueue, WatermarkStore
from cosell_sync.storage import SnapshotStore

PC_CONN = "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"
HS_CONN = "AIRFLOW_CONN_HUBSPOT_DEFAULT"


@pytest.fixture
def make_sync_env(
    pc_emulator: Any, hubspot_emulator: Any, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., SyncEnv]:
    """Build the ``AWS`` catalog's env: connections to this test's emulators, bucket and tables created.

    ``max_attempts`` goes to the Partner Central connection (1: a throttled call surfaces at once instead
    of being retried by botocore).
    """

    def build(cfg: SyncConfig | None = None, *, max_attempts: int | None = None) -> SyncEnv:
        cfg = cfg or load_config()
        extra: dict[str, Any] = {"region_name": "us-east-1", "endpoint_url": pc_emulator.url}
        if max_attempts is not None:
            extra["max_attempts"] = max_attempts
        pc_conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
        monkeypatch.setenv(PC_CONN, json.dumps(pc_conn))
        monkeypatch.setenv(
            HS_CONN, json.dumps({"conn_type": "hubspot", "host": hubspot_emulator.url, "password": "t"})
        )
        s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
        ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
        st = cfg.storage
        ensure_storage(s3, ddb, st.bucket, st.audit_table, st.state_table)
        snapshots = SnapshotStore(s3, st.bucket, st.prefix)
        return SyncEnv(
            config=cfg,
            catalog="AWS",
            partner_central=PartnerCentralHook(catalog="AWS"),
            hubspot=HubSpotHook(),
            snapshots=snapshots,
            baseline=BaselineStore(snapshots, "AWS"),
            watermarks=WatermarkStore(ddb, st.state_table),
            retry=RetryQueue(ddb, st.state_table, "AWS"),
            conflicts=ConflictStore(ddb, st.state_table, "AWS"),
            audit=AuditTrail(ddb, st.audit_table, 30),
        )

    return build
