"""Conflicts waiting for a human decision (DynamoDB): their fields are frozen until someone resolves them.

Items: ``PK = CONFLICT#{catalog}``, ``SK = {opportunity_id}#{field}`` in the state table, next to the
watermarks and the retry queue (:mod:`cosell_sync.state`). A conflict's id is derived from its record,
field and detection, so re-opening it in a retried task finds the same item.

Each conflict has a ``conflict_type`` (:data:`CONFLICT_TYPES`): ``SIMULTANEOUS_UPDATE`` (both sides
changed the field since the baseline), ``STALE_DATA`` (Partner Central changed it between our read and
our write), ``LOCKED_FIELD`` (HubSpot changed a field Partner Central locks in the review state) or
``REJECTED_VALUE`` (Partner Central rejected HubSpot's value), or ``SHARED_RECORD`` (opportunities sharing
one HubSpot company or contact were changed to different values). Items stored before types existed read
as ``SIMULTANEOUS_UPDATE``.

PII: a conflict holds the two values a person chooses between. Nothing here logs a value.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from cosell_sync.errors import ConflictError, NotFoundError
from cosell_sync.storage import from_item, is_conditional_check_failed, query_all, to_item, to_value, utc_iso

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


PENDING = "PENDING"
RESOLVED = "RESOLVED"
RESOLUTIONS = ("USE_HUBSPOT_VALUE", "USE_PARTNER_CENTRAL_VALUE", "CUSTOM_VALUE")

#: Both systems changed a manual-resolution field since the baseline (the three-way diff).
SIMULTANEOUS_UPDATE = "SIMULTANEOUS_UPDATE"
#: Partner Central changed the field between our read and our write (ConflictException, re-read).
STALE_DATA = "STALE_DATA"
#: HubSpot changed a field Partner Central locks in the opportunity's review state (after Approved).
LOCKED_FIELD = "LOCKED_FIELD"
#: Partner Central rejected HubSpot's value for the field (ValidationException naming it).
REJECTED_VALUE = "REJECTED_VALUE"
#: Opportunities sharing one HubSpot company or contact were changed in Partner Central to different
#: values of one of its fields: HubSpot holds one value, so a person picks it (``conflicts.unify_shared``).
SHARED_RECORD = "SHARED_RECORD"
#: The four conflict types of design feature 5, then the shared-record one (the README lists them so).
CONFLICT_TYPES = (SIMULTANEOUS_UPDATE, STALE_DATA, LOCKED_FIELD, REJECTED_VALUE, SHARED_RECORD)
#: The types that freeze their field until a person decides: two values compete and syncing either one
#: would pick a winner. A locked field (Partner Central's value was written back) and a rejected value
#: (the record keeps failing and is retried) do not: freezing them would stop a corrected HubSpot value
#: from ever reaching Partner Central, or a newer AWS value from reaching HubSpot.
FREEZING_TYPES = (SIMULTANEOUS_UPDATE, STALE_DATA, SHARED_RECORD)
#: How a rejected-value conflict ends when a later run writes the field to Partner Central.
SUPERSEDED = "SUPERSEDED"

_CONFLICT_FIELDS = (
    "opportunity_id",
    "deal_id",
    "field",
    "conflict_type",
    "hubspot_value",
    "partner_central_value",
    "hubspot_timestamp",
    "partner_central_timestamp",
)


def with_type(item: dict[str, Any]) -> dict[str, Any]:
    """A stored conflict with its ``conflict_type`` (items older than the types: ``SIMULTANEOUS_UPDATE``).

    Args:
        item: a conflict item as read from the table.

    Returns:
        The same dict, ``conflict_type`` set.
    """
    if not item.get("conflict_type"):
        item["conflict_type"] = SIMULTANEOUS_UPDATE
    return item


class ConflictStore:
    """Conflicts waiting for a human decision; a field with a pending conflict is not synced.

    One item per (opportunity, field): ``PK = CONFLICT#{catalog}``, ``SK = {opportunity_id}#{field}``.
    A newer conflict on a field that already has a pending one updates it (same ``conflict_id``, same
    HubSpot task); a conflict on a field whose previous conflict was resolved replaces the resolved item
    with a new pending one (the resolution itself is kept in the audit trail).

    Args:
        dynamodb_client: a boto3 DynamoDB client.
        table: the state table.
        catalog: Partner Central catalog.
    """

    def __init__(self, dynamodb_client: Any, table: str, catalog: str) -> None:
        self.ddb = dynamodb_client
        self.table = table
        self.catalog = catalog
        self.pk = f"CONFLICT#{catalog}"

    def _key(self, opportunity_id: str, field: str) -> dict[str, Any]:
        return {"PK": {"S": self.pk}, "SK": {"S": f"{opportunity_id}#{field}"}}

    def conflict_id(self, conflict: Mapping[str, Any]) -> str:
        """A deterministic id for one occurrence of a conflict (same inputs, same id).

        Args:
            conflict: a dict with ``opportunity_id``, ``field`` and the two sides' timestamps.

        Returns:
            ``conf-`` and 16 hex digits.
        """
        parts = [self.catalog, *(str(conflict.get(k)) for k in _CONFLICT_FIELDS if "timestamp" in k)]
        parts += [str(conflict["opportunity_id"]), str(conflict["field"])]
        return "conf-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def open(self, conflicts: Iterable[Mapping[str, Any]], run_id: str | None = None) -> list[dict[str, Any]]:
        """Record conflicts; returns only the ones newly created (each needs a HubSpot task).

        A conflict already pending on the same field is updated in place with the newer values; one
        whose same occurrence (same ``conflict_id``) was already resolved is left alone. So re-running a
        task never opens a conflict twice.

        Args:
            conflicts: dicts with the ``_CONFLICT_FIELDS`` keys; ``detected_at`` (ISO string or
                datetime) and ``conflict_id`` are optional; ``conflict_type`` is one of
                :data:`CONFLICT_TYPES` (default ``SIMULTANEOUS_UPDATE``).
            run_id: the detecting run (stored for operators).

        Returns:
            The newly created items.
        """
        created: list[dict[str, Any]] = []
        updated = 0
        for conflict in conflicts:
            missing = [k for k in ("opportunity_id", "field") if not conflict.get(k)]
            if missing:
                raise ValueError(f"conflict without {missing}")
            detected = conflict.get("detected_at") or _now()
            detected_iso = utc_iso(detected) if isinstance(detected, datetime) else str(detected)
            cid = conflict.get("conflict_id") or self.conflict_id(conflict)
            item = {k: conflict.get(k) for k in _CONFLICT_FIELDS}
            kind = item.get("conflict_type") or SIMULTANEOUS_UPDATE
            if kind not in CONFLICT_TYPES:
                raise ValueError(f"unknown conflict_type {kind!r}; expected one of {CONFLICT_TYPES}")
            item["conflict_type"] = kind
            item.update(
                {
                    "PK": self.pk,
                    "SK": f"{conflict['opportunity_id']}#{conflict['field']}",
                    "conflict_id": cid,
                    "catalog": self.catalog,
                    "detected_at": detected_iso,
                    "last_detected_at": detected_iso,
                    "status": PENDING,
                    "run_id": run_id,
                }
            )
            try:
                self.ddb.put_item(
                    TableName=self.table,
                    Item=to_item(item),
                    # Absent, or resolved and not this very occurrence (a re-run after resolution).
                    ConditionExpression="attribute_not_exists(PK) OR (#st <> :pending AND #cid <> :cid)",
                    ExpressionAttributeNames={"#st": "status", "#cid": "conflict_id"},
                    ExpressionAttributeValues={":pending": {"S": PENDING}, ":cid": {"S": cid}},
                )
                created.append(item)
                continue
            except ClientError as err:
                if not is_conditional_check_failed(err):
                    raise
            if self._refresh_pending(conflict, detected_iso):
                updated += 1
        log.info("conflicts %s: %d opened, %d pending refreshed", self.catalog, len(created), updated)
        return created

    def _refresh_pending(self, conflict: Mapping[str, Any], detected_iso: str) -> bool:
        # Newer values on an already-pending field: update them so the human decides on current data,
        # but never let an older detection (a late retry) overwrite a newer one.
        names = {"#st": "status", "#ld": "last_detected_at"}
        values: dict[str, Any] = {":pending": {"S": PENDING}, ":ld": {"S": detected_iso}}
        sets = ["#ld = :ld"]
        for i, key in enumerate(k for k in _CONFLICT_FIELDS if k not in {"opportunity_id", "field"}):
            names[f"#f{i}"] = key
            value = conflict.get(key)
            if key == "conflict_type":
                value = value or SIMULTANEOUS_UPDATE
            values[f":f{i}"] = to_value(value)
            sets.append(f"#f{i} = :f{i}")
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=self._key(conflict["opportunity_id"], conflict["field"]),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#st = :pending AND #ld <= :ld",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as err:
            if is_conditional_check_failed(err):
                return False  # resolved meanwhile, already resolved occurrence, or an older detection
            raise
        return True

    def pending(self, opportunity_id: str | None = None) -> list[dict[str, Any]]:
        """Pending conflicts, all of them or one opportunity's.

        Args:
            opportunity_id: restrict to this opportunity.

        Returns:
            The pending items as plain dicts.
        """
        key_condition = "PK = :pk"
        values: dict[str, Any] = {":pk": {"S": self.pk}, ":pending": {"S": PENDING}}
        if opportunity_id is not None:
            # The "#" delimiter keeps "O1#" from matching "O10#...".
            key_condition += " AND begins_with(SK, :opp)"
            values[":opp"] = {"S": f"{opportunity_id}#"}
        items = query_all(
            self.ddb,
            TableName=self.table,
            KeyConditionExpression=key_condition,
            FilterExpression="#st = :pending",
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )
        return [with_type(from_item(i)) for i in items]

    def awaiting_task(self) -> list[dict[str, Any]]:
        """Pending conflicts without a HubSpot task yet.

        ``open`` returns new conflicts once; if the task creating their HubSpot tasks fails before
        ``set_task``, its retry finds them here, so no conflict is left without a task.

        Returns:
            The pending items with no ``task_id``.
        """
        return [c for c in self.pending() if not c.get("task_id")]

    def frozen_fields(self) -> set[tuple[str, str]]:
        """The fields not to sync until their conflict is resolved.

        Returns:
            ``{(opportunity_id, field), ...}``.
        """
        return {
            (c["opportunity_id"], c["field"]) for c in self.pending() if c["conflict_type"] in FREEZING_TYPES
        }

    def close_superseded(self, written: Mapping[str, Iterable[str]], run_id: str) -> list[dict[str, Any]]:
        """Resolve pending ``REJECTED_VALUE`` conflicts whose field Partner Central has now accepted.

        A person fixed the value in HubSpot (or Partner Central's rule changed) and a run wrote the field:
        nothing is left to decide. The item becomes ``RESOLVED`` with resolution ``SUPERSEDED``, by
        ``cosell-sync``; a conflict replaced or resolved meanwhile is left alone (conditional update).

        Args:
            written: opportunity id -> the fields this run wrote to Partner Central.
            run_id: the run that wrote them (kept as the reason).

        Returns:
            The conflicts closed (as they were: ``task_id`` and ``deal_id`` for the caller).
        """
        wanted = {(oid, f) for oid, fields in written.items() for f in fields}
        if not wanted:
            return []
        closed = []
        for conflict in self.pending():
            key = (conflict["opportunity_id"], conflict["field"])
            if conflict["conflict_type"] != REJECTED_VALUE or key not in wanted:
                continue
            try:
                self.ddb.update_item(
                    TableName=self.table,
                    Key=self._key(*key),
                    UpdateExpression=(
                        "SET #st = :resolved, #res = :res, #by = :by, #at = :at, #reason = :reason"
                    ),
                    ConditionExpression="#st = :pending AND #cid = :cid",
                    ExpressionAttributeNames={
                        "#st": "status",
                        "#res": "resolution",
                        "#by": "resolved_by",
                        "#at": "resolved_at",
                        "#reason": "resolution_reason",
                        "#cid": "conflict_id",
                    },
                    ExpressionAttributeValues={
                        ":resolved": {"S": RESOLVED},
                        ":pending": {"S": PENDING},
                        ":res": {"S": SUPERSEDED},
                        ":by": {"S": "cosell-sync"},
                        ":at": {"S": utc_iso(_now())},
                        ":reason": {"S": f"Partner Central accepted the field in run {run_id}"},
                        ":cid": {"S": conflict["conflict_id"]},
                    },
                )
            except ClientError as err:
                if not is_conditional_check_failed(err):
                    raise
                continue
            log.info("conflict %s superseded: Partner Central accepted %s.%s", conflict["conflict_id"], *key)
            closed.append(conflict)
        return closed

    def get(self, conflict_id: str) -> dict[str, Any]:
        """A conflict by id (pending or resolved).

        Args:
            conflict_id: the id from ``open``.

        Returns:
            The item.

        Raises:
            NotFoundError: no such conflict (or it was replaced by a newer one on the same field).
        """
        # Conflicts are few (manual-resolution fields only) and looked up by id only when a human acts,
        # so a filtered query of the partition is cheaper than maintaining an index.
        items = query_all(
            self.ddb,
            limit=1,
            TableName=self.table,
            KeyConditionExpression="PK = :pk",
            FilterExpression="#cid = :cid",
            ExpressionAttributeNames={"#cid": "conflict_id"},
            ExpressionAttributeValues={":pk": {"S": self.pk}, ":cid": {"S": conflict_id}},
            ConsistentRead=True,
        )
        for item in items:
            return with_type(from_item(item))
        raise NotFoundError(
            f"conflict {conflict_id} not found in catalog {self.catalog}", record_id=conflict_id
        )

    def set_task(self, conflict_id: str, task_id: str) -> dict[str, Any]:
        """Record the HubSpot task created for a conflict.

        Args:
            conflict_id: the conflict.
            task_id: the HubSpot task id.

        Returns:
            The updated item.

        Raises:
            NotFoundError: no such conflict.
        """
        current = self.get(conflict_id)
        resp = self.ddb.update_item(
            TableName=self.table,
            Key=self._key(current["opportunity_id"], current["field"]),
            UpdateExpression="SET #task = :task",
            ConditionExpression="#cid = :cid",
            ExpressionAttributeNames={"#task": "task_id", "#cid": "conflict_id"},
            ExpressionAttributeValues={":task": {"S": str(task_id)}, ":cid": {"S": conflict_id}},
            ReturnValues="ALL_NEW",
        )
        return with_type(from_item(resp["Attributes"]))

    def mark_announced(self, conflict_id: str, message_id: str | None) -> None:
        """Record that a conflict was announced on SNS (for operators); a replaced one is left alone.

        Args:
            conflict_id: the conflict.
            message_id: the SNS message id, if the topic answered with one.
        """
        self._set_if_current(conflict_id, {"announced_at": utc_iso(_now()), "announcement_id": message_id})

    def mark_announce_failed(self, conflict_id: str, error: str) -> None:
        """Record that announcing a conflict failed, so every later run tries again until it is sent.

        Args:
            conflict_id: the conflict.
            error: the error's type (never a message: it could quote a value).
        """
        self._set_if_current(conflict_id, {"announce_failed_at": utc_iso(_now()), "announce_error": error})

    def _set_if_current(self, conflict_id: str, values: dict[str, Any]) -> None:
        """Set attributes on the conflict's item while it holds ``conflict_id`` (a replaced one: no-op)."""
        current = self.get(conflict_id)
        numbered = list(enumerate(values.items()))
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=self._key(current["opportunity_id"], current["field"]),
                UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i, _ in numbered),
                ConditionExpression="#cid = :cid",
                ExpressionAttributeNames={
                    **{f"#a{i}": name for i, (name, _) in numbered},
                    "#cid": "conflict_id",
                },
                ExpressionAttributeValues={
                    **{f":v{i}": to_value(value) for i, (_, value) in numbered},
                    ":cid": {"S": conflict_id},
                },
            )
        except ClientError as err:
            if not is_conditional_check_failed(err):
                raise

    def resolve(
        self,
        conflict_id: str,
        resolution: str,
        reason: str,
        user: str,
        custom_value: str | None = None,
    ) -> dict[str, Any]:
        """Resolve a pending conflict; the caller then applies ``resolved_value`` and audits it.

        Idempotent: resolving again with the same resolution returns the resolved item.

        Args:
            conflict_id: the conflict.
            resolution: ``USE_HUBSPOT_VALUE``, ``USE_PARTNER_CENTRAL_VALUE`` or ``CUSTOM_VALUE``.
            reason: the human's reason (free text).
            user: who resolved it: a user *id* (HubSpot owner id), not an email, to keep PII out.
            custom_value: the value written to both systems, for ``CUSTOM_VALUE`` (required there).

        Returns:
            The resolved item, with ``resolution``, ``resolved_value``, ``resolved_by``, ``resolved_at``.

        Raises:
            ValueError: unknown resolution.
            NotFoundError: no such conflict.
            ConflictError: the conflict was already resolved differently.
        """
        if resolution not in RESOLUTIONS:
            raise ValueError(f"unknown resolution {resolution!r}; expected one of {RESOLUTIONS}")
        if resolution == "CUSTOM_VALUE" and custom_value is None:
            raise ValueError("resolution CUSTOM_VALUE needs a custom_value")
        current = self.get(conflict_id)
        names = {
            "#st": "status",
            "#res": "resolution",
            "#val": "resolved_value",
            "#reason": "resolution_reason",
            "#by": "resolved_by",
            "#at": "resolved_at",
            "#cid": "conflict_id",
        }
        values: dict[str, Any] = {
            ":resolved": {"S": RESOLVED},
            ":pending": {"S": PENDING},
            ":res": {"S": resolution},
            ":reason": to_value(reason),
            ":by": {"S": user},
            ":at": {"S": utc_iso(_now())},
            ":cid": {"S": conflict_id},
        }
        if resolution == "CUSTOM_VALUE":
            resolved = ":custom"
            values[":custom"] = to_value(custom_value)
        else:
            resolved = "#side"
            names["#side"] = "hubspot_value" if resolution == "USE_HUBSPOT_VALUE" else "partner_central_value"
        try:
            resp = self.ddb.update_item(
                TableName=self.table,
                Key=self._key(current["opportunity_id"], current["field"]),
                UpdateExpression=(
                    f"SET #st = :resolved, #res = :res, #val = {resolved}, #reason = :reason, "
                    "#by = :by, #at = :at"
                ),
                ConditionExpression="#st = :pending AND #cid = :cid",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as err:
            if not is_conditional_check_failed(err):
                raise
            again = self.get(conflict_id)
            same_value = resolution != "CUSTOM_VALUE" or again.get("resolved_value") == custom_value
            if again.get("status") == RESOLVED and again.get("resolution") == resolution and same_value:
                return with_type(again)
            raise ConflictError(
                f"conflict {conflict_id} is {again.get('status')} with {again.get('resolution')}; "
                f"cannot resolve it with {resolution}",
                record_id=conflict_id,
            ) from err
        log.info("conflict %s resolved with %s", conflict_id, resolution)
        return with_type(from_item(resp["Attributes"]))
