"""A deal's line items of solution products are its opportunity's associated solutions, both ways.

The ``sync_solutions`` step of ``cosell_reconcile`` (after ``commit``). Products mirror partner solutions
(``cosell_catalog``, :mod:`cosell_sync.catalog`); a line item of such a product on a linked deal stands for
the solution's association with the deal's opportunity:

- a line item added in HubSpot -> ``AssociateOpportunity`` (``RelatedEntityType`` ``Solutions``; at most 10
  solutions an opportunity, and only ``Active`` ones: both checked before any call);
- a line item removed in HubSpot -> ``DisassociateOpportunity``;
- a solution associated in Partner Central -> a line item (quantity 1, price ``products.prices`` or 0)
  created on the deal with its association (type 20, line item to deal);
- a solution disassociated in Partner Central -> its line items on the deal archived.

The rule is the project's three-way diff, per solution, against the set both systems last agreed on
(kept in ``state/{catalog}/solutions.parquet``): a side whose membership differs from the last agreed set
changed, and its change goes to the other side. Per solution only one side can differ from the agreed
value when the two disagree, so changes on both sides (HubSpot adds one solution while AWS removes another)
are both kept, never overwritten. What Partner Central refuses (the 10-solution limit, an inactive or
withdrawn solution, the last solution of a ``Committed`` opportunity) is not applied: the deal gets the
reason in ``aws_sync_error``, the audit a failed entry, and the agreed set keeps that solution's old
membership, so the next run tries again until someone changes one side.

Reads, all batched: the Partner Central side comes from the ``GetOpportunity`` records the extract read this
run (an association moves ``LastModifiedDate``, so a changed set is always read), else from the state; an
opportunity never seen costs one ``GetOpportunity`` (``products.reads_per_run`` a run) when its deal has
solution line items, else it is read at a full refresh. A record is read again just before an association is
sent (the extract's copy predates the run's own writes). The HubSpot side is
compared for the deals in scope: deals of opportunities read this run, deals changed in HubSpot, deals of
line items modified since the last check (one line item search), deals with solution line items (so a
removal is seen) and, every ``insights.full_refresh_hours`` and in ``full`` runs, every linked deal. Only
the deals whose line items can have changed are read (those of the search, those with solution line items,
those the state has not read yet, and every deal at a full refresh); the others keep the line items the
state holds, so a deal edited in HubSpot or an opportunity changed in Partner Central costs no HubSpot read
here. Reads are v4 batch reads of deal -> line items (100 deals a call), line items read in batch only when
new, their ``hs_product_id`` mapped to solutions by the catalog state (products read in batch only when
unknown). A line item moved to another deal by its association alone (no edit of the line item) is seen
at the next full refresh.

AWS products and Marketplace offers (and offer sets) associated with an opportunity are written to the deal
properties ``aws_related_aws_products`` and ``aws_related_marketplace_offers`` when they change (read-only
mirrors; they come with the records the extract read, at no extra call).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cosell_sync.catalog import PRODUCTS, SOLUTION_ID_PROPERTY, load_product_map
from cosell_sync.common import DEAL, AuditAction, Direction, clean, parse_ts
from cosell_sync.errors import NotFoundError, SyncError, merge_step_error
from cosell_sync.storage import StepState, run_key

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.env import SyncEnv
    from cosell_sync.hubspot_api import HubSpotGateway

log = logging.getLogger(__name__)

LINE_ITEMS = "line_items"
#: HUBSPOT_DEFINED association type: line item -> deal.
LINE_ITEM_TO_DEAL = 20
#: Partner Central accepts at most this many associated solutions per opportunity.
MAX_SOLUTIONS = 10
AWS_PRODUCTS_PROPERTY = "aws_related_aws_products"
OFFERS_PROPERTY = "aws_related_marketplace_offers"
SYNC_ERROR_PROPERTY = "aws_sync_error"
#: Every line this step writes to ``aws_sync_error`` starts so (other steps' lines are kept).
ERROR_PREFIX = "solutions: "
DISASSOCIATE_OPPORTUNITY = "DISASSOCIATE_OPPORTUNITY"
CREATE_LINE_ITEM = "CREATE_LINE_ITEM"
ARCHIVE_LINE_ITEM = "ARCHIVE_LINE_ITEM"
STATE_NAME = "solutions"
STATE_COLUMNS = ["deal_id", "base", "pc", "line_items", "aws_products", "offers", "error"]


# -- pure rules ------------------------------------------------------------------------------------------
def three_way(hs: set[str], pc: set[str], base: set[str]) -> dict[str, set[str]]:
    """What each side must do so both hold the same solutions, per solution against the agreed set.

    Args:
        hs: solutions of the deal's line items now.
        pc: solutions associated with the opportunity now.
        base: the set both last agreed on (empty when never synced: both sides' solutions are kept).

    Returns:
        ``associate`` / ``disassociate`` (HubSpot's changes, for Partner Central) and ``add_line_items`` /
        ``remove_line_items`` (Partner Central's changes, for HubSpot).
    """
    return {
        "associate": {s for s in hs - pc if s not in base},
        "disassociate": {s for s in pc - hs if s in base},
        "add_line_items": {s for s in pc - hs if s not in base},
        "remove_line_items": {s for s in hs - pc if s in base},
    }


def agreed(hs: set[str], pc: set[str], base: set[str]) -> set[str]:
    """The new agreed set: where the sides agree, their value; where not, the old agreed membership."""
    return {s for s in hs | pc | base if (s in hs and s in pc) or ((s in hs) != (s in pc) and s in base)}


def related_entities(opportunity: dict[str, Any]) -> dict[str, Any]:
    """The solutions, AWS products and Marketplace offers of a ``GetOpportunity`` record."""
    related = opportunity.get("RelatedEntityIdentifiers") or {}
    offers = [*(related.get("AwsMarketplaceOffers") or []), *(related.get("AwsMarketplaceOfferSets") or [])]
    return {
        "solutions": sorted(set(related.get("Solutions") or [])),
        "aws_products": ";".join(related.get("AwsProducts") or []),
        "offers": ";".join(offers),
    }


# -- HubSpot reads -----------------------------------------------------------------------------------------
def solutions_of_products(env: SyncEnv, gw: HubSpotGateway, product_ids: set[str]) -> dict[str, str | None]:
    """Product id -> solution id (None: not a solution product): the catalog state, else a batch read."""
    known = load_product_map(env, env.catalog)
    out: dict[str, str | None] = {p: known.get(p) for p in product_ids}
    unknown = [p for p, s in out.items() if s is None]
    if unknown:
        found, _ = gw.batch_read(PRODUCTS, unknown, [SOLUTION_ID_PROPERTY])
        for obj in found:
            out[str(obj["id"])] = clean((obj.get("properties") or {}).get(SOLUTION_ID_PROPERTY))
    return out


def deal_line_items(
    env: SyncEnv, gw: HubSpotGateway, deal_ids: set[str], known: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Each deal's line items -> their solution id (``""``: a line item of another product).

    Args:
        env: clients and stores.
        gw: the counted HubSpot gateway.
        deal_ids: the deals to read (v4 batch read, 100 a call).
        known: line item id -> solution id already known (from the state): those are not read again.

    Returns:
        deal id -> {line item id: solution id or ""}; a deal without line items maps to ``{}``.
    """
    known = dict(known or {})
    assoc = gw.associations(DEAL.plural, LINE_ITEMS, deal_ids) if deal_ids else {}
    new = sorted({li for items in assoc.values() for li in items if li not in known})
    if new:
        found, _ = gw.batch_read(LINE_ITEMS, new, ["hs_product_id"])
        products = {str(o["id"]): clean((o.get("properties") or {}).get("hs_product_id")) for o in found}
        solutions = solutions_of_products(env, gw, {p for p in products.values() if p})
        for li in new:
            pid = products.get(li)
            known[li] = (solutions.get(pid) if pid else None) or ""
    return {d: {li: known.get(li, "") for li in assoc.get(d, [])} for d in deal_ids}


def line_item_solution_ids(env: SyncEnv, deal_ids: set[str], calls: Counter[str]) -> dict[str, list[str]]:
    """The solutions of each deal's line items (for submissions: they win over ``aws_solution_ids``).

    Args:
        env: clients and stores.
        deal_ids: the deals about to be submitted.
        calls: counter the HubSpot calls are added to.

    Returns:
        deal id -> solution ids, sorted; deals without solution line items are absent.
    """
    from cosell_sync.hubspot_api import HubSpotGateway

    if not deal_ids:
        return {}
    gw = HubSpotGateway(env.hubspot)
    try:
        items = deal_line_items(env, gw, set(deal_ids))
    finally:
        calls.update(gw.calls)
    return {d: sorted({s for s in lis.values() if s}) for d, lis in items.items() if any(lis.values())}


# -- the step ------------------------------------------------------------------------------------------------
def _rows(frame: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    if frame is None or not len(frame):
        return {}
    out = {}
    for oid, row in frame.to_dict(orient="index").items():
        values = {c: clean(row.get(c)) for c in STATE_COLUMNS}
        for col in ("base", "pc", "line_items"):
            values[col] = json.loads(values[col]) if values[col] else None
        out[str(oid)] = values
    return out


def _frame(rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    data = {
        o: {
            **{c: row.get(c) for c in STATE_COLUMNS},
            **{
                c: json.dumps(row[c], sort_keys=True) if row.get(c) is not None else None
                for c in ("base", "pc", "line_items")
            },
        }
        for o, row in rows.items()
    }
    frame = pd.DataFrame.from_dict(data, orient="index", columns=STATE_COLUMNS).astype(object)
    frame.index.name = "opportunity_id"
    return frame


def _links(env: SyncEnv) -> dict[str, str]:
    """Opportunity -> deal, from the baseline."""
    try:
        base = env.baseline.load(columns=["deal_id"])
    except NotFoundError:
        return {}
    return {str(o): str(d) for o, d in base["deal_id"].items() if clean(d) is not None}


def _written_this_run(env: SyncEnv, run_id: str) -> set[str]:
    """Opportunities whose baseline row this run committed (the baseline keeps each row's last run)."""
    if not run_id:
        return set()
    try:
        base = env.baseline.load(columns=["run_id"])
    except NotFoundError:
        return set()
    return {str(o) for o, r in base["run_id"].items() if str(r) == run_id}


def _read_this_run(env: SyncEnv, pc: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The related entities of the opportunities the extract read this run."""
    if not pc or not pc.get("key") or not pc.get("read"):
        return {}
    frame = env.snapshots.get_frame(pc["key"], columns=["_raw"])
    out = {}
    for oid, raw in frame["_raw"].items():
        if clean(raw):
            try:
                out[str(oid)] = related_entities(json.loads(raw))
            except (TypeError, ValueError):
                continue
    return out


def _changed_in_hubspot(env: SyncEnv, hs: dict[str, Any] | None) -> set[str]:
    if not hs or not hs.get("key") or not hs.get("deals"):
        return set()
    return {str(o) for o in env.snapshots.get_frame(hs["key"], columns=["_deal_id"]).index}


def _recent_line_item_deals(gw: HubSpotGateway, since: datetime) -> set[str]:
    """Deals of line items modified since ``since`` (one search, then a v4 association read)."""
    ms = int(since.timestamp() * 1000)
    groups = [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(ms)}]}]
    ids = {str(o["id"]) for o in gw.search(LINE_ITEMS, groups, ["hs_product_id"], "hs_lastmodifieddate")}
    if not ids:
        return set()
    return {d for deals in gw.associations(LINE_ITEMS, DEAL.plural, ids).values() for d in deals}


def merge_error(current: str | None, lines: list[str]) -> str:
    """The deal's ``aws_sync_error`` with this step's lines replaced (other steps' lines kept)."""
    return merge_step_error(current, ERROR_PREFIX, lines)


class _Step:
    """One run of the step: clients, counters, audit entries and per-record errors."""

    def __init__(self, env: SyncEnv, run: dict[str, Any]) -> None:
        from cosell_sync.hubspot_api import HubSpotGateway

        self.env = env
        self.run = run
        self.gw = HubSpotGateway(env.hubspot)
        self.calls: Counter[str] = Counter()
        self.audit: list[dict[str, Any]] = []
        self.errors: dict[str, list[str]] = {}

    def pc_call(self, op: str, method: str, **kwargs: Any) -> dict[str, Any]:
        self.calls[op] += 1
        return self.env.partner_central.call(method, **kwargs)

    def fail(self, oid: str, sid: str, code: str, message: str) -> None:
        log.error("Solution %s of opportunity %s not synced: %s", sid, oid, message)
        self.errors.setdefault(oid, []).append(f"{code}: {sid}: {message}"[:300])


def sync_solutions(
    env: SyncEnv, run: dict[str, Any], pc: dict[str, Any] | None = None, hs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Line items and associated solutions in step, both ways (see the module doc).

    Args:
        env: clients and stores.
        run: the run description.
        pc: the Partner Central extract's result (records read this run).
        hs: the HubSpot extract's result (deals changed this run).

    Returns:
        Counts, ``key`` (the stored result) and ``api_calls``; or ``skipped`` with the reason.
    """
    if run.get("dry_run"):
        return {"skipped": "dry run"}
    if not env.config.products.enabled:
        return {"skipped": "products.enabled is false"}
    catalog = run["catalog"]
    direction = run.get("direction")
    to_pc = direction != Direction.TO_HUBSPOT.value
    to_hs = direction != Direction.TO_PARTNER_CENTRAL.value
    step = _Step(env, run)
    state = StepState(env.snapshots, catalog, STATE_NAME)
    previous, meta = state.load()
    rows = _rows(previous)
    links = _links(env)
    rows = {o: r for o, r in rows.items() if o in links}
    by_deal = {d: o for o, d in links.items()}
    now = datetime.now(UTC)
    last_full = parse_ts(meta["last_full_refresh"]) if meta.get("last_full_refresh") else None
    checked = parse_ts(meta["checked_at"]) if meta.get("checked_at") else None
    catalog_rows = _catalog_rows(env, catalog)
    # The solutions that have a live product: when cosell_catalog made new ones, associations that were
    # waiting for a product get their line items in this run, not at the next periodic refresh.
    live = sorted(s for s, r in catalog_rows.items() if r.get("product_id") and r.get("archived") != "true")
    # A run restricted to some opportunities (an event run, opportunity_ids) compares only those and moves
    # no checkpoint: a line item changed on another deal meanwhile is found by the next scheduled run.
    restricted = set(run.get("opportunity_ids") or []) & set(links)
    full = not run.get("opportunity_ids") and (
        previous is None
        or run.get("mode") == "full"
        or meta.get("catalog_live") != live
        or last_full is None
        or checked is None
        or now - last_full >= timedelta(hours=env.config.insights.full_refresh_hours)
    )
    read_now = {o: v for o, v in _read_this_run(env, pc).items() if o in links}
    # The deals whose line items are read this run (v4 batch reads); for the rest of the scope the state's
    # line items stand (see below).
    read_hs: set[str] | None = None
    if run.get("opportunity_ids"):
        scope = restricted
    elif full:
        scope = set(links)
    else:
        since = (checked or now) - timedelta(minutes=env.config.overlap_minutes)
        # Without a live solution product no line item can stand for a solution: no search (a run with
        # nothing changed then costs no call here; with products it costs this one search).
        recent = (
            {by_deal[d] for d in _recent_line_item_deals(step.gw, since) if d in by_deal} if live else set()
        )
        # Deals with solution line items (a removal shows only there) and failures.
        kept = {o for o, r in rows.items() if any((r.get("line_items") or {}).values()) or r.get("error")}
        scope = (set(read_now) | (_changed_in_hubspot(env, hs) & set(links)) | recent | kept) & set(links)
        # A deal's line items change in HubSpot only by a line item added or edited (the search above finds
        # it: ``recent``) or removed (only deals that had solution line items can lose one: ``kept``). Every
        # other deal in scope (changed on either side, but not in its line items) keeps the line items the
        # state holds, at no call: reading them cost a v4 batch read per 100 changed deals. Deals the state
        # has not read yet are read; the periodic full refresh reads every deal.
        unread = {o for o in scope if (rows.get(o) or {}).get("line_items") is None}
        read_hs = (recent | kept | unread) & scope

    # HubSpot's side first: each deal's line items (new ones read), mapped to solutions.
    known_items = {li: s for r in rows.values() for li, s in (r.get("line_items") or {}).items()}
    to_read = scope if read_hs is None else read_hs
    items = deal_line_items(env, step.gw, {links[o] for o in to_read}, known_items)
    for oid in scope - to_read:
        items[links[oid]] = dict(rows[oid]["line_items"])

    # Partner Central's side: this run's reads, else the state. A record never seen is read (budgeted,
    # products.reads_per_run) when its deal has solution line items to send, else only at a full refresh:
    # a record changed in Partner Central is read by the extract anyway (an association moves
    # LastModifiedDate), so what waits is only associations made when it was created.
    pc_sets: dict[str, dict[str, Any]] = {}
    unseen = []
    for oid in sorted(scope):
        if oid in read_now:
            pc_sets[oid] = read_now[oid]
        elif rows.get(oid, {}).get("pc") is not None:
            pc_sets[oid] = {"solutions": rows[oid]["pc"], "aws_products": None, "offers": None}
        else:
            unseen.append(oid)
    urgent = [o for o in unseen if any(items.get(links[o], {}).values())]
    # Records this run wrote (created from a deal, or updated) without reading them are re-listed by the
    # next run's extract (they are newer than its watermark), which brings their associations at no extra
    # call: reading them here would cost one GetOpportunity per record of an initial load from HubSpot.
    written = _written_this_run(env, str(run.get("run_id") or ""))
    rest = [o for o in unseen if o not in set(urgent) and o not in written] if full else []
    budget = env.config.products.reads_per_run
    for oid in (urgent + rest)[:budget]:
        try:
            opp = step.pc_call("GetOpportunity", "get_opportunity", Catalog=catalog, Identifier=oid)
        except SyncError as err:
            log.warning("GetOpportunity %s failed (%s); its solutions wait for the next run", oid, err.code)
            continue
        pc_sets[oid] = related_entities(opp)
    waiting = max(0, len(urgent) + len(rest) - budget)

    products = {sid: str(r["product_id"]) for sid, r in catalog_rows.items() if r.get("product_id")}
    prices = env.config.products.prices
    creates: list[tuple[str, str, dict[str, Any]]] = []  # (opportunity, solution, line item input)
    archives: dict[str, list[tuple[str, str]]] = {}  # opportunity -> [(solution, line item)]
    deal_updates: dict[str, dict[str, str]] = {}
    counts: Counter[str] = Counter()
    results: dict[str, dict[str, set[str]]] = {}
    no_product: set[str] = set()
    for oid in sorted(pc_sets):
        deal_id = links[oid]
        row = rows.setdefault(oid, dict.fromkeys(STATE_COLUMNS))
        row["deal_id"] = deal_id
        line_items = items.get(deal_id, {})
        hs_set = {s for s in line_items.values() if s}
        pc_set = set(pc_sets[oid]["solutions"])
        base = set(row.get("base") or [])
        todo = three_way(hs_set, pc_set, base)
        if to_pc and (todo["associate"] or todo["disassociate"]):
            # Read before writing: the extract's copy predates this run's own writes (apply may have
            # associated solutions for a submission) and any console edit since.
            try:
                fresh = related_entities(
                    step.pc_call("GetOpportunity", "get_opportunity", Catalog=catalog, Identifier=oid)
                )
            except SyncError as err:
                log.warning(
                    "GetOpportunity %s failed (%s); its solutions wait for the next run", oid, err.code
                )
                continue
            pc_set = set(fresh["solutions"])
            pc_sets[oid] = fresh
            todo = three_way(hs_set, pc_set, base)
        done = {k: set() for k in todo}
        if to_pc:
            _send_to_partner_central(step, catalog, oid, pc_set, todo, done, catalog_rows)
        if to_hs:
            for sid in sorted(todo["add_line_items"]):
                pid = products.get(sid)
                if not pid or (catalog_rows.get(sid) or {}).get("archived") == "true":
                    # No product for the solution yet: a line item without one would never map back.
                    no_product.add(sid)
                    continue
                price = prices.get(sid, 0.0)
                creates.append(
                    (
                        oid,
                        sid,
                        {
                            "properties": {
                                "name": str((catalog_rows.get(sid) or {}).get("name") or sid),
                                "hs_product_id": pid,
                                "quantity": "1",
                                "price": f"{price:g}" if price else "0",
                            },
                            "associations": [
                                {
                                    "to": {"id": deal_id},
                                    "types": [
                                        {
                                            "associationCategory": "HUBSPOT_DEFINED",
                                            "associationTypeId": LINE_ITEM_TO_DEAL,
                                        }
                                    ],
                                }
                            ],
                        },
                    )
                )
            for sid in sorted(todo["remove_line_items"]):
                archives.setdefault(oid, []).extend((sid, li) for li, s in line_items.items() if s == sid)
        results[oid] = {"hs": hs_set, "pc": pc_set, "base": base, **{f"done_{k}": v for k, v in done.items()}}
        row["line_items"] = dict(line_items)
        # AWS products and Marketplace offers: read-only mirrors, written when they changed.
        if to_hs and pc_sets[oid].get("aws_products") is not None:
            mirror = {
                AWS_PRODUCTS_PROPERTY: pc_sets[oid]["aws_products"],
                OFFERS_PROPERTY: pc_sets[oid]["offers"],
            }
            before = {
                AWS_PRODUCTS_PROPERTY: row.get("aws_products") or "",
                OFFERS_PROPERTY: row.get("offers") or "",
            }
            if mirror != before:
                deal_updates.setdefault(deal_id, {}).update(mirror)
            row["aws_products"], row["offers"] = mirror[AWS_PRODUCTS_PROPERTY], mirror[OFFERS_PROPERTY]

    if no_product:
        log.warning(
            "%d solution(s) associated in Partner Central have no HubSpot product (%s): their line items "
            "wait for cosell_catalog to create the products",
            len(no_product),
            ", ".join(sorted(no_product)[:10]),
        )
        counts["line_items_waiting"] = len(no_product)
    created_items = _create_line_items(step, creates, results)
    archived_items = _archive_line_items(step, archives, results, rows)
    counts.update(line_items_created=created_items, line_items_archived=archived_items)

    error_changed: dict[str, list[str]] = {}
    for oid, res in results.items():
        hs_now = (res["hs"] | res["done_add_line_items"]) - res["done_remove_line_items"]
        pc_now = (res["pc"] | res["done_associate"]) - res["done_disassociate"]
        row = rows[oid]
        row["base"] = sorted(agreed(hs_now, pc_now, res["base"]))
        row["pc"] = sorted(pc_now)
        counts["associated"] += len(res["done_associate"])
        counts["disassociated"] += len(res["done_disassociate"])
        message = "\n".join(step.errors.get(oid, []))
        # Also while it stays the same: another step may have cleared the deal's text meanwhile.
        if message or message != (row.get("error") or ""):
            error_changed[links[oid]] = step.errors.get(oid, [])
        row["error"] = message or None
        _audit_record(step, oid, links[oid], res)

    if error_changed:
        # This step's lines of aws_sync_error replaced, other steps' lines kept (one read per 100 deals).
        current, _ = step.gw.batch_read(DEAL.plural, list(error_changed), [SYNC_ERROR_PROPERTY])
        text = {str(o["id"]): (o.get("properties") or {}).get(SYNC_ERROR_PROPERTY) for o in current}
        for deal_id, lines in error_changed.items():
            merged = merge_error(text.get(deal_id), lines)
            if merged != (text.get(deal_id) or ""):
                deal_updates.setdefault(deal_id, {})[SYNC_ERROR_PROPERTY] = merged
    if deal_updates:
        outcome = step.gw.batch_update(DEAL.plural, deal_updates)
        counts["deals_written"] = len(deal_updates) - len(outcome.errors)
    _write_audit(env, run, step.audit)
    state.save_frame(_frame(rows))
    if not run.get("opportunity_ids"):
        meta["checked_at"] = now.isoformat()
        meta["catalog_live"] = live
        if full:
            meta["last_full_refresh"] = now.isoformat()
        state.save_meta(meta)
    step.calls.update(step.gw.calls)
    result = {
        "in_scope": len(scope),
        "line_items_read": len(to_read),
        "compared": len(results),
        "reads_waiting": waiting,
        "failed": len(step.errors),
        "full": full,
        **counts,
    }
    key = run_key(catalog, run["run_id"], "solutions.json")
    env.snapshots.put_json({**result, "errors": step.errors, "api_calls": dict(step.calls)}, key)
    log.info("Solutions and line items: %s; API calls %s", result, dict(step.calls))
    return {**result, "key": key, "api_calls": dict(step.calls)}


def _catalog_rows(env: SyncEnv, catalog: str) -> dict[str, dict[str, Any]]:
    """Solution id -> the catalog state's row (``product_id``, ``name``, ``status``, ``archived``)."""
    from cosell_sync.catalog import STATE_NAME as CATALOG_STATE
    from cosell_sync.catalog import _rows as catalog_rows

    frame, _ = StepState(env.snapshots, catalog, CATALOG_STATE).load()
    return catalog_rows(frame)


def _send_to_partner_central(
    step: _Step,
    catalog: str,
    oid: str,
    pc_set: set[str],
    todo: dict[str, set[str]],
    done: dict[str, set[str]],
    catalog_rows: dict[str, dict[str, Any]],
) -> None:
    """HubSpot's additions and removals as Associate/DisassociateOpportunity, checked before each call."""
    count = len(pc_set)
    for sid in sorted(todo["associate"]):
        info = catalog_rows.get(sid)
        if info is not None and (info.get("archived") == "true" or info.get("status") != "Active"):
            step.fail(
                oid, sid, "SOLUTION_NOT_ACTIVE", "only Active solutions of the catalog can be associated"
            )
            continue
        if count >= MAX_SOLUTIONS:
            step.fail(
                oid, sid, "TOO_MANY_SOLUTIONS", f"an opportunity takes at most {MAX_SOLUTIONS} solutions"
            )
            continue
        try:
            step.pc_call(
                "AssociateOpportunity",
                "associate_opportunity",
                Catalog=catalog,
                OpportunityIdentifier=oid,
                RelatedEntityType="Solutions",
                RelatedEntityIdentifier=sid,
            )
        except SyncError as err:
            step.fail(oid, sid, err.code or "ASSOCIATE_FAILED", err.message)
            continue
        done["associate"].add(sid)
        count += 1
    for sid in sorted(todo["disassociate"]):
        try:
            step.pc_call(
                "DisassociateOpportunity",
                "disassociate_opportunity",
                Catalog=catalog,
                OpportunityIdentifier=oid,
                RelatedEntityType="Solutions",
                RelatedEntityIdentifier=sid,
            )
        except NotFoundError:
            # Already gone in Partner Central (removed on both sides): nothing left to do.
            done["disassociate"].add(sid)
            continue
        except SyncError as err:
            step.fail(oid, sid, err.code or "DISASSOCIATE_FAILED", err.message)
            continue
        done["disassociate"].add(sid)


def _create_line_items(
    step: _Step,
    creates: list[tuple[str, str, dict[str, Any]]],
    results: dict[str, dict[str, set[str]]],
) -> int:
    """Create the line items Partner Central's associations call for (a batch, with their deal association).

    Not an upsert (line items have no unique key of ours): a retried step first reads the deal's line
    items again, finds the ones it made and creates nothing twice. A batch result names no deal, so
    results are counted per product: when HubSpot created fewer line items of a product than asked, none
    of that product's creates counts as done (the agreed set stays, and the next run reads what exists).
    The new line items' ids are learnt by the next run's read (a line item search finds their deals).
    """
    if not creates:
        return 0
    outcome = step.gw.batch_create(LINE_ITEMS, [c[2] for c in creates])
    made: Counter[str] = Counter(
        str((obj.get("properties") or {}).get("hs_product_id")) for obj in outcome.results
    )
    asked: Counter[str] = Counter(c[2]["properties"]["hs_product_id"] for c in creates)
    # A complete answer (as many results as inputs, no error) needs no matching.
    complete = not outcome.errors and len(outcome.results) == len(creates)
    done = 0
    for oid, sid, body in creates:
        pid = body["properties"]["hs_product_id"]
        if complete or made[pid] >= asked[pid]:
            results[oid]["done_add_line_items"].add(sid)
            done += 1
        else:
            step.fail(oid, sid, "LINE_ITEM_NOT_CREATED", "HubSpot did not create the line item")
    return done


def _archive_line_items(
    step: _Step,
    archives: dict[str, list[tuple[str, str]]],
    results: dict[str, dict[str, set[str]]],
    rows: dict[str, dict[str, Any]],
) -> int:
    """Archive the line items of solutions Partner Central disassociated (HubSpot's soft delete)."""
    ids = [li for pairs in archives.values() for _, li in pairs]
    if not ids:
        return 0
    step.gw.batch_archive(LINE_ITEMS, ids)
    for oid, pairs in archives.items():
        for sid, li in pairs:
            results[oid]["done_remove_line_items"].add(sid)
            (rows[oid].get("line_items") or {}).pop(li, None)
    return len(ids)


def _audit_record(step: _Step, oid: str, deal_id: str, res: dict[str, set[str]]) -> None:
    """One entry per record and action: the solutions it changed, and the failures with their reasons."""
    errors = step.errors.get(oid, [])
    for action, key, new, api, direction in (
        (
            AuditAction.ASSOCIATE_OPPORTUNITY.value,
            "done_associate",
            True,
            "AssociateOpportunity",
            Direction.TO_PARTNER_CENTRAL,
        ),
        (
            DISASSOCIATE_OPPORTUNITY,
            "done_disassociate",
            False,
            "DisassociateOpportunity",
            Direction.TO_PARTNER_CENTRAL,
        ),
        (CREATE_LINE_ITEM, "done_add_line_items", True, "batch_create:line_items", Direction.TO_HUBSPOT),
        (
            ARCHIVE_LINE_ITEM,
            "done_remove_line_items",
            False,
            "batch_archive:line_items",
            Direction.TO_HUBSPOT,
        ),
    ):
        sids = res[key]
        if sids:
            step.audit.append(
                {
                    "opportunity_id": oid,
                    "deal_id": deal_id,
                    "action": action,
                    "direction": direction.value,
                    "source": "HUBSPOT" if direction == Direction.TO_PARTNER_CENTRAL else "PARTNER_CENTRAL",
                    "changes": {f"solutions.{s}": {"old": not new, "new": new} for s in sorted(sids)},
                    "success": True,
                    "error": None,
                    "api_calls": [api],
                }
            )
    if errors:
        step.audit.append(
            {
                "opportunity_id": oid,
                "deal_id": deal_id,
                "action": "SOLUTIONS_NOT_SYNCED",
                "direction": Direction.TO_PARTNER_CENTRAL.value,
                "source": "HUBSPOT",
                "changes": {},
                "success": False,
                "error": {"service": "partner_central", "messages": errors},
                "api_calls": [],
            }
        )


def _write_audit(env: SyncEnv, run: dict[str, Any], audit: list[dict[str, Any]]) -> None:
    from cosell_sync.audit import AuditEntry, FieldChange

    if not audit:
        return
    started_at = parse_ts(run["started_at"])
    env.audit.write(
        [
            AuditEntry(
                opportunity_id=a["opportunity_id"],
                deal_id=a["deal_id"],
                run_id=run["run_id"].replace("#", "_"),
                run_timestamp=started_at,
                direction=a["direction"],
                action=a["action"],
                source=a["source"],
                user=f"airflow:{run.get('dag_id', 'cosell_reconcile')}",
                changes={k: FieldChange(**v) for k, v in a["changes"].items()},
                success=a["success"],
                error=a["error"],
                api_calls=a["api_calls"],
                metadata={"step": "sync_solutions"},
            )
            for a in audit
        ]
    )
