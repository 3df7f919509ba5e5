"""What a scheduled run polls, and what it leaves to events: the no-change run's API bill.

A ``cosell_reconcile`` run with nothing changed used to cost six calls: ``GetSellingSystemSettings``,
``ListEngagementInvitations``, ``ListOpportunities`` and three HubSpot searches (deals, companies,
contacts). With events delivering what three of them poll for, it costs two (``ListOpportunities`` and
the deal search). Each switch keeps a *backstop*, because EventBridge and HubSpot webhooks are best
effort (a delivery can fail, a receiver can be down): the poll still runs, only less often.

- **Companies and contacts** (``webhooks.enabled``): HubSpot webhooks start ``cosell_events`` for a
  company or contact change, so a scheduled run searches them only every ``webhooks.backstop_minutes``.
  Their search has its own watermark (``hubspot_related`` in the watermark store): it starts where the
  last company/contact search started (less ``overlap_minutes``) and moves only at the commit of a run
  that searched, never with the deal watermark. So a change whose webhook never came is read by the next
  search, however many runs skipped it: at most ``backstop_minutes`` plus one schedule interval after it
  was made. In between, the companies and contacts of records Partner Central changed are read by id
  before the run may write them (``extract``), so a lost webhook's edit is a change, never overwritten.
- **Invitations** (``events.enabled``): EventBridge delivers "Engagement Invitation Created" (and the
  other invitation events) to ``cosell_events``, which lists them; a scheduled run lists them only every
  ``invitations.backstop_minutes`` (mark ``invitations``: when a complete listing last started; a listing
  is never windowed, so any invitation an event missed is in the next one).
- **Selling system settings** (``settings.refresh_minutes``): read at most this often; the last read is
  kept in ``state/{catalog}/selling_settings.json`` with its time, and the run report shows both.

Every switch is off by default: six calls a no-change run, as before. ``mode=full`` runs, backfills and
runs with ``since`` poll everything as they always did (their window is their own).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cosell_sync.common import Side, parse_ts, ts_key
from cosell_sync.errors import NotFoundError

if TYPE_CHECKING:
    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

#: Watermark of the HubSpot company and contact searches (where the last one started).
RELATED_MARK = "hubspot_related"
#: When the last complete ``ListEngagementInvitations`` listing of a scheduled or event run started.
INVITATIONS_MARK = "invitations"
#: The last ``GetSellingSystemSettings`` answer and its time (relative to the S3 store's prefix).
SETTINGS_STATE = "state/{catalog}/selling_settings.json"


def plan_polling(env: SyncEnv, run: dict[str, Any], now: datetime, *, watermark_run: bool) -> dict[str, Any]:
    """Decide what this run polls: the company/contact window and whether invitations are listed.

    Args:
        env: clients and stores.
        run: the run description so far (``since_hubspot``, ``mode``, ``opportunity_ids``).
        now: the run's start.
        watermark_run: whether the run's windows come from the stored watermarks (an incremental run
            without ``since``, not a backfill); other runs poll what they always did.

    Returns:
        ``{"companies_contacts": {"poll", "since", "reason"}, "invitations": {"list", "reason"}}``:
        ``poll`` / ``list`` say whether the run searches or lists; ``since`` is the company/contact window
        start (``None`` reads no window: the first run, where every deal is new and read with its company
        and contacts).
    """
    cfg = env.config
    overlap = timedelta(minutes=cfg.overlap_minutes)
    related: dict[str, Any]
    if not watermark_run or run.get("mode") == "full" or run.get("opportunity_ids"):
        # Their own windows (since, backfill), or no window at all (full: every deal; restricted runs).
        related = {"poll": True, "since": run.get("since_hubspot"), "reason": "the run's own window"}
    else:
        mark = env.watermarks.get(run["catalog"], RELATED_MARK)
        # Before the first company/contact search with its own mark, the deal watermark stood for both.
        start = mark or env.watermarks.get(run["catalog"], Side.HUBSPOT)
        since = ts_key(start - overlap) if start else None
        backstop = timedelta(minutes=cfg.webhooks.backstop_minutes)
        if not cfg.webhooks.enabled:
            related = {"poll": True, "since": since, "reason": "webhooks.enabled is false"}
        elif mark is None or now - mark >= backstop:
            related = {"poll": True, "since": since, "reason": "backstop: webhook delivery is best effort"}
        else:
            related = {
                "poll": False,
                "since": since,
                "reason": f"webhooks on; next backstop search after {ts_key(mark + backstop)}",
            }
    invitations: dict[str, Any]
    if not cfg.events.enabled:
        invitations = {"list": True, "reason": "events.enabled is false"}
    elif run.get("mode") == "full":
        invitations = {"list": True, "reason": "full run"}
    else:
        listed = env.watermarks.get(run["catalog"], INVITATIONS_MARK)
        backstop = timedelta(minutes=cfg.invitations.backstop_minutes)
        if listed is None or now - listed >= backstop:
            invitations = {"list": True, "reason": "backstop: EventBridge delivery is best effort"}
        else:
            invitations = {
                "list": False,
                "reason": f"events on; next backstop listing after {ts_key(listed + backstop)}",
            }
    return {"companies_contacts": related, "invitations": invitations}


def related_poll(run: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether this run searches changed companies and contacts, and from when.

    A run description from before this module (no ``polling``) polls with the deal window, as it did.
    """
    related = (run.get("polling") or {}).get("companies_contacts")
    if related is None:
        return True, run.get("since_hubspot")
    return bool(related["poll"]), related.get("since")


