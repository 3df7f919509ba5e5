"""Airflow local settings: preload the sync's heavy libraries in the processes that fork task processes.

Airflow imports this module (``airflow_local_settings``, found on ``PYTHONPATH``: ``include/`` is on it in
every shape we run, ``docker-compose.yaml`` included) when any Airflow process starts. It changes no
setting and defines no policy (``__all__`` is empty, so nothing is copied into ``airflow.settings``).

Why: the LocalExecutor's workers are forked from the scheduler, and a Celery worker's pool processes from
the worker, and each task process is forked from those. A ``cosell_events`` run is a chain of short tasks,
and each task spent most of its time importing pandas, boto3/botocore and the Task SDK's runner afresh
(seconds per task on a loaded 2-core machine, see the README's "Event latency"). Imported once here, in the
scheduler and the Celery worker only, every forked task process inherits them (copy-on-write).

Nothing is imported in other processes (API server, DAG processor, triggerer, CLI commands, tests), and a
library that fails to import is skipped: a task that needs it imports it itself and fails there, visibly.
"""

from __future__ import annotations

import importlib
import sys

__all__: list[str] = []

#: Modules every sync task imports (pandas, AWS SDK, the Task SDK runner, the sync's own packages).
PRELOAD = (
    "pandas",
    "boto3",
    "botocore.session",
    "airflow.sdk.execution_time.task_runner",
    "airflow.providers.amazon.aws.hooks.base_aws",
    "cosell_sync.config",
    "cosell_sync.mapping",
    "cosell_sync.storage",
    "cosell_sync.state",
    "cosell_sync.audit",
    "cosell_sync.events",
    "cosell_runtime.tasks",
    "cosell_runtime.env",
)


def _forks_tasks(argv: list[str]) -> bool:
    """Whether this process forks task processes: ``airflow scheduler`` or ``airflow celery worker``."""
    args = [a for a in argv[1:] if not a.startswith("-")]
    return args[:1] == ["scheduler"] or args[:2] == ["celery", "worker"]


def _preload(modules: tuple[str, ...] = PRELOAD) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112 - best effort: the task imports it itself, and fails visibly there
            continue


if _forks_tasks(sys.argv):
    _preload()
