"""The reconcile chain, built once for both DAGs that sync records: ``cosell_reconcile``, ``cosell_events``.

Both DAGs run the same steps in the same order (prepare, invitations, extract, plan, apply, commit, then the
follow-up steps and a closing report); they differ only in how a run starts and ends. ``cosell_events``
prepares from the events it was given, extracts only the opportunities they name (skipping the opportunity
steps when there is none), reads named engagements, and closes with ``finish`` (event audit, ledger, lease)
instead of ``report``. Each task body imports its function from :mod:`cosell_runtime.tasks` when it runs,
so building the chain at parse time imports nothing heavy.
"""

from __future__ import annotations

from typing import Any, Literal

import pendulum
from airflow.sdk import task

from cosell_runtime.triggers import PartnerCentralJobsSensor

Kind = Literal["reconcile", "events"]


# -- the entry and exit steps, one per DAG -------------------------------------------------------------
@task(task_id="prepare")
def _reconcile_prepare(**context: Any) -> dict:
    """Validate config and params; take the catalog's lease; fix the run's window."""
    from cosell_runtime.tasks import reconcile_prepare

    return reconcile_prepare(context)


# Short retry delay: an event run should not wait a minute for a transient error.
@task(task_id="prepare", retry_delay=pendulum.duration(seconds=5))
def _events_prepare(**context: Any) -> dict:
    """Parse the events, take the catalog's lease, claim the event ids, fix the run."""
    from cosell_runtime.tasks import events_prepare

    return events_prepare(context)


@task(task_id="sync_invitations", pool="partner_central_writes")
def _reconcile_sync_invitations(run: dict) -> dict:
    """AWS referrals (invitations to us) into deals, once; sellers' Accept/Reject to Partner Central."""
    from cosell_runtime.tasks import invitations_sync

    return invitations_sync(run)


@task(task_id="sync_invitations", pool="partner_central_writes")
def _events_sync_invitations(run: dict) -> dict:
    """Invitation events: referrals into deals, decisions to Partner Central (else nothing)."""
    from cosell_runtime.tasks import events_sync_invitations

    return events_sync_invitations(run)


@task(task_id="extract_partner_central")
def _reconcile_extract_partner_central(run: dict) -> dict:
    """List changed opportunities, read them, snapshot to S3."""
    from cosell_runtime.tasks import reconcile_extract_partner_central

    return reconcile_extract_partner_central(run)


@task(task_id="extract_partner_central")
def _events_extract_partner_central(run: dict) -> dict:
    """Read the named opportunities (skipped, with the opportunity steps, when none is named)."""
    from cosell_runtime.tasks import events_extract_partner_central

    return events_extract_partner_central(run)


@task(task_id="sync_engagements", pool="partner_central_writes")
def _reconcile_sync_engagements(run: dict, pc: dict, hs: dict, committed: dict) -> dict:
    """Engagements and the AWS summary into changed deals; context edits to Partner Central."""
    from cosell_runtime.tasks import reconcile_sync_engagements

    return reconcile_sync_engagements(run, pc, hs)


# none_failed: engagement events need it even when no opportunity was named (the extract was skipped).
@task(task_id="sync_engagements", pool="partner_central_writes", trigger_rule="none_failed")
def _events_sync_engagements(run: dict, pc: dict | None, hs: dict | None) -> dict:
    """Named engagements read; the AWS summary of named opportunities; into their deals."""
    from cosell_runtime.tasks import events_sync_engagements

    return events_sync_engagements(run, pc, hs)


@task
def report(
    run: dict,
    pc: dict,
    hs: dict,
    committed: dict,
    insights: dict,
    invitations: dict,
    linked: dict,
    engagements: dict,
    owners: dict,
    tags: dict,
    solutions: dict,
    snapshots: dict,
    customer_accounts: dict,
) -> dict:
    """Log the run's summary table and store report.json; fail on the run's record errors."""
    from cosell_runtime.tasks import reconcile_report

    steps = (invitations, linked, owners, tags, solutions, snapshots, customer_accounts)
    return reconcile_report(run, pc, hs, committed, insights, *steps, engagements=engagements)


