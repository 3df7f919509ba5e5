"""Tags both ways: the deal's ``aws_tags`` text, the model's tag rules and the three-way diff per key."""

from __future__ import annotations

import pytest

from cosell_sync.tags import (
    TagDiff,
    canonical,
    check_tag,
    diff_tags,
    error_lines,
    format_tags,
    merge_error,
    parse_tags,
    tag_rules,
)


class TestText:
    def test_round_trip_escapes_colons_in_keys(self) -> None:
        tags = {"Team": "North", "aws:createdBy": "console", "url": "https://example.com/a"}
        text = format_tags(tags)
        assert text == r"Team:North;aws\:createdBy:console;url:https://example.com/a"
        assert parse_tags(text).tags == tags

    def test_entries_are_trimmed_and_blank_ones_skipped(self) -> None:
        parsed = parse_tags(" Team : North ;; Env:prod\n")
        assert parsed.tags == {"Team": "North", "Env": "prod"}
        assert parsed.invalid == {}

    def test_unreadable_entries_are_kept_verbatim_and_named_by_position(self) -> None:
        parsed = parse_tags("Team:North;no colon here;Dup:1;Dup:2")
        assert parsed.tags == {"Team": "North"}
        assert parsed.invalid == {
            "entry 2": "an entry must be key:value (no ':' found)",
            "Dup": "a tag key can have only one value",
        }
        # A rewrite of the deal never loses what the seller typed.
        assert format_tags({"Team": "South"}, parsed.raw_invalid) == "Team:South;no colon here;Dup:1;Dup:2"

    def test_partner_central_tags_are_trimmed_like_the_deal(self) -> None:
        assert canonical([{"Key": "Team ", "Value": " North"}]) == {"Team": "North"}
        assert canonical(None) == {}


class TestRules:
    def test_limits_come_from_the_model(self) -> None:
        rules = tag_rules()
        assert (rules.key_min, rules.key_max, rules.value_max) == (1, 128, 256)
        assert (rules.max_tags, rules.untag_max) == (200, 50)

    @pytest.mark.parametrize(
        ("key", "value", "rule"),
        [
            pytest.param("Team", "North", None, id="valid"),
            pytest.param("Équipe nord", "值 +=/@:._-", None, id="unicode-letters-spaces-symbols"),
            pytest.param("Team", "", None, id="empty-value-ok"),
            pytest.param("k" * 129, "v", "a tag key must be 1-128 characters", id="key-too-long"),
            pytest.param("", "v", "a tag key must be 1-128 characters", id="key-empty"),
            pytest.param(
                "Team", "v" * 257, "a tag value must be at most 256 characters", id="value-too-long"
            ),
            pytest.param(
                "Team#1",
                "v",
                "a tag key may hold only letters, digits, spaces and _ . : / = + - @",
                id="key-char",
            ),
            pytest.param(
                "Team",
                "a\tb",
                "a tag value may hold only letters, digits, spaces and _ . : / = + - @",
                id="tab-is-not-a-space",
            ),
            pytest.param(
                "aws:team", "x", "keys starting with aws: are reserved for AWS and read-only", id="aws"
            ),
        ],
    )
    def test_check_names_the_rule_not_the_value(self, key: str, value: str, rule: str | None) -> None:
        assert check_tag(key, value) == rule
        if rule:
            assert value not in rule or not value


def _diff(base: dict[str, str] | None, hubspot: str, pc: dict[str, str], **kw: bool) -> TagDiff:
    return diff_tags(base, parse_tags(hubspot), pc, **kw)


