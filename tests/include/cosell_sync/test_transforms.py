from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cosell_sync.config import SyncConfig, load_config
from cosell_sync.transforms import TransformError, converters_for


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


@pytest.mark.parametrize(
    ("field", "hubspot_value", "canonical"),
    [
        pytest.param("project_title", "  Migration  ", "Migration", id="text-strips"),
        pytest.param("project_title", "   ", None, id="text-blank-is-null"),
        pytest.param("project_title", "", None, id="text-empty-is-null"),
        pytest.param("target_close_date", "2025-03-01", "2025-03-01", id="date-plain"),
        pytest.param("target_close_date", "2025-03-01T00:00:00Z", "2025-03-01", id="date-iso-z"),
        pytest.param("target_close_date", "2025-03-01T00:00:00.000Z", "2025-03-01", id="date-iso-millis"),
        pytest.param("target_close_date", "1740787200000", "2025-03-01", id="date-epoch-ms"),
        pytest.param(
            "target_close_date", "2025-03-01T23:30:00-05:00", "2025-03-02", id="date-offset-to-utc-day"
        ),
        pytest.param("expected_spend_amount", "1000", "1000", id="amount-int"),
        pytest.param("expected_spend_amount", "1000.0", "1000", id="amount-trailing-zero"),
        pytest.param("expected_spend_amount", "1,000.00", "1000", id="amount-thousands-sep"),
        pytest.param("expected_spend_amount", "1000.50", "1000.5", id="amount-cents"),
        pytest.param("expected_spend_amount", "10.005", "10.01", id="amount-rounds-half-up-to-cents"),
        pytest.param("expected_spend_amount", "0", "0", id="amount-zero"),
        pytest.param("stage", "contractsent", "Committed", id="stage-hubspot-id"),
        pytest.param("review_status", "in_review", "In review", id="enum-exact-pc-value"),
        pytest.param("company_industry", "COMPUTER_SOFTWARE", "Software and Internet", id="enum-primary"),
        pytest.param("company_industry", "INTERNET", "Software and Internet", id="enum-alias"),
        pytest.param("company_country", "us", "US", id="country-code-upper"),
        pytest.param("company_country", "United Kingdom", "GB", id="country-name"),
        pytest.param("contact_email", " Jane.Doe@Acme.COM ", "jane.doe@acme.com", id="email-lower"),
        pytest.param("contact_phone", "+1 (415) 555-0100", "+14155550100", id="phone-e164"),
        pytest.param("contact_phone", "0044 20 7946 0958", "+442079460958", id="phone-00-prefix"),
        pytest.param("contact_phone", None, None, id="phone-null"),
    ],
)
def test_from_hubspot_gives_canonical(cfg, field, hubspot_value, canonical):
    assert converters_for(cfg)[field].from_hubspot(hubspot_value) == canonical


@pytest.mark.parametrize(
    ("field", "pc_value", "canonical"),
    [
        pytest.param("target_close_date", "2025-12-31", "2025-12-31", id="date"),
        pytest.param(
            "target_close_date", datetime(2025, 12, 31, 22, tzinfo=UTC), "2025-12-31", id="date-datetime"
        ),
        pytest.param("expected_spend_amount", "2500.00", "2500", id="amount"),
        pytest.param("stage", "Technical Validation", "Technical Validation", id="stage"),
        pytest.param("review_status", "Action Required", "Action Required", id="enum"),
        pytest.param("project_title", None, None, id="null"),
    ],
)
def test_from_partner_central_gives_canonical(cfg, field, pc_value, canonical):
    assert converters_for(cfg)[field].from_partner_central(pc_value) == canonical


