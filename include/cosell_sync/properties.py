"""The HubSpot property group and custom properties co-sell sync writes, as Properties API bodies.

The setup DAG creates :func:`custom_properties` in order (groups first) and, for properties that
already exist, sends :func:`diff_property`'s PATCH body when it is not ``None``, so running setup
twice changes nothing.

Bodies follow HubSpot's ``PropertyCreate`` schema (``specs/hubspot/properties.json``): ``name``,
``label``, ``type``, ``fieldType``, ``groupName``, ``description``, ``options`` (required for
enumerations; ``bool`` properties carry the true/false options HubSpot shows) and
``hasUniqueValue``. Valid type/fieldType pairs come from HubSpot's properties guide: ``string`` ->
``text``/``textarea``, ``number`` -> ``number``, ``date``/``datetime`` -> ``date``, ``enumeration``
-> ``select``, ``bool`` -> ``booleancheckbox``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig

__all__ = [
    "GROUP_LABEL",
    "GROUP_NAME",
    "PropertyGroupSpec",
    "PropertySpec",
    "custom_properties",
    "diff_property",
]

GROUP_NAME = "aws_partner_central"
GROUP_LABEL = "AWS Partner Central"

#: HubSpot object type (API path segment) of each mapping object.
OBJECT_TYPES = {"deal": "deals", "company": "companies", "contact": "contacts", "product": "products"}

#: Properties HubSpot has out of the box; a mapping to any other property needs a custom one.
HUBSPOT_DEFAULT_PROPERTIES = {
    "deal": {
        "dealname",
        "dealstage",
        "closedate",
        "amount",
        "description",
        "pipeline",
        "dealtype",
        "hubspot_owner_id",
        "closed_lost_reason",
        "closed_won_reason",
        "hs_next_step",
    },
    "company": {
        "name",
        "domain",
        "address",
        "address2",
        "city",
        "state",
        "zip",
        "country",
        "industry",
        "website",
        "phone",
        "description",
        "numberofemployees",
        "annualrevenue",
    },
    "contact": {
        "email",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "jobtitle",
        "company",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "website",
    },
}

#: PropertyUpdate members (the PATCH body); ``name`` and ``hasUniqueValue`` cannot be changed.
_PATCHABLE = (
    "label",
    "description",
    "groupName",
    "type",
    "fieldType",
    "options",
    "displayOrder",
    "hidden",
    "formField",
)


@dataclass(frozen=True)
class PropertyGroupSpec:
    """A property group to create: ``POST /crm/v3/properties/{object_type}/groups`` with ``body``."""

    object_type: str
    body: dict[str, Any]


@dataclass(frozen=True)
class PropertySpec:
    """A property to create: ``POST /crm/v3/properties/{object_type}`` with ``body``."""

    object_type: str
    body: dict[str, Any]

    @property
    def name(self) -> str:
        """The property's internal name."""
        return str(self.body["name"])


def _options(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "displayOrder": i, "hidden": False}
        for i, (value, label) in enumerate(pairs)
    ]


_BOOL_OPTIONS = _options([("true", "Yes"), ("false", "No")])

# (kind, label, description) per seed type: String, Text, Textarea, DateTime, Number, Enum.
_KINDS: dict[str, tuple[str, str]] = {
    "string": ("string", "text"),
    "text": ("string", "textarea"),
    "textarea": ("string", "textarea"),
    "datetime": ("datetime", "date"),
    "date": ("date", "date"),
    "number": ("number", "number"),
    "enum": ("enumeration", "select"),
    "bool": ("bool", "booleancheckbox"),
}


def _prop(
    name: str,
    label: str,
    kind: str,
    description: str,
    *,
    options: list[tuple[str, str]] | None = None,
    unique: bool = False,
) -> dict[str, Any]:
    type_, field_type = _KINDS[kind]
    body: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": GROUP_NAME,
        "description": description,
    }
    if kind == "enum":
        body["options"] = _options(options or [])
    elif kind == "bool":
        body["options"] = [dict(o) for o in _BOOL_OPTIONS]
    if unique:
        body["hasUniqueValue"] = True
    return body


