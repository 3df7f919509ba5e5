"""A local HubSpot CRM API emulator that the official ``hubspot-api-client`` drives unchanged.

Start it in a thread (``HubSpotEmulator(port=0).start()``) or as a process
(``python -m emulators.hubspot --port 0``), then point the SDK at it with
``hubspot.Client.create(access_token="any", host=url, base_url=url)``. See ``README.md`` in this folder.
"""

from __future__ import annotations

from emulators.hubspot.server import HubSpotApp, HubSpotEmulator

__all__ = ["HubSpotApp", "HubSpotEmulator"]
