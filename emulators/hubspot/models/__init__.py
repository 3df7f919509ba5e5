"""In-memory HubSpot CRM state and rules: objects, properties, search, associations, owners, pipelines.

No HTTP here (moto's split): handlers in ``responses.py`` call these methods, which raise the errors of
``exceptions.py``. All state lives in one :class:`HubSpotBackend`, guarded by one lock. The backend is
assembled from one mixin per resource group, moto style:

* ``base.py``: :class:`Record`, :class:`Event`, the stores (:meth:`BackendBase.reset`), ids, clock, helpers;
* ``properties.py``: property groups and definitions, value validation, unique values;
* ``records.py``: record CRUD and batches (builds on properties and associations);
* ``search.py``: CRM search;
* ``associations.py``: v4 associations and labels;
* ``owners_pipelines.py``: owners and deal pipelines.
"""

from __future__ import annotations

from emulators.hubspot.exceptions import HubSpotError
from emulators.hubspot.models.associations import AssociationsMixin
from emulators.hubspot.models.base import (
    BATCH_MAX,
    BATCH_MAX_WITH_HISTORY,
    BackendBase,
    Event,
    Record,
    iso,
    now_ms,
    parse_time,
)
from emulators.hubspot.models.owners_pipelines import OwnersPipelinesMixin
from emulators.hubspot.models.properties import PropertiesMixin
from emulators.hubspot.models.records import RecordsMixin
from emulators.hubspot.models.search import (
    OPERATORS,
    SEARCH_MAX_FILTERS,
    SEARCH_MAX_FILTERS_PER_GROUP,
    SEARCH_MAX_GROUPS,
    SEARCH_MAX_LIMIT,
    SEARCH_MAX_QUERY,
    SEARCH_MAX_RESULTS,
    SearchMixin,
)


class HubSpotBackend(
    RecordsMixin,
    PropertiesMixin,
    AssociationsMixin,
    SearchMixin,
    OwnersPipelinesMixin,
    BackendBase,
):
    """All state of one emulated HubSpot portal."""


__all__ = [
    "BATCH_MAX",
    "BATCH_MAX_WITH_HISTORY",
    "OPERATORS",
    "SEARCH_MAX_FILTERS",
    "SEARCH_MAX_FILTERS_PER_GROUP",
    "SEARCH_MAX_GROUPS",
    "SEARCH_MAX_LIMIT",
    "SEARCH_MAX_QUERY",
    "SEARCH_MAX_RESULTS",
    "Event",
    "HubSpotBackend",
    "HubSpotError",
    "Record",
    "iso",
    "now_ms",
    "parse_time",
]
