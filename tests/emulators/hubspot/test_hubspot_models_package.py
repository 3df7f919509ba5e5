"""The backend package keeps the import surface other modules rely on and combines every resource mixin."""

from __future__ import annotations

import emulators.hubspot.models as models
from emulators.hubspot.models.associations import AssociationsMixin
from emulators.hubspot.models.base import BackendBase
from emulators.hubspot.models.owners_pipelines import OwnersPipelinesMixin
from emulators.hubspot.models.properties import PropertiesMixin
from emulators.hubspot.models.records import RecordsMixin
from emulators.hubspot.models.search import SearchMixin


def test_names_imported_elsewhere_stay_importable() -> None:
    # responses.py, seed.py, webhooks.py and server.py import these from ``emulators.hubspot.models``.
    for name in (
        "BATCH_MAX_WITH_HISTORY",
        "Event",
        "HubSpotBackend",
        "Record",
        "iso",
        "now_ms",
        "parse_time",
    ):
        assert name in models.__all__
        assert hasattr(models, name)


def test_backend_combines_the_resource_mixins() -> None:
    mixins = (
        RecordsMixin,
        PropertiesMixin,
        AssociationsMixin,
        SearchMixin,
        OwnersPipelinesMixin,
        BackendBase,
    )
    assert all(issubclass(models.HubSpotBackend, m) for m in mixins)
    backend = models.HubSpotBackend()
    assert backend.next_id() == "10001"
    assert backend.list_pipelines("deals")[0]["id"] == "default"
