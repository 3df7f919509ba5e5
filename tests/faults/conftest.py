"""The fault suite shares the DAG tests' fixtures: one Airflow DB per worker and the wired local stack.

``tests/dags/conftest.py`` only applies below ``tests/dags``; re-exporting its fixtures here gives the
fault modules the same ``sync_stack`` (and its session-scoped ``airflow_db``) without a copy.
"""

from __future__ import annotations

from tests.dags.conftest import SyncStack, airflow_db, json_dumps, sync_stack

__all__ = ["SyncStack", "airflow_db", "json_dumps", "sync_stack"]
