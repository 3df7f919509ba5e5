"""A company or contact shared by several opportunities: one outcome per field, and the records behind it.

- ``conflicts.unify_shared``: when one opportunity's console edit wins a conflict with HubSpot's edit of
  the shared company, the company's other opportunities take that value too (not HubSpot's losing one);
  when its opportunities were edited to different values, each is a ``SHARED_RECORD`` conflict;
- ``plan.related_objects``: which company and contact each opportunity has (this run's read, else the
  baseline's);
- ``apply.update_note``: a field written back because Partner Central locks it after approval says why.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cosell_sync.apply import LOCKED_NOTE, update_note
from cosell_sync.config import SyncConfig, load_config
from cosell_sync.conflict_store import SHARED_RECORD, SIMULTANEOUS_UPDATE
from cosell_sync.conflicts import resolve, unify_shared
from cosell_sync.plan import build_plan, related_objects

EARLY = "2026-01-01T00:00:00Z"
LATE = "2026-01-02T00:00:00Z"


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


def _rows(*rows: tuple[str, str, str, str, str, str, str]) -> pd.DataFrame:
    """Diff rows: (opportunity, field, base, pc, hs, kind, the later side's name)."""
    return pd.DataFrame(
        {
            "opportunity_id": [r[0] for r in rows],
            "field": [r[1] for r in rows],
            "base": [r[2] for r in rows],
            "pc": [r[3] for r in rows],
            "hs": [r[4] for r in rows],
            "pc_changed": [r[3] != r[2] for r in rows],
            "hs_changed": [r[4] != r[2] for r in rows],
            "kind": [r[5] for r in rows],
            "_pc_last_modified": pd.to_datetime([LATE if r[6] == "pc" else EARLY for r in rows], utc=True),
            "_hs_last_modified": pd.to_datetime([LATE if r[6] == "hs" else EARLY for r in rows], utc=True),
        }
    )


SHARED = {"O1": {"company": "C1", "contact": "P1"}, "O2": {"company": "C1", "contact": "P2"}}


def _outcome(frame: pd.DataFrame) -> dict[str, tuple[object, object]]:
    return {
        f"{r.opportunity_id}.{r.field}": (r.winner, r.value)
        for r in frame.itertuples()
        if r.winner is not None or r.kind != "converged"
    }


def test_a_console_edit_that_wins_reaches_the_companys_other_opportunities(cfg: SyncConfig) -> None:
    # HubSpot renamed the company, then the console renamed O1's customer (later: it wins on O1).
    resolved = resolve(
        _rows(
            ("O1", "company_name", "Orig", "PC Name", "HS Name", "conflict", "pc"),
            ("O2", "company_name", "Orig", "Orig", "HS Name", "to_partner_central", "hs"),
        ),
        cfg,
    )
    assert _outcome(resolved)["O2.company_name"] == ("hubspot", "HS Name")  # what a per-record view does
    unified = unify_shared(resolved, SHARED, cfg)
    assert _outcome(unified) == {
        "O1.company_name": ("partner_central", "PC Name"),  # to the company
        "O2.company_name": ("hubspot", "PC Name"),  # to O2's opportunity: the same value
    }


def test_an_opportunity_that_already_holds_the_winning_value_writes_nothing(cfg: SyncConfig) -> None:
    resolved = resolve(
        _rows(
            ("O1", "company_name", "Orig", "PC Name", "HS Name", "conflict", "pc"),
            ("O2", "company_name", "Orig", "PC Name", "HS Name", "conflict", "hs"),
        ),
        cfg,
    )
    unified = unify_shared(resolved, SHARED, cfg)
    assert unified.set_index("opportunity_id").loc["O2", "winner"] is None
    assert _outcome(unified)["O1.company_name"] == ("partner_central", "PC Name")


@pytest.mark.parametrize(
    ("rows", "related"),
    [
        pytest.param(
            [
                ("O1", "company_name", "Orig", "Orig", "HS Name", "to_partner_central", "hs"),
                ("O2", "company_name", "Orig", "Orig", "HS Name", "to_partner_central", "hs"),
            ],
            SHARED,
            id="hubspot-edit-only",
        ),
        pytest.param(
            [
                ("O1", "contact_email", "a@x.example", "b@x.example", "c@x.example", "conflict", "pc"),
                (
                    "O2",
                    "contact_email",
                    "a@x.example",
                    "a@x.example",
                    "c@x.example",
                    "to_partner_central",
                    "hs",
                ),
            ],
            SHARED,
            id="different-contacts-not-shared",
        ),
        pytest.param(
            [
                ("O1", "company_name", "Orig", "PC Name", "HS Name", "conflict", "pc"),
                ("O2", "company_name", "Orig", "Orig", "HS Name", "to_partner_central", "hs"),
            ],
            {"O1": {"company": "C1"}, "O2": {"company": "C2"}},
            id="different-companies",
        ),
        pytest.param(
            [
                ("O1", "next_steps", "Orig", "PC", "HS", "conflict", "pc"),
                ("O2", "next_steps", "Orig", "Orig", "HS", "to_partner_central", "hs"),
            ],
            SHARED,
            id="deal-fields-are-per-deal",
        ),
    ],
)
def test_nothing_changes_where_nothing_is_split(
    cfg: SyncConfig, rows: list[tuple[str, ...]], related: dict[str, dict[str, str]]
) -> None:
    resolved = resolve(_rows(*rows), cfg)
    assert _outcome(unify_shared(resolved, related, cfg)) == _outcome(resolved)


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(
            [
                ("O1", "company_name", "Orig", "PC A", "Orig", "to_hubspot", "pc"),
                ("O2", "company_name", "Orig", "PC B", "Orig", "to_hubspot", "pc"),
                ("O3", "company_name", "Orig", "Orig", "Orig", "converged", "pc"),
            ],
            id="console-edits-only",
        ),
        pytest.param(
            [
                # HubSpot renamed the company too, but both console edits are later: each wins its own row.
                ("O1", "company_name", "Orig", "PC A", "HS", "conflict", "pc"),
                ("O2", "company_name", "Orig", "PC B", "HS", "conflict", "pc"),
                ("O3", "company_name", "Orig", "Orig", "HS", "to_partner_central", "hs"),
            ],
            id="console-edits-after-a-hubspot-edit",
        ),
    ],
)
def test_opportunities_that_disagree_on_a_shared_company_are_a_conflict(
    cfg: SyncConfig, rows: list[tuple[str, ...]]
) -> None:
    # Per opportunity, the last console edit would reach the company: whichever row is applied last
    # decides, silently. Unified, no row writes: each writing row waits for a person.
    resolved = resolve(_rows(*rows), cfg)
    unified = unify_shared(resolved, {**SHARED, "O3": {"company": "C1"}}, cfg)
    writing = {r[0] for r in rows if r[5] != "converged"}
    by_opp = unified.set_index("opportunity_id")
    for oid in writing:
        assert by_opp.loc[oid, "winner"] == "manual"
        assert by_opp.loc[oid, "value"] is None
        assert by_opp.loc[oid, "conflict_type"] == SHARED_RECORD
    assert by_opp.loc["O3", "winner"] == "manual" if "O3" in writing else by_opp.loc["O3", "winner"] is None

    plan = build_plan(unified, pd.DataFrame(index=sorted(writing)), pd.DataFrame(), cfg)
    assert plan.hubspot_updates == {}
    assert plan.partner_central_updates == {}
    assert {(c["opportunity_id"], c["conflict_type"]) for c in plan.conflicts} == {
        (oid, SHARED_RECORD) for oid in writing
    }
    # Each conflict shows the opportunity's own console value against HubSpot's.
    assert {c["opportunity_id"]: c["pc"] for c in plan.conflicts}["O2"] == "PC B"