# none_failed: the opportunity steps are skipped in a run whose events name no opportunity.
@task(trigger_rule="none_failed")
def finish(
    run: dict,
    pc: dict | None,
    hs: dict | None,
    committed: dict | None,
    insights: dict | None,
    invitations: dict,
    linked: dict,
    engagements: dict,
    owners: dict | None,
    tags: dict | None,
    solutions: dict | None,
    snapshots: dict | None,
    customer_accounts: dict | None,
) -> dict:
    """Audit each event, mark it processed, release the lease; report.json when records were synced."""
    from cosell_runtime.tasks import events_finish

    steps = (owners, tags, solutions, snapshots, customer_accounts)
    return events_finish(run, pc, hs, committed, insights, invitations, linked, engagements, *steps)


# -- the steps both DAGs share -------------------------------------------------------------------------
@task
def finish_invitations(run: dict, started: dict) -> dict:
    """Accepted invitations: the new opportunity linked to the same deal; failures on the deal."""
    from cosell_runtime.tasks import invitations_finish

    return invitations_finish(run, started)


@task
def extract_hubspot(run: dict, pc: dict) -> dict:
    """Search changed deals, batch-read linked ones with company and contacts, snapshot to S3."""
    from cosell_runtime.tasks import reconcile_extract_hubspot

    return reconcile_extract_hubspot(run, pc)


@task
def plan(run: dict, pc: dict, hs: dict) -> dict:
    """Three-way diff, conflicts and review-state gating; the plan goes to S3."""
    from cosell_runtime.tasks import reconcile_plan

    return reconcile_plan(run, pc, hs)


@task(pool="partner_central_writes")
def prepare_creates(run: dict, planned: dict) -> dict:
    """Link deals whose opportunity exists (search); start the bulk job of a large run."""
    from cosell_runtime.tasks import reconcile_prepare_creates

    return reconcile_prepare_creates(run, planned)


@task(pool="partner_central_writes")
def apply_partner_central(run: dict, planned: dict, creates: dict) -> dict:
    """Create, update (full payload, optimistic lock) and submit opportunities at 1 write/s."""
    from cosell_runtime.tasks import reconcile_apply_partner_central

    return reconcile_apply_partner_central(run, planned, creates)


@task
def apply_hubspot(run: dict, planned: dict, pc_applied: dict) -> dict:
    """Batched deal creates/updates, notes and conflict tasks."""
    from cosell_runtime.tasks import reconcile_apply_hubspot

    return reconcile_apply_hubspot(run, planned, pc_applied)


@task
def commit(run: dict, planned: dict, pc_applied: dict, hs_applied: dict) -> dict:
    """Audit, baseline, retry queue and watermark, for the work that succeeded; the lease given up."""
    from cosell_runtime.tasks import reconcile_commit

    return reconcile_commit(run, planned, pc_applied, hs_applied)


@task
def sync_insights(run: dict, pc: dict, committed: dict) -> dict:
    """AWS insights (SearchOpportunities, 100 per call) into the deals whose insights changed."""
    from cosell_runtime.tasks import reconcile_sync_insights

    return reconcile_sync_insights(run, pc)


@task(pool="partner_central_writes")
def sync_owners(run: dict, hs: dict, committed: dict) -> dict:
    """Deal owner changes to Partner Central (AssignOpportunity); assignee and note on the deal."""
    from cosell_runtime.tasks import reconcile_sync_owners

    return reconcile_sync_owners(run, hs)


@task(pool="partner_central_writes")
def sync_tags(run: dict, pc: dict, hs: dict, pc_applied: dict, committed: dict) -> dict:
    """Opportunity tags both ways (TagResource/UntagResource; the deal's aws_tags)."""
    from cosell_runtime.tasks import reconcile_sync_tags

    return reconcile_sync_tags(run, pc, hs, pc_applied)


