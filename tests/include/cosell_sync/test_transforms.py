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
            "review_status",
            "hubspot",
            "in-review",
            "review_status: is not a HubSpot value in the field's value map",
            id="enum-hs-unknown",
        ),
        pytest.param(
            "company_industry",
            "partner_central",
            "Other",
            "company_industry: is not a Partner Central value",
            id="enum-pc-unmapped",
        ),
        pytest.param("stage", "hubspot", "mystage", "stage: is not a HubSpot deal stage", id="stage-unknown"),
        pytest.param(
            "expected_spend_amount",
            "hubspot",
            "ten",
            "expected_spend_amount: is not a decimal amount",
            id="amount-text",
        ),
        pytest.param("expected_spend_amount", "hubspot", "-5", "is negative", id="amount-negative"),
        pytest.param(
            "target_close_date", "hubspot", "2025-02-30", "not a valid calendar date", id="date-impossible"
        ),
        pytest.param("target_close_date", "hubspot", "next week", "is not a date", id="date-garbage"),
        pytest.param(
            "company_country",
            "hubspot",
            "Atlantis",
            "company_country: is not an ISO-3166 country code",
            id="country-unknown",
        ),
        pytest.param(
            "contact_phone",
            "hubspot",
            "555-0100",
            "contact_phone: is not a phone number: needs a country code",
            id="phone-no-country",
        ),
    ],
)
def test_bad_values_raise_a_precise_error(cfg, field, side, value, message):
    conv = converters_for(cfg)[field]
    convert = conv.from_hubspot if side == "hubspot" else conv.from_partner_central
    with pytest.raises(TransformError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        convert(value)
    assert info.value.field == field
    # Field and rule only: the message reaches task logs, aws_sync_error and retry items.
    assert str(value) not in str(info.value)


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


# --- issue 10, cases 3 and 10: unwritable values are per-record errors, normalised ones are noted,
# --- and no message carries the value ------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        pytest.param("(415) 555-0100", "+14155550100", id="us-national-with-punctuation"),
        pytest.param("415.555.0100", "+14155550100", id="us-national-dots"),
        pytest.param("1 415 555 0100", "+14155550100", id="us-trunk-prefix"),
    ],
)
def test_phone_without_country_code_is_completed_with_the_default_region(cfg, raw, e164):
    assert cfg.hubspot.default_phone_region == "US"
    conv = converters_for(cfg)["contact_phone"]
    assert conv.from_hubspot(raw) == e164
    assert "default region US" in conv.normalisation(raw)


def test_phone_already_international_is_not_reported_as_normalised(cfg):
    conv = converters_for(cfg)["contact_phone"]
    assert conv.from_hubspot("+44 20 7946 0958") == "+442079460958"
    assert conv.normalisation("+44 20 7946 0958") is None


@pytest.mark.parametrize("raw", ["5551234", "555-0100", "call me"])
def test_phone_that_is_not_a_valid_number_of_the_region_is_an_error_without_the_value(cfg, raw):
    conv = converters_for(cfg)["contact_phone"]
    with pytest.raises(TransformError) as info:
        conv.from_hubspot(raw)
    assert str(info.value).startswith("contact_phone: is not a phone number")
    assert raw not in str(info.value)
    assert raw not in str(info.value.to_dict())


def test_without_a_default_region_a_national_phone_is_an_error():
    cfg = load_config(overrides={"hubspot": {"default_phone_region": None}})
    with pytest.raises(TransformError, match=r"is not an E\.164 phone number"):
        converters_for(cfg)["contact_phone"].from_hubspot("(415) 555-0100")


def test_default_phone_region_must_have_a_numbering_plan():
    from cosell_sync.errors import ConfigError

    with pytest.raises(ConfigError, match=r"hubspot\.default_phone_region"):
        load_config(overrides={"hubspot": {"default_phone_region": "XX"}})


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param("Germany", "DE", id="iso-name"),
        pytest.param("Viet Nam", "VN", id="iso-name-2"),
        pytest.param("deu", "DE", id="alpha-3"),
        pytest.param("England", "GB", id="common-spelling"),
    ],
)
def test_country_name_becomes_its_iso_code_and_says_so(cfg, raw, code):
    conv = converters_for(cfg)["company_country"]
    assert conv.from_hubspot(raw) == code
    assert conv.normalisation(raw) == "country name translated to its ISO-3166 alpha-2 code"


