"""Partner Central state and business rules (no HTTP), assembled from one mixin per resource group.

moto's split: handlers in ``responses.py`` call these methods, which raise the errors of ``exceptions.py``.
All state lives in one :class:`PartnerCentralBackend`, guarded by one re-entrant lock:

* ``base.py``: :class:`BackendBase` (stores, clock, ids, ARNs, events, idempotency, persistence) and the
  shared helpers (``parse_ts``, ``get_path``, ``flatten``, ``paginate``, NextTokens, ``not_permitted``);
* ``opportunity_rules.py``: :class:`OpportunityRecord` and the data and checks of the opportunity rules;
* ``opportunities.py``: create/update/get/list/submit/assign/associate, AWS summary, AWS-side simulation;
* ``engagements.py``: engagements, contexts, members, resource associations;
* ``invitations.py``: engagement invitations, expiry and simulated AWS referrals;
* ``snapshots.py``: resource snapshots and snapshot jobs;
* ``tasks.py``: the asynchronous task machinery and the four task kinds;
* ``search.py``: SearchOpportunities, SearchEngagements, ListEngagementGroups (one shared filter-tree
  evaluator) and AWS's insights on opportunities;
* ``catalog_extras.py``: solutions, selling system settings and tags;
* ``customer_accounts.py``: customer accounts, their asynchronous AWS matching and the AWS customer directory;
* ``bulk_jobs.py``: opportunity and customer account bulk jobs (CSV template in ``cosell_sync.bulk_csv``).

Rules and their sources are listed in ``opportunity_rules.py``, ``invitations.py`` and docs/api-rules.md.
"""

from __future__ import annotations

from emulators.partner_central.models.base import (
    ACCOUNT_ID,
    AWS_ACCOUNT,
    CATALOGS,
    REGION,
    BackendBase,
    changed_paths,
    decode_token,
    deep_merge,
    encode_token,
    flatten,
    get_path,
    iso,
    not_permitted,
    paginate,
    parse_ts,
)
from emulators.partner_central.models.bulk_jobs import BulkJobsMixin
from emulators.partner_central.models.catalog_extras import CatalogExtrasMixin
from emulators.partner_central.models.customer_accounts import CustomerAccountsMixin
from emulators.partner_central.models.engagements import EngagementsMixin
from emulators.partner_central.models.invitations import INVITATION_TTL_MS, InvitationsMixin
from emulators.partner_central.models.opportunities import OpportunitiesMixin
from emulators.partner_central.models.opportunity_rules import (
    ACTION_REQUIRED_EDITABLE,
    APPROVED_LOCKED,
    MAX_SOLUTIONS,
    MIN_SOLUTIONS,
    OFFERING_TYPES,
    PARTNER_FIELDS,
    READ_ONLY_STATUSES,
    REVIEW_OWNED,
    SOLUTIONS_RULE,
    STAGES_NEEDING_OFFERING,
    SUBMISSION_REQUIRED,
    OpportunityRecord,
)
from emulators.partner_central.models.search import SearchMixin
from emulators.partner_central.models.snapshots import SnapshotsMixin
from emulators.partner_central.models.tasks import DEFAULT_TEMPLATE, TasksMixin


class PartnerCentralBackend(
    BulkJobsMixin,
    SearchMixin,
    CustomerAccountsMixin,
    TasksMixin,
    SnapshotsMixin,
    OpportunitiesMixin,
    InvitationsMixin,
    EngagementsMixin,
    CatalogExtrasMixin,
    BackendBase,
):
    """All Partner Central state for one partner account, thread-safe behind one re-entrant lock.

    Args:
        account_id: the partner's 12-digit AWS account id.
        region: region for ARNs and events.
    """


__all__ = [
    "ACCOUNT_ID",
    "ACTION_REQUIRED_EDITABLE",
    "APPROVED_LOCKED",
    "AWS_ACCOUNT",
    "CATALOGS",
    "DEFAULT_TEMPLATE",
    "INVITATION_TTL_MS",
    "MAX_SOLUTIONS",
    "MIN_SOLUTIONS",
    "OFFERING_TYPES",
    "PARTNER_FIELDS",
    "READ_ONLY_STATUSES",
    "REGION",
    "REVIEW_OWNED",
    "SOLUTIONS_RULE",
    "STAGES_NEEDING_OFFERING",
    "SUBMISSION_REQUIRED",
    "BackendBase",
    "BulkJobsMixin",
    "CatalogExtrasMixin",
    "CustomerAccountsMixin",
    "EngagementsMixin",
    "InvitationsMixin",
    "OpportunitiesMixin",
    "OpportunityRecord",
    "PartnerCentralBackend",
    "SearchMixin",
    "SnapshotsMixin",
    "TasksMixin",
    "changed_paths",
    "decode_token",
    "deep_merge",
    "encode_token",
    "flatten",
    "get_path",
    "iso",
    "not_permitted",
    "paginate",
    "parse_ts",
]
