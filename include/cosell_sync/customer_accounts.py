"""HubSpot companies to AWS customer accounts, and AWS's view of each customer back to the company.

The ``sync_customer_accounts`` step (after ``commit``). API rules from the botocore model of
partnercentral-selling (``CreateCustomerAccount``, ``UpdateCustomerAccount``, ``GetCustomerAccount``,
``AwsEnrichment``).

**Which companies.** Every HubSpot company the baseline links to a co-sell deal (its ``company_id``
column: a deal with ``aws_opportunity_id``). Knowing them costs no call.

**Create, once.** A company without an account gets ``CreateCustomerAccount`` with
``PartnerAccountIdentifier`` = the company id and a ``ClientToken`` derived from the catalog and the
company id. The account data is written to the step's JSON document *before* the call (``creating``), and
a retry, or the next run after a crash, sends that same body again: the same token with the same body
returns the first account (a changed body with that token would be a ``ConflictException``), and the change
follows as an update. ``Account`` is built from the company's properties through the mapping's company
fields whose Partner Central path is ``Customer.Account.*`` (name, website, industry, address; the same
member names and values as an opportunity's ``Customer.Account``), plus ``Domain`` from HubSpot's
``domain`` and ``Duns`` from ``customer_accounts.duns_property`` when configured.

**Update, only on a change.** The body last sent is kept per company (``state/{catalog}/customer_accounts
.parquet``); a company whose mapped values differ from it gets ``UpdateCustomerAccount`` (a full replace,
``PartnerAccountIdentifier`` again, under the ``LastModifiedDate`` lock). A ``ConflictException`` reads the
account: if it already holds the new body (an earlier attempt's update whose state was not saved) nothing
is sent again, else the update is retried once with the fresh ``LastModifiedDate``. Companies read per
run (HubSpot batch reads, 100 per call): new ones, those whose baseline company values changed, those the
HubSpot extract saw change (``hs``; catches ``domain`` / DUNS-only edits), and those whose last attempt
failed.

**Enrichment.** Matching is asynchronous and has no events: accounts still ``PENDING`` from an earlier run
are read with ``GetCustomerAccount``, oldest check first, at most ``customer_accounts.reads_per_run`` per
run (paced by the client's read limiter). With more than one waiting, ``SearchCustomerAccounts`` (filter
``ENRICHMENT_STATUS`` = ``PENDING``, 100 a page) first lists those AWS still has pending, and only the
others are read, so waiting accounts cost a page per 100, not a read each. ``ENRICHED`` writes
``AwsEnrichment`` to the company; ``NO_MATCH_FOUND`` and ``ACTION_REQUIRED`` are recorded and not read
again until the company changes (an update matches again), so nothing is polled in a loop.
An account found deleted in Partner Central (``ResourceNotFoundException`` to the update or the read) is
forgotten (``CUSTOMER_ACCOUNT_GONE`` on the audit) and the company gets a new one the next run, under a
ClientToken of its own (the company's ``generation``), since the first token names the deleted account.
``ACTION_REQUIRED`` with ``DUPLICATE_CUSTOMER_MATCH`` creates one HubSpot task on the company naming the
existing account: the task body carries a marker that is looked for before creating
(``HubSpotWriter.create_marked_tasks``) and the state remembers the account the task was made for, so it
is never made twice.

**HubSpot.** ``aws_customer_account_id``, ``aws_enrichment_status`` and the enrichment properties are
derived from the state and written (batch update, 100 per call) only when they differ from what was last
written, so a failed write is retried next run and a quiet run writes nothing.

**Audit and errors.** Every ``CreateCustomerAccount`` / ``UpdateCustomerAccount`` (and a company refused
before any call, once per reason) is one audit entry, and every match result written back is one
``CUSTOMER_ACCOUNT_MATCH`` entry. Entries are filed under the company's first linked opportunity (the audit
is keyed by opportunity or deal) with the company and account ids in ``metadata``. A failure is per company:
recorded in the state and the audit, retried next run; the rest goes on. Company values (names, domains,
addresses) are never logged: logs name the company id, the field and the rule.

**Cost.** A run in which no company changed and no account is pending makes no call at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from cosell_sync.common import COMPANY, DEAL, Direction, clean
from cosell_sync.domains import normalize_domain
from cosell_sync.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    SyncError,
    ValidationError,
    without_values,
)
from cosell_sync.storage import StepState, utc_iso

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.config import SyncConfig
    from cosell_sync.env import SyncEnv
    from cosell_sync.hubspot_api import HubSpotGateway

log = logging.getLogger(__name__)

STATE_NAME = "customer_accounts"
STATE_COLUMNS = [
    "opportunity_id",  # the company's first linked opportunity: where its audit entries are filed
    "deal_id",
    "account_id",
    "arn",
    "sent",  # JSON of the Account body last sent
    "last_modified",  # the account's LastModifiedDate as last read or written (ISO)
    "status",  # EnrichmentStatus
    "reason_code",
    "existing_arn",
    "enrichment",  # JSON of the HubSpot enrichment properties of the last ENRICHED result
    "task_for",  # the existing account ARN a duplicate-match task was made for
    "written",  # digest of the HubSpot properties last written
    "base_digest",  # digest of the baseline's company values when the company was last read
    "checked_at",  # when the account was last created, updated or read (ISO)
    "error",
    "generation",  # how many of the company's accounts were found deleted (its ClientToken's suffix)
]
CREATE_ACTION = "CREATE_CUSTOMER_ACCOUNT"
UPDATE_ACTION = "UPDATE_CUSTOMER_ACCOUNT"
MATCH_ACTION = "CUSTOMER_ACCOUNT_MATCH"
#: An account found deleted in Partner Central (outside the sync): the company gets a new one next run.
GONE_ACTION = "CUSTOMER_ACCOUNT_GONE"
DUPLICATE_REASON = "DUPLICATE_CUSTOMER_MATCH"
PENDING = "PENDING"

ACCOUNT_ID_PROPERTY = "aws_customer_account_id"
STATUS_PROPERTY = "aws_enrichment_status"
#: HubSpot company property -> (AwsEnrichment section, member); list values are joined with "; ".
ENRICHMENT_PROPERTIES: dict[str, tuple[str, str]] = {
    "aws_customer_segment": ("Customer", "Segment"),
    "aws_customer_industry": ("Customer", "Industry"),
    "aws_customer_sub_industry": ("Customer", "SubIndustry"),
    "aws_customer_company_size": ("Customer", "CompanySize"),
    "aws_customer_region": ("Customer", "Region"),
    "aws_eligible_programs": ("Customer", "EligiblePrograms"),
    "aws_marketplace_engagement_score": ("Insights", "MarketplaceEngagementScore"),
}
#: The HubSpot properties this step writes on companies (``properties.py`` defines them).
COMPANY_PROPERTIES = (ACCOUNT_ID_PROPERTY, STATUS_PROPERTY, *ENRICHMENT_PROPERTIES)
DOMAIN_PROPERTY = "domain"
ACCOUNT_PREFIX = "Customer.Account."
_DUNS = re.compile(r"[0-9]{9}")


class CompanyDataError(ValidationError):
    """A company whose data cannot become ``CustomerAccountData``; the message names field and rule."""


# -- pure helpers (unit-tested) ------------------------------------------------------------------------
def client_token(catalog: str, company_id: str, generation: int = 0) -> str:
    """The ``CreateCustomerAccount`` ClientToken of a company: derived, never random (at most 255 chars).

    ``generation`` counts the company's accounts found deleted in Partner Central: the account made after
    one is a new create, so it gets its own token (the first token would name the deleted account).
    """
    suffix = f":{generation}" if generation else ""
    token = f"cosell-sync:{catalog}:hubspot-company:{company_id}{suffix}"
    if len(token) > 255:
        hashed = hashlib.sha256(company_id.encode()).hexdigest()
        token = f"cosell-sync:{catalog}:hubspot-company-sha256:{hashed}{suffix}"
    return token


def generation_of(row: dict[str, Any]) -> int:
    """How many of the company's accounts were found deleted (the state's ``generation``; 0 if none)."""
    value = clean(row.get("generation"))
    return int(float(value)) if value is not None else 0


def digest(value: Any) -> str:
    """A short stable digest of a JSON-able value (key order does not matter)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _account_members() -> set[str]:
    from cosell_sync.pc_model import pc_shape

    return set(pc_shape("CreateCustomerAccount", "input").members["Account"].members)


