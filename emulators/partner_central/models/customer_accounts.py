"""Customer accounts: create, get, update, delete, search and statistics, with asynchronous AWS enrichment.

A customer account maps a customer from the partner's records to an AWS customer (API reference
``CreateCustomerAccount``). Matching runs asynchronously: a new or updated account is ``PENDING`` and,
once ``enrichment_delay_ms`` of emulator time has passed, becomes ``ENRICHED``, ``NO_MATCH_FOUND`` or
``ACTION_REQUIRED``. The outcome is deterministic: the account's normalised domain (``Domain``, else the host
of ``WebsiteUrl``) or its DUNS number is looked up in a small "AWS customer directory"
(:data:`CUSTOMER_DIRECTORY`, extendable through ``POST /_emulator/customer-directory``). Rules not documented
by AWS are listed in docs/api-rules.md ("Customer accounts").

Accounts live in each catalog's store under ``customer_accounts`` (so ``dump``/``load`` persist them); the
pending matches are rebuilt from the stored records on ``load``. AWS documents no EventBridge events for
customer accounts, so none are emitted.
"""

from __future__ import annotations

import copy
import heapq
from typing import Any
from urllib.parse import urlsplit

from emulators.partner_central.exceptions import (
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ValidationException,
    business_error,
)
from emulators.partner_central.models.base import (
    decode_token,
    digest,
    encode_token,
    get_path,
    iso,
    parse_ts,
)
from emulators.partner_central.models.catalog_extras import CatalogExtrasMixin
from emulators.partner_central.models.tasks import TasksMixin

# Emulator time between a create/update and the match result (assumption: AWS documents no duration).
ENRICHMENT_DELAY_MS = 60_000
DEFAULT_PAGE_SIZE = 20
MAX_BUCKETS = 100  # BucketList max (model)
MISSING_BUCKET_VALUE = ""  # the Values of the IncludeMissing group (assumption)

# Directory entry field -> (AwsEnrichment section, member). Control bodies use the snake_case names; the API
# member names are accepted too.
DIRECTORY_FIELDS: dict[str, tuple[str, str]] = {
    "account_name": ("Customer", "AccountName"),
    "industry": ("Customer", "Industry"),
    "sub_industry": ("Customer", "SubIndustry"),
    "sector": ("Customer", "Sector"),
    "segment": ("Customer", "Segment"),
    "company_size": ("Customer", "CompanySize"),
    "region": ("Customer", "Region"),
    "sub_region": ("Customer", "SubRegion"),
    "geo": ("Customer", "Geo"),
    "country": ("Customer", "Country"),
    "account_planning_qualification": ("Customer", "CustomerAccountPlanningQualification"),
    "eligible_programs": ("Customer", "EligiblePrograms"),
    "marketplace_engagement_score": ("Insights", "MarketplaceEngagementScore"),
    "solution_category": ("Insights", "SolutionCategory"),
    "solution_score": ("Insights", "SolutionScore"),
    "solution_sub_category": ("Insights", "SolutionSubCategory"),
}


def _entry(
    domain: str, duns: str | None, customer: dict[str, Any], insights: dict[str, Any]
) -> dict[str, Any]:
    return {"Domain": domain, "Duns": duns, "Customer": customer, "Insights": insights}