def test_country_code_itself_is_not_reported_as_normalised(cfg):
    conv = converters_for(cfg)["company_country"]
    assert conv.from_hubspot("de") == "DE"
    assert conv.normalisation("de") is None


@pytest.mark.parametrize(
    ("field", "raw", "rule"),
    [
        pytest.param("company_country", "Narnia", "is not an ISO-3166 country code", id="country"),
        pytest.param("expected_spend_amount", "-500", "is negative", id="amount"),
        pytest.param("contact_email", "jane.doe.example.com", "is not an e-mail address", id="email"),
        pytest.param("company_industry", "ALTERNATIVE_MEDICINE", "is not a HubSpot value", id="enum"),
    ],
)
def test_unconvertible_hubspot_value_names_field_and_rule_only(cfg, field, raw, rule):
    with pytest.raises(TransformError) as info:
        converters_for(cfg)[field].from_hubspot(raw)
    assert str(info.value) == f"{field}: {info.value.reason}"
    assert rule in info.value.reason
    assert raw not in str(info.value)
    assert raw not in str(info.value.to_dict())
    assert info.value.code == "INVALID_VALUE"


def _hs_records(**props):
    deal = {"id": "11", "properties": {"aws_opportunity_id": "O1", "dealname": "D", **props.get("deal", {})}}
    company = {"id": "21", "properties": props.get("company", {})}
    contact = {"id": "31", "properties": props.get("contact", {})}
    return [deal], {"21": company}, {"31": contact}, {"11": "21"}, {"11": "31"}


def test_hubspot_frame_records_errors_and_normalisations_without_values(cfg):
    from cosell_sync.mapping import conversion_errors, hubspot_to_frame, normalised_values

    frame = hubspot_to_frame(
        *_hs_records(
            deal={"amount": "-500"},
            company={"country": "Narnia", "industry": "ALTERNATIVE_MEDICINE"},
            contact={"phone": "(415) 555-0100", "email": "jane.doe.example.com"},
        ),
        cfg,
    )
    errors = conversion_errors(frame, cfg)
    assert set(errors["O1"]) == {
        "expected_spend_amount",
        "company_country",
        "company_industry",
        "contact_email",
    }
    assert errors["O1"]["expected_spend_amount"].startswith("is negative")
    for raw in ("-500", "Narnia", "ALTERNATIVE_MEDICINE", "jane.doe.example.com"):
        assert raw not in frame.loc["O1", "_error"]
    assert frame.loc["O1", "contact_phone"] == "+14155550100"
    assert set(normalised_values(frame)["O1"]) == {"contact_phone"}


def test_unconvertible_value_of_a_field_never_written_to_pc_is_not_a_pc_error(cfg):
    from cosell_sync.mapping import conversion_errors, hubspot_to_frame

    # review_status is owned by Partner Central: a stray HubSpot value blocks no PC write.
    frame = hubspot_to_frame(*_hs_records(deal={"aws_review_status": "mystery"}), cfg)
    assert "review_status" in frame.loc["O1", "_error"]
    assert conversion_errors(frame, cfg) == {}


def test_over_long_text_is_refused_with_the_limit_not_the_value(cfg):
    from cosell_sync.mapping import new_opportunity_request

    title = "Secret title " + "x" * 287
    with pytest.raises(TransformError) as info:
        new_opportunity_request({"project_title": title}, "42", cfg, "AWS")
    assert str(info.value) == (
        "project_title: is 300 characters; Partner Central Project.Title takes 0 to 255 characters"
    )


def test_invalid_values_error_lists_fields_and_rules():
    from cosell_sync.transforms import InvalidValuesError

    err = InvalidValuesError({"contact_phone": "is not a phone number", "company_country": "is not a code"})
    assert err.message == (
        "HubSpot values cannot be written to Partner Central: "
        "company_country: is not a code; contact_phone: is not a phone number"
    )
    assert err.to_dict()["code"] == "INVALID_VALUE"