@task(pool="partner_central_writes")
def sync_customer_accounts(run: dict, pc: dict, hs: dict, committed: dict) -> dict:
    """Linked companies as AWS customer accounts (Create/UpdateCustomerAccount); AWS enrichment back."""
    from cosell_runtime.tasks import reconcile_sync_customer_accounts

    return reconcile_sync_customer_accounts(run, pc, hs)


# none_failed: in an event run a snapshot or engagement event alone skips the opportunity steps.
@task(pool="partner_central_writes", trigger_rule="none_failed")
def sync_snapshots(run: dict, pc: dict | None, hs: dict | None, engagements: dict) -> dict:
    """Snapshot jobs follow their deals (Create/Start/Stop/DeleteResourceSnapshotJob); new revisions noted."""
    from cosell_runtime.tasks import reconcile_sync_snapshots

    return reconcile_sync_snapshots(run, pc, hs)


@task(pool="partner_central_writes")
def sync_solutions(run: dict, pc: dict, hs: dict, committed: dict) -> dict:
    """Deal line items <-> the opportunity's associated solutions (Associate/DisassociateOpportunity)."""
    from cosell_runtime.tasks import reconcile_sync_solutions

    return reconcile_sync_solutions(run, pc, hs)


def build_sync_chain(kind: Kind) -> None:
    """Add the sync steps and their dependencies to the DAG being defined (call it inside ``@dag``).

    Args:
        kind: ``reconcile`` (the scheduled and triggered sync) or ``events`` (the records named by events).
    """
    events = kind == "events"
    run = (_events_prepare if events else _reconcile_prepare)()
    invitations = (_events_sync_invitations if events else _reconcile_sync_invitations)(run)
    accepted = PartnerCentralJobsSensor(
        task_id="wait_for_accept_tasks",
        kind="accept_invitation_task",
        job_ids=invitations["tasks"],
        catalog=run["catalog"],
        retries=3,
    )
    linked = finish_invitations(run, invitations)
    accepted >> linked
    pc = (_events_extract_partner_central if events else _reconcile_extract_partner_central)(run)
    # Referral deals accepted this run are linked before the extract reads the linked deals.
    linked >> pc
    hs = extract_hubspot(run, pc)
    planned = plan(run, pc, hs)
    creates = prepare_creates(run, planned)
    # Deferred: the triggerer polls the job while no worker slot is held (a run without one passes at once).
    waited = PartnerCentralJobsSensor(
        task_id="wait_for_bulk_jobs", job_ids=creates["jobs"], catalog=run["catalog"], retries=3
    )
    pc_applied = apply_partner_central(run, planned, creates)
    waited >> pc_applied
    # Submissions: AWS starts the engagement while no worker slot is held; sync_engagements then reads it.
    submitted = PartnerCentralJobsSensor(
        task_id="wait_for_submissions",
        kind="engagement_from_opportunity_task",
        job_ids=pc_applied["submit_tasks"],
        catalog=run["catalog"],
        retries=3,
    )
    hs_applied = apply_hubspot(run, planned, pc_applied)
    committed = commit(run, planned, pc_applied, hs_applied)
    insights = sync_insights(run, pc, committed)
    if events:
        engagements = _events_sync_engagements(run, pc, hs)
        committed >> engagements
    else:
        engagements = _reconcile_sync_engagements(run, pc, hs, committed)
    submitted >> engagements
    steps = {
        "invitations": invitations,
        "linked": linked,
        "owners": sync_owners(run, hs, committed),
        "tags": sync_tags(run, pc, hs, pc_applied, committed),
        "solutions": sync_solutions(run, pc, hs, committed),
        # After commit: it reads the committed baseline's deal -> company links.
        "customer_accounts": sync_customer_accounts(run, pc, hs, committed),
        "engagements": engagements,
        # After sync_engagements: it reads that step's stored engagement of each opportunity.
        "snapshots": sync_snapshots(run, pc, hs, engagements),
    }
    (finish if events else report)(run, pc, hs, committed, insights, **steps)
