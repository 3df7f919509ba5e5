"""Partner Central selling system settings: read once per sync run, changed by the ``cosell_settings`` DAG.

The settings are what ``GetSellingSystemSettings`` returns for a catalog; today the model has one: the IAM
role resource snapshot jobs run as. ``PutSellingSystemSettings`` sets it, by the role's ARN or its name
(``ResourceSnapshotJobRoleIdentifier``); both operations answer with the role's ARN
(``ResourceSnapshotJobRoleArn``). The operation has no ``ClientToken``: the model marks it idempotent, so
putting the same values twice is harmless.

Every settable member is checked against botocore's model (type, length, pattern, enum) before anything is
sent, so a bad value fails at once with the field and the rule. The change is audited as one
``SETTINGS_CHANGED`` entry whose partition is ``settings#{catalog}`` (``AuditEntry`` needs a record id; the
catalog's settings are the record), with the old and new value of each changed field.

The put is journaled first (its own journal partition, ``JOURNAL#{catalog}#SETTINGS``, which the reconcile
commit does not read): if the task dies after Partner Central took the value and before the audit entry is
written, the retry finds the settings already changed, so it would have nothing to write. It finds the
journal entry instead, and writes the audit entry the dead attempt owed, under that attempt's key.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.errors import AuthError, ParamError, RetriableError

if TYPE_CHECKING:
    from botocore.model import Shape

    from cosell_sync.audit import AuditEntry
    from cosell_sync.env import SyncEnv
    from cosell_sync.journal import WriteJournal

log = logging.getLogger(__name__)

GET_OPERATION = "GetSellingSystemSettings"
PUT_OPERATION = "PutSellingSystemSettings"
#: The audit action of a settings change (upper case, as ``AuditEntry.action`` requires).
SETTINGS_CHANGED = "SETTINGS_CHANGED"
#: The journal kind of a settings put.
JOURNAL_KIND = "PUT_SELLING_SYSTEM_SETTINGS"

#: Each settable ``PutSellingSystemSettings`` member -> the ``GetSellingSystemSettings`` member that shows it.
#: ``test_settings.py`` checks this covers every settable member of the model.
PUT_TO_GET = {"ResourceSnapshotJobRoleIdentifier": "ResourceSnapshotJobRoleArn"}
#: The DAG param of each settable member (snake case of the member name).
PARAMS = {member: re.sub(r"(?<!^)(?=[A-Z])", "_", member).lower() for member in PUT_TO_GET}
#: Members of the Put input that are not settings.
_NOT_SETTINGS = frozenset({"Catalog", "ClientToken"})


def settings_audit_pk(catalog: str) -> str:
    """The audit partition of a catalog's settings changes: ``settings#{catalog}``."""
    return f"settings#{catalog}"


def settable_members() -> dict[str, Shape]:
    """The members of the ``PutSellingSystemSettings`` input that are settings, with their shapes."""
    from cosell_sync.pc_model import pc_shape

    members = pc_shape(PUT_OPERATION, "input").members
    return {name: shape for name, shape in members.items() if name not in _NOT_SETTINGS}


def read_settings(env: SyncEnv) -> dict[str, Any]:
    """One ``GetSellingSystemSettings`` of the run's catalog, for the run description and its report.

    Reading the settings is informative: a caller whose policy lacks the permission (``AccessDenied``) or a
    service that keeps throttling or failing does not stop the sync; the result says why instead.

    Returns:
        ``{"readable": True, "settings": {member: value}}`` or ``{"readable": False, "error": code}``, plus
        ``api_calls`` (``{"GetSellingSystemSettings": 1}``).
    """
    calls = {GET_OPERATION: 1}
    try:
        got = env.partner_central.call("get_selling_system_settings", Catalog=env.catalog)
    except (AuthError, RetriableError) as err:
        log.warning("Selling system settings of %s not readable (%s); the run goes on", env.catalog, err.code)
        return {"readable": False, "error": str(err.code or type(err).__name__), "api_calls": calls}
    settings = {k: v for k, v in got.items() if k not in ("Catalog", "ResponseMetadata")}
    return {"readable": True, "settings": settings, "api_calls": calls}


def describe(selling: dict[str, Any] | None) -> str:
    """The report line of a run's settings read: ``settings: ...``."""
    if not selling:
        return "settings: not read"
    # When Partner Central was asked (settings.refresh_minutes: a run may show an earlier run's read).
    when = f" (read {selling['read_at']})" if selling.get("read_at") else ""
    if not selling.get("readable"):
        return f"settings: not readable ({selling.get('error')}){when}"
    values = selling.get("settings") or {}
    if not values:
        return f"settings: none set{when}"
    return "settings: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())) + when


