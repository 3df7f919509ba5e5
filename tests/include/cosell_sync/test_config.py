from __future__ import annotations

from pathlib import Path

import pytest

from cosell_sync.config import DEFAULT_CONFIG_PATH, SyncConfig, load_config
from cosell_sync.errors import ConfigError
from cosell_sync.pc_model import parse_path, strip_indexes


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


def _field_index(cfg: SyncConfig, name: str) -> int:
    return cfg.field_names().index(name)


def test_shipped_config_loads_with_design_defaults(cfg):
    assert cfg.catalog == "AWS"
    assert cfg.link_property == "aws_opportunity_id"
    assert cfg.cosell_property == "aws_sync_enabled"
    assert cfg.submit_stage == "contractsent"
    assert cfg.storage.audit_table == "cosell-sync-audit"
    assert cfg.audit.retention_days == 2555
    assert cfg.quotas.partner_central_writes_per_day == 10_000
    assert cfg.strategy_for("stage") == "hubspot_wins"
    assert cfg.strategy_for("expected_spend_amount") == "manual"
    assert cfg.strategy_for("project_title") == "last_write_wins"


def test_code_defaults_have_no_manual_fields():
    assert SyncConfig().conflicts.manual_resolution == []
    assert SyncConfig().conflicts.default_strategy == "last_write_wins"


@pytest.mark.parametrize(
    ("obj", "hubspot", "partner_central"),
    [
        # Design feature 1: contact and company properties.
        pytest.param("contact", "email", "Customer.Contacts[0].Email", id="contact-email"),
        pytest.param("contact", "firstname", "Customer.Contacts[0].FirstName", id="contact-firstname"),
        pytest.param("contact", "lastname", "Customer.Contacts[0].LastName", id="contact-lastname"),
        pytest.param("contact", "phone", "Customer.Contacts[0].Phone", id="contact-phone"),
        pytest.param("contact", "jobtitle", "Customer.Contacts[0].BusinessTitle", id="contact-jobtitle"),
        pytest.param("company", "name", "Customer.Account.CompanyName", id="company-name"),
        pytest.param("company", "address", "Customer.Account.Address.StreetAddress", id="company-address"),
        pytest.param("company", "city", "Customer.Account.Address.City", id="company-city"),
        pytest.param("company", "state", "Customer.Account.Address.StateOrRegion", id="company-state"),
        pytest.param("company", "zip", "Customer.Account.Address.PostalCode", id="company-zip"),
        pytest.param("company", "country", "Customer.Account.Address.CountryCode", id="company-country"),
        pytest.param("company", "industry", "Customer.Account.Industry", id="company-industry"),
        pytest.param("company", "website", "Customer.Account.WebsiteUrl", id="company-website"),
        pytest.param("deal", "dealname", "Project.Title", id="deal-name"),
        pytest.param("deal", "dealstage", "LifeCycle.Stage", id="deal-stage"),
        pytest.param("deal", "closedate", "LifeCycle.TargetCloseDate", id="deal-closedate"),
        pytest.param("deal", "amount", "Project.ExpectedCustomerSpend[0].Amount", id="deal-amount"),
        pytest.param("deal", "aws_review_status", "LifeCycle.ReviewStatus", id="deal-review-status"),
    ],
)
def test_default_mapping_covers_the_design(cfg, obj, hubspot, partner_central):
    matches = [f for f in cfg.fields if f.object == obj and f.hubspot == hubspot]
    assert len(matches) == 1
    assert matches[0].partner_central == partner_central