def account_fields(cfg: SyncConfig) -> list[tuple[str, str, str]]:
    """``(mapping field, HubSpot property, CustomerAccountData path)`` of the mapped company fields.

    A company field whose Partner Central path is ``Customer.Account.X`` maps to ``X`` of the account
    when ``CustomerAccountData`` has that member (the two shapes share member names and values).
    """
    members = _account_members()
    out = []
    for f in cfg.fields:
        if f.object != COMPANY.name or not f.partner_central.startswith(ACCOUNT_PREFIX):
            continue
        path = f.partner_central[len(ACCOUNT_PREFIX) :]
        if path.split(".", 1)[0] in members:
            out.append((f.name, f.hubspot, path))
    return out


def account_data(props: dict[str, Any], cfg: SyncConfig, duns_property: str | None) -> dict[str, Any]:
    """The ``CustomerAccountData`` of a HubSpot company's properties.

    Values go through the mapping's converters (HubSpot -> canonical -> Partner Central), so an industry
    or a country is sent the way an opportunity's ``Customer.Account`` gets it. Optional members whose value
    the model would refuse are left out (a malformed domain, a DUNS that is not nine digits).

    Raises:
        CompanyDataError: no company name, a name over 120 characters, or a value the mapping cannot
            convert (the message names the field and the rule, never the value).
    """
    from cosell_sync.mapping import set_path
    from cosell_sync.transforms import converters_for

    convs = converters_for(cfg)
    out: dict[str, Any] = {}
    for name, hs_prop, path in account_fields(cfg):
        conv = convs[name]
        try:
            value = conv.to_partner_central(conv.from_hubspot(clean(props.get(hs_prop))))
        except ValidationError as err:
            raise CompanyDataError(
                f"{hs_prop}: not convertible to CustomerAccountData {path} ({conv.name} transform)"
            ) from err
        if value is not None and value != "":
            set_path(out, path, value)
    name = str(out.get("CompanyName") or "").strip()
    if not name:
        raise CompanyDataError("name: missing (CreateCustomerAccount Account.CompanyName is required)")
    if len(name) > 120:
        raise CompanyDataError("name: longer than 120 characters (CustomerAccountData CompanyName)")
    out["CompanyName"] = name
    website = out.get("WebsiteUrl")
    if website is not None and not 4 <= len(str(website)) <= 255:
        out.pop("WebsiteUrl")  # the model's pattern is 4-255 characters; the match can use the domain
    if out.get("Industry") == "Other" and not out.get("OtherIndustry"):
        out.pop("Industry")  # "Other" needs OtherIndustry, which HubSpot companies do not carry
    # The one normalisation new-company matching uses too (cosell_sync.domains).
    domain = normalize_domain(props.get(DOMAIN_PROPERTY))
    if domain:
        out["Domain"] = domain
    if duns_property:
        duns = re.sub(r"[\s-]", "", clean(props.get(duns_property)) or "")
        if _DUNS.fullmatch(duns):
            out["Duns"] = duns
    return out


