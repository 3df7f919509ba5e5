"""Partner solutions as HubSpot products: one product per solution, kept by ``cosell_catalog``.

``ListSolutions`` (every page, 100 per call) gives the partner's solutions in the run's catalog. Each becomes
one HubSpot product, written by batch upsert on the unique product property ``aws_solution_id`` (100 per
call), so a retried task or a second run never makes a second product. Mapped: ``name`` (the solution's
Name), ``hs_sku`` (its id, what the HubSpot product library shows), ``aws_solution_category``,
``aws_solution_status``, ``aws_solution_catalog`` and ``price`` (``products.prices``, else 0).

The products that exist are read first (one search of the products carrying ``aws_solution_id`` of this
catalog), so only a new or changed solution is written: an unchanged catalog costs its ``ListSolutions``
pages and one search, no write. A product whose solution is no longer listed is archived (batch archive,
HubSpot's soft delete; never a GDPR delete) and its line items stay as they are. A solution that comes back
is upserted again: HubSpot frees the unique value of an archived record, so the upsert makes a new product
(documented as an assumption in docs/api-rules.md).

Every product write is audited: ``CREATE_PRODUCT``, ``UPDATE_PRODUCT`` or ``ARCHIVE_PRODUCT`` under the
partition ``solution#{catalog}#{solution id}`` (an audit entry needs a record id; a solution has no
opportunity). What the step wrote is kept in ``state/{catalog}/catalog.parquet``: solution id -> product
id, which ``sync_solutions`` reads to map a line item's ``hs_product_id`` back to its solution.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.common import Direction, clean
from cosell_sync.storage import StepState

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

#: The unique product property products are upserted on.
SOLUTION_ID_PROPERTY = "aws_solution_id"
PRODUCTS = "products"
#: The product properties co-sell sync writes (besides the unique key).
PRODUCT_PROPERTIES = (
    "name",
    "hs_sku",
    "price",
    "aws_solution_category",
    "aws_solution_status",
    "aws_solution_catalog",
)
#: The step state's name (``state/{catalog}/catalog.parquet``) and its columns.
STATE_NAME = "catalog"
STATE_COLUMNS = ["product_id", "name", "status", "archived", "previous_product_ids"]
CREATE_PRODUCT = "CREATE_PRODUCT"
UPDATE_PRODUCT = "UPDATE_PRODUCT"
ARCHIVE_PRODUCT = "ARCHIVE_PRODUCT"


def audit_pk(catalog: str, solution_id: str) -> str:
    """The audit partition of a solution's product writes: ``solution#{catalog}#{solution id}``."""
    return f"solution#{catalog}#{solution_id}"


def list_solutions(api: Any, catalog: str, calls: Counter[str]) -> list[dict[str, Any]]:
    """Every solution of ``catalog`` (``ListSolutions``, every page, 100 per call), sorted by id.

    Args:
        api: the Partner Central client.
        catalog: ``AWS`` or ``Sandbox``.
        calls: counter the calls are added to (``ListSolutions``).

    Returns:
        The ``SolutionBase`` summaries.
    """
    found: dict[str, dict[str, Any]] = {}
    for page in api.paginate("list_solutions", Catalog=catalog, MaxResults=100):
        calls["ListSolutions"] += 1
        for solution in page.get("SolutionSummaries") or []:
            found[str(solution["Id"])] = solution
    return [found[k] for k in sorted(found)]


def _price(value: float) -> str:
    return f"{value:g}" if value else "0"


def product_properties(solution: dict[str, Any], catalog: str, prices: dict[str, float]) -> dict[str, str]:
    """The product properties a solution maps to (strings, as HubSpot takes them)."""
    sid = str(solution["Id"])
    return {
        "name": str(solution.get("Name") or sid),
        "hs_sku": sid,
        "price": _price(prices.get(sid, 0.0)),
        "aws_solution_category": str(solution.get("Category") or ""),
        "aws_solution_status": str(solution.get("Status") or ""),
        "aws_solution_catalog": catalog,
    }


def _same(current: dict[str, Any], wanted: dict[str, str]) -> bool:
    """Whether a product already holds the wanted values (HubSpot returns numbers as text, e.g. ``0``)."""
    for name, value in wanted.items():
        have = clean(current.get(name))
        if name == "price":
            try:
                if float(have or 0) != float(value or 0):
                    return False
            except ValueError:
                return False
        elif (have or "") != value:
            return False
    return True


def read_products(gw: Any, catalog: str) -> dict[str, dict[str, Any]]:
    """The live products of ``catalog``'s solutions: solution id -> product (``id``, ``properties``).

    One search (200 per page) of products with ``aws_solution_catalog`` = ``catalog``. Two products with the
    same solution id cannot exist (the property is unique).
    """
    groups = [{"filters": [{"propertyName": "aws_solution_catalog", "operator": "EQ", "value": catalog}]}]
    out: dict[str, dict[str, Any]] = {}
    for obj in gw.search(
        PRODUCTS, groups, [SOLUTION_ID_PROPERTY, *PRODUCT_PROPERTIES], "hs_lastmodifieddate"
    ):
        sid = clean((obj.get("properties") or {}).get(SOLUTION_ID_PROPERTY))
        if sid:
            out[sid] = obj
    return out