def lists_invitations(run: dict[str, Any]) -> bool:
    """Whether a scheduled run's ``sync_invitations`` lists invitations (an event run always does)."""
    if run.get("events"):
        return True
    invitations = (run.get("polling") or {}).get("invitations")
    return invitations is None or bool(invitations["list"])


def advance_related(env: SyncEnv, run: dict[str, Any]) -> bool:
    """At commit: move the company/contact watermark to the run's start if this run searched them.

    Called with the other watermarks, last, and only for runs that advance them. A run that skipped the
    search leaves the mark where the last search started, so the next search re-reads every change since.
    """
    poll, _ = related_poll(run)
    if not poll or run.get("mode") == "full":
        # A full run reads deals, not changed companies and contacts: their window stays open.
        return False
    return env.watermarks.advance(run["catalog"], RELATED_MARK, parse_ts(run["started_at"]), run["run_id"])


def mark_invitations_listed(env: SyncEnv, run: dict[str, Any]) -> None:
    """After a complete listing whose invitations were all taken in: the backstop clock starts again."""
    started = parse_ts(run.get("started_at"))
    if started is not None:
        env.watermarks.advance(run["catalog"], INVITATIONS_MARK, started, run["run_id"])


def read_settings_cached(env: SyncEnv, run: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The catalog's selling system settings: the stored read while it is fresh, else one new read.

    ``settings.refresh_minutes`` 0 reads every run. A read that failed (no permission, throttling) is not
    kept: the next run tries again. The result carries ``read_at`` (when Partner Central was asked) and
    ``api_calls`` (empty when the stored read was used).
    """
    from cosell_sync.settings import read_settings

    refresh = timedelta(minutes=env.config.settings.refresh_minutes)
    key = SETTINGS_STATE.format(catalog=run["catalog"])
    if refresh > timedelta(0):
        try:
            stored = env.snapshots.get_json(key) or {}
        except NotFoundError:
            stored = {}
        read_at = parse_ts(stored.get("read_at"))
        if read_at is not None and now - read_at < refresh and stored.get("readable"):
            return {**stored, "api_calls": {}}
    fresh = {**read_settings(env), "read_at": ts_key(now)}
    if fresh.get("readable") and not run.get("dry_run"):
        remember_settings(env, fresh, now)
    return fresh


def remember_settings(env: SyncEnv, read: dict[str, Any], now: datetime | None = None) -> None:
    """Keep a readable settings read (or what ``cosell_settings`` just wrote) for the runs that follow.

    Only with ``settings.refresh_minutes`` above 0: otherwise every run reads them and nothing is kept.
    """
    if env.config.settings.refresh_minutes <= 0:
        return
    kept = {k: v for k, v in read.items() if k != "api_calls"}
    kept["read_at"] = ts_key(now or datetime.now(UTC))
    env.snapshots.put_json(kept, SETTINGS_STATE.format(catalog=env.catalog))


def describe_polling(polling: dict[str, Any]) -> str:
    """The report line of what a run polled: ``polled: companies/contacts yes (why), invitations no (why)``.

    Args:
        polling: the run's ``polling`` (:func:`plan_polling`).
    """
    related = polling.get("companies_contacts") or {}
    invitations = polling.get("invitations") or {}
    return (
        f"polled: companies/contacts {'yes' if related.get('poll') else 'no'} ({related.get('reason')}), "
        f"invitations {'yes' if invitations.get('list') else 'no'} ({invitations.get('reason')})"
    )