class TestThreeWay:
    def test_hubspot_add_and_removal_go_to_partner_central(self) -> None:
        d = _diff({"Team": "North", "Old": "x"}, "Team:North;New:1", {"Team": "North", "Old": "x"})
        assert d.to_tag == {"New": "1"}
        assert d.to_untag == ["Old"]
        assert d.hubspot is None
        assert d.base_if_ok == {"Team": "North", "New": "1"}

    def test_partner_central_add_and_removal_go_to_the_deal(self) -> None:
        d = _diff({"Team": "North", "Old": "x"}, "Team:North;Old:x", {"Team": "North", "Pc": "2"})
        assert (d.to_tag, d.to_untag) == ({}, [])
        assert d.hubspot == {"Team": "North", "Pc": "2"}
        assert d.base_if_ok == {"Team": "North", "Pc": "2"}

    def test_same_key_changed_on_both_sides_is_a_conflict_and_nothing_moves(self) -> None:
        d = _diff({"Team": "North"}, "Team:South", {"Team": "East"})
        assert d.conflicts == ["Team"]
        assert (d.to_tag, d.to_untag, d.hubspot) == ({}, [], None)
        assert d.base_if_ok == {"Team": "North"}  # stays in conflict until the sides agree
        assert "changed in both HubSpot and Partner Central" in error_lines(d)[0]

    def test_the_same_edit_on_both_sides_is_agreement(self) -> None:
        d = _diff({"Team": "North"}, "Team:South", {"Team": "South"})
        assert (d.conflicts, d.to_tag, d.hubspot) == ([], {}, None)
        assert d.base_if_ok == {"Team": "South"}

    def test_first_sight_takes_the_union_and_different_values_conflict(self) -> None:
        d = _diff(None, "Hs:1;Both:a", {"Pc": "2", "Both": "b"})
        assert d.to_tag == {"Hs": "1"}
        assert d.hubspot == {"Hs": "1", "Both": "a", "Pc": "2"}
        assert d.conflicts == ["Both"]
        assert d.to_untag == []

    def test_an_invalid_tag_is_refused_by_rule_and_the_rest_applied(self) -> None:
        d = _diff({}, f"Good:1;Long:{'v' * 300};Bad#key:2", {})
        assert d.to_tag == {"Good": "1"}
        assert d.refused == {
            "Long": "a tag value must be at most 256 characters",
            "Bad#key": "a tag key may hold only letters, digits, spaces and _ . : / = + - @",
        }
        assert "v" * 300 not in " ".join(error_lines(d))
        assert d.base_if_ok == {"Good": "1"}

    def test_aws_keys_are_never_sent_nor_removed_and_a_hubspot_edit_is_put_back(self) -> None:
        pc = {"aws:createdBy": "console"}
        removed = _diff(pc, "", pc)
        assert (removed.to_tag, removed.to_untag) == ({}, [])
        assert removed.hubspot == pc
        assert removed.refused == {}
        edited = _diff(pc, r"aws\:createdBy:me;aws\:new:1", pc)
        assert (edited.to_tag, edited.to_untag) == ({}, [])
        assert edited.hubspot == pc
        assert set(edited.refused) == {"aws:createdBy", "aws:new"}

    def test_at_most_200_tags_new_keys_beyond_are_refused(self) -> None:
        pc = {f"k{i:03d}": "v" for i in range(199)}
        d = _diff(pc, format_tags({**pc, "new1": "a", "new2": "b"}), pc)
        assert d.to_tag == {"new1": "a"}
        assert d.refused == {"new2": "an opportunity can have at most 200 tags"}

    def test_one_way_runs_keep_the_other_sides_edits_pending(self) -> None:
        d = _diff({"A": "1"}, "A:2", {"A": "1", "B": "3"}, to_pc=False)
        assert d.to_tag == {}
        assert d.hubspot == {"A": "2", "B": "3"}
        assert d.base_if_ok == {"A": "1", "B": "3"}
        d = _diff({"A": "1"}, "A:2", {"A": "1", "B": "3"}, to_hs=False)
        assert d.to_tag == {"A": "2"}
        assert d.hubspot is None
        assert d.base_if_ok == {"A": "2"}


def test_sync_error_keeps_other_steps_lines() -> None:
    current = "ValidationException: Project.Title is required\naws_tags: tag 'Old' not sent: rule"
    merged = merge_error(current, ["tag 'New' not sent: other rule"])
    assert (
        merged == "ValidationException: Project.Title is required\naws_tags: tag 'New' not sent: other rule"
    )
    assert merge_error("aws_tags: tag 'Old' not sent: rule", []) == ""