def test_review_status_enum_covers_every_pc_value_exactly(cfg):
    from cosell_sync.pc_model import pc_enum

    field = cfg.field("review_status")
    assert field.direction == "partner_central_to_hubspot"
    assert set(field.values) == set(pc_enum("ReviewStatus"))
    assert "In review" in field.values


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"fields": {"__patch__": ("project_title", {"partner_central": "Project.Tittle"})}},
            "fields[{project_title}].partner_central: 'Project.Tittle' is not a field of Opportunity",
            id="unknown-pc-path",
        ),
        pytest.param(
            {"fields": {"__patch__": ("project_title", {"partner_central": "Project"})}},
            "fields[{project_title}].partner_central: 'Project' is a structure",
            id="pc-path-not-a-value",
        ),
        pytest.param(
            {"fields": {"__patch__": ("review_comments", {"partner_central": "Arn", "direction": "both"})}},
            "fields[{review_comments}].partner_central: 'Arn' is read-only",
            id="written-path-not-in-update-input",
        ),
        pytest.param(
            {"fields": {"__patch__": ("review_status", {"values": {"In Review": "in_review"}})}},
            "fields[{review_status}].values.In Review: 'In Review' is not a ReviewStatus value",
            id="enum-value-case-is-exact",
        ),
        pytest.param(
            {"fields": {"__patch__": ("project_title", {"transform": "uppercase"})}},
            "fields[{project_title}].transform: unknown transform 'uppercase'",
            id="unknown-transform",
        ),
        pytest.param(
            {"fields": {"__patch__": ("project_title", {"transform": "stage"})}},
            "fields[{project_title}].transform: 'stage' needs a LifeCycle.Stage path",
            id="stage-transform-on-wrong-path",
        ),
        pytest.param(
            {"stages": [{"hubspot_stage": "x", "partner_central_stage": "Won"}]},
            "stages[0].partner_central_stage: 'Won' is not a Partner Central Stage",
            id="unknown-stage",
        ),
        pytest.param(
            {"conflicts": {"field_strategies": {"dealname": "hubspot_wins"}}},
            "conflicts.field_strategies.dealname: not a field mapping name",
            id="strategy-for-unknown-field",
        ),
        pytest.param(
            {"conflicts": {"field_strategies": {"project_title": "newest"}}},
            "conflicts.field_strategies.project_title: Input should be",
            id="unknown-strategy",
        ),
        pytest.param(
            {"conflicts": {"manual_resolution": ["amount"]}},
            "conflicts.manual_resolution[0]: 'amount' is not a field mapping name",
            id="manual-for-unknown-field",
        ),
        pytest.param(
            {"submit_stage": "won"}, "submit_stage: 'won' is not a hubspot_stage", id="bad-submit-stage"
        ),
        pytest.param({"catalog": "Prod"}, "catalog: Input should be 'AWS' or 'Sandbox'", id="bad-catalog"),
        pytest.param(
            {"defaults": {"origin": "AWS Referral"}},
            "defaults.origin: 'AWS Referral' is accepted only in the Sandbox catalog",
            id="aws-referral-outside-sandbox",
        ),
        pytest.param(
            {"defaults": {"primary_needs_from_aws": ["Money"]}},
            "defaults.primary_needs_from_aws: 'Money' is not a PrimaryNeedFromAws value",
            id="bad-default-enum",
        ),
        pytest.param(
            {"quotas": {"hubspot_batch_size": 500}}, "quotas.hubspot_batch_size:", id="batch-over-100"
        ),
        pytest.param({"overlap": 5}, "overlap: Extra inputs are not permitted", id="unknown-key"),
    ],
)
def test_bad_config_fails_fast_naming_key_and_reason(cfg, overrides, message):
    import yaml

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    if "__patch__" in overrides.get("fields", {}):
        name, patch = overrides.pop("fields")["__patch__"]
        index = _field_index(cfg, name)
        raw["fields"][index].update(patch)
        overrides = {"fields": raw["fields"], **overrides}
        message = message.replace("{" + name + "}", str(index))
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    assert message in str(info.value)


def test_sandbox_accepts_aws_referral():
    assert (
        load_config(overrides={"catalog": "Sandbox", "defaults": {"origin": "AWS Referral"}}).catalog
        == "Sandbox"
    )


def test_overrides_merge_nested_keys_without_dropping_siblings():
    cfg = load_config(overrides={"storage": {"bucket": "other"}})
    assert cfg.storage.bucket == "other"
    assert cfg.storage.state_table == "cosell-sync-state"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("catalog: [", "not valid YAML", id="bad-yaml"),
        pytest.param("- a\n- b\n", "top level must be a mapping", id="not-a-mapping"),
    ],
)
def test_unreadable_file_is_a_config_error(tmp_path: Path, content, message):
    path = tmp_path / "sync.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_an_edited_file_is_read_again_and_a_changed_config_stays_the_callers_own(tmp_path: Path):
    """load_config() keeps what it validated; an edit of the file, or of a returned config, must not leak."""
    path = tmp_path / "sync.yaml"
    text = DEFAULT_CONFIG_PATH.read_text()
    path.write_text(text)
    first = load_config(path)
    first.conflicts.manual_resolution = ["next_steps"]  # a caller changing its own copy
    assert load_config(path).conflicts.manual_resolution != ["next_steps"]

    path.write_text(text.replace("catalog: AWS", "catalog: Sandbox", 1))
    assert load_config(path).catalog == "Sandbox"

    path.write_text("catalog: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    ("path", "keys", "stripped"),
    [
        pytest.param("Project.Title", ("Project", "Title"), "Project.Title", id="plain"),
        pytest.param(
            "Project.ExpectedCustomerSpend[0].Amount",
            ("Project", "ExpectedCustomerSpend", 0, "Amount"),
            "Project.ExpectedCustomerSpend.Amount",
            id="indexed",
        ),
    ],
)
def test_paths(path, keys, stripped):
    assert parse_path(path) == keys
    assert strip_indexes(path) == stripped


@pytest.mark.parametrize("path", ["", "Project..Title", "Project.Title[x]", "Project.[0]"])
def test_malformed_paths_are_rejected(path):
    with pytest.raises(ValueError, match="path"):
        parse_path(path)