def enrichment_properties(account: dict[str, Any]) -> dict[str, str]:
    """The HubSpot enrichment properties of a ``GetCustomerAccount`` response ("" clears a property)."""
    enrichment = account.get("AwsEnrichment") or {}
    out: dict[str, str] = {}
    for prop, (section, member) in ENRICHMENT_PROPERTIES.items():
        value = (enrichment.get(section) or {}).get(member)
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        out[prop] = "" if value is None else str(value)
    return out


def company_properties(row: dict[str, Any]) -> dict[str, str]:
    """The company properties this step wants HubSpot to show, from a state row."""
    enrichment = json.loads(row["enrichment"]) if row.get("enrichment") else {}
    out = {ACCOUNT_ID_PROPERTY: row.get("account_id") or "", STATUS_PROPERTY: row.get("status") or ""}
    out.update({p: enrichment.get(p, "") for p in ENRICHMENT_PROPERTIES})
    return out


def account_id_of(arn: str | None) -> str:
    """The account id at the end of a customer account ARN."""
    return str(arn or "").rsplit("/", 1)[-1]


def task_body(company_id: str, account_id: str, existing_arn: str, message: str | None) -> str:
    """The HubSpot task of a duplicate match: which account already maps the customer, what to do."""
    parts = [
        "<p><strong>AWS Partner Central</strong>: the customer account co-sell sync created for this "
        f"company ({escape(account_id)}) matches a customer that customer account "
        f"<strong>{escape(account_id_of(existing_arn))}</strong> ({escape(existing_arn)}) already maps.</p>",
        "<p>Delete the duplicate account in Partner Central, or correct this company's name, domain or "
        "website if it is a different customer (the next sync updates the account and AWS matches it "
        "again).</p>",
    ]
    if message:
        parts.append(f"<p>AWS: {escape(message)}</p>")
    return "".join(parts)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return utc_iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    return str(value)


