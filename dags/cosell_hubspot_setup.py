"""### cosell_hubspot_setup — create the HubSpot property group and custom properties co-sell sync writes

Run once after connecting a HubSpot account (and again after an upgrade). It creates the
`aws_partner_central` property group and every custom property the product writes on deals, companies
and contacts (among them the unique `aws_opportunity_id`, `aws_review_status`, `aws_sync_enabled`,
`aws_sync_error`), with their types and enumeration options.

It is idempotent: existing properties that already match are left alone, differing ones are patched,
and a second run reports "no changes". It also creates the S3 bucket and DynamoDB tables for state and
audit when `storage.create_if_missing` is set in the sync config (local and first-run convenience).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

DEFAULT_ARGS = {"owner": "cosell-sync", "retries": 2, "retry_delay": pendulum.duration(seconds=30)}


@dag(
    dag_id="cosell_hubspot_setup",
    description="Create the HubSpot properties, bucket and tables co-sell sync needs (idempotent).",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "hubspot", "setup"],
    doc_md=__doc__,
)
def cosell_hubspot_setup() -> None:
    """Wire the setup steps; the logic lives in ``cosell_sync.setup``."""

    @task
    def ensure_storage() -> dict:
        """Create the state/audit bucket and tables when the config allows it."""
        from cosell_runtime.tasks import setup_ensure_storage

        return setup_ensure_storage()

    @task
    def ensure_properties() -> dict:
        """Create or patch the property group and custom properties; report what changed."""
        from cosell_runtime.tasks import setup_ensure_properties

        return setup_ensure_properties()

    ensure_storage() >> ensure_properties()


cosell_hubspot_setup()
