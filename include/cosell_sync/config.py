"""Sync configuration: the YAML mapping and settings, validated against the Partner Central model.

``load_config()`` reads ``sync_config.yaml`` (next to this module unless told otherwise), applies
overrides, and validates everything up front, so a typo fails the task at start with a
:class:`~cosell_sync.errors.ConfigError` naming the key path and the reason, e.g.::

    fields[3].partner_central: 'Project.Tittle' is not a field of Opportunity

Partner Central paths and enum values are checked against botocore's ``partnercentral-selling``
service model (see :mod:`cosell_sync.pc_model`): every mapped path must exist in the
``GetOpportunity`` response, every path we write must also exist in the ``UpdateOpportunity``
request, and every enum value must be an exact member (``In review``, not ``In Review``).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from cosell_sync.errors import ConfigError
from cosell_sync.event_queue import DEFAULT_CONN_ID as DEFAULT_SQS_CONN_ID
from cosell_sync.event_queue import DEFAULT_VISIBILITY_TIMEOUT, DEFAULT_WAIT_SECONDS
from cosell_sync.pc_model import parse_path, pc_enum, pc_shape, shape_at
from cosell_sync.transforms import TRANSFORMS

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AuditConfig",
    "ConflictConfig",
    "EventsConfig",
    "FieldMapping",
    "HubSpotSettings",
    "OpportunityDefaults",
    "QuotaConfig",
    "ReportConfig",
    "StageMapping",
    "StorageConfig",
    "SyncConfig",
    "load_config",
]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("sync_config.yaml")

Direction = Literal["both", "partner_central_to_hubspot", "hubspot_to_partner_central"]
Strategy = Literal["last_write_wins", "hubspot_wins", "partner_central_wins"]
HubSpotObject = Literal["deal", "company", "contact"]

#: Directions in which a field is written to Partner Central / to HubSpot.
WRITES_PARTNER_CENTRAL = frozenset({"both", "hubspot_to_partner_central"})
WRITES_HUBSPOT = frozenset({"both", "partner_central_to_hubspot"})

_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# --- Models -------------------------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class FieldMapping(_Model):
    """One mapped field between an Opportunity path and a HubSpot property.

    Attributes:
        name: the mapping's name, used as the canonical column name and in conflict settings.
        object: the HubSpot object holding the property.
        partner_central: dotted Opportunity path, list elements indexed (``Customer.Contacts[0].Email``).
        hubspot: the HubSpot property name.
        direction: which way values flow.
        transform: transform name (see :mod:`cosell_sync.transforms`).
        values: for ``enum``: Partner Central value -> HubSpot option value.
        hubspot_aliases: for ``enum``: extra HubSpot values read as a Partner Central value (one way).
    """

    name: str
    object: HubSpotObject
    partner_central: str
    hubspot: str
    direction: Direction = "both"
    transform: str = "text"
    values: dict[str, str] | None = None
    hubspot_aliases: dict[str, str] | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _PROPERTY_NAME.match(value):
            raise ValueError(f"{value!r} must be lower_snake_case")
        return value

    @field_validator("hubspot")
    @classmethod
    def _check_hubspot(cls, value: str) -> str:
        if not _PROPERTY_NAME.match(value):
            raise ValueError(f"{value!r} is not a HubSpot property name (lower_snake_case)")
        return value

    @field_validator("transform")
    @classmethod
    def _check_transform(cls, value: str) -> str:
        if value not in TRANSFORMS:
            raise ValueError(f"unknown transform {value!r}; known: {', '.join(sorted(TRANSFORMS))}")
        return value

    @field_validator("partner_central")
    @classmethod
    def _check_partner_central(cls, value: str) -> str:
        parse_path(value)
        leaf = shape_at(pc_shape("GetOpportunity", "output"), value)
        if leaf is None:
            raise ValueError(f"{value!r} is not a field of Opportunity")
        if leaf.type_name in ("structure", "list", "map"):
            raise ValueError(f"{value!r} is a {leaf.type_name}, not a value; map one of its members")
        return value

    @model_validator(mode="after")
    def _check_shape_rules(self) -> FieldMapping:
        leaf = shape_at(pc_shape("GetOpportunity", "output"), self.partner_central)
        if (
            self.direction in WRITES_PARTNER_CENTRAL
            and shape_at(pc_shape("UpdateOpportunity", "input"), self.partner_central) is None
        ):
            raise ValueError(
                f"@partner_central: {self.partner_central!r} is read-only (not in the UpdateOpportunity "
                f"request), so direction must be 'partner_central_to_hubspot'"
            )
        enum = tuple(getattr(leaf, "enum", None) or ())
        if self.transform == "stage" and (leaf is None or leaf.name != "Stage"):
            raise ValueError(
                f"@transform: 'stage' needs a LifeCycle.Stage path, not {self.partner_central!r}"
            )
        if self.transform == "country_code" and (leaf is None or leaf.name != "CountryCode"):
            raise ValueError(
                f"@transform: 'country_code' needs a CountryCode path, not {self.partner_central!r}"
            )
        if (self.values or self.hubspot_aliases) and self.transform != "enum":
            raise ValueError("@values: a value map needs transform 'enum'")
        if enum:
            for pc_value in self.values or {}:
                if pc_value not in enum:
                    raise ValueError(
                        f"@values.{pc_value}: {pc_value!r} is not a {leaf.name} value "
                        f"(valid: {', '.join(enum)})"
                    )
            for hs_value, pc_value in (self.hubspot_aliases or {}).items():
                if pc_value not in enum:
                    raise ValueError(f"@hubspot_aliases.{hs_value}: {pc_value!r} is not a {leaf.name} value")
        return self


class StageMapping(_Model):
    """One HubSpot deal stage and the Partner Central ``LifeCycle.Stage`` it corresponds to."""

    hubspot_stage: str
    partner_central_stage: str

    @field_validator("partner_central_stage")
    @classmethod
    def _check_stage(cls, value: str) -> str:
        valid = pc_enum("Stage")
        if value not in valid:
            raise ValueError(f"{value!r} is not a Partner Central Stage (valid: {', '.join(valid)})")
        return value


class ConflictConfig(_Model):
    """How a field changed on both sides is resolved.

    Attributes:
        default_strategy: used for fields without their own strategy.
        field_strategies: mapping name -> strategy.
        manual_resolution: mapping names whose conflicts wait for a person (a HubSpot task).
        default_task_owner_id: HubSpot owner id a conflict task is assigned to when its deal has no
            owner (empty: the task stays unassigned).
        sns_topic_arn: SNS topic that announces each new conflict (ids, type, field and times, never
            the values); empty: no announcement.
    """

    default_strategy: Strategy = "last_write_wins"
    field_strategies: dict[str, Strategy] = Field(default_factory=dict)
    manual_resolution: list[str] = Field(default_factory=list)
    default_task_owner_id: str = ""
    sns_topic_arn: str = ""


class StorageConfig(_Model):
    """Where run artefacts, baselines and the audit trail live."""

    bucket: str = "cosell-sync"
    prefix: str = "cosell-sync"
    audit_table: str = "cosell-sync-audit"
    state_table: str = "cosell-sync-state"


class LeaseConfig(_Model):
    """The per-catalog lease that keeps two writing runs apart (see ``cosell_sync.lease``)."""

    #: How long a lease lives without renewal: a run killed mid-way blocks others at most this long.
    ttl_seconds: int = Field(default=900, ge=60)
    #: How long a run waits for another run's lease before it ends with a clear error.
    wait_seconds: int = Field(default=120, ge=0)
    #: A backfill run finding the lease taken does not wait: its ``prepare`` is rescheduled this much later.
    backfill_recheck_seconds: int = Field(default=60, ge=5)
    #: A ``cosell_events`` run finding the lease taken does not wait either: its ``prepare`` is rescheduled
    #: this much later (short: an event should reach the other side within seconds of the scheduled run).
    event_recheck_seconds: int = Field(default=5, ge=1)
    #: A ``cosell_reconcile`` step after ``commit`` (which gave the lease up) finding it taken is rescheduled
    #: this much later: waiting in its ``partner_central_writes`` slot would keep the slot the holder needs.
    step_recheck_seconds: int = Field(default=15, ge=1)


#: What the audit trail keeps of a field's values: the value itself (rollback can restore it), a
#: SHA-256 of it (shows *that* it changed and lets a known value be matched; rollback refuses), or
#: nothing (rollback refuses). See ``cosell_sync.audit``.
ValuePolicy = Literal["keep", "hash", "drop"]


class AuditConfig(_Model):
    """Audit trail retention (the design asks for seven years) and what it keeps of each field's values.

    ``value_policy`` maps field names to ``keep``/``hash``/``drop``; fields not listed get
    ``default_value_policy``. Entries expire ``retention_days`` after their run (DynamoDB TTL).
    """

    retention_days: int = Field(default=2555, ge=1)
    default_value_policy: ValuePolicy = "keep"
    value_policy: dict[str, ValuePolicy] = Field(default_factory=dict)

    def policy_for(self, name: str) -> str:
        """The value policy of field ``name`` (its own, else the default)."""
        return self.value_policy.get(name, self.default_value_policy)


class HubSpotSettings(_Model):
    """How HubSpot's free-text values are read.

    ``default_phone_region`` (ISO-3166 alpha-2, e.g. ``US``) completes phone numbers typed without a
    country code, when the result is a valid number there; None: every number needs its country code.
    """

    default_phone_region: str | None = None

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import phonenumbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region with a phone numbering plan (ISO-3166 alpha-2)")
        return region


class WebhooksConfig(_Model):
    """The HubSpot webhook receiver (``cosell_runtime.webhooks``).

    ``target_url``: the exact target URL registered in the HubSpot app (scheme, host, path, query), the
    URI HubSpot signs. Needed when the API server sits behind a proxy or load balancer that changes the
    scheme, host or path; empty: the URI the API server received. ``max_age_seconds``: the oldest
    ``X-HubSpot-Request-Timestamp`` accepted (HubSpot: 5 minutes).

    ``enabled``: the webhook subscriptions are registered, so company and contact changes reach
    ``cosell_events`` as they happen, and a scheduled ``cosell_reconcile`` run searches changed companies
    and contacts only every ``backstop_minutes`` (webhook delivery is best effort; the backstop search
    starts where the last one did, so a missed webhook is caught at most ``backstop_minutes`` plus one
    schedule interval later; see ``cosell_sync.polling``). False: every run searches them.
    """

    target_url: str = ""
    max_age_seconds: int = Field(default=300, ge=30, le=300)
    enabled: bool = False
    backstop_minutes: float = Field(default=60.0, gt=0)

    @field_validator("target_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^https?://[^/\s]+/\S*$", value):
            raise ValueError("must be the full http(s) URL registered in the HubSpot app, or empty")
        return value


class EventsConfig(_Model):
    """The SQS path of ``cosell_events`` (``cosell_sync.event_queue``, ``cosell_runtime.assets``).

    ``sqs_queue_url``: the queue EventBridge sends Partner Central events to (the CloudFormation stack's
    ``EventsQueueUrl`` output); empty: ``cosell_events`` is started by the REST API only. The environment
    variable ``COSELL_EVENTS_SQS_QUEUE_URL`` overrides it. ``sqs_conn_id``: the AWS connection that
    receives and deletes the messages. ``sqs_visibility_timeout_seconds``: how long a received message
    stays hidden; one whose run has not settled its event by then is delivered again.
    ``sqs_wait_seconds``: SQS long polling per receive.

    ``enabled``: EventBridge delivers Partner Central events to ``cosell_events`` (API destination or SQS),
    so a scheduled ``cosell_reconcile`` run lists engagement invitations only every
    ``invitations.backstop_minutes`` (see ``cosell_sync.polling``). False: every run lists them.
    """

    enabled: bool = False
    sqs_queue_url: str = ""
    sqs_conn_id: str = Field(default=DEFAULT_SQS_CONN_ID, min_length=1)
    sqs_visibility_timeout_seconds: int = Field(default=DEFAULT_VISIBILITY_TIMEOUT, ge=30, le=43_200)
    sqs_wait_seconds: int = Field(default=DEFAULT_WAIT_SECONDS, ge=1, le=20)

    @field_validator("sqs_queue_url")
    @classmethod
    def _queue_url(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^https?://[^/\s]+/\S+$", value):
            raise ValueError("must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)")
        return value


class QuotaConfig(_Model):
    """API quotas the clients pace themselves to (docs/api-rules.md)."""

    partner_central_reads_per_second: float = Field(default=10, gt=0)
    partner_central_writes_per_second: float = Field(default=1, gt=0)
    partner_central_writes_per_day: int = Field(default=10_000, gt=0)
    hubspot_requests_per_10s: int = Field(default=100, gt=0)
    hubspot_search_per_second: float = Field(default=5, gt=0)
    hubspot_batch_size: int = Field(default=100, gt=0, le=100)


class OpportunityDefaults(_Model):
    """Values for CreateOpportunity members HubSpot does not carry (validated against PC enums).

    Attributes:
        origin: ``Origin``; ``AWS Referral`` is only accepted in the Sandbox catalog.
        opportunity_type: ``OpportunityType``.
        national_security: ``NationalSecurity``.
        primary_needs_from_aws: ``PrimaryNeedsFromAws``.
        delivery_models: ``Project.DeliveryModels``.
        sales_activities: ``Project.SalesActivities``.
        customer_use_case: ``Project.CustomerUseCase`` (free text in the model), omitted when None.
        currency_code: ``ExpectedCustomerSpend.CurrencyCode``.
        spend_frequency: ``ExpectedCustomerSpend.Frequency``.
        spend_target_company: ``ExpectedCustomerSpend.TargetCompany``.
    """

    origin: str = "Partner Referral"
    opportunity_type: str = "Net New Business"
    national_security: str = "No"
    primary_needs_from_aws: list[str] = Field(default_factory=lambda: ["Co-Sell - Architectural Validation"])
    delivery_models: list[str] = Field(default_factory=lambda: ["SaaS or PaaS"])
    sales_activities: list[str] = Field(default_factory=lambda: ["Initialized discussions with customer"])
    customer_use_case: str | None = None
    currency_code: str = "USD"
    spend_frequency: str = "Monthly"
    spend_target_company: str = Field(default="AWS", min_length=1, max_length=80)

    @model_validator(mode="after")
    def _check_enums(self) -> OpportunityDefaults:
        checks: list[tuple[str, str, list[str]]] = [
            ("origin", "OpportunityOrigin", [self.origin]),
            ("opportunity_type", "OpportunityType", [self.opportunity_type]),
            ("national_security", "NationalSecurity", [self.national_security]),
            ("primary_needs_from_aws", "PrimaryNeedFromAws", self.primary_needs_from_aws),
            ("delivery_models", "DeliveryModel", self.delivery_models),
            ("sales_activities", "SalesActivity", self.sales_activities),
            ("currency_code", "CurrencyCode", [self.currency_code]),
            ("spend_frequency", "PaymentFrequency", [self.spend_frequency]),
        ]
        for key, shape_name, values in checks:
            valid = pc_enum(shape_name)
            for value in values:
                if value not in valid:
                    raise ValueError(
                        f"@{key}: {value!r} is not a {shape_name} value (valid: {', '.join(valid)})"
                    )
        return self


class SubmissionConfig(_Model):
    """Partner solutions associated with an opportunity before AWS may see it as committed.

    Partner Central requires one to ten associated solutions before ``StartEngagementFromOpportunityTask``
    and a solution (or AWS product) before ``LifeCycle.Stage`` becomes ``Committed`` or ``Launched``.

    Attributes:
        solution_ids_property: the deal property listing solution ids, separated by ``;``.
        default_solution_ids: used for deals whose property is empty; empty means "ask the seller".
    """

    solution_ids_property: str = "aws_solution_ids"
    default_solution_ids: list[str] = Field(default_factory=list, max_length=10)

    @field_validator("default_solution_ids")
    @classmethod
    def _check_ids(cls, value: list[str]) -> list[str]:
        for sid in value:
            if not re.fullmatch(r"S-[0-9]{1,19}", sid):
                raise ValueError(f"{sid!r} is not a Partner Central solution id (S- and digits)")
        return value


class BulkConfig(_Model):
    """Opportunity bulk jobs (``StartOpportunityBulkJob``) for runs with many creates.

    Attributes:
        enabled: use bulk jobs where the account has them (a run falls back to single creates by itself
            when AWS answers ``OPPORTUNITY_BULK_JOB_NOT_ENABLED``).
        min_records: a run with more creates than this sends them as one bulk job.
        updates: also send updates as bulk jobs. Off until AWS documents how a bulk update treats
            ``LastModifiedDate`` (the optimistic lock single updates rely on).
        poll_seconds: how often the deferred wait asks for the job's status (one read each).
        url_expiry_seconds: lifetime of the presigned URL the job reads its CSV from.
    """

    enabled: bool = True
    min_records: int = Field(default=200, ge=0)
    updates: bool = False
    poll_seconds: float = Field(default=30.0, gt=0)
    url_expiry_seconds: int = Field(default=86_400, ge=60, le=604_800)


class InsightsConfig(_Model):
    """AWS insight fields of ``SearchOpportunities`` copied to deal properties.

    Attributes:
        enabled: read insights (one ``SearchOpportunities`` call per 100 opportunities).
        full_refresh_hours: scan every opportunity this often (insights change without the
            opportunity's ``LastModifiedDate`` moving); in between, only records modified since the
            run's window start are read.
        aws_summary_reads_per_run: ``GetAwsOpportunitySummary`` calls one run may make (one per
            opportunity); the rest wait for later runs, changed records first.
    """

    enabled: bool = True
    full_refresh_hours: float = Field(default=24.0, gt=0)
    aws_summary_reads_per_run: int = Field(default=200, ge=0)


class TagsConfig(_Model):
    """Opportunity tags both ways: Partner Central tags and the deal property ``property`` (``sync_tags``).

    Attributes:
        enabled: run the ``sync_tags`` step of ``cosell_reconcile``.
        property: the deal property holding the tags, ``key:value`` entries separated by ``;``.
        full_refresh_hours: read every linked opportunity's tags this often (a tag edit in Partner Central
            does not move the opportunity's ``LastModifiedDate``); in between, only opportunities the run
            read or changed and deals HubSpot saw change.
        reads_per_run: ``ListTagsForResource`` calls one run may make (one per opportunity); the rest
            wait for later runs, records changed in the run first.
    """

    enabled: bool = True
    property: str = Field(default="aws_tags", pattern=r"^[a-z][a-z0-9_]*$")
    full_refresh_hours: float = Field(default=24.0, gt=0)
    reads_per_run: int = Field(default=500, ge=1)


class SnapshotsConfig(_Model):
    """Engagement resource snapshots of linked opportunities (``sync_snapshots``, ``cosell_snapshot``).

    Attributes:
        enabled: run the ``sync_snapshots`` step of ``cosell_reconcile``.
        template: the snapshot template of the job the step keeps per opportunity and engagement, and of
            ``cosell_snapshot``'s on-demand snapshots (``ResourceTemplateName``: 3-80 letters and digits).
            The default is the template of the job AWS itself starts with an engagement, which the step
            then adopts instead of making a second one.
        delete_after_days: a job is stopped when its opportunity closes (``Launched`` / ``Closed Lost``) and
            deleted this many days later, when the engagement is over (0: at once).
        full_refresh_hours: every engagement's snapshots and every job's status are read this often; in
            between only those of opportunities the run read, changed jobs and named engagements.
        reads_per_run: ``GetResourceSnapshot`` calls one run may make (one per new revision, for its
            creation time); the rest wait for later runs.
        listed_revisions: newest revisions listed in ``aws_partner_resources`` (HubSpot text limit).
        job_details_hours: a job's details on its deal (``aws_snapshot_job_status``, ``_last_success``,
            ``_last_failure``, from ``GetResourceSnapshotJob``) are read at least this often. A job the run
            writes, whose status changed or whose opportunity changed (when a running job executes) is
            read in that run anyway, so this timed read only catches what nothing else shows (a failure on
            AWS's side); a day, like ``full_refresh_hours``, costs one read per job a day, within
            ``reads_per_run``.
    """

    enabled: bool = True
    template: str = Field(default="AWSOpportunitySummary", pattern=r"^[a-zA-Z0-9]{3,80}$")
    delete_after_days: float = Field(default=30.0, ge=0)
    full_refresh_hours: float = Field(default=24.0, gt=0)
    reads_per_run: int = Field(default=200, ge=1)
    listed_revisions: int = Field(default=20, ge=1, le=200)
    job_details_hours: float = Field(default=24.0, gt=0)


class InvitationsConfig(_Model):
    """AWS referrals (engagement invitations addressed to this partner) as HubSpot deals.

    Attributes:
        enabled: list invitations in every reconcile run.
        pipeline: HubSpot pipeline of referral deals (None: the config's ``pipeline``).
        stage: their stage (None: the first mapped stage, the default pipeline's first).
        closed_lost_stage: the stage a rejected, expired or withdrawn referral's deal moves to.
        default_owner_id: HubSpot owner of referral deals and their tasks (None: unowned).
        reminder_days: the owner gets a task this many days before an invitation expires.
        backstop_minutes: with ``events.enabled``, a scheduled run lists invitations only this often
            (invitation events start ``cosell_events``, which lists them at once).
    """

    enabled: bool = True
    pipeline: str | None = None
    stage: str | None = None
    closed_lost_stage: str = "closedlost"
    default_owner_id: str | None = None
    reminder_days: float = Field(default=3.0, ge=0)
    backstop_minutes: float = Field(default=60.0, gt=0)


class SellingSettingsConfig(_Model):
    """How often runs read the selling system settings (``GetSellingSystemSettings``).

    Attributes:
        refresh_minutes: read at most this often; the last read is kept in the state bucket with its
            time and shown in each run's report. 0: every run reads them.
    """

    refresh_minutes: float = Field(default=0.0, ge=0)


class ProductsConfig(_Model):
    """Solutions as products (``cosell_catalog``); deal line items as their associations (``sync_solutions``).

    Attributes:
        enabled: run the ``sync_solutions`` step (the ``cosell_catalog`` DAG always mirrors the catalog).
        schedule: when ``cosell_catalog`` runs (cron or preset, as ``schedule``); ``@daily`` by default.
        prices: solution id -> unit price of its product and of the line items the sync creates for it
            (absent: 0).
        reads_per_run: ``GetOpportunity`` calls one ``sync_solutions`` run may make for opportunities whose
            associated solutions it has never seen: those whose deals have solution line items first, the
            others only at a full refresh (the rest wait for later runs).
    """

    enabled: bool = True
    schedule: str = "@daily"
    prices: dict[str, float] = Field(default_factory=dict)
    reads_per_run: int = Field(default=200, ge=0)

    @field_validator("schedule", mode="before")
    @classmethod
    def _runnable(cls, value: Any) -> str:
        from cosell_sync.schedule import check_schedule

        return "@daily" if value is None or value == "" else check_schedule(value)

    @field_validator("prices")
    @classmethod
    def _check_prices(cls, value: dict[str, float]) -> dict[str, float]:
        for sid, price in value.items():
            if not re.fullmatch(r"S-[0-9]{1,19}", sid):
                raise ValueError(f"{sid!r} is not a Partner Central solution id (S- and digits)")
            if price < 0:
                raise ValueError(f"{sid}: a price must not be negative")
        return value


class OwnersConfig(_Model):
    """Deal owners to Partner Central (``AssignOpportunity``; see ``cosell_sync.owners``).

    Attributes:
        enabled: the ``sync_owners`` step of ``cosell_reconcile`` sends deal owner changes.
        business_title_property: a deal property holding the assignee's business title (null: none);
            HubSpot owners have no title of their own.
        default_business_title: ``Assignee.BusinessTitle`` when the deal has none (the model says
            ``PartnerAccountManager`` updates the opportunity owner's details).
        page_size: owners per ``GET /crm/v3/owners`` page (the run reads every page once).
    """

    enabled: bool = True
    business_title_property: str | None = None
    default_business_title: str = Field(default="PartnerAccountManager", min_length=1, max_length=80)
    page_size: int = Field(default=100, ge=1, le=500)

    @field_validator("business_title_property")
    @classmethod
    def _check_property(cls, value: str | None) -> str | None:
        if value is not None and not _PROPERTY_NAME.match(value):
            raise ValueError(f"{value!r} is not a HubSpot property name (lower_snake_case)")
        return value


class DealContactsConfig(_Model):
    """A deal's contacts in ``Customer.Contacts``, primary first (``cosell_sync.deal_contacts``).

    Attributes:
        send_all: a new opportunity gets all the deal's contacts (primary first); false: the primary only.
        primary_label: the deal -> contact association label that names the primary contact (HubSpot
            defines none for deals and contacts; a portal creates it). Without it: the lowest contact id.
        max_contacts: contacts per request, the primary included (the model sets no maximum).
    """

    send_all: bool = True
    primary_label: str | None = "Primary"
    max_contacts: int = Field(default=10, ge=1, le=100)


class CustomerAccountsConfig(_Model):
    """Co-sell companies to AWS customer accounts, AWS's enrichment back (``cosell_sync.customer_accounts``).

    Attributes:
        enabled: the ``sync_customer_accounts`` step creates, updates and polls customer accounts.
        reads_per_run: at most this many ``GetCustomerAccount`` reads of still-``PENDING`` accounts per run
            (paced by the Partner Central read limiter; the rest wait for the next run).
        writes_per_run: at most this many ``CreateCustomerAccount`` / ``UpdateCustomerAccount`` per run (a
            first run on a large book spreads its creates over runs; the rest wait, read again next run).
        duns_property: a company property holding the customer's nine-digit DUNS number (null: none).
    """

    enabled: bool = False
    reads_per_run: int = Field(default=50, ge=0, le=1000)
    writes_per_run: int = Field(default=200, ge=1, le=5000)
    duns_property: str | None = None

    @field_validator("duns_property")
    @classmethod
    def _check_property(cls, value: str | None) -> str | None:
        if value is not None and not _PROPERTY_NAME.match(value):
            raise ValueError(f"{value!r} is not a HubSpot property name (lower_snake_case)")
        return value


class ReportConfig(_Model):
    """What the ``report`` step of ``cosell_reconcile`` makes of a run's record errors.

    Attributes:
        fail_on_record_errors: fail the ``report`` task (once, without retries; after ``report.json`` is
            written and everything else committed) when the run had records it could not read or write,
            or requested opportunity ids that do not exist; false: a WARNING line with the counts.
    """

    fail_on_record_errors: bool = True


class RollbackConfig(_Model):
    """Automatic rollback in ``cosell_reconcile`` (see ``cosell_sync.auto_revert``).

    Attributes:
        auto_revert_hubspot: when Partner Central rejects a record's update (not a transient error), its
            HubSpot side keeps the values it had before the run (the run's HubSpot writes of that record
            are held back), with a note on the deal, a task for its owner and an ``AUTO_ROLLBACK`` audit
            entry; false: HubSpot takes its half of the record's changes anyway.
    """

    auto_revert_hubspot: bool = True


def _default_stages() -> list[StageMapping]:
    # HubSpot's default sales pipeline stage ids, in pipeline order.
    pairs = [
        ("appointmentscheduled", "Prospect"),
        ("qualifiedtobuy", "Qualified"),
        ("presentationscheduled", "Technical Validation"),
        ("decisionmakerboughtin", "Business Validation"),
        ("contractsent", "Committed"),
        ("closedwon", "Launched"),
        ("closedlost", "Closed Lost"),
    ]
    return [StageMapping(hubspot_stage=h, partner_central_stage=p) for h, p in pairs]


class SyncConfig(_Model):
    """The whole sync configuration (see ``sync_config.yaml`` for the shipped values)."""

    catalog: Literal["AWS", "Sandbox"] = "AWS"
    schedule: str = "*/30 * * * *"
    overlap_minutes: int = Field(default=5, ge=0)
    pipeline: str = "default"
    submit_stage: str | None = "contractsent"
    cosell_property: str = "aws_sync_enabled"
    link_property: str = "aws_opportunity_id"
    fields: list[FieldMapping] = Field(default_factory=list)
    stages: list[StageMapping] = Field(default_factory=_default_stages)
    conflicts: ConflictConfig = Field(default_factory=ConflictConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    lease: LeaseConfig = Field(default_factory=LeaseConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    hubspot: HubSpotSettings = Field(default_factory=HubSpotSettings)
    quotas: QuotaConfig = Field(default_factory=QuotaConfig)
    conflict_retries: int = Field(default=3, ge=0)
    defaults: OpportunityDefaults = Field(default_factory=OpportunityDefaults)
    submission: SubmissionConfig = Field(default_factory=SubmissionConfig)
    bulk: BulkConfig = Field(default_factory=BulkConfig)
    insights: InsightsConfig = Field(default_factory=InsightsConfig)
    tags: TagsConfig = Field(default_factory=TagsConfig)
    snapshots: SnapshotsConfig = Field(default_factory=SnapshotsConfig)
    invitations: InvitationsConfig = Field(default_factory=InvitationsConfig)
    owners: OwnersConfig = Field(default_factory=OwnersConfig)
    deal_contacts: DealContactsConfig = Field(default_factory=DealContactsConfig)
    customer_accounts: CustomerAccountsConfig = Field(default_factory=CustomerAccountsConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    products: ProductsConfig = Field(default_factory=ProductsConfig)
    rollback: RollbackConfig = Field(default_factory=RollbackConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    settings: SellingSettingsConfig = Field(default_factory=SellingSettingsConfig)

    _by_name: dict[str, FieldMapping] | None = PrivateAttr(default=None)

    @field_validator("schedule", mode="before")
    @classmethod
    def _runnable_schedule(cls, value: Any) -> str:
        # The DAG reads the same key at import (schedule.reconcile_schedule); checking it here with the
        # same rule makes a bad cron fail the config check instead of breaking the DAG's import.
        from cosell_sync.schedule import DEFAULT_SCHEDULE, check_schedule

        if value is None or value == "":
            return DEFAULT_SCHEDULE  # as the DAG reads an absent or empty schedule
        return check_schedule(value)

    @model_validator(mode="after")
    def _check_references(self) -> SyncConfig:
        names = [f.name for f in self.fields]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(f"@fields[{i}].name: {name!r} is used by more than one field")
            seen.add(name)
        props: set[tuple[str, str]] = set()
        pc_paths: set[str] = set()
        for i, f in enumerate(self.fields):
            if (f.object, f.hubspot) in props:
                raise ValueError(f"@fields[{i}].hubspot: {f.object} property {f.hubspot!r} is mapped twice")
            props.add((f.object, f.hubspot))
            if f.partner_central in pc_paths:
                raise ValueError(f"@fields[{i}].partner_central: {f.partner_central!r} is mapped twice")
            pc_paths.add(f.partner_central)
            if f.hubspot in (self.link_property, self.cosell_property) and f.object == "deal":
                raise ValueError(
                    f"@fields[{i}].hubspot: {f.hubspot!r} is reserved for linking/co-sell marking"
                )
        stage_ids: set[str] = set()
        for i, s in enumerate(self.stages):
            if s.hubspot_stage in stage_ids:
                raise ValueError(f"@stages[{i}].hubspot_stage: {s.hubspot_stage!r} is listed twice")
            stage_ids.add(s.hubspot_stage)
        if self.submit_stage is not None and self.submit_stage not in stage_ids:
            raise ValueError(f"@submit_stage: {self.submit_stage!r} is not a hubspot_stage in stages")
        if any(f.transform == "stage" for f in self.fields) and not self.stages:
            raise ValueError("@stages: a field uses transform 'stage' but no stages are mapped")
        for field_name in self.conflicts.field_strategies:
            if field_name not in seen:
                raise ValueError(f"@conflicts.field_strategies.{field_name}: not a field mapping name")
        for i, field_name in enumerate(self.conflicts.manual_resolution):
            if field_name not in seen:
                raise ValueError(
                    f"@conflicts.manual_resolution[{i}]: {field_name!r} is not a field mapping name"
                )
        for field_name in self.audit.value_policy:
            if field_name not in seen:
                raise ValueError(f"@audit.value_policy.{field_name}: not a field mapping name")
        if self.defaults.origin == "AWS Referral" and self.catalog != "Sandbox":
            # API rule: Origin 'AWS Referral' is accepted only in the Sandbox catalog.
            raise ValueError("@defaults.origin: 'AWS Referral' is accepted only in the Sandbox catalog")
        return self

    # Convenience lookups -------------------------------------------------------------------------
    def field(self, name: str) -> FieldMapping:
        """The field mapping called ``name``.

        Raises:
            KeyError: no such mapping.
        """
        index = self._by_name
        if index is None:
            index = self._by_name = {f.name: f for f in self.fields}
        return index[name]

    def field_names(self) -> list[str]:
        """Mapping names in configuration order."""
        return [f.name for f in self.fields]

    def strategy_for(self, name: str) -> str:
        """The conflict strategy for a field: ``manual``, its own strategy or the default."""
        if name in self.conflicts.manual_resolution:
            return "manual"
        return self.conflicts.field_strategies.get(name, self.conflicts.default_strategy)


# --- Loading ------------------------------------------------------------------------------------------
def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` into a copy of ``base``; dicts merge recursively, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _format_error(error: dict[str, Any]) -> str:
    loc = _format_loc(tuple(error.get("loc", ())))
    msg = str(error.get("msg", ""))
    msg = msg.removeprefix("Value error, ")
    if msg.startswith("@"):
        # Validators that check several keys name the one at fault as '@sub.path: reason'.
        sub, _, msg = msg[1:].partition(": ")
        loc = f"{loc}.{sub}" if loc and not sub.startswith("[") else f"{loc}{sub}"
    return f"{loc}: {msg}" if loc else msg


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SyncConfig:
    """Read, merge and validate the sync configuration.

    Args:
        path: YAML file; defaults to ``$COSELL_SYNC_CONFIG`` when set, else ``sync_config.yaml`` next to
            this module (the same file the DAG reads its schedule from).
        overrides: values merged over the file (nested dicts merge, lists replace), e.g. from an
            Airflow Variable or a test.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing or unreadable, or a value is invalid; the message names
            the key path and the reason, one line per problem.
    """
    from cosell_sync.schedule import config_path

    file = Path(path) if path is not None else config_path()
    try:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
        cached = None if overrides else _VALIDATED.get(key)
        if cached is not None:
            # A copy: a caller may change its config (a test, a run's overrides) without touching others'.
            return cached.model_copy(deep=True)
        raw = _safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"{file}: cannot read the sync configuration ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the top level must be a mapping, not {type(raw).__name__}")
    data = _deep_merge(raw, overrides or {})
    try:
        config = SyncConfig.model_validate(data)
    except PydanticValidationError as err:
        lines = [_format_error(e) for e in err.errors()]
        raise ConfigError("; ".join(lines)) from err
    if not overrides:
        if len(_VALIDATED) >= _VALIDATED_MAX:
            _VALIDATED.clear()
        _VALIDATED[key] = config.model_copy(deep=True)
    return config


# Validated configurations by (file, mtime, size). A task calls load_config() several times (its env, the
# lease, each step's settings) and parsing plus validating the file costs ~0.1 s each time (PyYAML in pure
# Python 0.05 s, pydantic 0.06 s); an edited file has a new mtime and size, so it is read again.
_VALIDATED: dict[tuple[str, int, int], SyncConfig] = {}
_VALIDATED_MAX = 32


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` on libyaml's parser when PyYAML was built with it (7x faster, same safe subset)."""
    if getattr(yaml, "__with_libyaml__", False):
        return yaml.load(text, Loader=yaml.CSafeLoader)
    return yaml.safe_load(text)
