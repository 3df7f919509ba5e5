"""The extract steps: read what changed on each side since the watermark, as economically as possible.

Both steps only read. Each writes its snapshot to S3 as Parquet and returns the key (and counts) for
XCom; the next steps read those keys, never a name rebuilt from a convention.

- :func:`extract_partner_central`: ``ListOpportunities`` over the window, then ``GetOpportunity`` only
  where ``LastModifiedDate`` differs from the baseline, plus every record in the retry queue. A record
  that could not be read is returned in ``failures`` and goes to the retry queue at commit.
- :func:`extract_hubspot`: deal search paged by timestamp and id past the 10,000-result cap, company
  and contact searches (in their own window, skipped between backstops when webhooks deliver them:
  :mod:`cosell_sync.polling`) mapped back to their deals, batch reads of deals of new opportunities and of
  retry-queue records. The values of objects that were not read are taken from the baseline: unchanged
  by definition. A search that cannot be read to the end raises (it never returns part of the window),
  so the run does not commit and the HubSpot watermark stays before every change not read.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson

from cosell_sync.common import (
    COLLABORATORS_PROPERTY,
    COMPANY,
    CONTACT,
    DEAL,
    HUBSPOT_OBJECTS,
    HubSpotObject,
    clean,
    json_default,
    parse_ts,
    ts_key,
)
from cosell_sync.deal_contacts import (
    CONTACT_COUNT_COLUMN,
    NUM_ASSOCIATED_CONTACTS,
    OTHER_CONTACT_IDS_COLUMN,
    OTHER_CONTACTS_COLUMN,
    PC_OTHER_CONTACTS_COLUMN,
    AssociatedContact,
    contact_members,
    order_contacts,
    other_contacts_of,
    other_contacts_request,
)
from cosell_sync.errors import NotFoundError, SyncError, UnknownOpportunitiesError
from cosell_sync.hubspot_api import HubSpotGateway
from cosell_sync.polling import related_poll
from cosell_sync.storage import run_key

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.config import SyncConfig
    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

#: Threads reading opportunities (``GetOpportunity``) in a full or incremental extract. The hook's limiter
#: paces them together, so more threads never mean more calls a second; a few keep the quota's slots
#: filled while an answer is on its way.
READ_THREADS = 4
#: ``GetOpportunity`` answers converted to frame rows at a time (and then dropped) by the extract.
FRAME_CHUNK = 1000

#: HubSpot deal properties every extract reads besides the mapped ones. The owner and the collaborators
#: (``hs_all_collaborator_owner_ids``) become a new opportunity's ``OpportunityTeam`` (``cosell_sync.team``).
DEAL_SYSTEM_PROPERTIES = (
    "hs_lastmodifieddate",
    "hubspot_owner_id",
    COLLABORATORS_PROPERTY,
    "pipeline",
    "dealstage",
)


def hubspot_properties(cfg: SyncConfig, obj: str) -> list[str]:
    """The HubSpot properties to read for one object type: the mapped ones plus what the sync needs.

    Args:
        cfg: the sync configuration.
        obj: ``deal``, ``company`` or ``contact``.

    Returns:
        Sorted property names.
    """
    props = {f.hubspot for f in cfg.fields if f.object == obj}
    props.add(HUBSPOT_OBJECTS[obj].modified_property)
    if obj == DEAL.name:
        props |= {
            cfg.link_property,
            cfg.cosell_property,
            cfg.submission.solution_ids_property,
            # Read with the deal at no extra call: the sync_tags step needs no read of a changed deal.
            cfg.tags.property,
            *DEAL_SYSTEM_PROPERTIES,
        }
        if cfg.owners.business_title_property:
            # The team's business title on create, read with the deal (no extra call).
            props.add(cfg.owners.business_title_property)
        if cfg.deal_contacts.send_all and any(f.object == CONTACT.name for f in cfg.fields):
            # HubSpot's count of the deal's contacts: tells when a linked deal's contacts changed.
            props.add(NUM_ASSOCIATED_CONTACTS)
    return sorted(props)


def window_filters(prop: str, since: str | None, until: str | None) -> list[dict[str, str]]:
    """HubSpot search filters for ``since <= prop < until`` (epoch milliseconds, as HubSpot compares)."""
    filters = []
    for operator, value in (("GTE", since), ("LT", until)):
        stamp = parse_ts(value)
        if stamp is not None:
            filters.append(
                {"propertyName": prop, "operator": operator, "value": str(int(stamp.timestamp() * 1000))}
            )
    return filters


# ---------------------------------------------------------------------------------------------------
def extract_partner_central(env: SyncEnv, run: dict[str, Any]) -> dict[str, Any]:
    """List opportunities changed in the window and ``GetOpportunity`` only those that really changed.

    A summary whose ``LastModifiedDate`` equals the baseline's was already synced (the overlap re-lists
    it); records in the retry queue are read again even when unchanged.

    Args:
        env: clients and stores.
        run: the run description from ``prepare``.

    Returns:
        ``key`` (the snapshot), ``listed``, ``read``, ``failures`` (one per record not read, with the
        typed error), ``unknown_ids`` (requested ``opportunity_ids`` that do not exist) and ``api_calls``.

    Raises:
        UnknownOpportunitiesError: the run was restricted to ``opportunity_ids`` and none exists.
    """
    import pandas as pd

    cfg, pc = env.config, env.partner_central
    calls: Counter[str] = Counter()
    base = env.baseline.load(columns=["pc_last_modified"])
    base_lm = base["pc_last_modified"].to_dict() if "pc_last_modified" in base.columns else {}
    listed = 0
    retry_items: list[dict[str, Any]] = []
    # GetOpportunity goes out on a few threads as soon as a listed page names a changed record: the
    # hook's limiter paces every thread together (one quota), and a slow answer no longer delays the
    # next read, so the reads keep to the quota instead of falling behind it. A restricted run (a few
    # ids) reads on one thread.
    pool = ThreadPoolExecutor(max_workers=1 if run["opportunity_ids"] else READ_THREADS)
    reads: dict[str, Future[dict[str, Any]]] = {}

    def read(oid: str) -> None:
        if oid not in reads:
            calls["GetOpportunity"] += 1
            reads[oid] = pool.submit(pc.call, "get_opportunity", Catalog=run["catalog"], Identifier=oid)

    try:
        if run["opportunity_ids"]:
            for oid in sorted(set(run["opportunity_ids"])):
                read(oid)
        else:
            kwargs: dict[str, Any] = {
                "Catalog": run["catalog"],
                "MaxResults": 100,
                "Sort": {"SortBy": "LastModifiedDate", "SortOrder": "ASCENDING"},
            }
            window: dict[str, Any] = {}
            if run["since_partner_central"]:
                window["AfterLastModifiedDate"] = parse_ts(run["since_partner_central"])
            if run["until"]:
                window["BeforeLastModifiedDate"] = parse_ts(run["until"])
            if window:
                kwargs["LastModifiedDate"] = window
            for page in pc.paginate("list_opportunities", **kwargs):
                calls["ListOpportunities"] += 1
                for summary in page.get("OpportunitySummaries", []):
                    listed += 1
                    oid = summary["Id"]
                    if base_lm.get(oid) == ts_key(summary.get("LastModifiedDate")):
                        continue
                    if (
                        oid in base_lm
                        and clean(base_lm[oid]) is None
                        and summary.get("CreatedDate") == summary.get("LastModifiedDate")
                    ):
                        # Made by a bulk job (its baseline has the values it sent, no timestamp) and
                        # untouched since: nothing to read. Its first change is read like any other.
                        continue
                    read(oid)
        retry_items = [r for r in env.retry.list() if r.get("opportunity_id")]
        for oid in sorted({r["opportunity_id"] for r in retry_items}):
            read(oid)

        # Answers are turned into frame rows a chunk at a time, in the order they were asked for (the order
        # the pool answers them), and each answer is dropped once converted: an initial load of 100,000
        # records never holds every GetOpportunity answer at once, only the frame and its ``_raw`` text.
        chunks: list[pd.DataFrame] = []
        opportunities: list[dict[str, Any]] = []
        read_count = 0
        failures: list[dict[str, Any]] = []
        requested = set(run["opportunity_ids"])
        unknown: list[str] = []
        for oid in list(reads):
            future = reads.pop(oid)
            try:
                opp = future.result()
            except SyncError as err:
                if oid in requested and isinstance(err, NotFoundError):
                    # A requested id that does not exist is a mistake in the run's params, not a failed
                    # read: it is reported (report.json), never queued to be read again every run.
                    log.warning("Requested opportunity %s does not exist in catalog %s", oid, run["catalog"])
                    unknown.append(oid)
                    continue
                log.error("GetOpportunity failed for %s: %s", oid, err.message)
                failures.append({"opportunity_id": oid, "error": err.to_dict()})
                continue
            opp.pop("ResponseMetadata", None)
            opportunities.append(opp)
            read_count += 1
            if len(opportunities) >= FRAME_CHUNK:
                chunks.append(_opportunity_rows(opportunities, cfg))
                opportunities = []
    finally:
        # On an error (a list page that failed, say) the reads not started yet are dropped.
        pool.shutdown(wait=True, cancel_futures=True)
    if requested and len(unknown) == len(requested):
        raise UnknownOpportunitiesError(
            f"none of the {len(requested)} requested opportunity id(s) exists in catalog {run['catalog']}: "
            f"{', '.join(unknown)}. Nothing was synced; check the run's opportunity_ids and catalog.",
            service="partner_central",
            code="ResourceNotFoundException",
        )
    if opportunities or not chunks:
        chunks.append(_opportunity_rows(opportunities, cfg))
    del opportunities
    frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks)
    del chunks
    key = run_key(run["catalog"], run["run_id"], "partner_central")
    env.snapshots.put_frame(frame, key)
    log.info(
        "Partner Central: %d listed, %d read (%d from the retry queue), %d failed reads",
        listed,
        read_count,
        len(retry_items),
        len(failures),
    )
    return {
        "key": key,
        "listed": listed,
        "read": read_count,
        "failures": failures,
        "unknown_ids": unknown,
        "api_calls": dict(calls),
    }


def _opportunity_rows(opportunities: list[dict[str, Any]], cfg: SyncConfig) -> pd.DataFrame:
    """Frame rows of some ``GetOpportunity`` answers, with their ``_raw`` JSON and ``_lm_key``."""
    from cosell_sync.mapping import opportunities_to_frame

    frame = opportunities_to_frame(opportunities, cfg)
    # orjson writes datetimes natively (ISO 8601, microseconds): 5x faster than json.dumps, the larger
    # part of this task's time on a 100k book; every reader json.loads the text and parses the timestamp.
    raw = {
        o["Id"]: orjson.dumps(
            o, default=json_default, option=orjson.OPT_SORT_KEYS | orjson.OPT_NAIVE_UTC
        ).decode()
        for o in opportunities
    }
    frame["_raw"] = frame.index.map(raw)
    frame["_lm_key"] = frame.index.map({o["Id"]: ts_key(o.get("LastModifiedDate")) for o in opportunities})
    # Customer.Contacts[1..] as read: plan compares them with the baseline's agreed values (an edit made
    # in Partner Central goes back to the HubSpot contact: cosell_sync.deal_contacts).
    members = contact_members(cfg)
    cells: dict[str, str | None] = {}
    for o in opportunities:
        # Most records have one contact: no work for them.
        many = len((o.get("Customer") or {}).get("Contacts") or []) > 1
        others = other_contacts_of(o, cfg, members) if many else []
        cells[o["Id"]] = json.dumps(others) if others else None
    frame[PC_OTHER_CONTACTS_COLUMN] = [cells.get(i) for i in frame.index]
    return frame


# ---------------------------------------------------------------------------------------------------
def extract_hubspot(env: SyncEnv, run: dict[str, Any], pc_result: dict[str, Any]) -> dict[str, Any]:
    """Read the HubSpot side of every record that changed on either side (see the module doc).

    Args:
        env: clients and stores.
        run: the run description from ``prepare``.
        pc_result: what :func:`extract_partner_central` returned (its snapshot key).

    Returns:
        ``key`` (linked records), ``new_key`` (co-sell deals without an opportunity), counts and
        ``api_calls``.

    Raises:
        SyncError: a search page could not be read, or a search could not be completed
            (:meth:`~cosell_sync.hubspot_api.HubSpotGateway.search`). Nothing is stored then: a partial
            window must not reach ``commit``, which would move the watermark past what was not read.
    """
    from cosell_sync.mapping import hubspot_to_frame

    cfg = env.config
    gw = HubSpotGateway(env.hubspot)
    link = cfg.link_property
    base = env.baseline.load()
    base_deal = base["deal_id"].dropna().to_dict() if "deal_id" in base.columns else {}
    deal_to_opp = {str(d): o for o, d in base_deal.items()}
    deal_props = hubspot_properties(cfg, DEAL.name)
    deals: dict[str, dict[str, Any]] = {}

    if run["opportunity_ids"]:
        found, _ = gw.batch_read(DEAL.plural, run["opportunity_ids"], deal_props, id_property=link)
        deals.update({d["id"]: d for d in found})
    else:
        window = window_filters(DEAL.modified_property, run["since_hubspot"], run["until"])
        groups = [
            {"filters": [*window, {"propertyName": link, "operator": "HAS_PROPERTY"}]},
            {"filters": [*window, {"propertyName": cfg.cosell_property, "operator": "EQ", "value": "true"}]},
        ]
        for deal in gw.search(DEAL.plural, groups, deal_props, DEAL.modified_property):
            deals[deal["id"]] = deal

    # Opportunities that changed but whose deal we don't know yet (new, or linked by hand).
    pc_frame = env.snapshots.get_frame(pc_result["key"], columns=["_lm_key"])
    linked_now = {d["properties"].get(link) for d in deals.values()}
    unknown = [o for o in pc_frame.index if o not in base_deal and o not in linked_now]
    if unknown:
        found, _ = gw.batch_read(DEAL.plural, unknown, deal_props, id_property=link)
        deals.update({d["id"]: d for d in found})
    # Records in the retry queue (failed or deferred last time): read their deals again, because a
    # HubSpot change that could not be applied must not be mistaken for "unchanged since the baseline".
    retry_deals: set[str] = set()
    for item in env.retry.list():
        deal_id = item.get("deal_id") or base_deal.get(item.get("opportunity_id"))
        if deal_id and str(deal_id) not in deals:
            retry_deals.add(str(deal_id))
    if retry_deals:
        found, _ = gw.batch_read(DEAL.plural, retry_deals, deal_props)
        deals.update({d["id"]: d for d in found})

    others_changed: set[str] = set()
    related, related_deals = _changed_companies_and_contacts(
        env, gw, run, base, base_deal, deal_to_opp, deals, list(pc_frame.index), others_changed
    )
    other_contacts: dict[str, list[str]] = {}
    _related_of_new_links(cfg, gw, deals, base_deal, related, related_deals, other_contacts)

    # Split deals: linked ones go into the record frame; unlinked co-sell deals become new opportunities.
    linked = [d for d in deals.values() if d["properties"].get(link)]
    unlinked = [
        d
        for d in deals.values()
        if not d["properties"].get(link)
        and str(d["properties"].get(cfg.cosell_property, "")).lower() == "true"
    ]
    # Deals touched only through a company/contact change: stand-ins carrying just the link.
    stubs: set[str] = set()
    for deal_id in [*related_deals[COMPANY.name], *related_deals[CONTACT.name], *sorted(others_changed)]:
        if deal_id not in deals and deal_id in deal_to_opp:
            deals[deal_id] = {"id": deal_id, "properties": {link: deal_to_opp[deal_id]}}
            stubs.add(deal_id)
            linked.append(deals[deal_id])
    companies = dict(related[COMPANY.name])
    contacts = dict(related[CONTACT.name])
    frame = hubspot_to_frame(
        linked, companies, contacts, related_deals[COMPANY.name], related_deals[CONTACT.name], cfg
    )
    frame = fill_unread_from_baseline(
        frame,
        base,
        cfg,
        read={
            DEAL.name: {d["id"] for d in linked if d["id"] not in stubs},
            COMPANY.name: set(companies),
            CONTACT.name: set(contacts),
        },
    )
    new_frame = hubspot_to_frame(
        [{**d, "properties": {**d["properties"], link: f"new:{d['id']}"}} for d in unlinked],
        companies,
        contacts,
        related_deals[COMPANY.name],
        related_deals[CONTACT.name],
        cfg,
    )
    _add_other_contacts(new_frame, other_contacts, contacts, cfg)
    _add_contact_counts(new_frame, unlinked, other_contacts)
    if cfg.deal_contacts.send_all and any(f.object == CONTACT.name for f in cfg.fields):
        _other_contacts_of_linked(cfg, gw, frame, base, linked, stubs, others_changed, contacts)
    key = run_key(run["catalog"], run["run_id"], "hubspot")
    new_key = run_key(run["catalog"], run["run_id"], "hubspot_new")
    env.snapshots.put_frame(frame, key)
    env.snapshots.put_frame(new_frame, new_key)
    log.info(
        "HubSpot: %d linked deals changed, %d new co-sell deals, %d companies and %d contacts "
        "changed; %d API calls",
        len(frame),
        len(new_frame),
        len(companies),
        len(contacts),
        gw.total_calls,
    )
    return {
        "key": key,
        "new_key": new_key,
        "deals": len(frame),
        "new_deals": len(new_frame),
        "api_calls": dict(gw.calls),
    }


def _changed_companies_and_contacts(
    env: SyncEnv,
    gw: HubSpotGateway,
    run: dict[str, Any],
    base: pd.DataFrame,
    base_deal: dict[str, Any],
    deal_to_opp: dict[str, str],
    deals: dict[str, dict[str, Any]],
    pc_changed: list[str] | None = None,
    others_changed: set[str] | None = None,
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, str]]]:
    """Companies and contacts changed in the window, and the deals (of synced records) they belong to.

    ``others_changed`` gets the linked deals one of whose *other* contacts (``Customer.Contacts[1..]``,
    ``cosell_sync.deal_contacts``) changed in the window: their contacts are read again.

    Between backstop searches (``webhooks.enabled``), the companies and contacts of the records Partner
    Central changed (``pc_changed``) are read by id instead: the run may write them, and a HubSpot edit
    whose webhook was lost must show as a change (a conflict), never be overwritten as "unchanged".
    """
    cfg = env.config
    related: dict[str, dict[str, dict[str, Any]]] = {COMPANY.name: {}, CONTACT.name: {}}
    related_deals: dict[str, dict[str, str]] = {COMPANY.name: {}, CONTACT.name: {}}
    if run["opportunity_ids"]:
        # A restricted run searches nothing; a cosell_events run for HubSpot webhooks reads the companies
        # and contacts its events named (``hubspot_related``: object -> {id: [deal ids]}), since the
        # baseline would otherwise stand in for them as "unchanged".
        for spec in (COMPANY, CONTACT):
            named = (run.get("hubspot_related") or {}).get(spec.name) or {}
            if not named or not any(f.object == spec.name for f in cfg.fields):
                continue
            found, _ = gw.batch_read(spec.plural, list(named), hubspot_properties(cfg, spec.name))
            synced = _synced_ids(base, base_deal, spec)
            for obj in found:
                for deal_id in named.get(str(obj["id"]), []):
                    if synced.get(deal_id, str(obj["id"])) != str(obj["id"]):
                        continue  # another company/contact of the deal, not the one synced
                    if deal_id in deal_to_opp or deal_id in deals:
                        related[spec.name][obj["id"]] = obj
                        related_deals[spec.name][deal_id] = obj["id"]
        return related, related_deals
    # Their own window (cosell_sync.polling): with webhooks on, searched only every backstop_minutes, from
    # where the last search started; the deal window would skip a change whose webhook never came.
    poll, since = related_poll(run)
    if not poll:
        log.info("Companies and contacts not searched: %s", run["polling"]["companies_contacts"]["reason"])
        for spec in (COMPANY, CONTACT):
            if not any(f.object == spec.name for f in cfg.fields) or spec.baseline_column not in base.columns:
                continue
            owners: dict[str, list[str]] = {}
            for opp_id in pc_changed or []:
                rid = clean(base[spec.baseline_column].get(opp_id))
                if rid is not None and opp_id in base_deal:
                    owners.setdefault(rid, []).append(str(base_deal[opp_id]))
            if not owners:
                continue
            found, _ = gw.batch_read(spec.plural, list(owners), hubspot_properties(cfg, spec.name))
            for obj in found:
                for deal_id in owners.get(str(obj["id"]), []):
                    related[spec.name][obj["id"]] = obj
                    related_deals[spec.name][deal_id] = obj["id"]
        return related, related_deals
    if not since:
        return related, related_deals
    for spec in (COMPANY, CONTACT):
        if not any(f.object == spec.name for f in cfg.fields):
            continue
        window = window_filters(spec.modified_property, since, run["until"])
        found = gw.search(
            spec.plural, [{"filters": window}], hubspot_properties(cfg, spec.name), spec.modified_property
        )
        changed = {o["id"]: o for o in found}
        if not changed:
            continue
        # The baseline knows which deal each synced company/contact belongs to; ask HubSpot's
        # associations only for the ones it does not know (saves a call per 100 after large writes).
        known: dict[str, list[str]] = {}
        if spec.baseline_column in base.columns:
            for opp_id, rid in base[spec.baseline_column].dropna().items():
                if str(rid) in changed and opp_id in base_deal:
                    known.setdefault(str(rid), []).append(str(base_deal[opp_id]))
        if spec is CONTACT and "other_contact_ids" in base.columns and spec.baseline_column in base.columns:
            # The other contacts each record last sent: their deals are known without a call too (only
            # behind a known primary, which an other contact's change must never replace).
            for opp_id, ids in base["other_contact_ids"].dropna().items():
                if opp_id not in base_deal or clean(base.at[opp_id, spec.baseline_column]) is None:
                    continue
                for rid in str(ids).split(";"):
                    if rid in changed:
                        known.setdefault(rid, []).append(str(base_deal[opp_id]))
        unknown_ids = [rid for rid in changed if rid not in known]
        owners = {**known, **(gw.associations(spec.plural, DEAL.plural, unknown_ids) if unknown_ids else {})}
        synced = _synced_ids(base, base_deal, spec)
        for oid, deal_ids in owners.items():
            for deal_id in deal_ids:
                if synced.get(deal_id, oid) != oid:
                    # Another company/contact of a deal whose synced one (the primary, Contacts[0]) is
                    # known: its change is not the record's, and must not take the primary's place. An
                    # other contact of a linked deal is sent in Customer.Contacts[1..]: read them again.
                    if spec is CONTACT and others_changed is not None and deal_id in deal_to_opp:
                        others_changed.add(deal_id)
                    continue
                if deal_id in deal_to_opp or deal_id in deals:
                    related[spec.name][oid] = changed[oid]
                    related_deals[spec.name][deal_id] = oid
    return related, related_deals


def _synced_ids(base: pd.DataFrame, base_deal: dict[str, Any], spec: HubSpotObject) -> dict[str, str]:
    """Deal id -> the id of the company/contact its record syncs (the baseline's), where known."""
    if spec.baseline_column not in base.columns:
        return {}
    return {
        str(base_deal[opp_id]): str(rid)
        for opp_id, rid in base[spec.baseline_column].dropna().items()
        if opp_id in base_deal and clean(rid) is not None
    }


def _related_of_new_links(
    cfg: SyncConfig,
    gw: HubSpotGateway,
    deals: dict[str, dict[str, Any]],
    base_deal: dict[str, Any],
    related: dict[str, dict[str, dict[str, Any]]],
    related_deals: dict[str, dict[str, str]],
    other_contacts: dict[str, list[str]],
) -> None:
    """Deals read in full that have no baseline need their company and contact too (filled in place).

    ``other_contacts`` gets, per deal, its contacts after the primary (``cosell_sync.deal_contacts``),
    in order, at most ``deal_contacts.max_contacts - 1`` of them.
    """
    link = cfg.link_property
    new_links = [
        d
        for d, deal in deals.items()
        if not deal["properties"].get(link) or deal["properties"][link] not in base_deal
    ]
    if not new_links:
        return
    for spec in (COMPANY, CONTACT):
        if not any(f.object == spec.name for f in cfg.fields):
            continue
        wanted: set[str] = set()
        if spec is CONTACT:
            # The same v4 batch read, with labels: the primary contact (deal_contacts.primary_label, else
            # the lowest id) and, with send_all, the others for Customer.Contacts[1..] of the create.
            labelled = gw.labelled_associations(DEAL.plural, spec.plural, new_links)
            ordered = {
                d: order_contacts(
                    [AssociatedContact(cid, labels) for cid, labels in targets],
                    cfg.deal_contacts.primary_label,
                )
                for d, targets in labelled.items()
            }
            first = {d: ids[0] for d, ids in ordered.items() if ids}
            if cfg.deal_contacts.send_all:
                others = {d: ids[1 : cfg.deal_contacts.max_contacts] for d, ids in ordered.items() if ids[1:]}
                other_contacts.update(others)
                wanted = {i for ids in others.values() for i in ids}
        else:
            assoc = gw.associations(DEAL.plural, spec.plural, new_links)
            first = {d: ids[0] for d, ids in assoc.items() if ids}
        # One batch read (100 per call) for the primaries and the others together.
        missing = [i for i in set(first.values()) | wanted if i not in related[spec.name]]
        if missing:
            found, _ = gw.batch_read(spec.plural, missing, hubspot_properties(cfg, spec.name))
            related[spec.name].update({o["id"]: o for o in found})
        related_deals[spec.name].update(first)


def _add_other_contacts(
    frame: pd.DataFrame,
    other_contacts: dict[str, list[str]],
    contacts: dict[str, dict[str, Any]],
    cfg: SyncConfig,
) -> None:
    """Add the new deals' other contacts (JSON, ready for ``Customer.Contacts[1..]``) to ``frame``.

    Only creates carry them: an existing opportunity's ``Customer.Contacts[1..]`` are Partner Central's
    and every update keeps them (``cosell_sync.deal_contacts``). A contact left out is a warning on the
    run's log naming the deal, the field and the rule, never the value.
    """
    if frame.empty:
        return
    email_field = contact_members(cfg).get("Email")
    cells: list[str | None] = []
    for oid in frame.index:
        deal_id = str(frame.at[oid, DEAL.frame_column])
        ids = other_contacts.get(deal_id) or []
        primary_email = clean(frame.at[oid, email_field.name]) if email_field is not None else None
        built = other_contacts_request(
            [contacts[i] for i in ids if i in contacts], cfg, primary_email=primary_email
        )
        for warning in built.warnings:
            log.warning("Deal %s: %s", deal_id, warning)
        cells.append(json.dumps(built.contacts) if built.contacts else None)
    frame[OTHER_CONTACTS_COLUMN] = cells


def _add_contact_counts(
    frame: pd.DataFrame, deals: list[dict[str, Any]], other_contacts: dict[str, list[str]]
) -> None:
    """New deals: the count and the other contacts read with them, for the new record's baseline."""
    if frame.empty:
        return
    counts = {d["id"]: clean(d["properties"].get(NUM_ASSOCIATED_CONTACTS)) for d in deals}
    deal_ids = frame[DEAL.frame_column].astype(str)
    frame[CONTACT_COUNT_COLUMN] = [counts.get(d) for d in deal_ids]
    frame[OTHER_CONTACT_IDS_COLUMN] = [";".join(other_contacts.get(d) or []) or None for d in deal_ids]


def _other_contacts_of_linked(
    cfg: SyncConfig,
    gw: HubSpotGateway,
    frame: pd.DataFrame,
    base: pd.DataFrame,
    linked: list[dict[str, Any]],
    stubs: set[str],
    others_changed: set[str],
    contacts: dict[str, dict[str, Any]],
) -> None:
    """Read the contacts of linked deals where they can have changed; add them to ``frame`` in place.

    A linked deal's contacts are read again (one v4 batch read per 100 deals, then the other contacts not
    read yet, 100 per call) when its ``num_associated_contacts`` differs from the baseline's
    ``contact_count`` (a contact was added or removed; no count on record counts as a change), or when
    one of its other contacts changed in the window (``others_changed``). Those rows get
    ``_other_contacts`` (JSON, ``[]`` for none: the opportunity's are removed), ``_other_contact_ids``
    and ``_contact_count``; the other rows leave them empty, and their opportunities keep theirs.
    """
    if frame.empty:
        return
    counts = base["contact_count"].to_dict() if "contact_count" in base.columns else {}
    deal_col = frame[DEAL.frame_column].astype(str)
    opp_of = dict(zip(deal_col, frame.index, strict=True))
    read_counts: dict[str, str | None] = {}
    due: set[str] = set()
    for deal in linked:
        deal_id = str(deal["id"])
        oid = opp_of.get(deal_id)
        if oid is None:
            continue
        if deal_id in others_changed:
            due.add(deal_id)
        if deal_id in stubs:
            continue
        count = clean(deal["properties"].get(NUM_ASSOCIATED_CONTACTS))
        read_counts[deal_id] = count
        if count is not None and oid in base.index and count != clean(counts.get(oid)):
            due.add(deal_id)
    frame[CONTACT_COUNT_COLUMN] = [read_counts.get(d) for d in deal_col]
    if not due:
        return
    labelled = gw.labelled_associations(DEAL.plural, CONTACT.plural, sorted(due))
    # The record's synced contact: this run's read, else the baseline's.
    synced = _synced_ids(
        base, base["deal_id"].dropna().to_dict() if "deal_id" in base.columns else {}, CONTACT
    )
    primary_of = {
        d: (
            clean(frame.at[opp_of[d], CONTACT.frame_column])
            if CONTACT.frame_column in frame.columns
            else None
        )
        or synced.get(d)
        for d in due
    }
    others: dict[str, list[str]] = {}
    for deal_id in due:
        ordered = order_contacts(
            [AssociatedContact(cid, labels) for cid, labels in labelled.get(deal_id, [])],
            cfg.deal_contacts.primary_label,
        )
        # The record's synced contact stays Contacts[0] (a new primary is not this step's change).
        primary = primary_of[deal_id] or (ordered[0] if ordered else None)
        others[deal_id] = [i for i in ordered if i != primary][: max(cfg.deal_contacts.max_contacts - 1, 0)]
    missing = sorted({i for ids in others.values() for i in ids if i not in contacts})
    if missing:
        found, _ = gw.batch_read(CONTACT.plural, missing, hubspot_properties(cfg, CONTACT.name))
        contacts = {**contacts, **{str(o["id"]): o for o in found}}
    email_field = contact_members(cfg).get("Email")
    cells: list[str | None] = []
    ids_cells: list[str | None] = []
    for oid, deal_id in zip(frame.index, deal_col, strict=True):
        if deal_id not in due:
            cells.append(None)
            ids_cells.append(None)
            continue
        primary_email = (
            clean(frame.at[oid, email_field.name])
            if email_field is not None and email_field.name in frame.columns
            else None
        )
        built = other_contacts_request(
            [contacts[i] for i in others[deal_id] if i in contacts], cfg, primary_email=primary_email
        )
        for warning in built.warnings:
            log.warning("Deal %s: %s", deal_id, warning)
        cells.append(json.dumps(built.contacts))
        ids_cells.append(";".join(others[deal_id]) or None)
    frame[OTHER_CONTACTS_COLUMN] = cells
    frame[OTHER_CONTACT_IDS_COLUMN] = ids_cells
    log.info("Contacts of %d linked deals read again (added, removed or changed)", len(due))


def fill_unread_from_baseline(
    frame: pd.DataFrame, base: pd.DataFrame, cfg: SyncConfig, *, read: dict[str, set[str]]
) -> pd.DataFrame:
    """Replace the columns of objects that were not read with the baseline's (they did not change).

    Args:
        frame: the HubSpot extract frame (indexed by opportunity id).
        base: the baseline.
        cfg: the sync configuration.
        read: object name -> ids of the objects of that type this run really read.

    Returns:
        A new frame (or ``frame`` itself when nothing needed filling).
    """
    if frame.empty or base.empty:
        return frame
    known = frame.index.intersection(base.index)
    if known.empty:
        return frame
    frame = frame.copy()
    for obj, spec in HUBSPOT_OBJECTS.items():
        cols = [
            f.name
            for f in cfg.fields
            if f.object == obj and f.name in base.columns and f.name in frame.columns
        ]
        if not cols:
            continue
        ids = frame.loc[known, spec.frame_column] if spec.frame_column in frame.columns else None
        unread = known if ids is None else known[~ids.astype(str).isin(read.get(obj, set())).to_numpy()]
        if len(unread):
            frame.loc[unread, cols] = base.loc[unread, cols].to_numpy()
    return frame