@pytest.mark.parametrize(
    ("field", "canonical", "to_hubspot", "to_partner_central"),
    [
        pytest.param("stage", "Committed", "contractsent", "Committed", id="stage"),
        pytest.param("stage", "Launched", "closedwon", "Launched", id="stage-launched"),
        pytest.param("review_status", "In review", "in_review", "In review", id="enum"),
        pytest.param(
            "company_industry",
            "Software and Internet",
            "COMPUTER_SOFTWARE",
            "Software and Internet",
            id="enum-writes-primary-value",
        ),
        pytest.param("target_close_date", "2025-03-01", "2025-03-01", "2025-03-01", id="date"),
        pytest.param("expected_spend_amount", "1000.5", "1000.5", "1000.5", id="amount"),
        pytest.param("project_title", None, "", None, id="null-clears-hubspot-with-empty-string"),
    ],
)
def test_writes_each_side_in_its_format(cfg, field, canonical, to_hubspot, to_partner_central):
    conv = converters_for(cfg)[field]
    assert conv.to_hubspot(canonical) == to_hubspot
    assert conv.to_partner_central(canonical) == to_partner_central


@pytest.mark.parametrize(
    ("field", "side", "value", "message"),
    [
        pytest.param(
            "review_status", "hubspot", "in-review", "review_status: 'in-review'", id="enum-hs-unknown"
        ),
        pytest.param(
            "company_industry", "partner_central", "Other", "company_industry: 'Other'", id="enum-pc-unmapped"
        ),
        pytest.param(
            "stage", "hubspot", "mystage", "stage: 'mystage' is not a HubSpot deal stage", id="stage-unknown"
        ),
        pytest.param(
            "expected_spend_amount", "hubspot", "ten", "expected_spend_amount: 'ten'", id="amount-text"
        ),
        pytest.param("expected_spend_amount", "hubspot", "-5", "is negative", id="amount-negative"),
        pytest.param(
            "target_close_date", "hubspot", "2025-02-30", "not a valid calendar date", id="date-impossible"
        ),
        pytest.param("target_close_date", "hubspot", "next week", "is not a date", id="date-garbage"),
        pytest.param(
            "company_country", "hubspot", "Atlantis", "company_country: 'Atlantis'", id="country-unknown"
        ),
        pytest.param(
            "contact_phone", "hubspot", "555-0100", "not an E.164 phone number", id="phone-no-country"
        ),
    ],
)
def test_bad_values_raise_a_precise_error(cfg, field, side, value, message):
    conv = converters_for(cfg)[field]
    convert = conv.from_hubspot if side == "hubspot" else conv.from_partner_central
    with pytest.raises(TransformError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        convert(value)
    assert info.value.field == field


def test_fast_path_matches_slow_path_and_still_raises(cfg):
    conv = converters_for(cfg)["stage"]
    fast = conv.fast_from_hubspot()
    assert [fast(v) for v in ("contractsent", "contractsent", "closedlost")] == [
        "Committed",
        "Committed",
        "Closed Lost",
    ]
    for _ in range(2):  # an error is never memoised as a value
        with pytest.raises(TransformError):
            fast("bogus")


def test_canonical_round_trips_for_every_mapped_field(cfg):
    samples = {
        "project_title": "Cloud migration",
        "stage": "Qualified",
        "target_close_date": "2025-09-30",
        "expected_spend_amount": "12000.5",
        "customer_business_problem": "Needs to scale its data platform",
        "next_steps": "Architecture review",
        "closed_lost_reason": "Price",
        "review_status": "Approved",
        "review_comments": "Looks good",
        "company_name": "Acme",
        "company_street": "1 Main St",
        "company_city": "Seattle",
        "company_state": "WA",
        "company_postal_code": "98101",
        "company_country": "US",
        "company_website": "https://acme.example.com",
        "company_industry": "Retail",
        "contact_email": "jane@acme.example.com",
        "contact_first_name": "Jane",
        "contact_last_name": "Doe",
        "contact_phone": "+14155550100",
        "contact_job_title": "CTO",
    }
    assert set(samples) == set(cfg.field_names())
    for name, conv in converters_for(cfg).items():
        value = samples[name]
        assert conv.from_hubspot(conv.to_hubspot(value)) == value, name
        assert conv.from_partner_central(conv.to_partner_central(value)) == value, name


def test_converters_are_cached_per_config_object_outside_the_config():
    import gc

    from cosell_sync import transforms

    first, second = load_config(), load_config()
    assert converters_for(first) is converters_for(first)
    assert converters_for(second) is not converters_for(first)
    assert "_converters" not in SyncConfig.__private_attributes__
    key = id(second)
    del second
    gc.collect()
    assert key not in transforms._CONVERTERS