# -- state ---------------------------------------------------------------------------------------------
def _rows(frame: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    if frame is None or not len(frame):
        return {}
    return {
        str(c): {col: clean(row.get(col)) for col in STATE_COLUMNS}
        for c, row in frame.to_dict(orient="index").items()
    }


def _frame(state: dict[str, dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame.from_dict(
        {c: {col: row.get(col) for col in STATE_COLUMNS} for c, row in state.items()},
        orient="index",
        columns=STATE_COLUMNS,
    ).astype(object)
    frame.index.name = "company_id"
    return frame


def linked_companies(env: SyncEnv) -> dict[str, dict[str, str]]:
    """Company -> its first linked opportunity and deal and a digest of its baseline values (no call)."""
    base = env.baseline.load()
    if base.empty or COMPANY.baseline_column not in base.columns or DEAL.baseline_column not in base.columns:
        return {}
    cols = sorted(f.name for f in env.config.fields if f.object == COMPANY.name and f.name in base.columns)
    out: dict[str, dict[str, str]] = {}
    for oid, row in base.sort_index().iterrows():
        company, deal = clean(row[COMPANY.baseline_column]), clean(row[DEAL.baseline_column])
        if company is None or deal is None or company in out:
            continue
        values = {c: clean(row[c]) for c in cols}
        out[company] = {"opportunity_id": str(oid), "deal_id": deal, "digest": digest(values)}
    return out


def _changed_companies(env: SyncEnv, hs: dict[str, Any] | None) -> set[str]:
    """Companies of the records the HubSpot extract saw change (empty when it saw none or is unknown)."""
    if not hs or not hs.get("key") or not hs.get("deals"):
        return set()
    try:
        frame = env.snapshots.get_frame(hs["key"], columns=[COMPANY.frame_column])
    except (NotFoundError, KeyError, ValueError):
        return set()
    return {str(c) for c in frame[COMPANY.frame_column].dropna()}


# -- the step ------------------------------------------------------------------------------------------
@dataclass
class _Run:
    """What one step does, collected for the audit, the HubSpot writes and the result."""

    calls: Counter[str] = field(default_factory=Counter)
    audit: list[dict[str, Any]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    polled: list[str] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    deferred: int = 0


class _Step:
    """One run of ``sync_customer_accounts`` (see the module doc)."""

    def __init__(self, env: SyncEnv, run: dict[str, Any], gw: HubSpotGateway) -> None:
        self.env = env
        self.run = run
        self.gw = gw
        self.cfg = env.config.customer_accounts
        self.catalog = run["catalog"]
        self.out = _Run()
        self.now = utc_iso(datetime.now(UTC))
        self.denied: SyncError | None = None

    # -- Partner Central -------------------------------------------------------------------------------
    def _call(self, operation: str, method: str, **params: Any) -> dict[str, Any]:
        if self.denied is not None:
            raise self.denied  # the caller's permission: every other company would get the same answer
        self.out.calls[operation] += 1
        try:
            return self.env.partner_central.call(method, Catalog=self.env.catalog, **params)
        except AuthError as err:
            self.denied = err
            raise

    def create(self, company: str, body: dict[str, Any], generation: int = 0) -> dict[str, Any]:
        """``CreateCustomerAccount`` with the company's derived token; returns the response."""
        return self._call(
            "CreateCustomerAccount",
            "create_customer_account",
            Account=body,
            PartnerAccountIdentifier=company,
            ClientToken=client_token(self.catalog, company, generation),
        )

    def update(self, company: str, row: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        """``UpdateCustomerAccount`` under the lock; None when the account already holds ``body``."""
        params = {"Identifier": row["account_id"], "Account": body, "PartnerAccountIdentifier": company}
        try:
            return self._call(
                "UpdateCustomerAccount",
                "update_customer_account",
                LastModifiedDate=row["last_modified"],
                **params,
            )
        except ConflictError:
            current = self.get(row["account_id"])
            row["last_modified"] = _iso(current.get("LastModifiedDate"))
            if current.get("Account") == body:
                return None  # an earlier attempt's update reached it; its state was not saved
            return self._call(
                "UpdateCustomerAccount",
                "update_customer_account",
                LastModifiedDate=row["last_modified"],
                **params,
            )

    def get(self, account_id: str) -> dict[str, Any]:
        """``GetCustomerAccount`` (one paced read)."""
        return self._call("GetCustomerAccount", "get_customer_account", Identifier=account_id)

    # -- phases ----------------------------------------------------------------------------------------
    def write_accounts(
        self,
        state: dict[str, dict[str, Any]],
        companies: list[dict[str, Any]],
        creating: dict[str, dict[str, Any]],
        scope: dict[str, dict[str, str]],
        save_meta: Any,
    ) -> None:
        """Create or update the account of each company read (``creating``: write-ahead create bodies)."""
        wanted: dict[str, dict[str, Any]] = {}
        for company in companies:
            cid = str(company["id"])
            row = state[cid]
            try:
                wanted[cid] = account_data(
                    company.get("properties") or {}, self.env.config, self.cfg.duns_property
                )
            except CompanyDataError as err:
                self._fail(cid, row, err, None, called=False)
        todo: list[str] = []
        for cid, body in wanted.items():
            row = state[cid]
            if not row.get("account_id") or json.loads(row.get("sent") or "null") != body:
                todo.append(cid)
            else:
                row["base_digest"] = scope[cid]["digest"]
                if row.get("error"):
                    row["error"] = None  # unchanged and nothing to send: a data error was fixed back
        # At most writes_per_run writes (a first run on a large book spreads its creates over runs, each
        # holding the lease for minutes, not hours); an interrupted create goes first.
        todo.sort(key=lambda c: (c not in creating, c))
        now, later = todo[: self.cfg.writes_per_run], todo[self.cfg.writes_per_run :]
        for cid in later:
            state[cid]["base_digest"] = None  # read again next run, whatever told this run it changed
        self.out.deferred = len(later)
        new = {c: creating.get(c) or wanted[c] for c in now if not state[c].get("account_id")}
        if any(creating.get(c) != b for c, b in new.items()):
            creating.update(new)
            save_meta()  # before the calls: a retry must send the same body with the same token
        for cid in now:
            row = state[cid]
            if cid in new:
                self._create(cid, row, new[cid], wanted[cid], creating)
            else:
                self._update(cid, row, wanted[cid])

    def _create(
        self,
        cid: str,
        row: dict[str, Any],
        sent: dict[str, Any],
        current: dict[str, Any],
        creating: dict[str, dict[str, Any]],
    ) -> None:
        try:
            resp = self.create(cid, sent, generation_of(row))
        except SyncError as err:
            if isinstance(err, ValidationError):
                # Refused, so nothing was created: the next run sends the company's data as it is then.
                creating.pop(cid, None)
            self._fail(cid, row, err, CREATE_ACTION, called=True)
            return
        creating.pop(cid, None)
        created = _iso(resp.get("CreatedDate"))
        row.update(
            account_id=resp["Id"],
            arn=resp["Arn"],
            sent=json.dumps(sent, sort_keys=True),
            status=resp.get("Status") or PENDING,
            # A new account's LastModifiedDate is its CreatedDate (GetCustomerAccount tells otherwise).
            last_modified=created,
            checked_at=self.now,
            error=None,
            # Sent an earlier attempt's body: read the company again next run, and update it then.
            base_digest=row["base_digest_wanted"] if sent == current else None,
        )
        self.out.created.append(cid)
        self.out.touched.add(cid)
        self._audit(row, cid, CREATE_ACTION, {"account": {"old": None, "new": resp["Id"]}}, None, True)

    def _update(self, cid: str, row: dict[str, Any], body: dict[str, Any]) -> None:
        old = json.loads(row.get("sent") or "{}")
        try:
            resp = self.update(cid, row, body)
        except NotFoundError as err:
            self._gone(cid, row, err)
            return
        except SyncError as err:
            self._fail(cid, row, err, UPDATE_ACTION, called=True)
            return
        if resp is not None:
            row["last_modified"] = _iso(resp.get("LastModifiedDate"))
        row.update(
            sent=json.dumps(body, sort_keys=True),
            status=PENDING,  # AWS matches the account again
            reason_code=None,
            existing_arn=None,
            checked_at=self.now,
            error=None,
            base_digest=row["base_digest_wanted"],
        )
        self.out.updated.append(cid)
        self.out.touched.add(cid)
        changes = {
            k: {"old": old.get(k), "new": body.get(k)}
            for k in sorted(set(old) | set(body))
            if old.get(k) != body.get(k)
        }
        self._audit(row, cid, UPDATE_ACTION, changes, None, resp is not None)

    def still_pending(self) -> set[str] | None:
        """Ids of the catalog's accounts ``SearchCustomerAccounts`` lists as ``PENDING``; None if unavailable.

        One call per 100 pending accounts. A search the account may not make (or that fails) returns None
        and the accounts are read one by one as before; it never blocks the reads that follow.
        """
        ids: set[str] = set()
        params: dict[str, Any] = {
            "Filter": {"EqualsTo": {"Key": "ENRICHMENT_STATUS", "Value": {"StringValue": PENDING}}},
            "MaxResults": 100,
        }
        while True:
            self.out.calls["SearchCustomerAccounts"] += 1
            try:
                page = self.env.partner_central.call(
                    "search_customer_accounts", Catalog=self.env.catalog, **params
                )
            except SyncError as err:
                log.warning("SearchCustomerAccounts failed (%s): pending accounts read one by one", err.code)
                return None
            ids |= {str(a["Id"]) for a in page.get("CustomerAccountSummaries") or [] if a.get("Id")}
            if not page.get("NextToken"):
                return ids
            params["NextToken"] = page["NextToken"]

    def poll(self, state: dict[str, dict[str, Any]]) -> list[str]:
        """Read the accounts still ``PENDING`` from earlier runs; returns the companies now matched.

        With more than one account waiting, one ``SearchCustomerAccounts`` pass lists the catalog's pending
        accounts first, and only ours that it no longer lists (matched since) are read: a book of accounts
        waiting for days costs a page per 100 of them a run, not a read each. An account the search lists
        by mistake (its index lags) is read a run later; one it misses costs one read that finds it pending.
        """
        waiting = sorted(
            (
                c
                for c, r in state.items()
                if r.get("status") == PENDING and r.get("account_id") and c not in self.out.touched
            ),
            key=lambda c: (state[c].get("checked_at") or "", c),
        )
        if len(waiting) > 1:
            listed = self.still_pending()
            if listed is not None:
                waiting = [c for c in waiting if str(state[c]["account_id"]) not in listed]
        pending = waiting[: self.cfg.reads_per_run]
        finished = []
        for cid in pending:
            row = state[cid]
            try:
                acc = self.get(row["account_id"])
            except NotFoundError as err:
                self._gone(cid, row, err)
                continue
            except SyncError as err:
                # Still PENDING, so read again next run; no error on the row (that would re-read the company).
                log.error("Company %s: customer account not read: %s", cid, without_values(err.message))
                self.out.failed[cid] = err.message
                continue
            self.out.polled.append(cid)
            row.update(
                last_modified=_iso(acc.get("LastModifiedDate")),
                checked_at=self.now,
                error=None,
            )
            status = acc.get("EnrichmentStatus")
            if status == PENDING:
                continue
            old_status = row.get("status")
            row.update(
                status=status,
                reason_code=acc.get("ReasonCode"),
                existing_arn=acc.get("ExistingCustomerAccountArn"),
                message=acc.get("Message"),
                # AwsEnrichment is present only when ENRICHED; other results clear AWS's earlier view.
                enrichment=json.dumps(enrichment_properties(acc), sort_keys=True),
            )
            finished.append(cid)
            self._audit(
                row,
                cid,
                MATCH_ACTION,
                {STATUS_PROPERTY: {"old": old_status, "new": status}},
                None,
                True,
                direction=Direction.TO_HUBSPOT.value,
                source="PARTNER_CENTRAL",
                reasonCode=acc.get("ReasonCode"),
            )
        return finished

    def duplicate_tasks(self, state: dict[str, dict[str, Any]], writer: Any) -> int:
        """One task per duplicate match, on the company, naming the existing account; returns tasks made."""
        todo = [
            c
            for c, r in sorted(state.items())
            if r.get("status") == "ACTION_REQUIRED"
            and r.get("reason_code") == DUPLICATE_REASON
            and r.get("existing_arn")
            and r.get("task_for") != r.get("existing_arn")
        ]
        if not todo:
            return 0
        tasks = []
        for cid in todo:
            row = state[cid]
            tasks.append(
                {
                    "marker": f"customer-account-duplicate:{row['account_id']}:"
                    f"{account_id_of(row['existing_arn'])}",
                    "object_id": cid,
                    "subject": "AWS customer account: duplicate customer match",
                    "body": task_body(cid, row["account_id"], row["existing_arn"], row.get("message")),
                }
            )
        try:
            made = writer.create_marked_tasks(tasks, on=COMPANY)
        except SyncError as err:
            log.error("Duplicate-match tasks not created (retried next run): %s", without_values(err.message))
            return 0
        for cid, task in zip(todo, tasks, strict=True):
            if task["marker"] in made:
                state[cid]["task_for"] = state[cid]["existing_arn"]
        return sum(1 for t in tasks if t["marker"] in made)

    # -- audit -----------------------------------------------------------------------------------------
    def _gone(self, cid: str, row: dict[str, Any], err: NotFoundError) -> None:
        """The company's account no longer exists (deleted in Partner Central): forget it, create anew.

        The row loses the account and AWS's view of it, and the company is read again next run, which
        creates a new account under the next ``generation``'s token (the first token would name the
        deleted account). Audited once, as ``CUSTOMER_ACCOUNT_GONE``.
        """
        gone = row.get("account_id")
        log.warning(
            "Company %s: customer account %s no longer exists in Partner Central (%s); a new one is "
            "created next run",
            cid,
            gone,
            err.code,
        )
        self._audit(
            row,
            cid,
            GONE_ACTION,
            {"account": {"old": gone, "new": None}},
            None,
            True,
            direction=Direction.TO_HUBSPOT.value,
            source="PARTNER_CENTRAL",
        )
        row.update(
            account_id=None,
            arn=None,
            sent=None,
            status=None,
            reason_code=None,
            existing_arn=None,
            message=None,
            last_modified=None,
            enrichment=None,
            error=None,
            base_digest=None,
            generation=generation_of(row) + 1,
        )
        self.out.touched.add(cid)

    def _fail(
        self,
        cid: str,
        row: dict[str, Any],
        err: SyncError,
        action: str | None,
        *,
        called: bool,
    ) -> None:
        log.error("Company %s: customer account not written: %s", cid, without_values(err.message))
        self.out.failed[cid] = err.message
        repeated = not called and row.get("error") == err.message
        row["error"] = err.message
        if repeated:
            return  # refused here again for the same reason, without a call: audited the first time
        action = action or (UPDATE_ACTION if row.get("account_id") else CREATE_ACTION)
        self._audit(row, cid, action, {"account": {"old": row.get("account_id"), "new": None}}, err, called)

    def _audit(
        self,
        row: dict[str, Any],
        cid: str,
        action: str,
        changes: dict[str, dict[str, Any]],
        error: SyncError | None,
        called: bool,
        *,
        direction: str = Direction.TO_PARTNER_CENTRAL.value,
        source: str = "HUBSPOT",
        **metadata: Any,
    ) -> None:
        api = {CREATE_ACTION: "CreateCustomerAccount", UPDATE_ACTION: "UpdateCustomerAccount"}
        self.out.audit.append(
            {
                "opportunity_id": row.get("opportunity_id"),
                "deal_id": row.get("deal_id"),
                "action": action,
                "direction": direction,
                "source": source,
                "changes": changes,
                "error": error.to_dict() if error else None,
                "api_calls": [api.get(action, "GetCustomerAccount")] if called else [],
                "metadata": {
                    "companyId": cid,
                    "customerAccountId": row.get("account_id"),
                    **{k: v for k, v in metadata.items() if v is not None},
                },
            }
        )

    def write_audit(self) -> int:
        """The collected entries (a retried task writes the same keys: no copies)."""
        from cosell_sync.audit import AuditEntry, FieldChange
        from cosell_sync.common import parse_ts

        if not self.out.audit:
            return 0
        stamp = self.run.get("run_timestamp") or parse_ts(self.run["started_at"])
        user = f"airflow:{self.run.get('dag_id') or 'cosell_reconcile'}"
        entries = [
            AuditEntry(
                opportunity_id=r["opportunity_id"],
                deal_id=r["deal_id"],
                run_id=self.run["run_id"].replace("#", "_"),
                run_timestamp=stamp,
                direction=r["direction"],
                action=r["action"],
                source=r["source"],
                user=user,
                changes={k: FieldChange(**v) for k, v in r["changes"].items()},
                success=r["error"] is None,
                error=r["error"],
                api_calls=r["api_calls"],
                metadata=r["metadata"],
            )
            for r in self.out.audit
        ]
        return self.env.audit.write(entries)


def sync_customer_accounts(
    env: SyncEnv, run: dict[str, Any], hs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Keep a customer account per co-sell company and bring AWS's view of it back (see the module doc).

    Args:
        env: clients and stores.
        run: the run description (``run_id``, ``catalog``, ``started_at``, ``dry_run``, ``direction``).
        hs: the HubSpot extract's result (its frame names the companies of changed records); None: only
            the baseline's company values tell what changed.

    Returns:
        Counts (``companies``, ``read``, ``created``, ``updated``, ``deferred`` (over
        ``writes_per_run``), ``polled``, ``matched``, ``tasks``,
        ``hubspot_updated``, ``failed``) and ``api_calls``; or ``skipped``.
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers.hubspot import HubSpotWriter

    cfg = env.config.customer_accounts
    if not cfg.enabled:
        return {"skipped": "customer_accounts.enabled is false"}
    if run.get("dry_run"):
        return {"skipped": "dry run"}
    if run.get("direction") == Direction.TO_HUBSPOT.value:
        return {"skipped": "this run only writes to HubSpot"}
    gw = HubSpotGateway(env.hubspot)
    step = _Step(env, run, gw)
    step_state = StepState(env.snapshots, run["catalog"], STATE_NAME)
    previous, meta = step_state.load()
    state = _rows(previous)
    before = {c: dict(r) for c, r in state.items()}
    creating: dict[str, dict[str, Any]] = dict(meta.get("creating") or {})

    def save_meta() -> None:
        step_state.save_meta({**meta, "creating": creating, "last_run_id": run["run_id"]})

    scope = linked_companies(env)
    changed = _changed_companies(env, hs)
    for cid, link in scope.items():
        row = state.setdefault(cid, {c: None for c in STATE_COLUMNS})
        row.update(opportunity_id=link["opportunity_id"], deal_id=link["deal_id"])
    to_read = sorted(
        c
        for c, link in scope.items()
        if state[c].get("base_digest") != link["digest"]
        or c in changed
        or state[c].get("error")
        or c in creating
    )
    for c in to_read:
        state[c]["base_digest_wanted"] = scope[c]["digest"]
    props = sorted({hs_prop for _, hs_prop, _ in account_fields(env.config)} | {DOMAIN_PROPERTY})
    if cfg.duns_property:
        props = sorted({*props, cfg.duns_property})
    found, _ = gw.batch_read(COMPANY.plural, to_read, props) if to_read else ([], [])
    gone = set(to_read) - {str(c["id"]) for c in found}
    for cid in sorted(gone - set(creating)):
        # Deleted or merged in HubSpot since the baseline was written: not read again every run, only when
        # the baseline's values for it change.
        log.warning("Company %s: linked in the baseline but not found in HubSpot; skipped", cid)
        state[cid]["base_digest"] = state[cid]["base_digest_wanted"]
    step.write_accounts(state, found, creating, scope, save_meta)
    for row in state.values():
        row.pop("base_digest_wanted", None)
    # Saved now: a task that dies while writing HubSpot must not send these writes again.
    if state != before or meta.get("creating", {}) != creating:
        step_state.save_frame(_frame(state))
        save_meta()

    matched = step.poll(state)
    writer = HubSpotWriter(env.config, gw)
    tasks = step.duplicate_tasks(state, writer)

    # AWS's view on the companies: only what differs from the last write (a failed write is retried).
    updates: dict[str, dict[str, str]] = {}
    for cid, row in state.items():
        if not row.get("account_id") and not row.get("written"):
            continue  # no account yet, nothing shown (an account found gone is cleared from the company)
        wanted = company_properties(row)
        if digest(wanted) != row.get("written"):
            updates[cid] = wanted
    written = writer.update_objects({COMPANY.plural: updates}, {}) if updates else None
    for cid in updates:
        if written is not None and cid in written.failed:
            msg = without_values(str(written.failed[cid].get("message") or ""))
            log.error("Company %s: customer account properties not written: %s", cid, msg)
        else:
            state[cid]["written"] = digest(updates[cid])
    step.write_audit()
    for row in state.values():
        row.pop("message", None)
    if state != before:
        step_state.save_frame(_frame(state))
        save_meta()
    calls = Counter(step.out.calls)
    calls.update(gw.calls)
    result = {
        "companies": len(scope),
        "read": len(found),
        "created": len(step.out.created),
        "updated": len(step.out.updated),
        "deferred": step.out.deferred,
        "polled": len(step.out.polled),
        "matched": len(matched),
        "tasks": tasks,
        "hubspot_updated": len(updates) - (len(written.failed) if written else 0),
        "failed": len(step.out.failed),
    }
    log.info("Customer accounts: %s", result)
    return {**result, "failed_companies": sorted(step.out.failed), "api_calls": dict(calls)}
