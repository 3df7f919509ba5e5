"""The write journal: every write is recorded before it is sent and after it answers.

The audit trail is written by ``commit``, at the end of a run. A run that dies after a write and before
its commit (a killed worker, a failed ``apply_hubspot``) would leave that write unaudited, and the next
run would find both systems agreeing and call the record "converged". So the writer records:

- an **intent** before each call (kind, record, the planned changes, and for a create the exact request:
  resending it with its ClientToken returns the same opportunity instead of a second one);
- the **outcome** after the call (``APPLIED`` with what was written, or ``FAILED`` with the error).

HubSpot writes are journaled once per run (``HUBSPOT_WRITES``): ``apply_hubspot`` records its intent
(the run, its plan's key and the Partner Central results it works from) before its first write and the
key of its results after its last. A later commit audits a dead run's HubSpot writes from them: from the
results when ``apply_hubspot`` finished, else from the plan, each write judged against HubSpot as that
commit's run read it; it then writes the deal notes the dead run owed for the writes judged made.

``commit`` turns the journal into audit entries: its own run's entries are covered by the apply results
and are cleared; entries left by a run that died become audit entries of their own (an intent without
an outcome is checked against the record as this run read it) and are cleared. ``apply`` resends the
create request of an intent whose run died, so an interrupted create is found and linked, never made
twice.

Items: ``PK = JOURNAL#{catalog}``, ``SK = {run_id}#{kind}#{record}``; ids, field names and the values
the audit keeps anyway (rollback needs them), never credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.storage import batch_write, from_item, partition_items, to_item, utc_iso

if TYPE_CHECKING:
    from cosell_sync.storage import LargeItems

log = logging.getLogger(__name__)

INTENT = "INTENT"
APPLIED = "APPLIED"
FAILED = "FAILED"
#: Kind of the entry of an opportunity bulk job (one per job; its records are audited one by one).
BULK_CREATE_JOB = "BULK_CREATE_JOB"
#: Kind of the entry of an opt-in bulk update job (its records are audited one by one).
BULK_UPDATE_JOB = "BULK_UPDATE_JOB"
#: Kind of the one entry of a run's HubSpot writes (``apply_hubspot``; audited per record by commit).
HUBSPOT_WRITES = "HUBSPOT_WRITES"


class WriteJournal:
    """Intents and outcomes of one catalog's Partner Central and HubSpot writes (see the module doc).

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the state table.
        catalog: the catalog.
        large: where attributes too large for a DynamoDB item go (S3), if anywhere.
    """

    def __init__(
        self, dynamodb_client: Any, table: str, catalog: str, large: LargeItems | None = None
    ) -> None:
        self.ddb = dynamodb_client
        self.table = table
        self.catalog = catalog
        self.pk = f"JOURNAL#{catalog}"
        self.large = large

    def _put(self, item: dict[str, Any]) -> None:
        record = self.large.shrink(item) if self.large else item
        self.ddb.put_item(TableName=self.table, Item=to_item(record))

    @staticmethod
    def sort_key(run_id: str, kind: str, record: str) -> str:
        """``{run_id}#{kind}#{record}``: one entry per run, kind of write and record."""
        return f"{run_id.replace('#', '_')}#{kind}#{record}"

    def begin(
        self,
        run_id: str,
        kind: str,
        record: str,
        *,
        deal_id: str | None = None,
        changes: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        run_started_at: str | None = None,
        **extra: Any,
    ) -> str:
        """Record the intent to write, before the call; returns the entry's key.

        ``run_started_at`` (the run's timestamp) lets the audit entry built from this one carry the same
        key the run's own commit would have written: never two entries for one write. ``extra``
        attributes are kept as given (a bulk job's ``deal_ids`` and ``file_key``).
        """
        sk = self.sort_key(run_id, kind, record)
        self._put(
            {
                "PK": self.pk,
                "SK": sk,
                "run_id": run_id,
                "kind": kind,
                "record": record,
                "deal_id": deal_id,
                "changes": changes or {},
                "request": request,
                "status": INTENT,
                "started_at": utc_iso(datetime.now(UTC)),
                "run_started_at": run_started_at,
                **extra,
            }
        )
        return sk

    def finish(self, key: str, status: str, outcome: dict[str, Any] | None = None) -> None:
        """Record the outcome after the call (``APPLIED`` or ``FAILED``)."""
        item = self.get(key) or {"PK": self.pk, "SK": key}
        item.update({"status": status, "outcome": outcome or {}, "finished_at": utc_iso(datetime.now(UTC))})
        self._put(item)

    def get(self, key: str) -> dict[str, Any] | None:
        """One entry, or None."""
        found = self.ddb.get_item(
            TableName=self.table, Key={"PK": {"S": self.pk}, "SK": {"S": key}}, ConsistentRead=True
        ).get("Item")
        if not found:
            return None
        item = from_item(found)
        return self.large.restore(item, missing_ok=True) if self.large else item

    def entries(self) -> list[dict[str, Any]]:
        """Every entry not yet turned into audit entries, oldest run first."""
        items = partition_items(self.ddb, self.table, self.pk, self.large)
        return sorted(items, key=lambda i: (str(i.get("started_at")), i["SK"]))

    def creates_to_recover(self, current_run: str | None = None) -> list[dict[str, Any]]:
        """Opportunity creates another run journaled and did not see fail: resend them to link them.

        Args:
            current_run: this run's id; its own entries are left out (its results cover them).
        """
        return [
            e
            for e in self.entries()
            if e.get("kind") == "CREATE_OPPORTUNITY"
            and e.get("status") != FAILED
            and e.get("request")
            and e.get("deal_id")
            and e.get("run_id") != current_run
        ]

    def bulk_jobs(self) -> list[dict[str, Any]]:
        """Opportunity bulk jobs whose results no commit has applied yet (any run, this one included)."""
        return [e for e in self.entries() if e.get("kind") == BULK_CREATE_JOB and e.get("status") != FAILED]

    def narrow(self, key: str, deal_ids: list[str]) -> None:
        """Keep a bulk job's entry for these of its deals only (the others are linked and audited)."""
        item = self.get(key)
        if item is not None:
            item["deal_ids"] = deal_ids
            self._put(item)

    def clear(self, keys: Iterable[str]) -> int:
        """Delete entries once the audit holds them."""
        requests = [{"DeleteRequest": {"Key": {"PK": {"S": self.pk}, "SK": {"S": k}}}} for k in keys]
        return batch_write(self.ddb, self.table, requests) if requests else 0
