"""One writer per catalog at a time: a lease in the DynamoDB state table, held from ``prepare`` to ``commit``.

``max_active_runs=1`` covers one DAG on one scheduler only. It does not cover ``dag.test``, a backfill
beside a scheduled run, a conflict resolution or rollback during a sync, or two deployments on one
partner account; any of those overlapping writes duplicate companies and notes and race the baseline.
So every run that writes takes the catalog's lease first:

- the item ``PK = LEASE#{catalog}``, ``SK = lease`` names its ``owner`` (a run id) and ``expires_us``;
- it is taken with a conditional put (free, expired, or already ours), renewed while the run works
  (each step renews it on start and a background thread renews it while the step runs) and deleted by
  the owner when the run ends;
- a run that dies keeps it until it expires (``ttl_seconds``), then the next run takes it; a retry of
  the same run is the same owner and goes straight on.

A second run waits up to ``wait_seconds`` for the lease, then ends with :class:`RunOverlapError` naming
the run that holds it, having written nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from cosell_sync.errors import RunOverlapError
from cosell_sync.storage import is_conditional_check_failed

log = logging.getLogger(__name__)


class CatalogLease:
    """The lease of one catalog in the state table (see the module doc).

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the state table.
        catalog: the catalog the lease guards.
        ttl_seconds: how long a lease lives without renewal.
        clock: seconds since the epoch (tests pass a fake one).
    """

    def __init__(
        self,
        dynamodb_client: Any,
        table: str,
        catalog: str,
        ttl_seconds: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ddb = dynamodb_client
        self.table = table
        self.catalog = catalog
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.key = {"PK": {"S": f"LEASE#{catalog}"}, "SK": {"S": "lease"}}

    def _now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def holder(self) -> dict[str, Any] | None:
        """The live lease: ``{"owner", "expires_us"}``, or None when it is free or expired."""
        item = self.ddb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get("Item")
        if not item or int(item["expires_us"]["N"]) <= self._now_us():
            return None
        return {"owner": item["owner"]["S"], "expires_us": int(item["expires_us"]["N"])}

    def try_acquire(self, owner: str) -> bool:
        """Take or renew the lease for ``owner``; False when another live owner holds it."""
        now = self._now_us()
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={
                    **self.key,
                    "owner": {"S": owner},
                    "expires_us": {"N": str(now + self.ttl_seconds * 1_000_000)},
                    "catalog": {"S": self.catalog},
                },
                ConditionExpression="attribute_not_exists(PK) OR #owner = :owner OR #exp <= :now",
                ExpressionAttributeNames={"#owner": "owner", "#exp": "expires_us"},
                ExpressionAttributeValues={":owner": {"S": owner}, ":now": {"N": str(now)}},
            )
        except ClientError as err:
            if is_conditional_check_failed(err):
                return False
            raise
        return True

    def acquire(self, owner: str, wait_seconds: float = 0, poll_seconds: float = 5) -> None:
        """Take the lease, waiting up to ``wait_seconds`` for another run to finish.

        Raises:
            RunOverlapError: another run still holds it after the wait.
        """
        deadline = time.monotonic() + max(wait_seconds, 0)
        while not self.try_acquire(owner):
            held = self.holder()
            if time.monotonic() >= deadline:
                other = held["owner"] if held else "another run"
                raise RunOverlapError(
                    f"catalog {self.catalog} is being synced by run {other}; this run waited "
                    f"{wait_seconds:g}s and wrote nothing. It can run once that run ends (or its lease "
                    f"expires, at most {self.ttl_seconds}s after it last worked)."
                )
            log.info("catalog %s is leased by run %s: waiting", self.catalog, held and held["owner"])
            time.sleep(poll_seconds)
        log.info("lease on catalog %s held by run %s", self.catalog, owner)

    def release(self, owner: str) -> bool:
        """Give the lease up if ``owner`` holds it (a retried release is a no-op)."""
        try:
            self.ddb.delete_item(
                TableName=self.table,
                Key=self.key,
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as err:
            if is_conditional_check_failed(err):
                return False
            raise
        log.info("lease on catalog %s released by run %s", self.catalog, owner)
        return True

    @contextmanager
    def held(self, owner: str, renew_every: float | None = None) -> Iterator[None]:
        """Renew the lease for the duration of a step; refuse to start when another run holds it.

        A step of a run whose lease expired while nobody else took it takes it again and goes on;
        a step whose lease another run has taken raises before it writes anything.

        Raises:
            RunOverlapError: another live run holds the lease.
        """
        self.acquire(owner)
        stop = threading.Event()
        interval = renew_every if renew_every is not None else max(self.ttl_seconds / 3, 1)

        def renew() -> None:
            while not stop.wait(interval):
                try:
                    if not self.try_acquire(owner):
                        log.error("lease on catalog %s was taken by another run", self.catalog)
                        return
                except Exception:  # a failed renewal must not kill the step: try again next tick
                    log.warning("renewing the lease on catalog %s failed; retrying", self.catalog)

        thread = threading.Thread(target=renew, name=f"lease-{self.catalog}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