def load_product_map(env: SyncEnv, catalog: str) -> dict[str, str]:
    """Product id -> solution id for every product the catalog step ever wrote (archived ones too)."""
    frame, _ = StepState(env.snapshots, catalog, STATE_NAME).load()
    if frame is None or not len(frame):
        return {}
    out: dict[str, str] = {}
    previous = frame["previous_product_ids"] if "previous_product_ids" in frame.columns else {}
    for sid, pid in frame["product_id"].items():
        # Products archived before their solution came back: their line items still name them.
        for old in str(clean(previous.get(sid)) or "").split(";"):
            if old:
                out[old] = str(sid)
        if clean(pid) is not None:
            out[str(pid)] = str(sid)
    return out


def sync_catalog(env: SyncEnv, run: dict[str, Any]) -> dict[str, Any]:
    """Mirror the catalog's solutions as HubSpot products (see the module doc).

    Args:
        env: clients and stores (``env.catalog`` is the run's catalog).
        run: ``run_id``, ``dag_id``, ``run_timestamp`` (a datetime: the audit keys), ``dry_run``.

    Returns:
        ``solutions``, ``created``, ``updated``, ``archived``, ``unchanged``, ``failed`` (solution id ->
        message), ``dry_run``, ``api_calls`` per operation; in a dry run, what would be written.

    Raises:
        RecordErrorsError: HubSpot refused some product writes; raised last, after the others were written,
            audited and recorded (the task fails without retries, naming the count).
    """
    from cosell_sync.hubspot_api import HubSpotGateway, error_ids

    catalog = env.catalog
    calls: Counter[str] = Counter()
    gw = HubSpotGateway(env.hubspot)
    prices = env.config.products.prices
    solutions = list_solutions(env.partner_central, catalog, calls)
    wanted = {str(s["Id"]): product_properties(s, catalog, prices) for s in solutions}
    existing = read_products(gw, catalog)
    state = StepState(env.snapshots, catalog, STATE_NAME)
    previous, meta = state.load()
    known = _rows(previous)

    creates = {sid: props for sid, props in wanted.items() if sid not in existing}
    updates = {
        sid: props
        for sid, props in wanted.items()
        if sid in existing and not _same(existing[sid].get("properties") or {}, props)
    }
    gone = {sid: obj for sid, obj in existing.items() if sid not in wanted}
    unchanged = len(wanted) - len(creates) - len(updates)
    summary: dict[str, Any] = {
        "catalog": catalog,
        "solutions": len(wanted),
        "unchanged": unchanged,
        "dry_run": bool(run.get("dry_run")),
    }
    if run.get("dry_run"):
        for sid in sorted(creates):
            log.info("would create product for solution %s (%s)", sid, creates[sid]["aws_solution_status"])
        for sid in sorted(updates):
            log.info(
                "would update product of solution %s: %s",
                sid,
                ", ".join(_changed(existing[sid], updates[sid])),
            )
        for sid in sorted(gone):
            log.info("would archive product %s of solution %s (no longer listed)", gone[sid]["id"], sid)
        calls.update(gw.calls)
        summary.update(
            created=sorted(creates), updated=sorted(updates), archived=sorted(gone), api_calls=dict(calls)
        )
        log.info("Catalog dry run: %s", summary)
        return summary

    # The key goes along (the same value as idProperty) so every result names its solution: no read-back.
    rows = {sid: {**props, SOLUTION_ID_PROPERTY: sid} for sid, props in {**creates, **updates}.items()}
    failed: dict[str, str] = {}
    written: dict[str, str] = {}
    if rows:
        outcome = gw.batch_upsert(PRODUCTS, SOLUTION_ID_PROPERTY, rows)
        errors = error_ids(outcome.errors)
        for obj in outcome.results:
            sid = clean((obj.get("properties") or {}).get(SOLUTION_ID_PROPERTY))
            if sid:
                written[sid] = str(obj["id"])
        by_product = {pid: sid for sid, pid in written.items()}
        for key, err in errors.items():
            sid = key if key in rows else by_product.get(key, key)
            failed[sid] = str(err.get("message") or err.get("category") or "rejected")
            written.pop(sid, None)
        # A result that does not echo the key (HubSpot need not return every property): read it back.
        unmatched = [sid for sid in rows if sid not in written and sid not in failed]
        if unmatched:
            found, _ = gw.batch_read(
                PRODUCTS, unmatched, [SOLUTION_ID_PROPERTY], id_property=SOLUTION_ID_PROPERTY
            )
            for obj in found:
                written[str(obj["properties"][SOLUTION_ID_PROPERTY])] = str(obj["id"])
        for sid in unmatched:
            if sid not in written:
                failed[sid] = "HubSpot answered without the product"
    if gone:
        gw.batch_archive(PRODUCTS, [str(obj["id"]) for obj in gone.values()])
    for sid, message in sorted(failed.items()):
        # A HubSpot message about a product names properties, not customer data.
        log.error("Product of solution %s not written: %s", sid, message)

    entries = _audit_entries(env, run, existing, creates, updates, gone, written, failed)
    audited = env.audit.write(entries) if entries else 0

    # The state: every product ever written, archived ones kept (their line items still name them).
    for sid, pid in written.items():
        before = known.get(sid) or {}
        older = [p for p in str(before.get("previous_product_ids") or "").split(";") if p]
        if before.get("product_id") and before["product_id"] != pid:
            older.append(str(before["product_id"]))
        known[sid] = {
            "product_id": pid,
            "name": wanted[sid]["name"],
            "status": wanted[sid]["aws_solution_status"],
            "archived": "false",
            "previous_product_ids": ";".join(older) or None,
        }
    for sid, obj in existing.items():
        if sid not in known:
            known[sid] = {
                "product_id": str(obj["id"]),
                "name": clean((obj.get("properties") or {}).get("name")),
                "status": clean((obj.get("properties") or {}).get("aws_solution_status")),
                "archived": "false",
                "previous_product_ids": None,
            }
    for sid in gone:
        known[sid]["archived"] = "true"
    state.save_frame(_frame(known))
    state.save_meta({**meta, "last_run": run.get("run_id"), "solutions": sorted(wanted)})
    calls.update(gw.calls)
    summary.update(
        created=len([s for s in creates if s in written]),
        updated=len([s for s in updates if s in written]),
        archived=len(gone),
        failed=failed,
        audit_entries=audited,
        api_calls=dict(calls),
    )
    log.info("Catalog: %s", summary)
    if failed:
        from cosell_sync.errors import RecordErrorsError

        # Everything else is written, audited and recorded: the run must not end green (no retry helps).
        raise RecordErrorsError(
            f"{len(failed)} of {len(rows)} product writes were refused by HubSpot (see the task log and the "
            "audit entries); the other products were written",
            service="hubspot",
            code="PRODUCT_WRITES_FAILED",
        )
    return summary


