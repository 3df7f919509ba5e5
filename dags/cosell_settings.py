"""### cosell_settings — read and change the Partner Central selling system settings

The selling system settings of a catalog are what `GetSellingSystemSettings` returns; today that is one
setting, the IAM role that resource snapshot jobs run as. Every `cosell_reconcile` run reads them once and
shows them in its report; this DAG changes them with `PutSellingSystemSettings`.

**`dry_run` is on by default**: the first run reads the current settings and logs, per field,
`current -> new` (or `unchanged`), and writes nothing. Trigger again with `dry_run` off to apply.

Each setting param left empty keeps its current value. A value is checked against the Partner Central
service model (botocore's, the one the API enforces) before anything is sent: one the model refuses fails
the run at once, without retries, naming the field and the rule (not the value).

Applying: when a value differs from the current one, one `PutSellingSystemSettings` (the operation has no
`ClientToken`; the API marks it idempotent) and one `SETTINGS_CHANGED` audit entry (partition
`settings#{catalog}`, old and new value of each changed field, the run id). A run whose values are already
set writes nothing and audits nothing. A role given by name is stored as this account's role ARN; a name
equal to the current role's name counts as unchanged. The catalog's lease is held while writing, as for the
other one-off DAGs, so the change never interleaves with a sync run.

Partner Central emits no EventBridge event for a settings change (the selling API's event list has none).

Params: `resource_snapshot_job_role_identifier` (IAM role ARN or name; empty = keep), `catalog` (empty =
the connection's), `dry_run` (default true). A run conf key that is none of these fails the run at once,
listing the valid keys.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from cosell_runtime.params import catalog_param, dry_run_param

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=1),
}


@dag(
    dag_id="cosell_settings",
    description="Show or change the Partner Central selling system settings (dry run first).",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "settings"],
    doc_md=__doc__,
    params={
        # One param per settable PutSellingSystemSettings member (cosell_sync.settings.PARAMS).
        "resource_snapshot_job_role_identifier": Param(
            None,
            type=["null", "string"],
            title="Resource snapshot job role",
            description="ARN or name of the IAM role resource snapshot jobs run as; empty keeps the current "
            "role.",
        ),
        "catalog": catalog_param(),
        "dry_run": dry_run_param(True, "Show current -> new only: write nothing."),
    },
    render_template_as_native_obj=True,
)
def cosell_settings() -> None:
    """Wire the single settings step; the logic lives in ``cosell_sync.settings``."""

    @task(pool="partner_central_writes")
    def change_settings(**context: object) -> dict:
        """Validate the wanted settings, log current -> new; unless a dry run, put and audit them."""
        from cosell_runtime.tasks import change_settings as change_settings_task

        return change_settings_task(context)

    change_settings()


cosell_settings()
