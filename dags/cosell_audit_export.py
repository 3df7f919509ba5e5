"""### cosell_audit_export — the audit trail of one day, as Parquet in S3, for pandas and Athena

Runs daily at 02:30 UTC and exports the audit entries of the **previous UTC day** (the day of each
entry's run timestamp) from the audit table to the storage bucket, under the storage prefix:

```
{prefix}/audit/date=YYYY-MM-DD/part-0000.parquet   one row per audit entry; a new part every 50,000 rows
{prefix}/audit/date=YYYY-MM-DD/_manifest.json      {"date", "table", "rows", "parts"}
```

`date=` is a Hive partition: `pandas.read_parquet("s3://<bucket>/<prefix>/audit/")` returns every day
with a `date` column, and Athena reads it with the `CREATE EXTERNAL TABLE` of the README (section "Audit
trail export"). Both ignore `_manifest.json`.

- **Idempotent**: running a day again (Clear the run, or trigger with `date`) writes the same keys with
  the same rows, and removes parts an earlier export of that day no longer needs.
- **An empty day** writes no Parquet part, only its manifest with `"rows": 0`.
- **Values**: exactly what the audit table holds: the config's `audit.value_policy` was applied when
  the entries were written (a hashed field is a `sha256:` hash, a dropped one null). Nested attributes
  (`changes`, `error`, `metadata`, `value_policy`) are JSON strings.
- **Cost**: the table has no index by date, so each export scans the whole audit table once (with a
  filter on `timestamp`), read units for the whole table. 02:30 leaves runs that started before midnight
  time to commit; an entry written later for an earlier day (a crashed run's writes, audited by the next
  run) is exported when that day is exported again.

Params: `date` (`YYYY-MM-DD`, optional): export this day instead of the previous one. A run conf key that
is not a param fails the run at once, listing the valid keys.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 2,
    "retry_delay": pendulum.duration(minutes=5),
}


@dag(
    dag_id="cosell_audit_export",
    description="Export the previous day's audit trail to S3 as Parquet, partitioned by date.",
    schedule=CronDataIntervalTimetable("30 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "audit", "export"],
    doc_md=__doc__,
    params={
        "date": Param(
            "",
            type="string",
            pattern=r"^(\d{4}-\d{2}-\d{2})?$",
            title="Day to export",
            description="YYYY-MM-DD (UTC). Empty: the day before the run.",
        ),
    },
)
def cosell_audit_export() -> None:
    """Wire the single export step; the logic lives in ``cosell_sync.audit_export``."""

    @task
    def export_day(**context: object) -> dict:
        """Scan the audit table for the day and write its Parquet parts and manifest to S3."""
        from cosell_runtime.tasks import audit_export

        return audit_export(context)

    export_day()


cosell_audit_export()
