"""Engagements and the AWS view: each linked deal shows its Partner Central engagement and AWS's summary.

One step of every ``cosell_reconcile`` run, after ``commit``: :func:`sync_engagements`.

**Which engagement.** An opportunity's engagement is found once with ``ListEngagementResourceAssociations``
(``ResourceIdentifier`` = the opportunity; one call each, or one scan of every association, 1,000 per page,
when more than :data:`LOOKUP_SCAN_ABOVE` opportunities are new). The accept task and the AWS summary name no
engagement, so there is nothing cheaper. An opportunity without one is looked up again only when it changes
(its submission starts an engagement).

**What changed.** ``SearchEngagements`` with ``LastModifiedAt`` after the step's last check (less
``overlap_minutes``, for clocks and the search index) names the engagements modified since, 100 per call:
an unchanged book costs one call, however many engagements it has. At each full refresh, and when search
is not permitted, ``ListEngagements`` (``EngagementIdentifier``, 10 per call) gives every known
engagement's ``ModifiedAt`` instead, so a change the search missed is found at the next full refresh at the
latest. ``GetEngagement`` is read only when ``ModifiedAt`` moved since what the step stored, and
``ListEngagementMembers`` only when ``MemberCount`` changed too (or the engagement is new to us). Our own
``UpdateEngagementContext`` stores the ``ModifiedAt`` it returns, so it does not make the next run read the
engagement again. (Assumption: members do not leave and join within one interval; a swap that keeps
``MemberCount`` shows at the next member change.)

**Deal properties.** ``aws_engagement_id``; ``aws_engagement_status`` (``GetEngagement`` has no status: it
is derived from the linked opportunity's ``LifeCycle.Stage``, see :func:`engagement_status`);
``aws_engagement_team`` (the members' ``CompanyName``, as ``ListEngagementMembers`` gives them: the API has
no people or e-mails for members); ``aws_engagement_kickoff_date`` (``CreatedAt``);
``aws_engagement_close_date`` (the ``CustomerProject`` context's ``Project.TargetCompletionDate``);
``aws_engagement_context`` (the contexts as text, :func:`render_contexts`); ``aws_last_engagement_sync``.
From ``GetAwsOpportunitySummary``: ``aws_aws_stage``, ``aws_involvement_type``, ``aws_aws_team`` (AWS's
people with e-mail and role), ``aws_aws_next_steps``, ``aws_next_best_actions``. Only values that differ
from what the step last wrote (kept in ``state/{catalog}/engagements.parquet``) are written, 100 deals per
call.

**The AWS summary** is read for opportunities whose ``LifeCycle.ReviewStatus`` or ``Stage`` moved (the
moments AWS takes up or moves an opportunity: approval, a stage change), new links, and every opportunity
each ``insights.full_refresh_hours`` and in ``full`` runs: AWS summary changes do not move the
opportunity's ``LastModifiedDate`` (docs/api-rules.md), so without the periodic re-read they would be
missed. Any other edit of the partner's record says nothing about AWS's side and costs no summary read
(a 1,000-edit run would otherwise spend 200 reads, 20% of its quota, on unchanged summaries).

**Notes.** A change of status ("AWS engagement started", "... completed") and each new member ("<company>
joined the engagement team") become one note per deal. The notes of a change are checkpointed under a key
derived from their content (``state/{catalog}/engagement-notes/``): a retried task or a later run that sees
the same change again never writes them twice. The first run (no state yet) records the book without notes.

**The context goes both ways.** A seller edits ``aws_engagement_context`` in HubSpot (``name: value`` lines
under ``[Type Id]`` headers). Per value, three ways against the text both sides last agreed on: a HubSpot
edit of a value AWS did not change is sent with ``UpdateEngagementContext`` under
``EngagementLastModifiedAt``; on ``ConflictException`` the engagement is read again, diffed again and
retried up to ``conflict_retries`` times. A value AWS changed meanwhile is never overwritten: AWS's value is
kept and the deal gets a note. Editable: every value of a ``CustomerProject`` context, a ``Lead`` context's
``QualificationStatus`` and ``Customer``; other values (interactions, prospecting results, customer
accounts) are AWS's and an edit is put back. Deals are read for the context when the HubSpot extract saw
them change, and all of them at each full refresh. Each ``UpdateEngagementContext`` is audited.

A run that only writes to Partner Central skips the step; one that only writes to HubSpot sends no context
edit (it stays pending until a two-way run).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cosell_sync.common import DEAL, Direction, clean, json_default, parse_ts
from cosell_sync.errors import AuthError, ConflictError, NotFoundError, SyncError
from cosell_sync.storage import StepState, run_key, utc_iso

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

ENGAGEMENT_ID = "aws_engagement_id"
STATUS = "aws_engagement_status"
TEAM = "aws_engagement_team"
KICKOFF = "aws_engagement_kickoff_date"
CLOSE = "aws_engagement_close_date"
CONTEXT = "aws_engagement_context"
LAST_SYNC = "aws_last_engagement_sync"
AWS_STAGE = "aws_aws_stage"
INVOLVEMENT = "aws_involvement_type"
AWS_TEAM = "aws_aws_team"
AWS_NEXT_STEPS = "aws_aws_next_steps"
NEXT_BEST_ACTIONS = "aws_next_best_actions"
ENGAGEMENT_PROPERTIES = (ENGAGEMENT_ID, STATUS, TEAM, KICKOFF, CLOSE, CONTEXT)
SUMMARY_PROPERTIES = (AWS_STAGE, INVOLVEMENT, AWS_TEAM, AWS_NEXT_STEPS, NEXT_BEST_ACTIONS)

#: Statuses :func:`engagement_status` derives (the property's options).
STATUSES = ("Active", "Completed", "Closed Lost")
#: More new opportunities than this: one scan of every association instead of one lookup each.
LOOKUP_SCAN_ABOVE = 10
#: ``ListEngagements.EngagementIdentifier`` takes at most 10 ids.
IDS_PER_LIST = 10
#: ``SearchEngagements.MaxResults`` upper bound (``PageSize``).
SEARCH_PAGE = 100
STATE_COLUMNS = [
    "deal_id",
    "opp_modified",
    "engagement_id",
    "modified_at",
    "member_count",
    "members",
    "contexts",
    "context_base",
    "hs_text",
    "stage",
    "review_status",
    "props",
]
_HEADER = re.compile(r"^\[(?P<type>[A-Za-z]+) (?P<id>[^\]]+)\]\s*$")
_LINE = re.compile(r"^(?P<path>[A-Za-z][\w.]*):(?: (?P<value>.*))?$")
#: Leaf key in the flat view of the contexts: (``"Type Id"`` header, dotted path in the payload).
Leaf = tuple[str, str]


# -- pure helpers (unit-tested) ------------------------------------------------------------------------
def engagement_status(has_engagement: bool, stage: str | None) -> str | None:
    """The engagement's status, derived: ``GetEngagement`` has no status member.

    ``Active`` while the linked opportunity is open, ``Completed`` once it is ``Launched``, ``Closed Lost``
    once it is ``Closed Lost`` (the opportunity's ``LifeCycle.Stage``); None without an engagement.
    """
    if not has_engagement:
        return None
    if stage == "Launched":
        return "Completed"
    if stage == "Closed Lost":
        return "Closed Lost"
    return "Active"


def _flatten(value: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{path}.{i}", out)
    elif value is not None:
        text = _norm(str(value).lower() if isinstance(value, bool) else str(value))
        if text:
            out[path] = text


def _norm(value: str) -> str:
    """One spelling of a value on both sides: no blank lines, no trailing spaces, no outer whitespace.

    HubSpot's textarea may drop trailing spaces and blank lines; without this, AWS's own text would
    look like a seller's edit.
    """
    return "\n".join(line.rstrip() for line in value.strip().split("\n") if line.strip())


def flatten_contexts(contexts: list[dict[str, Any]]) -> dict[Leaf, str]:
    """Every leaf value of the contexts (JSON-safe, as stored), keyed by (``"Type Id"``, dotted path)."""
    out: dict[Leaf, str] = {}
    for ctx in contexts:
        header = f"{ctx.get('Type')} {ctx.get('Id')}"
        leaves: dict[str, str] = {}
        _flatten((ctx.get("Payload") or {}).get(str(ctx.get("Type"))) or {}, "", leaves)
        out.update({(header, p): v for p, v in leaves.items()})
    return out


def render_contexts(flat: dict[Leaf, str]) -> str:
    """The text a seller sees and edits: ``[Type Id]`` headers, ``path: value`` lines.

    A value's further lines are indented by two spaces (a business problem may run over several lines).
    """
    lines: list[str] = []
    current = None
    for (header, path), value in flat.items():
        if header != current:
            if lines:
                lines.append("")
            lines.append(f"[{header}]")
            current = header
        first, *rest = str(value).split("\n")
        lines.append(f"{path}: {first}")
        lines += [f"  {more}" for more in rest]
    return "\n".join(lines)


def parse_contexts(text: str | None) -> dict[Leaf, str]:
    """The seller's text back into leaves; lines neither header, value nor continuation are dropped."""
    out: dict[Leaf, str] = {}
    header = None
    last: Leaf | None = None
    for raw in (text or "").replace("\r\n", "\n").split("\n"):
        if raw.startswith("  ") and last is not None:
            out[last] += "\n" + raw[2:]
            continue
        line = raw.strip()
        if not line:
            last = None
            continue
        found = _HEADER.match(line)
        if found:
            header, last = f"{found['type']} {found['id']}", None
            continue
        found = _LINE.match(line)
        if found and header is not None:
            last = (header, found["path"])
            out[last] = (found["value"] or "").strip()
    return {k: _norm(v) for k, v in out.items() if v.strip()}


def editable(leaf: Leaf) -> bool:
    """Whether a seller's edit of this value can be sent (``UpdateEngagementContext`` payload members)."""
    kind = leaf[0].split(" ", 1)[0]
    if kind == "CustomerProject":
        return leaf[1].split(".")[0] in ("Customer", "Project")
    if kind == "Lead":
        return leaf[1] == "QualificationStatus" or leaf[1].startswith("Customer.")
    return False


def merge_contexts(
    base: dict[Leaf, str], hubspot: dict[Leaf, str], aws: dict[Leaf, str], send: bool = True
) -> dict[str, Any]:
    """Three-way merge of the context values, per value (AWS's newer edit of a value always wins).

    Args:
        base: the values both sides last agreed on.
        hubspot: the deal's values now.
        aws: the engagement's values now.
        send: whether HubSpot edits may go to Partner Central in this run (else they stay pending).

    Returns:
        ``push`` (leaf -> HubSpot's value, None to remove), ``hubspot`` (the values the deal should show),
        ``base`` (the new agreed values, assuming the push succeeds), ``conflicts`` and ``refused`` (leaves
        whose HubSpot edit is put back: AWS changed them too / they cannot be edited).
    """
    push: dict[Leaf, str | None] = {}
    shown: dict[Leaf, str] = {}
    agreed: dict[Leaf, str] = {}
    conflicts: list[Leaf] = []
    refused: list[Leaf] = []
    keys = list(dict.fromkeys([*aws, *hubspot, *base]))
    for key in keys:
        b, h, a = base.get(key), hubspot.get(key), aws.get(key)
        if h in (b, a):
            result, agreed_value = a, a
        elif a != b:
            conflicts.append(key)
            result, agreed_value = a, a
        elif not editable(key):
            refused.append(key)
            result, agreed_value = a, a
        elif send:
            push[key] = h
            result, agreed_value = h, h
        else:
            result, agreed_value = h, b  # pending: shown in HubSpot, not yet agreed
        if result is not None:
            shown[key] = result
        if agreed_value is not None:
            agreed[key] = agreed_value
    # Keep the engagement's order (AWS's leaves first, then values a seller added).
    return {"push": push, "hubspot": shown, "base": agreed, "conflicts": conflicts, "refused": refused}


def _set_path(payload: dict[str, Any], path: str, value: str | None) -> None:
    parts = path.split(".")
    node = payload
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def update_payload(context: dict[str, Any], edits: dict[str, str | None]) -> dict[str, Any]:
    """The ``UpdateEngagementContext`` payload: the context as AWS has it, with the seller's edits.

    A ``Lead`` update carries ``QualificationStatus``, ``Customer`` and ``Insights``; its interactions stay as
    they are (``UpdateLeadContext.Interaction`` would add one).
    """
    kind = str(context["Type"])
    body = copy.deepcopy((context.get("Payload") or {}).get(kind) or {})
    for path, value in edits.items():
        _set_path(body, path, value)
    if kind == "Lead":
        body = {k: v for k, v in body.items() if k in ("QualificationStatus", "Customer", "Insights")}
    return {kind: body}


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=json_default))