def check_value(member: str, shape: Shape, value: Any) -> None:
    """Refuse a value the model refuses (type, length, enum, pattern), naming the field and the rule.

    Raises:
        ParamError: the param name, the model member and the rule; never the value.
    """
    param = PARAMS.get(member, member)
    where = f"{param}: Partner Central {PUT_OPERATION}.{member}"
    if shape.type_name != "string":
        # Every settable member is a string today; a new type needs its own check here.
        raise ParamError(f"{where} is a {shape.type_name}, which this DAG cannot check yet")
    if not isinstance(value, str):
        raise ParamError(f"{where} takes a string")
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if (low is not None and len(value) < int(low)) or (high is not None and len(value) > int(high)):
        raise ParamError(f"{where} takes {low or 0} to {high} characters; the value has {len(value)}")
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        raise ParamError(f"{where} takes one of {', '.join(enum)}")
    pattern = shape.metadata.get("pattern")
    if pattern and re.fullmatch(pattern, value) is None:
        raise ParamError(f"{where} must match the pattern {pattern!r}")


def _same(member: str, current: Any, new: Any) -> bool:
    """Whether putting ``new`` leaves ``current`` as it is.

    A role given by name stands for this account's role of that name, which ``Get`` shows as an ARN: role
    names are unique in an account whatever their path, so the ARN's last segment is the name to compare.
    """
    if current == new or new is None:
        return True
    if member == "ResourceSnapshotJobRoleIdentifier" and isinstance(current, str) and ":" not in str(new):
        return current.rsplit("/", 1)[-1] == new
    return False


def check_settings(wanted: dict[str, Any]) -> None:
    """Check every wanted value (``None`` = keep) against the model before anything is read or sent.

    Raises:
        ParamError: a member that is no setting, or a value the model refuses (field and rule, no value).
    """
    shapes = settable_members()
    unknown = sorted(set(wanted) - set(shapes))
    if unknown:
        raise ParamError(f"not a {PUT_OPERATION} setting: {', '.join(unknown)}")
    for member, value in wanted.items():
        if value is not None:
            check_value(member, shapes[member], value)


