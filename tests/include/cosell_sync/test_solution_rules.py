"""The per-solution three-way rule of ``sync_solutions`` and the product mapping of ``cosell_catalog``."""

from __future__ import annotations

from cosell_sync.catalog import _same, product_properties
from cosell_sync.solutions import agreed, related_entities, three_way


def test_each_side_change_goes_to_the_other_and_both_are_kept() -> None:
    base = {"S-1", "S-2"}
    hs = {"S-1", "S-2", "S-3"}  # a seller added S-3
    pc = {"S-1", "S-4"}  # AWS removed S-2 and added S-4
    todo = three_way(hs, pc, base)
    assert todo == {
        "associate": {"S-3"},
        "disassociate": set(),
        "add_line_items": {"S-4"},
        "remove_line_items": {"S-2"},
    }
    # Once applied, both hold S-1, S-3, S-4 and that is what they agree on.
    assert agreed({"S-1", "S-3", "S-4"}, {"S-1", "S-3", "S-4"}, base) == {"S-1", "S-3", "S-4"}


def test_a_removal_in_hubspot_disassociates_and_a_refused_one_keeps_the_old_agreement() -> None:
    assert three_way(set(), {"S-1"}, {"S-1"})["disassociate"] == {"S-1"}
    # Partner Central refused (last solution of a Committed opportunity): the sides still differ, so the
    # agreed set keeps S-1 and the next run tries the removal again instead of re-adding the line item.
    assert agreed(set(), {"S-1"}, {"S-1"}) == {"S-1"}
    assert three_way(set(), {"S-1"}, agreed(set(), {"S-1"}, {"S-1"}))["add_line_items"] == set()


def test_never_synced_records_keep_both_sides() -> None:
    todo = three_way({"S-1"}, {"S-2"}, set())
    assert (todo["associate"], todo["add_line_items"]) == ({"S-1"}, {"S-2"})
    assert not todo["disassociate"]
    assert not todo["remove_line_items"]


def test_related_entities_of_an_opportunity() -> None:
    got = related_entities(
        {
            "RelatedEntityIdentifiers": {
                "Solutions": ["S-2", "S-1"],
                "AwsProducts": ["AmazonEC2", "AmazonS3"],
                "AwsMarketplaceOffers": [
                    "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/o-1"
                ],
            }
        }
    )
    assert got["solutions"] == ["S-1", "S-2"]
    assert got["aws_products"] == "AmazonEC2;AmazonS3"
    assert got["offers"].endswith("Offer/o-1")


def test_product_properties_and_price() -> None:
    solution = {"Id": "S-7", "Name": "Lake", "Category": "Software Product", "Status": "Active"}
    props = product_properties(solution, "AWS", {"S-7": 1200.0})
    assert props == {
        "name": "Lake",
        "hs_sku": "S-7",
        "price": "1200",
        "aws_solution_category": "Software Product",
        "aws_solution_status": "Active",
        "aws_solution_catalog": "AWS",
    }
    # HubSpot answers numbers as text with decimals: the same price is not a change.
    assert _same({**props, "price": "1200.00"}, props)
    assert not _same({**props, "name": "Other"}, props)


def test_products_config_is_checked() -> None:
    import pytest

    from cosell_sync.config import load_config
    from cosell_sync.errors import ConfigError

    cfg = load_config(overrides={"products": {"prices": {"S-12": 99.5}, "schedule": "0 3 * * *"}})
    assert cfg.products.prices == {"S-12": 99.5}
    assert cfg.products.schedule == "0 3 * * *"
    for bad in ({"prices": {"X-1": 1}}, {"prices": {"S-1": -1}}, {"schedule": "61 * * * *"}):
        with pytest.raises(ConfigError, match="products"):
            load_config(overrides={"products": bad})