def _team(members: list[dict[str, Any]]) -> str:
    return "; ".join(str(m.get("CompanyName") or m.get("AccountId") or "") for m in members)


def summary_properties(summary: dict[str, Any] | None) -> dict[str, str]:
    """The AWS view (``GetAwsOpportunitySummary``) as deal properties; empty values without a summary."""
    if not summary:
        return dict.fromkeys(SUMMARY_PROPERTIES, "")
    life = summary.get("LifeCycle") or {}
    team = [
        " ".join(x for x in (m.get("FirstName"), m.get("LastName")) if x)
        + (f" <{m['Email']}>" if m.get("Email") else "")
        + (f" ({m['BusinessTitle']})" if m.get("BusinessTitle") else "")
        for m in summary.get("OpportunityTeam") or []
    ]
    return {
        AWS_STAGE: str(life.get("Stage") or ""),
        INVOLVEMENT: str(summary.get("InvolvementType") or ""),
        AWS_TEAM: "; ".join(t.strip() for t in team if t.strip()),
        AWS_NEXT_STEPS: str(life.get("NextSteps") or ""),
        NEXT_BEST_ACTIONS: str((summary.get("Insights") or {}).get("NextBestActions") or ""),
    }


# -- the step ------------------------------------------------------------------------------------------
class _Run:
    """One step's working set: clients, counters and what it has read."""

    def __init__(self, env: SyncEnv, run: dict[str, Any]) -> None:
        from cosell_sync.hubspot_api import HubSpotGateway

        self.env = env
        self.run = run
        self.pc = env.partner_central
        self.gw = HubSpotGateway(env.hubspot)
        self.calls: Counter[str] = Counter()
        self.per: dict[str, Counter[str]] = defaultdict(Counter)

    def call(self, op: str, method: str, owner: str | None, **kwargs: Any) -> dict[str, Any]:
        """A counted Partner Central call (``owner``: the engagement/opportunity it is for)."""
        self.calls[op] += 1
        if owner:
            self.per[owner][op] += 1
        return self.pc.call(method, **kwargs)

    def read_engagement(self, eid: str, stored_count: int | None) -> dict[str, Any]:
        """``GetEngagement``, and its members when the count moved (or was never read)."""
        eng = _json_safe(self.call("GetEngagement", "get_engagement", eid, Identifier=eid))
        if stored_count is None or int(eng.get("MemberCount") or 0) != stored_count:
            members: list[dict[str, Any]] = []
            token = None
            try:
                while True:
                    args: dict[str, Any] = {"Identifier": eid, "MaxResults": 10}
                    if token:
                        args["NextToken"] = token
                    page = self.call("ListEngagementMembers", "list_engagement_members", eid, **args)
                    members += page.get("EngagementMemberList") or []
                    token = page.get("NextToken")
                    if not token:
                        break
                eng["_members"] = _json_safe(members)
            except AuthError:
                # Not (yet) a member: the API answers members only to members.
                eng["_members"] = None
        return eng