def _deal_properties(cfg: SyncConfig) -> list[dict[str, Any]]:
    from cosell_sync.pc_model import pc_enum

    review_options = _review_status_options(cfg)
    return [
        _prop(
            cfg.link_property,
            "AWS Opportunity ID",
            "string",
            "Partner Central opportunity id linked to this deal (set by co-sell sync).",
            unique=True,
        ),
        _prop(
            cfg.cosell_property,
            "AWS Co-Sell Sync Enabled",
            "bool",
            "Check to share this deal with AWS through Partner Central.",
        ),
        _prop(
            "aws_review_status",
            "AWS Review Status",
            "enum",
            "Partner Central LifeCycle.ReviewStatus (read-only mirror).",
            options=review_options,
        ),
        _prop(
            "aws_review_comments",
            "AWS Review Comments",
            "textarea",
            "Partner Central LifeCycle.ReviewComments.",
        ),
        _prop(
            "aws_next_steps", "AWS Next Steps", "textarea", "Partner Central LifeCycle.NextSteps (max 255)."
        ),
        _prop(
            "aws_sync_error", "AWS Sync Error", "textarea", "Last co-sell sync error for this deal, if any."
        ),
        _prop(
            cfg.submission.solution_ids_property,
            "AWS Partner Solution IDs",
            "string",
            "Partner Central solution ids (S-...) separated by ';'. One to ten are associated with the "
            "opportunity before it is submitted or moved to Committed/Launched.",
        ),
        _prop(
            "aws_last_sync_date", "AWS Last Sync Date", "datetime", "When co-sell sync last synced this deal."
        ),
        _prop(
            "aws_contact_company_last_sync",
            "AWS Contact/Company Last Sync",
            "datetime",
            "When contact and company data were last synced to Partner Central for this deal.",
        ),
        # AWS referrals (cosell_sync.invitations).
        _prop(
            "aws_invitation_id",
            "AWS Invitation ID",
            "string",
            "The Partner Central engagement invitation (AWS referral) this deal was created for.",
            unique=True,
        ),
        _prop(
            "aws_invitation_status",
            "AWS Invitation Status",
            "enum",
            "The invitation's status in Partner Central (read-only mirror).",
            options=[(v, v) for v in ("PENDING", "ACCEPTED", "REJECTED", "EXPIRED")],
        ),
        _prop(
            "aws_invitation_expires_at",
            "AWS Invitation Expires At",
            "datetime",
            "When the invitation expires (15 days after AWS sent it).",
        ),
        _prop("aws_invitation_sender", "AWS Invitation Sender", "string", "Who sent the invitation."),
        _prop(
            "aws_invitation_action",
            "AWS Invitation Action",
            "enum",
            "Set to Accept or Reject: co-sell sync answers the invitation in Partner Central.",
            options=[("Accept", "Accept"), ("Reject", "Reject")],
        ),
        _prop(
            "aws_rejection_reason",
            "AWS Rejection Reason",
            "string",
            "Why the invitation is rejected (at most 80 characters, sent to AWS).",
        ),
        # AWS insights from SearchOpportunities (read-only mirrors; cosell_sync.insights).
        _prop(
            "aws_origin",
            "AWS Opportunity Origin",
            "enum",
            "AwsOpportunitySummary.Origin: whether AWS or the partner brought the opportunity.",
            options=[("AWS Referral", "AWS Referral"), ("Partner Referral", "Partner Referral")],
        ),
        _prop("aws_cosell_motion", "AWS Co-Sell Motion", "string", "AWS's engagement classification."),
        _prop(
            "aws_engagement_score",
            "AWS Engagement Score",
            "enum",
            "AWS insight: the level of engagement with the opportunity.",
            options=[("High", "High"), ("Medium", "Medium"), ("Low", "Low")],
        ),
        _prop(
            "aws_opportunity_quality_score",
            "AWS Opportunity Quality Score",
            "number",
            "AWS insight: deal quality score, 0-100 (empty until AWS scores the opportunity).",
        ),
        # Engagement lifecycle and the AWS view (read-only mirrors but the context; cosell_sync.engagements).
        _prop(
            "aws_engagement_id",
            "AWS Engagement ID",
            "string",
            "The Partner Central engagement of the linked opportunity (ListEngagementResourceAssociations).",
        ),
        _prop(
            "aws_engagement_status",
            "AWS Engagement Status",
            "enum",
            "Derived by co-sell sync (GetEngagement has no status): Active while the opportunity is open, "
            "Completed once it is Launched, Closed Lost once it is Closed Lost.",
            options=[(v, v) for v in ("Active", "Completed", "Closed Lost")],
        ),
        _prop(
            "aws_engagement_team",
            "AWS Engagement Team",
            "text",
            "The engagement's member companies (ListEngagementMembers CompanyName), ';'-separated.",
        ),
        _prop(
            "aws_engagement_kickoff_date",
            "AWS Engagement Kickoff Date",
            "datetime",
            "When the engagement was created (GetEngagement CreatedAt).",
        ),
        _prop(
            "aws_engagement_close_date",
            "AWS Engagement Close Date",
            "date",
            "The engagement's target completion date "
            "(CustomerProject context, Project.TargetCompletionDate).",
        ),
        _prop(
            "aws_engagement_context",
            "AWS Engagement Context",
            "textarea",
            "The engagement's contexts as 'name: value' lines under [Type Id] headers. Edits of "
            "CustomerProject values and of a Lead's QualificationStatus and Customer are sent to AWS.",
        ),
        _prop(
            "aws_last_engagement_sync",
            "AWS Last Engagement Sync",
            "datetime",
            "When co-sell sync last wrote this deal's engagement or AWS view properties.",
        ),
        _prop(
            "aws_aws_stage",
            "AWS Stage (AWS view)",
            "enum",
            "GetAwsOpportunitySummary LifeCycle.Stage: the opportunity's stage as AWS tracks it.",
            options=[(v, v) for v in pc_enum("AwsOpportunityStage")],
        ),
        _prop(
            "aws_involvement_type",
            "AWS Involvement Type",
            "enum",
            "GetAwsOpportunitySummary InvolvementType: how AWS takes part in the sale.",
            options=[(v, v) for v in pc_enum("SalesInvolvementType")],
        ),
        _prop(
            "aws_aws_team",
            "AWS Team (AWS view)",
            "text",
            "GetAwsOpportunitySummary OpportunityTeam: AWS's people, 'name <email> (role)', ';'-separated.",
        ),
        _prop(
            "aws_aws_next_steps",
            "AWS Next Steps (AWS view)",
            "textarea",
            "GetAwsOpportunitySummary LifeCycle.NextSteps: AWS's next steps for the opportunity.",
        ),
        _prop(
            "aws_next_best_actions",
            "AWS Next Best Actions",
            "textarea",
            "GetAwsOpportunitySummary Insights.NextBestActions: AWS's recommended actions.",
        ),
        # What AWS associated besides partner solutions (cosell_sync.solutions; read-only mirrors).
        _prop(
            "aws_related_aws_products",
            "AWS Products (associated)",
            "text",
            "AWS products associated with the opportunity (RelatedEntityIdentifiers.AwsProducts), "
            "';'-separated.",
        ),
        _prop(
            "aws_related_marketplace_offers",
            "AWS Marketplace Offers (associated)",
            "text",
            "AWS Marketplace offers and offer sets associated with the opportunity, ';'-separated.",
        ),
        # Feature 3: assignment and team.
        _prop(
            "aws_assigned_partner_user",
            "AWS Assigned Partner User",
            "string",
            "E-mail of the Partner Central user the opportunity was last assigned to (AssignOpportunity).",
        ),
        _prop(
            "aws_opportunity_team", "AWS Opportunity Team", "text", "JSON array of opportunity team members."
        ),
        _prop("aws_team_last_sync", "AWS Team Last Sync", "datetime", "Last team sync."),
        # Feature 4 as the API has it: engagement resource snapshots (cosell_sync.snapshots).
        _prop(
            "aws_partner_resources",
            "AWS Partner Resources",
            "text",
            "JSON list, newest first, of the opportunity's resource snapshots in its engagement: snapshot_id "
            "(ARN), template, revision, created_at, created_by (ListResourceSnapshots/GetResourceSnapshot).",
        ),
        _prop(
            "aws_total_resources",
            "AWS Total Resources",
            "number",
            "Resource snapshot revisions in the engagement, of every member's resources (AWS + partner).",
        ),
        _prop(
            "aws_last_resource_upload",
            "AWS Last Resource Upload",
            "datetime",
            "When the opportunity's newest resource snapshot was created (GetResourceSnapshot CreatedAt).",
        ),
        _prop(
            "aws_snapshot_job_status",
            "AWS Snapshot Job Status",
            "enum",
            "Status of the opportunity's resource snapshot job (GetResourceSnapshotJob Status); Deleted once "
            "the sync deleted it (the engagement is over).",
            options=[(v, v) for v in (*pc_enum("ResourceSnapshotJobStatus"), "Deleted")],
        ),
        _prop(
            "aws_snapshot_job_last_success",
            "AWS Snapshot Job Last Success",
            "datetime",
            "When the snapshot job last ran successfully "
            "(GetResourceSnapshotJob LastSuccessfulExecutionDate).",
        ),
        _prop(
            "aws_snapshot_job_last_failure",
            "AWS Snapshot Job Last Failure",
            "textarea",
            "AWS's message of the snapshot job's most recent failure (GetResourceSnapshotJob LastFailure).",
        ),
        # Opportunity tags both ways (cosell_sync.tags). Text, not a multi-select: a seller can type a new
        # tag (a multi-select takes only options an admin defined), and a book's distinct key:value pairs
        # would grow past HubSpot's 5,000 options a property.
        _prop(
            cfg.tags.property,
            "AWS Tags",
            "textarea",
            "Partner Central tags of the opportunity as key:value entries separated by ';' (a ':' inside a "
            "key is written '\\:'). Keys starting with aws: are AWS's and read-only. Edits go to Partner "
            "Central; AWS-side edits arrive when the opportunity changes or at the daily full refresh.",
        ),
        # Feature 5: conflicts and audit.
        _prop(
            "aws_conflict_status",
            "AWS Conflict Status",
            "enum",
            "Whether a sync conflict awaits a decision.",
            options=[("None", "None"), ("Pending", "Pending"), ("Resolved", "Resolved")],
        ),
        _prop("aws_last_conflict_date", "AWS Last Conflict Date", "datetime", "Last conflict detection."),
        _prop("aws_version", "AWS Version", "number", "Version counter for optimistic locking."),
        _prop(
            "aws_last_sync_by", "AWS Last Sync By", "string", "User or process that triggered the last sync."
        ),
    ]


