"""Automatic rollback of a record's HubSpot side when Partner Central rejected its write in the same run.

A ``cosell_reconcile`` run writes Partner Central first (``apply_partner_central``) and HubSpot after
(``apply_hubspot``, which reads the Partner Central results): the DAG wires them in that order and no
earlier step writes a mapped field to HubSpot. So within one run a record's HubSpot side is never
changed *before* its Partner Central write; what can happen is that a record has changes both ways
(Partner Central's edits due to HubSpot, HubSpot's due to Partner Central) and Partner Central rejects
its half. Without this step HubSpot would still take its half, and the record would be half-synced.

With ``rollback.auto_revert_hubspot`` on (the default), such a record's HubSpot writes of the run are
held back: its deal, company and contact keep the values they had before the run (what a revert after
the write would restore, without writing twice). The deal gets a note naming the fields and the error
code, its owner (else ``conflicts.default_task_owner_id``) a task, and ``commit`` writes one
``AUTO_ROLLBACK`` audit entry (old = the value kept, new = the value held back) instead of
``UPDATE_DEAL``; the baseline keeps the held-back fields at their old value, so the next run plans them
again, and writes them once Partner Central takes the record's other change.

Only a rejection counts (``retriable`` false: a validation error, a value Partner Central cannot take,
a missing record): a transient failure (throttling, 5xx) is retried next run from the retry queue, as
before, and a failed submission (``submit:``) follows an update Partner Central took.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cosell_sync.common import DEAL, clean

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig
    from cosell_sync.plan import Plan
    from cosell_sync.writers.hubspot import HubSpotWriter

log = logging.getLogger(__name__)

#: The results key of ``apply_hubspot`` holding the reverted records (read by ``commit``).
RESULTS_KEY = "auto_reverted"


def rejected_records(pc_results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Opportunity id -> error of each record whose Partner Central update was rejected (not transient)."""
    return {
        key: error
        for key, error in (pc_results.get("failed") or {}).items()
        if ":" not in key and not error.get("retriable")
    }


def held_back(
    cfg: SyncConfig,
    plan: Plan,
    pc_results: dict[str, Any],
    hs: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The HubSpot updates of this run to hold back, per record (empty when the config turns it off).

    Args:
        cfg: the sync configuration.
        plan: the run's plan.
        pc_results: the ``apply_partner_central`` results.
        hs: this run's HubSpot records (canonical values: the values before the run).

    Returns:
        Opportunity id -> ``{"error": code, "changes": {field: {"old": kept, "new": held back}}}``.
    """
    if not cfg.rollback.auto_revert_hubspot:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for oid, error in rejected_records(pc_results).items():
        changes = plan.hubspot_updates.get(oid)
        if not changes:
            continue
        before = hs.get(oid) or {}
        out[oid] = {
            "error": str(error.get("code") or error.get("type") or "rejected"),
            "changes": {f: {"old": clean(before.get(f)), "new": v} for f, v in changes.items()},
        }
    if out:
        log.warning(
            "Partner Central rejected %d record(s) that also had HubSpot changes this run: their HubSpot "
            "side keeps its values from before the run (rollback.auto_revert_hubspot)",
            len(out),
        )
    return out


def note(cfg: SyncConfig, item: dict[str, Any]) -> str:
    """The deal note of one reverted record: the fields (HubSpot names) and the error code, no values."""
    lines = "".join(f"<li>{cfg.field(f).hubspot}</li>" for f in sorted(item["changes"]))
    return (
        "<p>⚠️ Sync failed, changes reverted: AWS Partner Central rejected this record's update "
        f"({item['error']}), so the sync left these properties as they were before the run:</p>"
        f"<ul>{lines}</ul><p>Fix the value Partner Central rejects (see aws_sync_error); the next sync "
        "then writes both sides.</p>"
    )


def create_tasks(
    cfg: SyncConfig,
    writer: HubSpotWriter,
    reverted: dict[str, dict[str, Any]],
    deal_of: dict[str, str],
    run_id: str,
) -> int:
    """One task per reverted record, for the deal owner (else the default owner); once per run.

    Args:
        cfg: the sync configuration.
        writer: the HubSpot writer.
        reverted: :func:`held_back`'s result.
        deal_of: opportunity id -> deal id.
        run_id: the run (part of each task's marker, so a retried step makes no second task).

    Returns:
        Tasks that exist for these records now.
    """
    deals = {oid: deal_of[oid] for oid in reverted if deal_of.get(oid)}
    if not deals:
        return 0
    found, _ = writer.gw.batch_read(DEAL.plural, sorted(set(deals.values())), ["hubspot_owner_id"])
    owners = {str(d["id"]): clean((d.get("properties") or {}).get("hubspot_owner_id")) for d in found}
    tasks = [
        {
            "marker": f"auto-rollback:{oid}:{run_id}",
            "deal_id": deal_id,
            "subject": f"Co-sell sync: AWS Partner Central rejected opportunity {oid}",
            "body": (
                f"Partner Central rejected this deal's update ({reverted[oid]['error']}); the sync kept "
                f"{len(reverted[oid]['changes'])} HubSpot field(s) as they were before the run. Review the "
                "deal's aws_sync_error and fix the rejected value."
            ),
            "owner_id": owners.get(deal_id) or cfg.conflicts.default_task_owner_id or None,
        }
        for oid, deal_id in deals.items()
    ]
    return len(writer.create_marked_tasks(tasks))


__all__ = ["RESULTS_KEY", "create_tasks", "held_back", "note", "rejected_records"]