def _rows(frame: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    if frame is None or not len(frame):
        return {}
    out = {}
    for oid, row in frame.to_dict(orient="index").items():
        values = {c: clean(row.get(c)) for c in STATE_COLUMNS}
        for col in ("members", "contexts", "props"):
            values[col] = json.loads(values[col]) if values[col] else None
        values["member_count"] = int(values["member_count"]) if values["member_count"] else None
        out[str(oid)] = values
    return out


def _links(env: SyncEnv) -> tuple[dict[str, str], dict[str, str]]:
    """Opportunity -> deal, and opportunity -> stage as last synced, from the baseline."""
    try:
        base = env.baseline.load(columns=["deal_id", "stage"])
    except (NotFoundError, KeyError, ValueError):
        try:
            base = env.baseline.load(columns=["deal_id"])
        except NotFoundError:
            return {}, {}
    deals = {str(o): str(d) for o, d in base["deal_id"].items() if clean(d) is not None}
    stages = (
        {str(o): str(s) for o, s in base["stage"].items() if clean(s) is not None}
        if "stage" in base.columns
        else {}
    )
    return deals, stages


def _pending_submission(env: SyncEnv) -> set[str]:
    """Opportunities whose last synced review status is Pending Submission (AWS has not seen them)."""
    try:
        base = env.baseline.load(columns=["review_status"])
    except (NotFoundError, KeyError, ValueError):
        return set()
    if "review_status" not in base.columns:
        return set()
    return {str(o) for o, status in base["review_status"].items() if clean(status) == "Pending Submission"}


def _read_this_run(
    env: SyncEnv, pc: dict[str, Any] | None
) -> dict[str, tuple[str | None, str | None, str | None]]:
    """Opportunities the extract read this run -> (``Stage``, ``LastModifiedDate``, ``ReviewStatus``)."""
    if not pc or not pc.get("key") or not pc.get("read"):
        return {}
    frame = env.snapshots.get_frame(pc["key"], columns=["_raw", "_lm_key"])
    out: dict[str, tuple[str | None, str | None, str | None]] = {}
    for oid, raw, modified in zip(frame.index, frame["_raw"], frame["_lm_key"], strict=True):
        try:
            lifecycle = json.loads(raw).get("LifeCycle") or {}
        except (TypeError, ValueError, AttributeError):
            lifecycle = {}
        out[str(oid)] = (lifecycle.get("Stage"), clean(modified), lifecycle.get("ReviewStatus"))
    return out


def _changed_in_hubspot(env: SyncEnv, hs: dict[str, Any] | None) -> set[str] | None:
    """Opportunities whose deal the HubSpot extract saw change (None: unknown, read every deal)."""
    if hs is None or not hs.get("key"):
        return None
    if not hs.get("deals"):
        return set()
    return {str(o) for o in env.snapshots.get_frame(hs["key"], columns=["_deal_id"]).index}


def _find_engagements(r: _Run, oids: list[str]) -> dict[str, str | None]:
    """Opportunity -> engagement id (None: none yet), by ``ListEngagementResourceAssociations``."""
    found: dict[str, str | None] = dict.fromkeys(oids)
    if not oids:
        return found
    if len(oids) <= LOOKUP_SCAN_ABOVE:
        for oid in oids:
            page = r.call(
                "ListEngagementResourceAssociations",
                "list_engagement_resource_associations",
                oid,
                ResourceType="Opportunity",
                ResourceIdentifier=oid,
            )
            hits = page.get("EngagementResourceAssociationSummaries") or []
            found[oid] = str(hits[0]["EngagementId"]) if hits else None
        return found
    wanted = set(oids)
    for page in r.pc.paginate(
        "list_engagement_resource_associations", ResourceType="Opportunity", MaxResults=1000
    ):
        r.calls["ListEngagementResourceAssociations"] += 1
        for hit in page.get("EngagementResourceAssociationSummaries") or []:
            oid = str(hit.get("ResourceId"))
            if oid in wanted and found.get(oid) is None and hit.get("EngagementId"):
                found[oid] = str(hit["EngagementId"])
    return found


def _moved_since(
    r: _Run, known: dict[str, dict[str, Any]], since: datetime
) -> dict[str, dict[str, Any]] | None:
    """Known engagements modified after ``since`` whose ``ModifiedAt`` moved, by ``SearchEngagements``.

    Returns None when search is not permitted for the account (the caller lists every known one instead).
    """
    request: dict[str, Any] = {
        "Filter": {"GreaterThan": {"Key": "LastModifiedAt", "Value": {"DateValue": since}}},
        "Sort": {"SortBy": "LastModifiedAt", "SortOrder": "DESCENDING"},
        "MaxResults": SEARCH_PAGE,
    }
    out: dict[str, dict[str, Any]] = {}
    try:
        while True:
            r.calls["SearchEngagements"] += 1
            page = r.pc.call("search_engagements", **request)
            for hit in page.get("EngagementSearchSummaries") or []:
                summary = _json_safe(hit)
                eid = str(summary.get("Id"))
                if eid in known and summary.get("ModifiedAt") != known[eid]["modified_at"]:
                    out[eid] = summary
            if not page.get("NextToken"):
                return out
            request["NextToken"] = page["NextToken"]
    except AuthError as err:
        log.warning("SearchEngagements is not permitted (%s): every known engagement is listed.", err.message)
        return None


def _moved(
    r: _Run, known: dict[str, dict[str, Any]], since: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Known engagement -> its summary, for those whose ``ModifiedAt`` moved.

    With ``since`` (not a full refresh), one ``SearchEngagements`` query for what was modified after it;
    else, or when search is not permitted, ``ListEngagements`` over every known engagement.
    """
    if since is not None and known:
        found = _moved_since(r, known, since)
        if found is not None:
            return found
    ids = sorted(known)
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), IDS_PER_LIST):
        chunk = ids[i : i + IDS_PER_LIST]
        r.calls["ListEngagements"] += 1
        page = r.pc.call("list_engagements", EngagementIdentifier=chunk, MaxResults=IDS_PER_LIST)
        seen = {str(s["Id"]): _json_safe(s) for s in page.get("EngagementSummaryList") or []}
        for eid in chunk:
            summary = seen.get(eid)
            if summary is None or summary.get("ModifiedAt") != known[eid]["modified_at"]:
                out[eid] = summary or {}
    return out


def sync_engagements(
    env: SyncEnv,
    run: dict[str, Any],
    pc: dict[str, Any] | None = None,
    hs: dict[str, Any] | None = None,
    *,
    engagement_ids: list[str] | None = None,
    summary_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Engagements and AWS summaries into linked deals; context edits back (see the module doc).

    Args:
        env: clients and stores.
        run: the run description.
        pc: the Partner Central extract's result (which opportunities changed, their snapshot).
        hs: the HubSpot extract's result (which deals changed); None reads every deal's context.
        engagement_ids: engagements an event named (``cosell_events``): each known one is read
            (``GetEngagement``) whatever search says, since the search index may not show the change
            yet; an unknown one makes opportunities without an engagement be looked up again.
        summary_ids: opportunities an event named: their AWS summary is read (an "Opportunity Updated"
            event also announces a change of AWS's summary, which moves no ``LastModifiedDate``).

    Returns:
        ``key`` (the stored result with API calls per engagement), counts, ``api_calls``; or ``skipped``.
    """
    from cosell_sync.writers.hubspot import Checkpoints, HubSpotWriter

    if run.get("dry_run"):
        return {"skipped": "dry run"}
    if run.get("direction") == Direction.TO_PARTNER_CENTRAL.value:
        return {"skipped": "this run only writes to Partner Central"}
    catalog = run["catalog"]
    send = run.get("direction") != Direction.TO_HUBSPOT.value
    r = _Run(env, run)
    step_state = StepState(env.snapshots, catalog, "engagements")
    previous, meta = step_state.load()
    initial = previous is None
    state = _rows(previous)
    links, base_stages = _links(env)
    read_now = _read_this_run(env, pc)
    now = datetime.now(UTC)
    last_full = parse_ts(meta["last_full_refresh"]) if meta.get("last_full_refresh") else None
    full = (
        initial
        or run.get("mode") == "full"
        or last_full is None
        or now - last_full >= timedelta(hours=env.config.insights.full_refresh_hours)
    )
    # Opportunities no longer linked leave the state (their deal is gone or relinked).
    dropped = [o for o in state if o not in links]
    state = {o: s for o, s in state.items() if o in links}
    known_before = set(state)

    # 1. Which engagement: new links, and opportunities without one that changed (a submission starts one).
    named = set(engagement_ids or ())
    # An event named an engagement we do not know yet: it may be the new engagement of one of ours.
    unknown_named = bool(named - {str(row.get("engagement_id")) for row in state.values()})
    lookup = [
        o
        for o in links
        if o not in state or (not state[o]["engagement_id"] and (full or o in read_now or unknown_named))
    ]
    try:
        found = _find_engagements(r, lookup)
    except AuthError as err:
        log.warning("Engagements are not readable with this account (%s): skipped.", err.message)
        return {"skipped": "engagements not permitted", "api_calls": dict(r.calls)}
    for oid, eid in found.items():
        row = state.setdefault(oid, dict.fromkeys(STATE_COLUMNS))
        if eid != row.get("engagement_id"):
            row.update(engagement_id=eid, modified_at=None, member_count=None, members=None, contexts=None)
        row["deal_id"] = links[oid]

    # 2. What moved: one ListEngagements call per 10 known engagements; new ones are read anyway.
    by_engagement: dict[str, list[str]] = defaultdict(list)
    for oid, row in state.items():
        row["deal_id"] = links[oid]
        if row["engagement_id"]:
            by_engagement[str(row["engagement_id"])].append(oid)
    first = {e: state[oids[0]] for e, oids in by_engagement.items()}
    known = {e: row for e, row in first.items() if row.get("modified_at") and row.get("contexts") is not None}
    to_read = set(first) - set(known)
    checked = parse_ts(meta["moved_checked_at"]) if meta.get("moved_checked_at") else None
    since = None if full or checked is None else checked - timedelta(minutes=env.config.overlap_minutes)
    to_read |= set(_moved(r, known, since))
    to_read |= named & set(first)
    engagements: dict[str, dict[str, Any]] = {}
    for eid in sorted(to_read):
        try:
            engagements[eid] = r.read_engagement(eid, first[eid].get("member_count"))
        except NotFoundError:
            log.warning("Engagement %s is gone: its deals lose it.", eid)
            for oid in by_engagement[eid]:
                state[oid].update(engagement_id=None, modified_at=None, contexts=None, members=None)
        except SyncError as err:
            log.error("Engagement %s not read: %s", eid, err.message)

    # 3. HubSpot's side of the context: deals the extract saw change, all of them at a full refresh.
    changed_deals = None if full else _changed_in_hubspot(env, hs)
    with_engagement = [o for o, row in state.items() if row["engagement_id"]]
    read_deals = [
        links[o] for o in with_engagement if changed_deals is None or o in changed_deals or o in found
    ]
    hs_text: dict[str, str] = {}
    if read_deals:
        got, _ = r.gw.batch_read(DEAL.plural, read_deals, [CONTEXT])
        hs_text = {str(d["id"]): str((d.get("properties") or {}).get(CONTEXT) or "") for d in got}

    # 4. The AWS view: changed and new opportunities, and every one at a full refresh; never one still in
    # Pending Submission (AWS has not seen it: no summary exists, and a freshly loaded book of 10,000
    # would cost 10,000 reads for nothing).
    # Reads are budgeted (insights.aws_summary_reads_per_run): the rest wait, oldest first, for later runs,
    # so an initial load or a full refresh of 10,000 records never adds 10,000 reads to one run.
    unseen = _pending_submission(env)
    due = [o for o in meta.get("summary_due") or [] if o in links]
    # The stored stage and review status are the last run's here (step 6 moves them on). New links count
    # as moved; an opportunity merely looked up for an engagement (``found`` holds every lookup, with or
    # without a hit) does not.
    moved = {o for o in links if o not in known_before} | {
        o
        for o, (stage, _, review) in read_now.items()
        if o in known_before and (state[o].get("stage"), state[o].get("review_status")) != (stage, review)
    }
    moved |= {o for o in summary_ids or () if o in links}
    wanted = [o for o in links if (full or o in moved) and o not in unseen]
    queue = list(dict.fromkeys([*(o for o in wanted if o in moved), *due, *wanted]))
    if initial:
        # The first run records the book: AWS views come with each record's first change or with the
        # next periodic refresh (insights.full_refresh_hours), not as a wave of reads and writes now.
        queue = []
    budget = env.config.insights.aws_summary_reads_per_run
    take, meta["summary_due"] = queue[:budget], queue[budget:]
    if meta["summary_due"]:
        log.info("AWS summaries: %d read now, %d wait for later runs.", len(take), len(meta["summary_due"]))
    summaries: dict[str, dict[str, Any] | None] = {}
    for oid in take:
        try:
            summaries[oid] = _json_safe(
                r.call(
                    "GetAwsOpportunitySummary",
                    "get_aws_opportunity_summary",
                    oid,
                    RelatedOpportunityIdentifier=oid,
                )
            )
        except NotFoundError:
            summaries[oid] = None  # no AWS summary before AWS has the opportunity (submission / referral)
        except SyncError as err:
            log.error("AWS summary of %s not read: %s", oid, err.message)

    # 5. Per engagement: merge the context three ways, send HubSpot's edits (optimistic lock).
    out: dict[str, Any] = {"pushed": {}, "conflicts": {}, "refused": {}, "failed": {}, "audit": []}
    notes: dict[str, list[str]] = defaultdict(list)
    for eid, oids in by_engagement.items():
        eng = engagements.get(eid)
        row0 = state[oids[0]]
        if eng is not None:
            contexts = eng.get("Contexts") or []
            modified_at = eng.get("ModifiedAt")
        else:
            contexts = row0.get("contexts") or []
            modified_at = row0.get("modified_at")
        for oid in oids:
            row = state[oid]
            deal_id = links[oid]
            base = parse_contexts(row.get("context_base"))
            if row.get("context_base") is None:
                theirs: dict[Leaf, str] = {}  # nothing agreed yet: AWS's text goes to the deal
            elif deal_id in hs_text:
                theirs = parse_contexts(hs_text[deal_id])
            else:
                theirs = parse_contexts(row.get("hs_text"))
            contexts, modified_at, merged, fresh = _push(
                r,
                eid,
                oid,
                deal_id,
                contexts,
                modified_at,
                base,
                theirs,
                send,
                out,
                notes,
                row0.get("member_count"),
            )
            if fresh is not None:
                eng = fresh  # read again after a ConflictException: the newest members too
            row["context_base"] = render_contexts(merged["base"])
            row["_show"] = render_contexts(merged["hubspot"])
            row["_hs_read"] = hs_text.get(deal_id)
        for oid in oids:
            state[oid]["contexts"] = contexts
            state[oid]["modified_at"] = modified_at
            if eng is not None:
                _apply_engagement(state[oid], eng, notes, links[oid], initial)

    # 6. Deal properties: only values that differ from what was last written; notes for the changes.
    updates: dict[str, dict[str, str]] = {}
    stamp = utc_iso(now)
    for oid, row in state.items():
        deal_id = links[oid]
        if oid in read_now:
            row["stage"], row["opp_modified"], row["review_status"] = read_now[oid]
        stage = row.get("stage") or base_stages.get(oid)
        old_props = dict(row.get("props") or {})
        new_props = dict(old_props)
        eid = row.get("engagement_id")
        status = engagement_status(bool(eid), stage)
        new_props.update(
            {
                ENGAGEMENT_ID: str(eid or ""),
                STATUS: status or "",
                TEAM: _team(row.get("members") or []) if eid else "",
                CONTEXT: row.pop("_show") if "_show" in row else "",
            }
        )
        eng = row.pop("_eng", None)
        if eid and eng is not None:
            new_props[KICKOFF] = str(eng.get("CreatedAt") or "")
            new_props[CLOSE] = _close_date(row.get("contexts") or [])
        elif not eid:
            new_props[KICKOFF] = new_props[CLOSE] = ""
        if oid in summaries:
            new_props.update(summary_properties(summaries[oid]))
        old_status = old_props.get(STATUS) or None
        if not initial and status != old_status:
            notes[deal_id].append(_status_note(old_status, status))
        if notes.get(deal_id):
            # What the note is about: the same words for a later change still make a new note.
            notes[deal_id].insert(
                0,
                f"Engagement {eid or '-'} as of {row.get('modified_at') or '-'}, "
                f"opportunity {oid} as of {row.get('opp_modified') or '-'}:",
            )
        changed = {
            k: v for k, v in new_props.items() if k != LAST_SYNC and (old_props.get(k) or "") != (v or "")
        }
        read_text = row.pop("_hs_read", None)
        if read_text is not None and CONTEXT not in changed and read_text != new_props[CONTEXT]:
            changed[CONTEXT] = new_props[CONTEXT]  # the deal shows other text than it should (refused)
        if changed:
            changed[LAST_SYNC] = stamp
            new_props[LAST_SYNC] = stamp
            updates[deal_id] = changed
        row["_props"] = new_props
    writer = HubSpotWriter(env.config, r.gw)
    outcome = writer.update_objects({DEAL.plural: updates}, {(DEAL.plural, d): d for d in updates})
    for deal_id, error in outcome.failed.items():
        log.error("Engagement properties not written to deal %s: %s", deal_id, error.get("message"))
    for oid, row in state.items():
        # What did not reach HubSpot is not "written": the next run tries again.
        new_props = row.pop("_props")
        if links[oid] not in outcome.failed:
            row["props"] = new_props
            row["hs_text"] = new_props.get(CONTEXT) or None

    written_notes = 0
    bodies = {d: _note_body(lines) for d, lines in notes.items() if lines}
    if bodies and not initial:
        # Checkpointed by content, not by run: a later run that sees the same change writes nothing.
        digest = hashlib.sha256(json.dumps(bodies, sort_keys=True).encode()).hexdigest()[:20]
        checkpoints = Checkpoints(env.snapshots, {"notes": f"state/{catalog}/engagement-notes/{digest}.json"})
        written_notes = HubSpotWriter(env.config, r.gw, checkpoints).write_notes(
            bodies, ref=f"engagements-{digest}"
        )

    _write_audit(env, run, out.pop("audit"))
    if initial or updates or found or engagements or read_now or hs_text or summaries or dropped:
        step_state.save_frame(_frame(state))
    # When engagements were last checked for changes: the next run searches from there (less the overlap).
    meta["moved_checked_at"] = now.isoformat()
    if full:
        meta["last_full_refresh"] = now.isoformat()
    step_state.save_meta(meta)
    r.calls.update(r.gw.calls)
    key = run_key(catalog, run["run_id"], "engagements.json")
    result = {
        "linked": len(links),
        "engagements": len(by_engagement),
        "engagements_read": len(engagements),
        "summaries_read": len(summaries),
        "deals_written": len(outcome.updated),
        "deals_failed": len(outcome.failed),
        "contexts_sent": len(out["pushed"]),
        "context_conflicts": len(out["conflicts"]),
        "notes": written_notes,
        "full": full,
    }
    env.snapshots.put_json(
        {**result, **out, "api_calls": dict(r.calls), "api_calls_per_engagement": r.per}, key
    )
    log.info("AWS engagements: %s", result)
    return {**result, "key": key, "api_calls": dict(r.calls)}


def _frame(state: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The state rows as the stored frame (lists and dicts as JSON text)."""
    import pandas as pd

    rows = {
        o: {
            **{c: row.get(c) for c in STATE_COLUMNS},
            "members": json.dumps(row["members"]) if row.get("members") is not None else None,
            "contexts": json.dumps(row["contexts"]) if row.get("contexts") is not None else None,
            "props": json.dumps(row["props"]) if row.get("props") else None,
            "member_count": str(row["member_count"]) if row.get("member_count") is not None else None,
        }
        for o, row in state.items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=STATE_COLUMNS).astype(object)
    frame.index.name = "opportunity_id"
    return frame


def _close_date(contexts: list[dict[str, Any]]) -> str:
    for ctx in contexts:
        project = ((ctx.get("Payload") or {}).get("CustomerProject") or {}).get("Project") or {}
        if ctx.get("Type") == "CustomerProject" and project.get("TargetCompletionDate"):
            return str(project["TargetCompletionDate"])[:10]
    return ""


def _apply_engagement(
    row: dict[str, Any], eng: dict[str, Any], notes: dict[str, list[str]], deal_id: str, initial: bool
) -> None:
    """Take a fresh ``GetEngagement`` (and members, when they were read) into the state row.

    A member not in the stored list gets a note (not on an engagement seen for the first time: its
    "engagement started" note is enough).
    """
    row["_eng"] = eng
    members = eng.get("_members")
    if members is None:
        return  # not re-read (the count did not move) or not readable (not a member yet)
    before = row.get("members")
    if before is not None and not initial:
        had = {m.get("AccountId") or m.get("CompanyName") for m in before}
        for m in members:
            if (m.get("AccountId") or m.get("CompanyName")) not in had:
                name = m.get("CompanyName") or m.get("AccountId")
                notes[deal_id].append(f"{name} joined the engagement team")
    row["members"] = members
    row["member_count"] = len(members)


def _push(
    r: _Run,
    eid: str,
    oid: str,
    deal_id: str,
    contexts: list[dict[str, Any]],
    modified_at: str | None,
    base: dict[Leaf, str],
    theirs: dict[Leaf, str],
    send: bool,
    out: dict[str, Any],
    notes: dict[str, list[str]],
    member_count: int | None = None,
) -> tuple[list[dict[str, Any]], str | None, dict[str, Any], dict[str, Any] | None]:
    """Merge one deal's context with its engagement and send its edits; re-read and retry on conflict.

    Returns the engagement's contexts and ``ModifiedAt`` afterwards, the final merge, and the engagement
    as read again after a ``ConflictException`` (None when it was not).
    """
    attempts = r.env.config.conflict_retries + 1
    merged = merge_contexts(base, theirs, flatten_contexts(contexts), send)
    fresh = None
    for attempt in range(attempts):
        if not merged["push"]:
            break
        by_context: dict[str, dict[str, str | None]] = defaultdict(dict)
        for (header, path), value in merged["push"].items():
            by_context[header][path] = value
        try:
            for header, edits in by_context.items():
                ctx = next(c for c in contexts if f"{c.get('Type')} {c.get('Id')}" == header)
                payload = update_payload(ctx, edits)
                answer = r.call(
                    "UpdateEngagementContext",
                    "update_engagement_context",
                    eid,
                    EngagementIdentifier=eid,
                    ContextIdentifier=str(ctx["Id"]),
                    EngagementLastModifiedAt=parse_ts(modified_at) if modified_at else None,
                    Type=str(ctx["Type"]),
                    Payload=payload,
                )
                modified_at = _json_safe(answer.get("EngagementLastModifiedAt"))
                kept = (ctx.get("Payload") or {}).get(str(ctx["Type"])) or {}
                new_body = dict(payload[str(ctx["Type"])])
                if ctx["Type"] == "Lead" and "Interactions" in kept:
                    new_body["Interactions"] = kept["Interactions"]
                ctx["Payload"] = {str(ctx["Type"]): new_body}
                out["pushed"].setdefault(oid, []).append(header)
                out["audit"].append(
                    _audit_entry(
                        oid,
                        deal_id,
                        "UPDATE_ENGAGEMENT_CONTEXT",
                        eid,
                        header,
                        {p: {"old": base.get((header, p)), "new": v} for p, v in edits.items()},
                    )
                )
            break
        except ConflictError:
            if attempt + 1 >= attempts:
                log.error("Engagement %s: still modified after %d attempts; next run retries.", eid, attempts)
                out["failed"][oid] = "ConflictException after retries"
                # Nothing agreed for the edits not sent: keep them pending.
                merged = merge_contexts(base, theirs, flatten_contexts(contexts), send=False)
                return contexts, modified_at, merged, fresh
            log.info("Engagement %s changed meanwhile: re-reading and merging again.", eid)
            fresh = r.read_engagement(eid, member_count)
            contexts = fresh.get("Contexts") or []
            modified_at = fresh.get("ModifiedAt")
            merged = merge_contexts(base, theirs, flatten_contexts(contexts), send)
        except SyncError as err:
            log.error("Engagement %s: context edit of deal %s refused: %s", eid, deal_id, err.message)
            out["failed"][oid] = err.message
            out["audit"].append(
                _audit_entry(oid, deal_id, "UPDATE_ENGAGEMENT_CONTEXT", eid, "", {}, error=err.to_dict())
            )
            notes[deal_id].append(
                f"Partner Central refused the edit of the engagement context ({err.message}); "
                "AWS's values are shown again."
            )
            aws_flat = flatten_contexts(contexts)
            merged = {**merged, "hubspot": aws_flat, "base": aws_flat, "push": {}}
            break
    for leaf in merged["conflicts"]:
        out["conflicts"].setdefault(oid, []).append(f"{leaf[0]} {leaf[1]}")
        notes[deal_id].append(
            f"Your edit of {leaf[1]} ({leaf[0]}) in the engagement context was not sent: AWS changed it "
            "meanwhile, and AWS's value is kept."
        )
        out["audit"].append(
            _audit_entry(
                oid,
                deal_id,
                "CONFLICT_DETECTED",
                eid,
                leaf[0],
                {leaf[1]: {"old": base.get(leaf), "new": theirs.get(leaf)}},
                kept="PARTNER_CENTRAL",
            )
        )
    for leaf in merged["refused"]:
        out["refused"].setdefault(oid, []).append(f"{leaf[0]} {leaf[1]}")
        notes[deal_id].append(
            f"{leaf[1]} ({leaf[0]}) of the engagement context is AWS's and cannot be edited from HubSpot."
        )
    return contexts, modified_at, merged, fresh


def _status_note(old: str | None, new: str | None) -> str:
    if old is None and new:
        return "AWS engagement started"
    if new == "Completed":
        return "AWS engagement completed: the opportunity was launched"
    if new == "Closed Lost":
        return "AWS engagement closed: the opportunity was closed lost"
    if new == "Active":
        return f"AWS engagement active again (was {old})"
    return "The opportunity no longer has an AWS engagement"


def _note_body(lines: list[str]) -> str:
    from html import escape

    items = "".join(f"<li>{escape(line)}</li>" for line in dict.fromkeys(lines))
    return f"<p><strong>AWS engagement</strong></p><ul>{items}</ul>"


def _audit_entry(
    oid: str,
    deal_id: str,
    action: str,
    eid: str,
    header: str,
    changes: dict[str, dict[str, Any]],
    error: dict[str, Any] | None = None,
    kept: str | None = None,
) -> dict[str, Any]:
    return {
        "opportunity_id": oid,
        "deal_id": deal_id,
        "action": action,
        "changes": {f"{CONTEXT}.{p}": c for p, c in changes.items()},
        "success": error is None,
        "error": error,
        "metadata": {"engagementId": eid, "context": header, **({"kept": kept} if kept else {})},
    }


def _write_audit(env: SyncEnv, run: dict[str, Any], audit: list[dict[str, Any]]) -> None:
    """The step's audit entries: context writes to Partner Central, and edits AWS's newer value beat."""
    from cosell_sync.audit import AuditEntry, FieldChange

    if not audit:
        return
    started_at = parse_ts(run["started_at"])
    entries = [
        AuditEntry(
            opportunity_id=a["opportunity_id"],
            deal_id=a["deal_id"],
            run_id=run["run_id"].replace("#", "_"),
            run_timestamp=started_at,
            direction=(
                Direction.CONFLICT.value
                if a["action"] == "CONFLICT_DETECTED"
                else Direction.TO_PARTNER_CENTRAL.value
            ),
            action=a["action"],
            source="HUBSPOT",
            user=f"airflow:{run.get('dag_id', 'cosell_reconcile')}",
            changes={k: FieldChange(**v) for k, v in a["changes"].items()},
            success=a["success"],
            error=a["error"],
            api_calls=["UpdateEngagementContext"] if a["action"] != "CONFLICT_DETECTED" else [],
            metadata=a["metadata"],
        )
        for a in audit
    ]
    env.audit.write(entries)