def _changed(current: dict[str, Any], wanted: dict[str, str]) -> list[str]:
    have = current.get("properties") or {}
    return [n for n, v in wanted.items() if not _same({n: have.get(n)}, {n: v})]


def _audit_entries(
    env: SyncEnv,
    run: dict[str, Any],
    existing: dict[str, dict[str, Any]],
    creates: dict[str, dict[str, str]],
    updates: dict[str, dict[str, str]],
    gone: dict[str, dict[str, Any]],
    written: dict[str, str],
    failed: dict[str, str],
) -> list[Any]:
    """One entry per product written, archived or refused."""
    from cosell_sync.audit import AuditEntry, FieldChange

    run_id = str(run["run_id"]).replace("#", "_")
    stamp: datetime = run["run_timestamp"]
    dag_id = str(run.get("dag_id") or "cosell_catalog")
    entries = []

    def entry(sid: str, action: str, changes: dict[str, FieldChange], api: str, error: str | None) -> None:
        product_id = written.get(sid) or (existing.get(sid) or {}).get("id")
        entries.append(
            AuditEntry(
                opportunity_id=audit_pk(env.catalog, sid),
                run_id=run_id,
                run_timestamp=stamp,
                direction=Direction.TO_HUBSPOT.value,
                action=action,
                source="PARTNER_CENTRAL",
                user=f"airflow:{dag_id}",
                changes=changes,
                success=error is None,
                error={"service": "hubspot", "message": error} if error else None,
                api_calls=["ListSolutions", api],
                metadata={
                    "solutionId": sid,
                    "catalog": env.catalog,
                    "dagId": dag_id,
                    **({"productId": str(product_id)} if product_id else {}),
                },
            )
        )

    for sid, props in {**creates, **updates}.items():
        have = (existing.get(sid) or {}).get("properties") or {}
        changes = {
            f"product.{name}": FieldChange(old=clean(have.get(name)), new=value)
            for name, value in props.items()
            if sid in creates or not _same({name: have.get(name)}, {name: value})
        }
        action = CREATE_PRODUCT if sid in creates else UPDATE_PRODUCT
        entry(sid, action, changes, "batch_upsert:products", failed.get(sid))
    for sid, obj in gone.items():
        status = clean((obj.get("properties") or {}).get("aws_solution_status"))
        entry(
            sid,
            ARCHIVE_PRODUCT,
            {
                "product.archived": FieldChange(old=False, new=True),
                "product.aws_solution_status": FieldChange(old=status, new=None),
            },
            "batch_archive:products",
            None,
        )
    return entries


def _rows(frame: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    if frame is None or not len(frame):
        return {}
    return {
        str(sid): {c: clean(row.get(c)) for c in STATE_COLUMNS}
        for sid, row in frame.to_dict(orient="index").items()
    }


def _frame(rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame.from_dict(rows, orient="index", columns=STATE_COLUMNS).astype(object)
    frame.index.name = "solution_id"
    return frame
