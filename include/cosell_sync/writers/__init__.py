"""One writer per system: every write the sync makes to Partner Central or HubSpot goes through these."""

from __future__ import annotations

from cosell_sync.writers.hubspot import HubSpotWriter
from cosell_sync.writers.partner_central import PartnerCentralWriter

__all__ = ["HubSpotWriter", "PartnerCentralWriter"]
