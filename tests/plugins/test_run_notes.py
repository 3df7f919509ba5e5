"""Unit tests for ``cosell_runtime.run_notes``: what the run page says when a sync run ends."""

from __future__ import annotations

from cosell_runtime.run_notes import compose_note


def test_a_succeeded_run_leads_with_its_outcome_then_the_report() -> None:
    note = compose_note("success", "| table |", [])
    assert note == "**Sync succeeded.**\n\n| table |"


def test_a_run_failed_only_at_report_had_record_errors() -> None:
    note = compose_note("failed", "| table |", ["report"])
    assert note.startswith("**Sync finished with record errors**")
    assert note.endswith("| table |")


def test_a_run_that_failed_before_its_report_names_the_failed_tasks() -> None:
    note = compose_note("failed", None, ["extract_hubspot", "apply_hubspot"])
    assert note.startswith("**Sync failed** at `extract_hubspot`, `apply_hubspot`.")
    assert "The next run retries what was not committed." in note


def test_a_note_never_exceeds_airflows_limit() -> None:
    assert len(compose_note("success", "x" * 5000, [])) == 1000