# The seeded AWS customer directory: what AWS "knows" about customers, keyed by normalised domain.
CUSTOMER_DIRECTORY: list[dict[str, Any]] = [
    _entry(
        "anycompany.com",
        "123456789",
        {
            "AccountName": "AnyCompany",
            "Industry": "Software and Internet",
            "SubIndustry": "SaaS",
            "Sector": "Private",
            "Segment": "Enterprise",
            "CompanySize": "1001-5000",
            "Region": "NAMER",
            "SubRegion": "US West",
            "Geo": "AMER",
            "Country": "US",
            "CustomerAccountPlanningQualification": "Qualified",
            "EligiblePrograms": ["MAP", "ISV Accelerate"],
        },
        {
            "MarketplaceEngagementScore": "High",
            "SolutionCategory": "Analytics",
            "SolutionScore": "High",
            "SolutionSubCategory": "Data Lakes",
        },
    ),
    _entry(
        "example.com",
        "234567891",
        {
            "AccountName": "Example Corp",
            "Industry": "Financial Services",
            "SubIndustry": "Banking",
            "Sector": "Private",
            "Segment": "Strategic",
            "CompanySize": "10000+",
            "Region": "NAMER",
            "SubRegion": "US East",
            "Geo": "AMER",
            "Country": "US",
            "CustomerAccountPlanningQualification": "Qualified",
            "EligiblePrograms": ["MAP"],
        },
        {
            "MarketplaceEngagementScore": "Medium",
            "SolutionCategory": "Security",
            "SolutionScore": "Medium",
            "SolutionSubCategory": "Identity",
        },
    ),
    _entry(
        "octank.com",
        "987654321",
        {
            "AccountName": "Octank",
            "Industry": "Healthcare",
            "SubIndustry": "Providers",
            "Sector": "Private",
            "Segment": "Mid-Market",
            "CompanySize": "501-1000",
            "Region": "EMEA",
            "SubRegion": "DACH",
            "Geo": "EMEA",
            "Country": "DE",
            "CustomerAccountPlanningQualification": "Not Qualified",
            "EligiblePrograms": ["POC Funding"],
        },
        {
            "MarketplaceEngagementScore": "Low",
            "SolutionCategory": "Machine Learning",
            "SolutionScore": "High",
            "SolutionSubCategory": "Generative AI",
        },
    ),
    _entry(
        "anyorganization.org",
        None,
        {
            "AccountName": "AnyOrganization",
            "Industry": "Non-Profit Organization",
            "SubIndustry": "Charities",
            "Sector": "Public",
            "Segment": "SMB",
            "CompanySize": "51-200",
            "Region": "APJ",
            "SubRegion": "ANZ",
            "Geo": "APJ",
            "Country": "AU",
            "CustomerAccountPlanningQualification": "Not Qualified",
            "EligiblePrograms": [],
        },
        {"MarketplaceEngagementScore": "Low", "SolutionCategory": "Storage", "SolutionScore": "Low"},
    ),
    # AWS cannot process this customer's record: matching ends ACTION_REQUIRED / PROCESSING_ERROR.
    {**_entry("processing-error.example", None, {}, {}), "ProcessingError": True},
]

# FilterableField / AggregatableField -> where the value lives in the stored record.
FIELD_PATHS: dict[str, str] = {
    "ENRICHMENT_STATUS": "EnrichmentStatus",
    "COMPANY_NAME": "Account.CompanyName",
    "AWS_INDUSTRY": "AwsEnrichment.Customer.Industry",
    "ACCOUNT_PLANNING_QUALIFICATION": "AwsEnrichment.Customer.CustomerAccountPlanningQualification",
    "PROGRAM_ELIGIBILITY": "AwsEnrichment.Customer.EligiblePrograms",
    "IMPORT_ID": "ImportId",
    "CREATED_DATE": "CreatedDate",
    "LAST_MODIFIED_DATE": "LastModifiedDate",
    "GEO": "AwsEnrichment.Customer.Geo",
    "COUNTRY": "AwsEnrichment.Customer.Country",
    "SEGMENT": "AwsEnrichment.Customer.Segment",
    "REGION": "AwsEnrichment.Customer.Region",
    "SOLUTION_CATEGORY": "AwsEnrichment.Insights.SolutionCategory",
    "MARKETPLACE_ENGAGEMENT_SCORE": "AwsEnrichment.Insights.MarketplaceEngagementScore",
    "SOLUTION_SCORE": "AwsEnrichment.Insights.SolutionScore",
}
DATE_FIELDS = frozenset({"CREATED_DATE", "LAST_MODIFIED_DATE"})
MULTI_VALUED_FIELDS = frozenset({"PROGRAM_ELIGIBILITY"})
RANGE_OPERATORS = ("GreaterThan", "GreaterThanOrEquals", "LessThan", "LessThanOrEquals")
LEAF_OPERATORS = ("EqualsTo", "ContainsAny", "ContainsAll", *RANGE_OPERATORS)
FILTER_MEMBERS = ("AndAllFilters", "OrAllFilters", "NotFilter", *LEAF_OPERATORS)
SCORE_RANK = {"low": 1, "medium": 2, "high": 3}
SORT_FIELDS = {
    "COMPANY_NAME": "Account.CompanyName",
    "CREATED_DATE": "CreatedDate",
    "LAST_MODIFIED_DATE": "LastModifiedDate",
    "MARKETPLACE_ENGAGEMENT_SCORE": "AwsEnrichment.Insights.MarketplaceEngagementScore",
    "SOLUTION_SCORE": "AwsEnrichment.Insights.SolutionScore",
}


