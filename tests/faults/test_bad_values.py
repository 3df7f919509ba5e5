"""Fault group: bad values (issue 10, cases 3 and 10), driven through ``cosell_reconcile`` (``dag.test()``).

3. Every HubSpot value that cannot be written to Partner Central is a per-record error: the deal's
   ``aws_sync_error`` names the field and the rule, the run writes a failed audit entry and queues the
   record for retry, and Partner Central keeps its value. Values that can be normalised safely (a phone
   number without a country code, a country name) are written normalised and the audit says so.
10. No raw value reaches the task logs, ``aws_sync_error`` or the retry items.

The seven bad values cover every mapped type HubSpot lets a user store freely: free text (a 300-character
title, a 20,000-character description), e-mail, country code, amount, phone and enum (an industry
option outside the mapping). HubSpot itself refuses bad dates and deal stages, so those cannot arise.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
import requests

from tests.dags.scenarios import canonical_pc, editable, synced_book

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}

#: field -> (HubSpot object, property, the bad raw value, words of the rule the error must state).
BAD_VALUES: dict[str, tuple[str, str, str, str]] = {
    "project_title": ("deal", "dealname", "SecretTitle " + "t" * 288, "takes 0 to 255 characters"),
    "customer_business_problem": (
        "deal",
        "description",
        ("SecretProblem " * 1430)[:20_000],
        "takes 20 to 2000 characters",
    ),
    "contact_email": ("contact", "email", "jane.secret.example.com", "is not an e-mail address"),
    "company_country": ("company", "country", "Narnia", "is not an ISO-3166 country code"),
    "expected_spend_amount": ("deal", "amount", "-500", "is negative"),
    "contact_phone": ("contact", "phone", "5551234", "is not a phone number"),
    "company_industry": ("company", "industry", "ALTERNATIVE_MEDICINE", "is not a HubSpot value"),
}


def _object_id(stack: Any, oid: str, obj: str) -> tuple[str, str]:
    """(plural, id) of the deal of ``oid`` or of its company or contact."""
    deal = stack.deal_by_opportunity(oid)
    if obj == "deal":
        return "deals", deal["id"]
    plural = {"company": "companies", "contact": "contacts"}[obj]
    r = requests.get(
        f"{stack.hs_url}/crm/v4/objects/deals/{deal['id']}/associations/{plural}", headers=HEADERS, timeout=30
    )
    r.raise_for_status()
    return plural, str(r.json()["results"][0]["toObjectId"])


def _set_raw(stack: Any, oid: str, obj: str, props: dict[str, str]) -> None:
    """A HubSpot edit as a user types it (raw property values, no conversion)."""
    plural, object_id = _object_id(stack, oid, obj)
    r = requests.patch(
        f"{stack.hs_url}/crm/v3/objects/{plural}/{object_id}",
        headers=HEADERS,
        json={"properties": props},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:300]


def _leaks(value: str, text: str) -> bool:
    """Whether ``value`` (or, for a long one, its first 40 characters) stands in ``text`` as a token.

    A short value such as ``-500`` also occurs inside ids the logs are full of (the UUID segment
    ``-500c``), which is no leak: a match must not sit inside a longer word or number.
    """
    needle, whole = (value, True) if len(value) < 100 else (value[:40], False)
    pattern = r"(?<![\w.-])" + re.escape(needle) + (r"(?!\w|\.\d)" if whole else "")
    return re.search(pattern, text) is not None


def _run_entries(stack: Any, oid: str, run_id: str) -> list[dict[str, Any]]:
    return [e for e in stack.audit(oid) if e["metadata"]["runId"] == run_id]


def test_bad_values_are_per_record_errors_and_never_leak(
    sync_stack: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    ids = synced_book(sync_stack, opportunities=24)
    targets = editable(sync_stack, ids)
    assert len(targets) >= len(BAD_VALUES) + 1, "the seeded book has too few editable opportunities"
    bad_records = dict(zip(BAD_VALUES, targets, strict=False))
    normalised_oid = targets[len(BAD_VALUES)]
    for name, oid in bad_records.items():
        obj, prop, value, _ = BAD_VALUES[name]
        _set_raw(sync_stack, oid, obj, {prop: value})
    before = {oid: canonical_pc(sync_stack, oid) for oid in [*bad_records.values(), normalised_oid]}
    # Normalisable: a national US number (config hubspot.default_phone_region: US) and a country name.
    phone, phone_e164 = ("(415) 555-0123", "+14155550123")
    if before[normalised_oid]["contact_phone"] == phone_e164:
        phone, phone_e164 = ("(415) 555-0199", "+14155550199")
    country, code = (
        ("Germany", "DE") if before[normalised_oid]["company_country"] != "DE" else ("France", "FR")
    )
    _set_raw(sync_stack, normalised_oid, "contact", {"phone": phone})
    _set_raw(sync_stack, normalised_oid, "company", {"country": country})
    capfd.readouterr()
    caplog.clear()

    # INFO: the level task logs are kept at (botocore's DEBUG wire dumps are not task logs).
    with caplog.at_level(logging.INFO):
        # The bad records fail the report (report.fail_on_record_errors); its message must not leak either.
        run = sync_stack.run(expect="failed_at_report")
    report = sync_stack.report(run)
    captured = capfd.readouterr()
    logs = "\n".join([caplog.text, captured.out, captured.err])
    retry = sync_stack.retry_items()
    retry_by_oid = {str(i.get("opportunity_id")): i for i in retry}

    sync_errors: dict[str, str] = {}
    for name, oid in bad_records.items():
        _, _, value, rule = BAD_VALUES[name]
        # 1. the deal shows the field and the rule
        error = (
            sync_stack.deal_by_opportunity(oid, ["aws_sync_error"])["properties"].get("aws_sync_error") or ""
        )
        sync_errors[oid] = error
        assert name in error, f"{name}: aws_sync_error is {error!r}"
        assert rule in error, f"{name}: aws_sync_error is {error!r}"
        # 2. a failed audit entry of this run names them too
        failed = [e for e in _run_entries(sync_stack, oid, report["run_id"]) if not e["success"]]
        assert failed, f"{name}: no failed audit entry"
        assert any(name in (e.get("error") or {}).get("message", "") for e in failed), failed
        # 3. the record waits in the retry queue with the error
        assert oid in retry_by_oid, f"{name}: not queued for retry"
        assert name in json.dumps(retry_by_oid[oid].get("error")), retry_by_oid[oid]
        # 4. Partner Central kept its value
        assert canonical_pc(sync_stack, oid)[name] == before[oid][name], name

    # Normalised values are written, and the audit entry of the write says so.
    after = canonical_pc(sync_stack, normalised_oid)
    assert (after["contact_phone"], after["company_country"]) == (phone_e164, code)
    written = [
        e
        for e in _run_entries(sync_stack, normalised_oid, report["run_id"])
        if e["action"] == "UPDATE_OPPORTUNITY"
    ]
    assert len(written) == 1, written
    assert written[0]["success"], written
    assert set(written[0]["metadata"].get("normalised") or {}) == {"contact_phone", "company_country"}
    assert written[0]["changes"]["contact_phone"]["new"] == phone_e164
    assert normalised_oid not in retry_by_oid

    # No raw value in the logs (which were captured: the errors are there), aws_sync_error or retry items.
    assert "company_country" in logs
    assert bad_records["company_country"] in logs
    shown = {"logs": logs, "aws_sync_error": json.dumps(sync_errors), "retry": json.dumps(retry, default=str)}
    for name in BAD_VALUES:
        value = BAD_VALUES[name][2]
        for where, text in shown.items():
            assert not _leaks(value, text), f"the {name} value appears in {where}"
    assert "Narnia" not in logs
    assert "(415) 555-0123" not in logs
