"""A local AWS Partner Central (``partnercentral-selling``) emulator that boto3 talks to over HTTP."""

from __future__ import annotations

from emulators.partner_central.models import PartnerCentralBackend
from emulators.partner_central.server import PartnerCentralApp, PartnerCentralEmulator

__all__ = ["PartnerCentralApp", "PartnerCentralBackend", "PartnerCentralEmulator"]