def _product_properties() -> list[dict[str, Any]]:
    """Products mirror partner solutions (``cosell_sync.catalog``), upserted on the unique solution id."""
    from cosell_sync.pc_model import pc_enum

    return [
        _prop(
            "aws_solution_id",
            "AWS Solution ID",
            "string",
            "The Partner Central solution (ListSolutions Id, S-...) this product mirrors. Unique: co-sell "
            "sync creates products by upsert on it; a deal's line items of this product are the "
            "opportunity's associated solutions.",
            unique=True,
        ),
        _prop("aws_solution_category", "AWS Solution Category", "string", "The solution's Category."),
        _prop(
            "aws_solution_status",
            "AWS Solution Status",
            "enum",
            "The solution's Status in Partner Central (only Active solutions can be associated).",
            options=[(v, v) for v in pc_enum("SolutionStatus")],
        ),
        _prop(
            "aws_solution_catalog",
            "AWS Solution Catalog",
            "string",
            "The Partner Central catalog (AWS or Sandbox) the solution belongs to.",
        ),
    ]


def _customer_account_properties() -> list[dict[str, Any]]:
    """AWS's view of a company's customer account (``cosell_sync.customer_accounts`` writes them)."""
    from cosell_sync.pc_model import pc_enum

    enrichment = "From the customer account's AwsEnrichment (written when AWS matched the customer): "
    return [
        _prop(
            "aws_customer_account_id",
            "AWS Customer Account ID",
            "string",
            "The AWS Partner Central customer account co-sell sync created for this company "
            "(CreateCustomerAccount, PartnerAccountIdentifier = the company id).",
        ),
        _prop(
            "aws_enrichment_status",
            "AWS Enrichment Status",
            "enum",
            "Whether AWS matched the customer account to an AWS customer (PENDING until matching ends; "
            "ACTION_REQUIRED: see the task on the company).",
            options=[(v, v) for v in pc_enum("EnrichmentStatus")],
        ),
        _prop("aws_customer_segment", "AWS Customer Segment", "string", enrichment + "Customer.Segment."),
        _prop("aws_customer_industry", "AWS Customer Industry", "string", enrichment + "Customer.Industry."),
        _prop(
            "aws_customer_sub_industry",
            "AWS Customer Sub-Industry",
            "string",
            enrichment + "Customer.SubIndustry.",
        ),
        _prop(
            "aws_customer_company_size",
            "AWS Customer Company Size",
            "string",
            enrichment + "Customer.CompanySize.",
        ),
        _prop("aws_customer_region", "AWS Customer Region", "string", enrichment + "Customer.Region."),
        _prop(
            "aws_eligible_programs",
            "AWS Eligible Programs",
            "string",
            enrichment + "Customer.EligiblePrograms, separated by '; '.",
        ),
        _prop(
            "aws_marketplace_engagement_score",
            "AWS Marketplace Engagement Score",
            "string",
            enrichment + "Insights.MarketplaceEngagementScore (High, Medium or Low).",
        ),
    ]


