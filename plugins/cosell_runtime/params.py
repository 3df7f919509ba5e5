"""Trigger-form params that several co-sell DAGs share, defined once so they read the same everywhere."""

from __future__ import annotations

from airflow.sdk import Param

#: The Partner Central catalogs a run may target.
CATALOGS = ["AWS", "Sandbox"]


def catalog_param() -> Param:
    """The ``catalog`` param: a Partner Central catalog, or empty for the connection's catalog."""
    return Param(
        # "" rather than None: the trigger form shows an empty choice, not "null".
        "",
        type="string",
        enum=["", *CATALOGS],
        title="Catalog",
        description="Partner Central catalog; empty uses the connection's catalog.",
    )


def dry_run_param(default: bool, description: str) -> Param:
    """The ``dry_run`` param; ``description`` says what the DAG shows instead of writing."""
    return Param(default, type="boolean", title="Dry run", description=description)