def test_a_plain_manual_conflict_keeps_its_type(cfg: SyncConfig) -> None:
    manual_field = next(iter(cfg.conflicts.manual_resolution), None)
    if manual_field is None:
        cfg = cfg.model_copy(
            update={"conflicts": cfg.conflicts.model_copy(update={"manual_resolution": ["next_steps"]})}
        )
        manual_field = "next_steps"
    resolved = resolve(_rows(("O1", manual_field, "Orig", "PC", "HS", "conflict", "pc")), cfg)
    plan = build_plan(unify_shared(resolved, SHARED, cfg), pd.DataFrame(index=["O1"]), pd.DataFrame(), cfg)
    assert [c["conflict_type"] for c in plan.conflicts] == [SIMULTANEOUS_UPDATE]


def test_related_objects_prefer_this_runs_read_over_the_baseline() -> None:
    base = pd.DataFrame(
        {"company_id": ["C1", "C9", None], "contact_id": ["P1", None, "P3"]}, index=["O1", "O2", "O3"]
    )
    hs = pd.DataFrame({"_company_id": ["C2", None], "_contact_id": [None, "P4"]}, index=["O2", "O4"])
    assert related_objects(base, hs) == {
        "O1": {"company": "C1", "contact": "P1"},
        "O2": {"company": "C2"},
        "O3": {"contact": "P3"},
        "O4": {"contact": "P4"},
    }


def test_the_note_says_why_a_locked_field_was_written_back(cfg: SyncConfig) -> None:
    note = update_note(
        cfg, {"company_website": "https://a.example", "review_status": "Approved"}, {"company_website"}
    )
    assert f"<li>website ({LOCKED_NOTE})</li>" in note
    assert "<li>aws_review_status</li>" in note
    assert "a.example" not in note  # values never go in the note
    assert LOCKED_NOTE not in update_note(cfg, {"company_website": "https://a.example"})