def _review_status_options(cfg: SyncConfig) -> list[tuple[str, str]]:
    from cosell_sync.pc_model import pc_enum

    for f in cfg.fields:
        if f.object == "deal" and f.hubspot == "aws_review_status" and f.values:
            return [(hs_value, pc_value) for pc_value, hs_value in f.values.items()]
    return [(v, v) for v in pc_enum("ReviewStatus")]


def _mapped_custom(cfg: SyncConfig, existing: set[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    """Custom properties needed by the mapping that no hand-written spec covers."""
    kinds = {
        "text": "string",
        "date": "date",
        "amount": "number",
        "enum": "enum",
        "stage": "string",
        "country_code": "string",
        "email": "string",
        "phone": "string",
    }
    out: list[tuple[str, dict[str, Any]]] = []
    for f in cfg.fields:
        if f.hubspot in HUBSPOT_DEFAULT_PROPERTIES[f.object] or (f.object, f.hubspot) in existing:
            continue
        kind = kinds.get(f.transform, "string")
        options = [(hs, pc) for pc, hs in (f.values or {}).items()] if kind == "enum" else None
        if kind == "enum" and not options:
            kind = "string"
        label = f.name.replace("_", " ").title()
        out.append(
            (
                f.object,
                _prop(f.hubspot, label, kind, f"Partner Central {f.partner_central}.", options=options),
            )
        )
    return out


def custom_properties(cfg: SyncConfig) -> list[PropertyGroupSpec | PropertySpec]:
    """The property groups and custom properties to create, groups first.

    Args:
        cfg: the sync configuration (link/co-sell property names, mapping).

    Returns:
        A ``PropertyGroupSpec`` per object type that gets properties, then every ``PropertySpec``.
    """
    props: list[tuple[str, dict[str, Any]]] = [("deal", body) for body in _deal_properties(cfg)]
    for obj in ("company", "contact"):
        props.append(
            (
                obj,
                _prop(
                    "aws_last_sync_date",
                    "AWS Last Sync Date",
                    "datetime",
                    f"When co-sell sync last synced this {obj}.",
                ),
            )
        )
        props.append(
            (
                obj,
                _prop(
                    "aws_created_for",
                    "AWS Created For Opportunity",
                    "string",
                    f"The AWS Partner Central opportunity co-sell sync created this {obj} for. Unique: "
                    "the sync creates by upsert on it, so a retried run never makes a second one.",
                    unique=True,
                ),
            )
        )
        props.append(
            (
                obj,
                _prop(
                    "aws_contact_company_last_sync",
                    "AWS Contact/Company Last Sync",
                    "datetime",
                    f"When this {obj}'s data was last synced to Partner Central.",
                ),
            )
        )
    props.extend(("company", body) for body in _customer_account_properties())
    props.extend(("product", body) for body in _product_properties())
    props.extend(_mapped_custom(cfg, {(obj, body["name"]) for obj, body in props}))
    objects = [obj for obj in OBJECT_TYPES if any(o == obj for o, _ in props)]
    groups: list[PropertyGroupSpec | PropertySpec] = [
        PropertyGroupSpec(OBJECT_TYPES[obj], {"name": GROUP_NAME, "label": GROUP_LABEL, "displayOrder": -1})
        for obj in objects
    ]
    return groups + [PropertySpec(OBJECT_TYPES[obj], body) for obj, body in props]


def _option_key(option: dict[str, Any]) -> tuple[str, str, bool]:
    return (str(option.get("value")), str(option.get("label")), bool(option.get("hidden", False)))


def diff_property(existing: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The ``PATCH /crm/v3/properties/{object}/{name}`` body that makes ``existing`` match ``wanted``.

    Only members of HubSpot's ``PropertyUpdate`` are compared (``name`` and ``hasUniqueValue``
    cannot change). Options compare on value, label and hidden; when they differ the PATCH carries
    the wanted options followed by any extra existing options, because PATCH replaces the option
    list and records may still hold those values.

    Args:
        existing: the property as HubSpot returns it.
        wanted: the body from :func:`custom_properties`.

    Returns:
        The PATCH body, or ``None`` when nothing differs.
    """
    patch: dict[str, Any] = {}
    for key in _PATCHABLE:
        if key not in wanted:
            continue
        if key == "options":
            want = [_option_key(o) for o in wanted["options"]]
            have = [_option_key(o) for o in existing.get("options") or []]
            if want != have[: len(want)] or len(have) < len(want):
                wanted_values = {o["value"] for o in wanted["options"]}
                extra = [o for o in existing.get("options") or [] if o.get("value") not in wanted_values]
                patch["options"] = [dict(o) for o in wanted["options"]] + [
                    {k: o[k] for k in ("label", "value", "displayOrder", "hidden", "description") if k in o}
                    for o in extra
                ]
            continue
        if existing.get(key) != wanted[key]:
            patch[key] = wanted[key]
    return patch or None