def normalise_domain(value: str | None) -> str | None:
    """``Example.COM.``, ``www.example.com`` and ``https://www.example.com/x`` all become ``example.com``."""
    if not value:
        return None
    text = value.strip()
    if "://" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host or None


def account_domain(account: dict[str, Any]) -> str | None:
    """The domain AWS matches on: ``Domain`` if given, else the host of ``WebsiteUrl``."""
    return normalise_domain(account.get("Domain")) or normalise_domain(account.get("WebsiteUrl"))


def _filter_error(path: str, message: str, code: str = "INVALID_VALUE") -> ValidationException:
    return ValidationException(message, [{"FieldName": path, "Message": message, "Code": code}])


class CustomerAccountsMixin(TasksMixin, CatalogExtrasMixin):
    """The customer account operations and the asynchronous matching ("enrichment") behind them."""

    # ------------------------------------------------------------------------------------- plumbing
    def reset(self) -> None:
        """Reset everything, then restore the seeded customer directory and the enrichment settings."""
        with self.lock:
            super().reset()
            self.enrichment_delay_ms = ENRICHMENT_DELAY_MS
            # None: no limit on accounts per catalog; a test control sets one to reach the quota error.
            self.customer_account_limit: int | None = None
            self.customer_directory: dict[str, dict[str, Any]] = {
                e["Domain"]: copy.deepcopy(e) for e in CUSTOMER_DIRECTORY
            }
            # (due ms, catalog, account id) of each scheduled match; stale entries are skipped.
            self.pending_enrichments: list[tuple[int, str, str]] = []

    def dump(self) -> dict[str, Any]:
        """The base state plus the customer directory (accounts are already in the catalog stores)."""
        with self.lock:
            data = super().dump()
            data["customer_directory"] = copy.deepcopy(self.customer_directory)
            return data

    def load(self, data: dict[str, Any]) -> None:
        """Restore the state and re-schedule the matches of accounts that are still ``PENDING``."""
        with self.lock:
            super().load(data)
            if "customer_directory" in data:
                self.customer_directory = copy.deepcopy(data["customer_directory"])
            self.pending_enrichments = []
            for catalog, store in self.stores.items():
                for acc in store.get("customer_accounts", {}).values():
                    if acc["EnrichmentStatus"] == "PENDING" and acc.get("EnrichDue") is not None:
                        heapq.heappush(self.pending_enrichments, (acc["EnrichDue"], catalog, acc["Id"]))

    def run_due_tasks(self) -> None:
        """Finish due tasks (``TasksMixin``) and due customer account matches."""
        super().run_due_tasks()
        self.run_due_enrichments()

    def _resource_arns(self) -> set[str]:
        # Customer accounts take tags (CreateCustomerAccount ``Tags``), so TagResource must know their ARNs.
        arns = super()._resource_arns()
        for store in self.stores.values():
            arns.update(a["Arn"] for a in store.get("customer_accounts", {}).values())
        return arns

    def on_customer_account_deleted(self, account: dict[str, Any]) -> None:
        """Hook run after an account is deleted (the bulk-job mixin counts ``DeletedCount`` with it)."""

    def customer_accounts(self, catalog: str) -> dict[str, dict[str, Any]]:
        """The catalog's customer accounts by id."""
        return self.store(catalog).setdefault("customer_accounts", {})

    def find_customer_account(self, catalog: str, identifier: str) -> dict[str, Any] | None:
        """The stored account for an id or ARN of this catalog, or None."""
        acc = self.customer_accounts(catalog).get(identifier.rsplit("/", 1)[-1])
        if acc is None or (identifier.startswith("arn:") and identifier != acc["Arn"]):
            return None
        return acc

    def customer_account(self, catalog: str, identifier: str) -> dict[str, Any]:
        """The stored account or ``ResourceNotFoundException`` (also for a deleted one)."""
        acc = self.find_customer_account(catalog, identifier)
        if acc is None:
            raise ResourceNotFoundException(f"Customer account {identifier} not found in catalog {catalog}")
        return acc

    # ------------------------------------------------------------------------------ directory control
    def add_directory_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add or replace an AWS customer directory entry (``POST /_emulator/customer-directory``).

        ``body`` has ``domain`` and any of :data:`DIRECTORY_FIELDS` (or their API member names), ``duns`` and
        ``processing_error``. Only later matches see the entry.
        """
        domain = normalise_domain(body.get("domain") or body.get("Domain"))
        if not domain:
            raise ValueError("domain is required")
        by_member = {member: (section, member) for section, member in DIRECTORY_FIELDS.values()}
        entry: dict[str, Any] = {"Domain": domain, "Duns": None, "Customer": {}, "Insights": {}}
        for key, value in body.items():
            if key in ("domain", "Domain"):
                continue
            if key in ("duns", "Duns"):
                entry["Duns"] = str(value) if value else None
            elif key in ("processing_error", "ProcessingError"):
                entry["ProcessingError"] = bool(value)
            elif key in DIRECTORY_FIELDS or key in by_member:
                section, member = DIRECTORY_FIELDS.get(key) or by_member[key]
                entry[section][member] = list(value) if member == "EligiblePrograms" else value
            else:
                raise ValueError(f"unknown directory field {key!r}")
        with self.lock:
            self.customer_directory[domain] = entry
        return copy.deepcopy(entry)

    def directory_entries(self) -> list[dict[str, Any]]:
        """The AWS customer directory (``GET /_emulator/customer-directory``)."""
        with self.lock:
            return copy.deepcopy(list(self.customer_directory.values()))

    # ------------------------------------------------------------------------------------ validation
    @staticmethod
    def _ca_check_account_data(account: dict[str, Any]) -> None:
        """Business rules on ``CustomerAccountData`` beyond the model's shape checks (assumptions)."""
        if not account["CompanyName"].strip():
            raise business_error(
                "Account.CompanyName", "Account.CompanyName must not be blank", "REQUIRED_FIELD_MISSING"
            )
        domain = account.get("Domain")
        if domain is not None and (
            "://" in domain or "/" in domain or " " in domain.strip() or "." not in domain.strip(".")
        ):
            raise business_error(
                "Account.Domain",
                f"Account.Domain must be an internet domain such as example.com, not {domain!r}",
                "INVALID_STRING_FORMAT",
            )
        if account.get("Industry") == "Other" and not (account.get("OtherIndustry") or "").strip():
            # OtherIndustry describes the industry "when the industry is Other" (API reference).
            raise business_error(
                "Account.OtherIndustry",
                "Account.OtherIndustry is required when Account.Industry is Other",
                "REQUIRED_FIELD_MISSING",
            )

    # ---------------------------------------------------------------------------------- operations
    def create_customer_account(
        self, params: dict[str, Any], *, import_id: str | None = None
    ) -> dict[str, Any]:
        """CreateCustomerAccount: a new ``PENDING`` account; matching runs asynchronously.

        Args:
            params: the API request (``Catalog``, ``Account``, optional ``PartnerAccountIdentifier``,
                ``Tags``, ``ClientToken``).
            import_id: the bulk job that imports the account (filterable as ``IMPORT_ID``).

        Returns:
            The API response (``Arn``, ``Id``, ``Status``, ``Catalog``, ``PartnerAccountIdentifier``,
            ``CreatedDate`` in epoch ms).
        """
        catalog = params["Catalog"]
        self.store(catalog)
        self._ca_check_account_data(params["Account"])

        def action() -> dict[str, Any]:
            with self.lock:
                accounts = self.customer_accounts(catalog)
                if self.customer_account_limit is not None and len(accounts) >= self.customer_account_limit:
                    raise ServiceQuotaExceededException(
                        f"Catalog {catalog} already has {len(accounts)} customer accounts, "
                        f"the maximum is {self.customer_account_limit}"
                    )
                cid = f"cust-acc-{self.rand_id(13)}"
                while cid in accounts:
                    cid = f"cust-acc-{self.rand_id(13)}"
                now = self.now()
                acc: dict[str, Any] = {
                    "Arn": self.make_arn(catalog, "customer-account", cid),
                    "Id": cid,
                    "Catalog": catalog,
                    "PartnerAccountIdentifier": params.get("PartnerAccountIdentifier"),
                    "CreatedDate": now,
                    "LastModifiedDate": now,
                    "Account": copy.deepcopy(params["Account"]),
                    "ImportId": import_id,
                }
                self._ca_schedule_enrichment(acc)
                accounts[cid] = acc
                if params.get("Tags"):
                    self.tags[acc["Arn"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
                return self._ca_write_response(acc, with_last_modified=False)

        if params.get("ClientToken"):
            return self.idempotent(catalog, "CreateCustomerAccount", params, action)
        return action()

    def update_customer_account(self, params: dict[str, Any]) -> dict[str, Any]:
        """UpdateCustomerAccount: full replace under the ``LastModifiedDate`` lock; matching runs again.

        Omitted members of ``Account`` and an omitted ``PartnerAccountIdentifier`` become null. A
        ``LastModifiedDate`` other than the current one is a ``ConflictException``.
        """
        with self.lock:
            self.run_due_enrichments()
            catalog = params["Catalog"]
            acc = self.customer_account(catalog, params["Identifier"])
            if parse_ts(params["LastModifiedDate"]) != acc["LastModifiedDate"]:
                raise ConflictException(
                    f"Customer account {acc['Id']} was modified at {iso(acc['LastModifiedDate'])}; "
                    "fetch the latest version and retry"
                )
            self._ca_check_account_data(params["Account"])
            acc["Account"] = copy.deepcopy(params["Account"])
            acc["PartnerAccountIdentifier"] = params.get("PartnerAccountIdentifier")
            acc["LastModifiedDate"] = self.now()
            self._ca_schedule_enrichment(acc)
            return self._ca_write_response(acc, with_last_modified=True)

    def get_customer_account(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetCustomerAccount: the account, its match result and its tags."""
        with self.lock:
            self.run_due_enrichments()
            acc = self.customer_account(params["Catalog"], params["Identifier"])
            out = copy.deepcopy(acc)
            out["Tags"] = [{"Key": k, "Value": v} for k, v in self.tags.get(acc["Arn"], {}).items()]
            return out

    def delete_customer_account(self, params: dict[str, Any]) -> None:
        """DeleteCustomerAccount: idempotent; an unknown or already deleted account succeeds too."""
        with self.lock:
            catalog = params["Catalog"]
            acc = self.find_customer_account(catalog, params["Identifier"])
            if acc is None:
                return
            del self.customer_accounts(catalog)[acc["Id"]]
            self.tags.pop(acc["Arn"], None)
            self.on_customer_account_deleted(acc)

    def search_customer_accounts(self, params: dict[str, Any]) -> dict[str, Any]:
        """SearchCustomerAccounts: filter tree, sort (default ``LAST_MODIFIED_DATE`` descending), pages."""
        with self.lock:
            self.run_due_enrichments()
            items = self._ca_filtered(params)
            sort = params.get("Sort") or {"SortBy": "LAST_MODIFIED_DATE", "SortOrder": "DESCENDING"}
            items = self._ca_sorted(items, sort["SortBy"], sort["SortOrder"] == "DESCENDING")
            query = digest({"f": params.get("Filter"), "s": sort})
            start = 0
            if params.get("NextToken"):
                token = decode_token(params["NextToken"])
                if token.get("q") != query or not isinstance(token.get("o"), int):
                    raise _filter_error("NextToken", "NextToken does not match the request")
                start = token["o"]
            size = params.get("MaxResults") or DEFAULT_PAGE_SIZE
            page = items[start : start + size]
            out: dict[str, Any] = {"CustomerAccountSummaries": [self._ca_summary(a) for a in page]}
            if start + size < len(items):
                out["NextToken"] = encode_token({"o": start + size, "q": query})
            return out

    def get_customer_account_statistics(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetCustomerAccountStatistics: the count of matching accounts and one bucket list per GroupBy."""
        with self.lock:
            self.run_due_enrichments()
            items = self._ca_filtered(params)
            out: dict[str, Any] = {"TotalCount": len(items)}
            if params.get("Aggregations"):
                out["Aggregations"] = [
                    self._ca_aggregate(items, agg["GroupBy"][0], bool(params.get("IncludeMissing")))
                    for agg in params["Aggregations"]
                ]
            return out

    # -------------------------------------------------------------------------------- enrichment
    def _ca_schedule_enrichment(self, acc: dict[str, Any]) -> None:
        """Back to ``PENDING``, without the previous match result; the match is due after the delay."""
        for key in ("AwsEnrichment", "ReasonCode", "Message", "ExistingCustomerAccountArn", "Issues"):
            acc.pop(key, None)
        acc["EnrichmentStatus"] = "PENDING"
        acc["EnrichDue"] = self.peek_now() + self.enrichment_delay_ms
        heapq.heappush(self.pending_enrichments, (acc["EnrichDue"], acc["Catalog"], acc["Id"]))

    def run_due_enrichments(self) -> None:
        """Finish every match whose time has come, oldest first (a record's first match wins duplicates)."""
        with self.lock:
            now = self.peek_now()
            while self.pending_enrichments and self.pending_enrichments[0][0] <= now:
                due, catalog, cid = heapq.heappop(self.pending_enrichments)
                acc = self.customer_accounts(catalog).get(cid)
                # Skipped: deleted since, or re-scheduled by an update (another heap entry carries it).
                if acc is not None and acc["EnrichmentStatus"] == "PENDING" and acc.get("EnrichDue") == due:
                    self._ca_enrich(acc, due)

    def _ca_directory_match(self, account: dict[str, Any]) -> dict[str, Any] | None:
        domain = account_domain(account)
        if domain:
            labels = domain.split(".")
            # A subdomain (shop.example.com) matches its parent domain's entry.
            for i in range(len(labels) - 1):
                entry = self.customer_directory.get(".".join(labels[i:]))
                if entry is not None:
                    return entry
        duns = account.get("Duns")
        if duns:
            return next((e for e in self.customer_directory.values() if e.get("Duns") == duns), None)
        return None

    def _ca_enrich(self, acc: dict[str, Any], due: int) -> None:
        account = acc["Account"]
        issues: list[dict[str, str]] = []
        website, domain = normalise_domain(account.get("WebsiteUrl")), normalise_domain(account.get("Domain"))
        if website and domain and website != domain and not website.endswith("." + domain):
            issues.append(
                {
                    "Severity": "WARNING",
                    "Code": "DOMAIN_WEBSITE_MISMATCH",
                    "Message": f"Account.Domain {domain} differs from the Account.WebsiteUrl host {website}",
                }
            )
        entry = self._ca_directory_match(account)
        acc.pop("MatchedCustomer", None)
        if entry is None:
            acc["EnrichmentStatus"] = "NO_MATCH_FOUND"
            acc["Message"] = (
                "AWS could not match this account to a customer. Check Account.Domain, Account.WebsiteUrl "
                "and Account.Duns, then update the account to match it again."
            )
            issues.append({"Severity": "WARNING", "Code": "NO_MATCH_FOUND", "Message": acc["Message"]})
        elif entry.get("ProcessingError"):
            acc.update(
                {
                    "EnrichmentStatus": "ACTION_REQUIRED",
                    "ReasonCode": "PROCESSING_ERROR",
                    "Message": "AWS could not process this customer account. Update the account to retry.",
                }
            )
            issues.append({"Severity": "ERROR", "Code": "PROCESSING_ERROR", "Message": acc["Message"]})
        else:
            existing = self._ca_account_mapping(acc["Catalog"], entry["Domain"], acc["Id"])
            if existing is not None:
                acc.update(
                    {
                        "EnrichmentStatus": "ACTION_REQUIRED",
                        "ReasonCode": "DUPLICATE_CUSTOMER_MATCH",
                        "ExistingCustomerAccountArn": existing["Arn"],
                        "Message": (
                            f"Customer account {existing['Id']} already maps this customer. Delete this "
                            "account, or update it if it describes a different customer."
                        ),
                    }
                )
                issues.append(
                    {"Severity": "ERROR", "Code": "DUPLICATE_CUSTOMER_MATCH", "Message": acc["Message"]}
                )
            else:
                acc["EnrichmentStatus"] = "ENRICHED"
                acc["MatchedCustomer"] = entry["Domain"]
                acc["AwsEnrichment"] = {
                    "Customer": copy.deepcopy(entry["Customer"]),
                    "Insights": copy.deepcopy(entry["Insights"]),
                }
        if issues:
            acc["Issues"] = issues
        acc.pop("EnrichDue", None)
        # The match changes the account, so LastModifiedDate moves to when it finished (assumption).
        acc["LastModifiedDate"] = max(due, acc["LastModifiedDate"] + 1)
        self.advance_clock_to(acc["LastModifiedDate"])

    def _ca_account_mapping(self, catalog: str, customer: str, other_than: str) -> dict[str, Any] | None:
        """The oldest other ``ENRICHED`` account of the catalog mapped to the same AWS customer."""
        candidates = [
            a
            for a in self.customer_accounts(catalog).values()
            if a["Id"] != other_than
            and a["EnrichmentStatus"] == "ENRICHED"
            and a.get("MatchedCustomer") == customer
        ]
        return min(candidates, key=lambda a: (a["CreatedDate"], a["Id"]), default=None)

    # ---------------------------------------------------------------------------- search helpers
    @staticmethod
    def _ca_write_response(acc: dict[str, Any], *, with_last_modified: bool) -> dict[str, Any]:
        out = {
            "Arn": acc["Arn"],
            "Id": acc["Id"],
            "Status": acc["EnrichmentStatus"],
            "Catalog": acc["Catalog"],
            "PartnerAccountIdentifier": acc.get("PartnerAccountIdentifier"),
            "CreatedDate": acc["CreatedDate"],
        }
        if with_last_modified:
            out["LastModifiedDate"] = acc["LastModifiedDate"]
        return out

    @staticmethod
    def _ca_summary(acc: dict[str, Any]) -> dict[str, Any]:
        out = {
            k: acc.get(k)
            for k in (
                "Arn",
                "Id",
                "Catalog",
                "EnrichmentStatus",
                "PartnerAccountIdentifier",
                "CreatedDate",
                "LastModifiedDate",
            )
        }
        out["CustomerAccount"] = {"CompanyName": acc["Account"]["CompanyName"]}
        enrichment = acc.get("AwsEnrichment")
        if enrichment:
            customer = dict(enrichment.get("Customer") or {})
            # The summary calls it AccountPlanningQualification (model AwsEnrichmentCustomerSummary).
            customer["AccountPlanningQualification"] = customer.pop(
                "CustomerAccountPlanningQualification", None
            )
            out["AwsEnrichment"] = {"Customer": customer, "Insights": enrichment.get("Insights") or {}}
        return out

    def _ca_filtered(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        node = params.get("Filter")
        accounts = list(self.customer_accounts(params["Catalog"]).values())
        if node is None:
            return accounts
        self._ca_check_filter(node, "Filter")
        return [a for a in accounts if self._ca_matches(a, node)]

    def _ca_check_filter(self, node: dict[str, Any], path: str) -> None:
        """Reject filter trees the service cannot run (before any account is looked at)."""
        present = [m for m in FILTER_MEMBERS if node.get(m) is not None]
        if len(present) != 1:
            raise _filter_error(path, f"{path} must specify exactly one of {', '.join(FILTER_MEMBERS)}")
        op = present[0]
        if op in ("AndAllFilters", "OrAllFilters"):
            for i, child in enumerate(node[op]):
                self._ca_check_filter(child, f"{path}.{op}[{i}]")
            return
        if op == "NotFilter":
            self._ca_check_filter(node[op], f"{path}.NotFilter")
            return
        cond = node[op]
        key, value = cond["Key"], cond["Value"]
        vpath = f"{path}.{op}.Value"
        if value.get("LongValue") is not None:
            raise _filter_error(f"{vpath}.LongValue", "LongValue is reserved for future use")
        if op in RANGE_OPERATORS:
            if key not in DATE_FIELDS:
                raise _filter_error(f"{path}.{op}.Key", f"{op} is supported on date fields only, not {key}")
            needed = "DateValue"
        elif key in DATE_FIELDS:
            raise _filter_error(
                f"{path}.{op}.Key", f"{key} supports GreaterThan(OrEquals) and LessThan(OrEquals) only"
            )
        elif op == "EqualsTo":
            needed = "StringValue"
        else:
            if op == "ContainsAll" and key not in MULTI_VALUED_FIELDS:
                raise _filter_error(
                    f"{path}.{op}.Key", f"ContainsAll is supported on multi-valued fields only, not {key}"
                )
            needed = "StringListValue"
        if value.get(needed) is None:
            raise _filter_error(
                f"{vpath}.{needed}", f"{op} on {key} needs Value.{needed}", "REQUIRED_FIELD_MISSING"
            )
        if needed == "DateValue":
            try:
                parse_ts(value["DateValue"])
            except ValueError as err:
                raise _filter_error(f"{vpath}.DateValue", "DateValue is not a valid timestamp") from err

    @staticmethod
    def _ca_values(acc: dict[str, Any], key: str) -> list[str]:
        """The record's values for a string field, casefolded for comparison (empty when missing)."""
        raw = get_path(acc, FIELD_PATHS[key])
        items = raw if isinstance(raw, list) else [raw]
        return [str(v).casefold() for v in items if v not in (None, "")]

    def _ca_matches(self, acc: dict[str, Any], node: dict[str, Any]) -> bool:
        if node.get("AndAllFilters") is not None:
            return all(self._ca_matches(acc, child) for child in node["AndAllFilters"])
        if node.get("OrAllFilters") is not None:
            return any(self._ca_matches(acc, child) for child in node["OrAllFilters"])
        if node.get("NotFilter") is not None:
            return not self._ca_matches(acc, node["NotFilter"])
        op = next(m for m in LEAF_OPERATORS if node.get(m) is not None)
        key, value = node[op]["Key"], node[op]["Value"]
        if op in RANGE_OPERATORS:
            field, bound = acc[FIELD_PATHS[key]], parse_ts(value["DateValue"])
            return {
                "GreaterThan": field > bound,
                "GreaterThanOrEquals": field >= bound,
                "LessThan": field < bound,
                "LessThanOrEquals": field <= bound,
            }[op]
        have = set(self._ca_values(acc, key))
        if op == "EqualsTo":
            return value["StringValue"].casefold() in have
        wanted = {v.casefold() for v in value["StringListValue"]}
        return bool(have & wanted) if op == "ContainsAny" else wanted <= have

    @staticmethod
    def _ca_sorted(items: list[dict[str, Any]], by: str, descending: bool) -> list[dict[str, Any]]:
        """Sorted by ``by``, ties by Id; accounts without a value (no score yet) come last either way."""

        def key(acc: dict[str, Any]) -> Any:
            value = get_path(acc, SORT_FIELDS[by])
            if by == "COMPANY_NAME":
                return str(value).casefold()
            if by in ("MARKETPLACE_ENGAGEMENT_SCORE", "SOLUTION_SCORE"):
                return SCORE_RANK.get(str(value).casefold()) if value else None
            return value

        with_value = [a for a in items if key(a) is not None]
        without = [a for a in items if key(a) is None]
        with_value.sort(key=lambda a: (key(a), a["Id"]), reverse=descending)
        without.sort(key=lambda a: a["Id"])
        return with_value + without

    def _ca_aggregate(self, items: list[dict[str, Any]], field: str, include_missing: bool) -> dict[str, Any]:
        counts: dict[str, int] = {}
        missing = 0
        for acc in items:
            raw = get_path(acc, FIELD_PATHS[field])
            values = [str(v) for v in (raw if isinstance(raw, list) else [raw]) if v not in (None, "")]
            if not values:
                missing += 1
            for v in dict.fromkeys(values):
                counts[v] = counts.get(v, 0) + 1
        ordered = sorted(counts, key=lambda v: (-counts[v], v))
        room = MAX_BUCKETS - (1 if include_missing and missing else 0)
        shown, hidden = ordered[:room], set(ordered[room:])
        buckets = [{"Values": [v], "Count": counts[v]} for v in shown]
        if include_missing and missing:
            buckets.append({"Values": [MISSING_BUCKET_VALUE], "Count": missing})
        other = 0
        if hidden:
            for acc in items:
                raw = get_path(acc, FIELD_PATHS[field])
                values = {str(v) for v in (raw if isinstance(raw, list) else [raw]) if v not in (None, "")}
                other += bool(values & hidden)
        return {"GroupBy": [field], "Buckets": buckets, "OtherCount": other}
