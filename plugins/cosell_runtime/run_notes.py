"""A scheduler listener that writes each ``cosell_reconcile`` run's outcome into the DAG run's note.

The Task SDK cannot set a DAG run's note: a task talks to the API server's execution API, which has no
such call, and the public REST API would need credentials inside the task. The scheduler can: it calls
``on_dag_run_success`` / ``on_dag_run_failed`` from ``DagRun.update_state`` with the run attached to its
own session, so setting ``dag_run.note`` here is committed with the run's final state, in the same
transaction (a second session would wait on the scheduler's row lock of the run).

The ``report`` task builds the note (``cosell_sync.report.run_note``: counts per direction, API calls,
where ``report.json``, the change set and the plan are) and pushes it to XCom under
:data:`NOTE_XCOM_KEY` before it decides whether the run's record errors fail it. A run that failed
before ``report`` gets a short note naming the tasks that failed. A note a person already wrote on the
run is never replaced.

Registered by ``cosell_plugin.CoSellPlugin.listeners``; every function here must stay cheap and must
never raise into the scheduler (Airflow logs a listener's exception, but a slow listener slows it).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

#: The DAGs whose runs get a note.
NOTED_DAGS = frozenset({"cosell_reconcile"})
#: The XCom key the ``report`` task pushes the note under.
NOTE_XCOM_KEY = "run_note"
#: The task that pushes it.
REPORT_TASK = "report"
#: Airflow keeps at most 1,000 characters of a run's note.
_MAX_CHARS = 1000


def _report_note(dag_run: Any, session: Any) -> str | None:
    """The note the ``report`` task pushed for this run, if it got that far."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    row = session.execute(
        select(XComModel.value).where(
            XComModel.dag_run_id == dag_run.id,
            XComModel.task_id == REPORT_TASK,
            XComModel.key == NOTE_XCOM_KEY,
        )
    ).first()
    if row is None:
        return None
    value = XComModel.deserialize_value(row)
    return value if isinstance(value, str) and value else None


def _failed_tasks(dag_run: Any, session: Any) -> list[str]:
    """The ids of the run's failed tasks, in order."""
    from airflow.utils.state import TaskInstanceState

    tis = dag_run.get_task_instances(state=[TaskInstanceState.FAILED], session=session)
    return sorted({ti.task_id for ti in tis})


def compose_note(state: str, report_note: str | None, failed_tasks: list[str]) -> str:
    """The run's note: its outcome on the first line, then the report's summary when there is one.

    Args:
        state: ``success`` or ``failed``.
        report_note: the Markdown the ``report`` task pushed, or None.
        failed_tasks: the ids of the run's failed tasks.

    Returns:
        Markdown of at most 1,000 characters.
    """
    if state == "success":
        first = "**Sync succeeded.**"
    elif failed_tasks == [REPORT_TASK] and report_note:
        first = "**Sync finished with record errors** (see the `report` task log and `report.json`)."
    else:
        first = "**Sync failed** at " + ", ".join(f"`{t}`" for t in failed_tasks or ["?"]) + "."
        if not report_note:
            first += " Nothing after it ran; see its log. The next run retries what was not committed."
    note = first if not report_note else f"{first}\n\n{report_note}"
    return note if len(note) <= _MAX_CHARS else note[: _MAX_CHARS - 1] + "…"


def _write_note(dag_run: Any, state: str) -> None:
    """Set the run's note unless a person wrote one; never raise into the scheduler."""
    if getattr(dag_run, "dag_id", None) not in NOTED_DAGS:
        return
    try:
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        if session is not None:
            # The scheduler: the run is in its session, and the note is committed with the run's state.
            _set_note(dag_run, state, session)
            return
        # ``dag.test()`` hands listeners a run detached from its session: write the note in a session of
        # our own (no scheduler holds the run's row then).
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as own:
            attached = own.get(DagRun, dag_run.id)
            if attached is not None:
                _set_note(attached, state, own)
    except Exception:  # the scheduler must go on whatever a note costs
        log.exception("co-sell run note: could not write the note of run %s", getattr(dag_run, "run_id", "?"))


def _set_note(dag_run: Any, state: str, session: Any) -> None:
    """Compose the note from the run's XCom and task states and set it on the (attached) run."""
    existing = getattr(dag_run, "dag_run_note", None)
    if existing is not None and existing.user_id:
        return  # a person's note stays
    failed = [] if state == "success" else _failed_tasks(dag_run, session)
    dag_run.note = compose_note(state, _report_note(dag_run, session), failed)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    """A finished ``cosell_reconcile`` run gets its summary as the run's note."""
    _write_note(dag_run, "success")


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    """A failed ``cosell_reconcile`` run gets what failed, and the summary when ``report`` ran."""
    _write_note(dag_run, "failed")
