"""Reads of the HubSpot emulator that many tests check results with (not a test module)."""

from __future__ import annotations

import requests

#: Any bearer token: the emulator requires one, not a particular one.
HEADERS = {"Authorization": "Bearer test-token"}


def deal_notes(hs_url: str, deal_id: str, containing: str = "") -> list[str]:
    """The bodies of the notes associated with a deal (v4 association read, then one batch read).

    ``containing``: keep only the notes whose body contains this text.
    """
    r = requests.get(
        f"{hs_url}/crm/v4/objects/deals/{deal_id}/associations/notes", headers=HEADERS, timeout=30
    )
    r.raise_for_status()
    ids = [str(x["toObjectId"]) for x in r.json().get("results") or []]
    if not ids:
        return []
    r = requests.post(
        f"{hs_url}/crm/v3/objects/notes/batch/read",
        headers=HEADERS,
        json={"inputs": [{"id": i} for i in ids], "properties": ["hs_note_body"]},
        timeout=30,
    )
    r.raise_for_status()
    bodies = [str(n["properties"].get("hs_note_body") or "") for n in r.json()["results"]]
    return [b for b in bodies if containing in b]
