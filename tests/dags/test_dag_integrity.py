"""Every DAG in ``dags/`` imports cleanly and carries what operators rely on in the UI."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_expected_dags_present(dagbag) -> None:
    assert {"cosell_reconcile", "cosell_hubspot_setup"} <= set(dagbag.dag_ids)


def test_every_dag_has_tags_docs_owner_and_retries(dagbag) -> None:
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not (dag.doc_md and len(dag.doc_md.strip()) > 40):
            problems.append(f"{dag_id}: no doc_md")
        for t in dag.tasks:
            if t.owner in (None, "", "airflow"):
                problems.append(f"{dag_id}.{t.task_id}: default owner")
            if not t.retries:
                problems.append(f"{dag_id}.{t.task_id}: no retries")
    assert problems == []


def test_every_dag_has_a_one_line_description_and_every_param_a_title(dagbag) -> None:
    # The description is what the DAG list shows; the title is each field's label in the trigger form.
    problems = []
    for dag_id, dag in dagbag.dags.items():
        description = (dag.description or "").strip()
        if not description or "\n" in description or len(description) > 120:
            problems.append(f"{dag_id}: no one-line description")
        for name in dag.params:
            if not (dag.params.get_param(name).schema.get("title") or "").strip():
                problems.append(f"{dag_id}.{name}: no title")
    assert problems == []


def test_no_param_offers_null_in_the_trigger_form(dagbag) -> None:
    # A None default or choice shows as a literal "null" in the form; an empty choice reads "use the default".
    offenders = []
    for dag_id, dag in dagbag.dags.items():
        for name in dag.params:
            param = dag.params.get_param(name)
            if None in (param.schema.get("enum") or []) or (param.schema.get("enum") and param.value is None):
                offenders.append(f"{dag_id}.{name}")
    assert offenders == []
    catalog = dagbag.dags["cosell_reconcile"].params.get_param("catalog")
    assert (catalog.value, catalog.schema["enum"]) == ("", ["", "AWS", "Sandbox"])


@pytest.mark.parametrize(
    ("dag_id", "name"), [("cosell_reconcile", "since"), ("cosell_rollback", "target_timestamp")]
)
def test_timestamp_params_take_a_time_without_an_offset(dagbag, dag_id: str, name: str) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    param = dagbag.dags[dag_id].params.get_param(name)
    for value in (
        "2026-11-02T10:00:00",
        "2026-11-02T10:00",
        "2026-11-02T10:00:00Z",
        "2026-11-02T11:00:00+01:00",
    ):
        assert param.resolve(value) == value
    with pytest.raises(ParamValidationError):
        param.resolve("yesterday")


def test_each_dag_file_parses_fast(dagbag) -> None:
    # DagBag records how long each file took to import; operators feel this on every parse loop.
    stats = {Path(s.file).name: s.duration.total_seconds() for s in dagbag.dagbag_stats}
    assert set(stats) == {p.name for p in DAGS_FOLDER.glob("*.py")}
    slow = {name: secs for name, secs in stats.items() if secs >= 1.0}
    assert slow == {}


def test_reconcile_schedule_and_params(dagbag) -> None:
    dag = dagbag.dags["cosell_reconcile"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.timetable.expression == "*/30 * * * *"
    params = dag.params
    assert params["mode"] == "incremental"
    assert params["direction"] == "both"
    assert params["dry_run"] is False
    assert {"since", "catalog", "opportunity_ids"} <= set(params.keys())
    # Partner Central writes go through the pool that holds the 1 write/s quota across DAGs.
    assert dag.get_task("apply_partner_central").pool == "partner_central_writes"


def test_dag_files_do_not_import_heavy_modules_at_top_level() -> None:
    heavy = ("pandas", "boto3", "botocore", "hubspot", "requests", "pyarrow", "cosell_hooks")
    for path in DAGS_FOLDER.glob("*.py"):
        top_level = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
        offenders = [line for line in top_level if any(f" {h}" in line or f" {h}." in line for h in heavy)]
        assert offenders == [], f"{path.name}: {offenders}"
