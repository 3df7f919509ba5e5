"""Issue 10, case 10: the audit keeps each field's values under a per-field policy, and rollback refuses
a field whose values it did not keep; service error messages lose the values they quote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from cosell_sync.audit import AuditEntry, AuditTrail, ValueNotKept, apply_value_policy
from cosell_sync.bootstrap import ensure_storage
from cosell_sync.config import load_config
from cosell_sync.rollback import VALUE_NOT_KEPT, plan_rollback

AUDIT = "cosell-audit"
T0 = datetime(2026, 2, 18, 10, tzinfo=UTC)
IDS = {"deal": "1", "company": "2", "contact": "3"}


def _entry(run: int, changes: dict[str, dict[str, str | None]]) -> AuditEntry:
    return AuditEntry(
        opportunity_id="O1",
        deal_id="1",
        run_id=f"scheduled__run{run}",
        run_timestamp=T0 + timedelta(hours=run),
        direction="HUBSPOT_TO_PARTNER_CENTRAL",
        action="UPDATE_OPPORTUNITY",
        source="HUBSPOT",
        changes=changes,
    )


@pytest.fixture
def ddb(aws_endpoint: str) -> object:
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    client = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, client, "cosell-test", AUDIT, "cosell-state")
    return client


def test_policy_keeps_hashes_or_drops_values_per_field() -> None:
    record = _entry(
        1,
        {
            "contact_email": {"old": "a@x.com", "new": "b@x.com"},
            "contact_phone": {"old": "+14155550100", "new": None},
            "stage": {"old": "Prospect", "new": "Qualified"},
        },
    ).to_record(30)
    policy = {"contact_email": "hash", "contact_phone": "drop"}
    out = apply_value_policy(record, lambda name: policy.get(name, "keep"))
    assert out["changes"]["stage"] == {"old": "Prospect", "new": "Qualified"}
    assert out["changes"]["contact_phone"] == {"old": None, "new": None}
    hashed = out["changes"]["contact_email"]
    assert hashed["old"].startswith("sha256:")
    assert hashed["new"].startswith("sha256:")
    assert "x.com" not in str(out["changes"])
    assert out["valuePolicy"] == {"contact_email": "hash", "contact_phone": "drop"}
    # keep everywhere: the record is stored as it is
    assert apply_value_policy(record, lambda name: "keep") is record


def test_state_at_marks_values_not_kept(ddb: object) -> None:
    trail = AuditTrail(ddb, AUDIT, 30, value_policy={"contact_email": "hash", "contact_phone": "drop"})
    trail.write(
        [
            _entry(
                1,
                {
                    "contact_email": {"old": None, "new": "b@x.com"},
                    "contact_phone": {"old": None, "new": "+14155550100"},
                    "stage": {"old": None, "new": "Qualified"},
                },
            )
        ]
    )
    state = trail.state_at("O1", T0 + timedelta(hours=2))
    assert state == {
        "contact_email": ValueNotKept("hash"),
        "contact_phone": ValueNotKept("drop"),
        "stage": "Qualified",
    }
    stored = trail.history("O1")[0]
    assert "b@x.com" not in str(stored)
    assert "+14155550100" not in str(stored)


def test_unknown_policy_is_refused(ddb: object) -> None:
    with pytest.raises(ValueError, match="keep, hash, drop"):
        AuditTrail(ddb, AUDIT, 30, value_policy={"contact_email": "encrypt"})


def test_config_policy_names_mapped_fields_only() -> None:
    from cosell_sync.errors import ConfigError

    cfg = load_config(overrides={"audit": {"value_policy": {"contact_email": "hash"}}})
    assert cfg.audit.policy_for("contact_email") == "hash"
    assert cfg.audit.policy_for("stage") == "keep"
    with pytest.raises(ConfigError, match=r"audit\.value_policy\.email"):
        load_config(overrides={"audit": {"value_policy": {"email": "hash"}}})


def test_rollback_refuses_a_field_whose_values_were_not_kept() -> None:
    cfg = load_config()
    plans = plan_rollback(
        cfg,
        ["contact_email", "contact_phone", "stage"],
        {"contact_email": ValueNotKept("hash"), "contact_phone": ValueNotKept("drop"), "stage": "Qualified"},
        {"contact_email": "new@x.com", "contact_phone": "+1", "stage": "Prospect"},
        {"contact_email": "new@x.com", "contact_phone": "+1", "stage": "Prospect"},
        pc_gated={},
        pending=set(),
        hubspot_objects=IDS,
    )
    by_field = {p.field: p for p in plans}
    assert by_field["contact_email"].skip_reason.startswith(VALUE_NOT_KEPT)
    assert "only a hash" in by_field["contact_email"].skip_reason
    assert "(audit.value_policy: drop)" in by_field["contact_phone"].skip_reason
    assert by_field["contact_email"].write == []
    assert by_field["contact_phone"].write == []
    assert by_field["stage"].write == ["partner_central", "hubspot"]


def test_service_messages_lose_the_values_they_quote() -> None:
    from cosell_hooks.hubspot import without_values as hubspot_without_values
    from cosell_hooks.partner_central import without_values as pc_without_values

    aws = "1 validation error detected: Value 'jane@x.com' at 'customer.contacts.1.member.email' failed"
    assert pc_without_values(aws) == (
        "1 validation error detected: Value at 'customer.contacts.1.member.email' failed"
    )
    boto = (
        "Invalid type for parameter Project.Title, value: 123, type: <class 'int'>, "
        "valid types: <class 'str'>"
    )
    assert "123" not in pc_without_values(boto)
    assert "Project.Title" in pc_without_values(boto)
    hs = (
        'Property values were not valid: [{"isValid":false,"message":"Jane@x was not a valid email",'
        '"error":"INVALID_EMAIL","name":"email"}]'
    )
    assert hubspot_without_values(hs) == "Property values were not valid: email (INVALID_EMAIL)"