def plan_change(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields a put would change: ``{put member: {"field", "old", "new"}}`` (``None`` wanted = keep).

    Raises:
        ParamError: a wanted value the model refuses.
    """
    check_settings(wanted)
    changes: dict[str, dict[str, Any]] = {}
    for member, value in wanted.items():
        field = PUT_TO_GET.get(member, member)
        if not _same(member, current.get(field), value):
            changes[member] = {"field": field, "old": current.get(field), "new": value}
    return changes


def change_settings(
    env: SyncEnv,
    wanted: dict[str, Any],
    dry_run: bool,
    run_id: str,
    run_timestamp: datetime,
    dag_id: str = "cosell_settings",
) -> dict[str, Any]:
    """Validate the wanted settings, show current -> new per field and, unless a dry run, put and audit them.

    Args:
        env: clients and stores; ``env.catalog`` is the catalog whose settings change.
        wanted: put member -> value; ``None`` keeps the current value.
        dry_run: log the change only.
        run_id: the Airflow run id (audit key).
        run_timestamp: the run's fixed timestamp (audit key: a retried task rewrites the same entry).
        dag_id: for the audit's ``user`` and metadata.

    Returns:
        ``catalog``, ``dry_run``, ``changes`` (per field old/new), ``written``, ``settings`` (after the
        change, or as they are in a dry run), ``audit_entries`` and ``api_calls``.

    Raises:
        ParamError: a value the model refuses (nothing was read or written).
    """
    # Validate before any call: a bad value fails the run without touching Partner Central.
    check_settings(wanted)
    calls: dict[str, int] = {GET_OPERATION: 1}
    got = env.partner_central.call("get_selling_system_settings", Catalog=env.catalog)
    current = {k: v for k, v in got.items() if k not in ("Catalog", "ResponseMetadata")}
    recovered = 0 if dry_run else recover_unaudited(env, current, dag_id)
    changes = plan_change(current, wanted)
    result: dict[str, Any] = {
        "catalog": env.catalog,
        "dry_run": dry_run,
        "changes": {c["field"]: {"old": c["old"], "new": c["new"]} for c in changes.values()},
        "written": False,
        "settings": current,
        "audit_entries": recovered,
        "api_calls": calls,
    }
    lines = [
        f"Selling system settings of catalog {env.catalog}{' (DRY RUN: nothing written)' if dry_run else ''}:"
    ]
    for member in PUT_TO_GET:
        field = PUT_TO_GET[member]
        if member in changes:
            lines.append(f"  {field}: {changes[member]['old'] or '(not set)'} -> {changes[member]['new']}")
        else:
            lines.append(f"  {field}: {current.get(field) or '(not set)'} (unchanged)")
    log.info("\n%s", "\n".join(lines))
    if dry_run or not changes:
        if not changes:
            log.info("Nothing to change: the settings already hold these values")
        return result
    # Unchanged members are sent with their current value: the put sets the whole settings document.
    request = {m: current[f] for m, f in PUT_TO_GET.items() if current.get(f) is not None}
    request.update({m: c["new"] for m, c in changes.items()})
    journal = settings_journal(env)
    planned = {c["field"]: {"old": c["old"], "new": c["new"]} for c in changes.values()}
    key = (
        journal.begin(
            run_id, JOURNAL_KIND, env.catalog, changes=planned, run_started_at=run_timestamp.isoformat()
        )
        if journal is not None
        else None
    )
    put = env.partner_central.call("put_selling_system_settings", Catalog=env.catalog, **request)
    calls[PUT_OPERATION] = 1
    after = {k: v for k, v in put.items() if k not in ("Catalog", "ResponseMetadata")}
    # The stored value (an ARN, also when a role name was given), as GetSellingSystemSettings shows it.
    written = {field: {"old": c["old"], "new": after.get(field, c["new"])} for field, c in planned.items()}
    entry = _audit_entry(env.catalog, run_id, run_timestamp, dag_id, written, [GET_OPERATION, PUT_OPERATION])
    result["audit_entries"] = env.audit.write([entry])
    if journal is not None and key is not None:
        journal.clear([key])
    result.update(written=True, settings=after)
    # Runs that keep their last read (settings.refresh_minutes) show the new values from now on.
    from cosell_sync.polling import remember_settings

    remember_settings(env, {"readable": True, "settings": after})
    result["changes"] = entry.model_dump()["changes"]
    log.info("Settings of %s written: %s", env.catalog, ", ".join(sorted(result["changes"])))
    return result


def settings_journal(env: SyncEnv) -> WriteJournal | None:
    """The journal of this catalog's settings puts (a partition of its own), or None without a journal."""
    from cosell_sync.journal import WriteJournal

    if env.journal is None:
        return None
    return WriteJournal(env.journal.ddb, env.journal.table, f"{env.catalog}#SETTINGS", env.journal.large)


def _audit_entry(
    catalog: str,
    run_id: str,
    run_timestamp: datetime,
    dag_id: str,
    changes: dict[str, dict[str, Any]],
    api_calls: list[str],
) -> AuditEntry:
    """The ``SETTINGS_CHANGED`` audit entry of one put (same key for every attempt of the run)."""
    from cosell_sync.audit import AuditEntry
    from cosell_sync.common import Direction

    return AuditEntry(
        opportunity_id=settings_audit_pk(catalog),
        run_id=run_id.replace("#", "_"),
        run_timestamp=run_timestamp,
        direction=Direction.TO_PARTNER_CENTRAL.value,
        action=SETTINGS_CHANGED,
        # The settings live in Partner Central; the change is an operator's, made through this DAG.
        source="PARTNER_CENTRAL",
        user=f"airflow:{dag_id}",
        changes=changes,
        api_calls=api_calls,
        metadata={"runId": run_id, "dagId": dag_id, "catalog": catalog},
    )


def recover_unaudited(env: SyncEnv, current: dict[str, Any], dag_id: str) -> int:
    """Audit the puts of attempts that died between the put and the audit write; returns entries written.

    A journaled put whose new values the settings hold now was applied: its audit entry is written under
    the dead attempt's run and timestamp (the audit's conditional put makes a second copy impossible). One
    whose values are not there never took effect (or was changed again since, which its own entry covers)
    and is dropped with a log line. Either way the journal entry is cleared.
    """
    journal = settings_journal(env)
    if journal is None:
        return 0
    written = 0
    stale = journal.entries()
    for item in stale:
        changes = item.get("changes") or {}
        # A role given by name is stored as its ARN: compare the way plan_change does.
        applied = bool(changes) and all(
            _same(_get_to_put(field), current.get(field), c.get("new")) for field, c in changes.items()
        )
        if applied:
            stamp = datetime.fromisoformat(str(item["run_started_at"]))
            fields = {f: {"old": c.get("old"), "new": current.get(f)} for f, c in changes.items()}
            entry = _audit_entry(env.catalog, str(item["run_id"]), stamp, dag_id, fields, [PUT_OPERATION])
            written += env.audit.write([entry])
            log.warning(
                "Run %s put the settings (%s) and died before auditing it: audit entry written now",
                item["run_id"],
                ", ".join(sorted(fields)),
            )
        else:
            log.info(
                "Run %s journaled a settings put that Partner Central does not show: not audited",
                item["run_id"],
            )
    journal.clear(i["SK"] for i in stale)
    return written


def _get_to_put(field: str) -> str:
    """The put member whose value a get member shows."""
    return next((m for m, f in PUT_TO_GET.items() if f == field), field)
