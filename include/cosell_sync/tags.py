r"""Opportunity tags both ways: Partner Central tags and the deal property ``aws_tags`` (``sync_tags``).

One step of every ``cosell_reconcile`` run, after ``commit``: :func:`sync_tags`.

**What the deal holds.** ``aws_tags`` (config ``tags.property``) is a text property of ``key:value`` entries
separated by ``;`` (``Team:North;Stage gate:2``). A ``:`` inside a key is written ``\:`` (tag keys may hold
``:``, as ``aws:`` keys do; ``\`` is not a tag character, so the split is unambiguous); the value is the rest
of the entry after the first unescaped ``:``. Spaces around an entry are ignored. It is text, not a
multi-select: a multi-select takes only the options an admin defined, so a seller could not type a new tag,
and a book's distinct ``key:value`` pairs would grow past HubSpot's 5,000 options a property.

**Three ways, per key.** Against the tags both sides last agreed on (``state/{catalog}/tags.parquet``): a key
changed (added, removed, new value) only in HubSpot goes to Partner Central (``TagResource``, one call an
opportunity; ``UntagResource``, 50 keys a call); one changed only in Partner Central goes to the deal (batch
update, 100 deals a call); one changed on both sides to different values is a conflict: neither value is
copied, the deal's ``aws_sync_error`` names the key and the audit gets a ``CONFLICT_DETECTED`` entry; it ends
when the two sides agree again (either side edited to match). Before the first agreement (a new link) the
union is taken: a key on one side only is copied to the other, never deleted.

**Rules before sending** (botocore model ``Tag``, ``TagList``, ``TagKeyList``): a key of 1-128 and a value of
0-256 letters, digits, spaces (Unicode categories L, N, Z) or ``_ . : / = + - @``; one value per key; at most
200 tags on the opportunity. Keys starting with ``aws:`` are AWS's: never sent, never removed; a HubSpot edit
of one is put back. A HubSpot tag breaking a rule is not sent and the deal's ``aws_sync_error`` names the
key (or its position, when the key itself is at fault) and the rule, never the value; the other tags go on.

**Which opportunities.** Partner Central's tags are read for the records the run's extract read (a tag edit
in Partner Central does not move ``LastModifiedDate``, docs/api-rules.md: it is seen when the record changes
or at the next full refresh), new links, failed and waiting records, and every linked one each
``tags.full_refresh_hours`` and in ``full`` runs. Opportunities the run created hold no tags (the create
sends none): never read. A deal the HubSpot extract saw change (our own writes change deals too) costs no
HubSpot read (the extract reads its tags with it, ``mapping.TAGS_COLUMN``) and a Partner Central read only
when its tags differ from the agreement; its sync error is read only when this step's lines of it change.
With more than one record to read (:data:`SCAN_ABOVE`),
``SearchOpportunities`` (100 a call, summaries carry ``Tags``: a scan of the catalog at a full refresh, by
id in between) shows whose tags may have moved; a record whose search tags equal the agreement, and whose
deal HubSpot did not see change, is settled without another call. The index may lag, so search only spares
reads: every record acted on is read with ``ListTagsForResource`` (one read each, paced by the hook's read
quota), at most ``tags.reads_per_run`` a run; the rest wait for later runs. Without search
(``SEARCH_OPPORTUNITIES_NOT_ENABLED``) every one is read. The deals are batch-read, 100 a call. The ARN
comes from the run's ``GetOpportunity`` snapshot, the step's state, else ``ListOpportunities``
(``Identifier``, 20 ids a call).

``TagResource``/``UntagResource`` take no ``ClientToken``; the model marks both idempotent, so a retried task
sends the same request safely. Every write is audited (``TAG_OPPORTUNITY``, ``UNTAG_OPPORTUNITY``,
``UPDATE_DEAL_TAGS``), as are refused tags (``TAG_REFUSED``) and conflicts.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cosell_sync.common import DEAL, Direction, clean, parse_ts
from cosell_sync.errors import AuthError, NotFoundError, SyncError, ValidationError, merge_step_error
from cosell_sync.pc_search import read_tags
from cosell_sync.storage import StepState, run_key

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

#: Keys AWS reserves (general AWS tagging rules): read-only for the partner.
RESERVED_PREFIX = "aws:"
#: The deal's sync error lines this step owns start with this (other steps' lines are kept).
ERROR_PREFIX = "aws_tags: "
#: Characters a tag key or value may hold besides Unicode letters, digits and spaces (model patterns).
_SYMBOLS = frozenset("_.:/=+-@")
_SPLIT = re.compile(r"(?<!\\):")
#: ``ListOpportunities.Identifier`` takes at most 20 ids.
IDS_PER_LIST = 20
#: More records to read than this: one ``SearchOpportunities`` call per 100 first (a single record is
#: read directly: one call either way). Measured (make bench, 50 AWS-side edits in a 500 book): reading
#: every record cost 50 ``ListTagsForResource``; one search by id spares all of them when no tag moved.
SCAN_ABOVE = 1
#: Retry-queue reason of a tag write that failed for a reason a later run may get past.
RETRY_REASON = "TAGS_FAILED"
STATE_COLUMNS = ["deal_id", "arn", "base", "failed", "errors"]


@dataclass(frozen=True)
class TagRules:
    """The model's tag limits (botocore ``partnercentral-selling``), read once."""

    key_min: int
    key_max: int
    value_min: int
    value_max: int
    max_tags: int
    untag_max: int


@lru_cache(maxsize=1)
def tag_rules() -> TagRules:
    """The model's tag limits: lengths from the key and value patterns, counts from the list shapes."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("partnercentral-selling")

    def lengths(shape: str) -> tuple[int, int]:
        found = re.search(r"\{(\d+),(\d+)\}", str(model.shape_for(shape).metadata.get("pattern") or ""))
        if found is None:
            raise ValueError(f"the model's {shape} pattern has no length bounds")
        return int(found[1]), int(found[2])

    key_min, key_max = lengths("TagKey")
    value_min, value_max = lengths("TagValue")
    return TagRules(
        key_min,
        key_max,
        value_min,
        value_max,
        int(model.shape_for("TagList").metadata["max"]),
        int(model.shape_for("TagKeyList").metadata["max"]),
    )


def _allowed(char: str) -> bool:
    # \p{L}, \p{N}, \p{Z} of the model's pattern, exactly (Python's re has no \p classes; \s would let a
    # tab or a newline through, which AWS refuses).
    return unicodedata.category(char)[0] in "LNZ" or char in _SYMBOLS


def check_tag(key: str, value: str) -> str | None:
    """The first model rule the tag breaks, as words naming the rule (never the value); None if valid."""
    rules = tag_rules()
    if not rules.key_min <= len(key) <= rules.key_max:
        return f"a tag key must be {rules.key_min}-{rules.key_max} characters"
    if not all(_allowed(c) for c in key):
        return "a tag key may hold only letters, digits, spaces and _ . : / = + - @"
    if key.startswith(RESERVED_PREFIX):
        return "keys starting with aws: are reserved for AWS and read-only"
    if not rules.value_min <= len(value) <= rules.value_max:
        return f"a tag value must be at most {rules.value_max} characters"
    if not all(_allowed(c) for c in value):
        return "a tag value may hold only letters, digits, spaces and _ . : / = + - @"
    return None


def format_tags(tags: dict[str, str], keep: list[str] | None = None) -> str:
    """The deal property's text: ``key:value`` entries sorted by key, ``;``-separated, ``:`` in keys escaped.

    ``keep``: entries the seller typed that could not be read (kept as typed, after the others, so that
    writing the deal never loses them).
    """
    entries = [f"{k.replace(':', chr(92) + ':')}:{v}" for k, v in sorted(tags.items())]
    return ";".join([*entries, *(keep or [])])


@dataclass
class Parsed:
    """The deal's tags as read: valid-looking entries, and what could not be taken (key -> rule)."""

    tags: dict[str, str] = field(default_factory=dict)
    #: Keys (or ``entry N`` when the key is unusable) -> the rule broken; these keys are not synced.
    invalid: dict[str, str] = field(default_factory=dict)
    #: The entries behind ``invalid``, as typed (a rewrite of the deal keeps them).
    raw_invalid: list[str] = field(default_factory=list)


def parse_tags(text: str | None) -> Parsed:
    """The deal property's text back into tags (the rules are checked later, by :func:`diff_tags`)."""
    out = Parsed()
    raws: dict[str, list[str]] = {}
    for n, raw in enumerate((text or "").replace("\r", "").replace("\n", ";").split(";"), start=1):
        entry = raw.strip()
        if not entry:
            continue
        parts = _SPLIT.split(entry, maxsplit=1)
        if len(parts) != 2:
            out.invalid[f"entry {n}"] = "an entry must be key:value (no ':' found)"
            out.raw_invalid.append(entry)
            continue
        key, value = parts[0].replace("\\:", ":").strip(), parts[1].strip()
        if "\\" in key:
            out.invalid[f"entry {n}"] = "a tag key may hold only letters, digits, spaces and _ . : / = + - @"
            out.raw_invalid.append(entry)
            continue
        raws.setdefault(key, []).append(entry)
        if key in out.tags and out.tags[key] != value:
            out.invalid[key] = "a tag key can have only one value"
        out.tags.setdefault(key, value)
    for key in list(out.invalid):
        if key in out.tags:
            del out.tags[key]
            out.raw_invalid.extend(raws[key])
    return out


def canonical(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """Partner Central's tag list as a dict, trimmed as the deal shows it (entries are trimmed there)."""
    return {str(t["Key"]).strip(): str(t.get("Value") or "").strip() for t in tags or []}


@dataclass
class TagDiff:
    """What one opportunity's tags need, from :func:`diff_tags`.

    Attributes:
        to_tag: key -> value to send with ``TagResource``.
        to_untag: keys to remove with ``UntagResource``.
        hubspot: the tags the deal should show (None: leave the deal's text as it is).
        base_if_ok: the agreed tags once every write succeeded.
        pc_keys: keys whose agreement depends on the Partner Central write.
        hs_keys: keys whose agreement depends on the deal write.
        conflicts: keys changed to different values on both sides.
        refused: key (or ``entry N``) -> the rule it breaks (not sent).
    """

    to_tag: dict[str, str] = field(default_factory=dict)
    to_untag: list[str] = field(default_factory=list)
    hubspot: dict[str, str] | None = None
    base_if_ok: dict[str, str] = field(default_factory=dict)
    pc_keys: set[str] = field(default_factory=set)
    hs_keys: set[str] = field(default_factory=set)
    conflicts: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    #: A change this run may not send (a one-way run): the record is looked at again next run.
    pending: bool = False


def diff_tags(
    base: dict[str, str] | None,
    hubspot: Parsed,
    pc: dict[str, str],
    *,
    to_pc: bool = True,
    to_hs: bool = True,
) -> TagDiff:
    """Three-way diff of one opportunity's tags (see the module doc).

    Args:
        base: the tags both sides last agreed on; None before the first agreement (the union is taken).
        hubspot: the deal's parsed tags.
        pc: Partner Central's tags (:func:`canonical`).
        to_pc: whether this run may write Partner Central (else HubSpot's edits stay pending).
        to_hs: whether this run may write the deal (else Partner Central's edits stay pending).

    Returns:
        The writes, the deal's tags after them, the agreement they lead to, conflicts and refusals.
    """
    out = TagDiff(refused=dict(hubspot.invalid))
    known = base or {}
    h_tags = hubspot.tags
    shown = dict(h_tags)
    agreed: dict[str, str] = {}
    hs_changed = False
    for key in sorted({*known, *h_tags, *pc} - set(hubspot.invalid)):
        b, h, p = known.get(key), h_tags.get(key), pc.get(key)
        if key.startswith(RESERVED_PREFIX):
            # AWS's key: Partner Central's value always, whatever the deal says; never sent.
            if p is not None:
                agreed[key] = p
            if h != p:
                if h is not None and (base is None or h != b):
                    out.refused[key] = "keys starting with aws: are reserved for AWS and read-only"
                if to_hs:
                    _set(shown, key, p)
                    hs_changed = True
                    out.hs_keys.add(key)
            continue
        if h == p:
            if h is not None:
                agreed[key] = h
            continue
        if base is None:
            # No agreement yet: a key on one side only is copied, values that differ are a conflict.
            if h is not None and p is not None:
                out.conflicts.append(key)
                continue
            pc_side_changed = p is not None
        elif h == b:
            pc_side_changed = True
        elif p == b:
            pc_side_changed = False
        else:
            out.conflicts.append(key)
            if b is not None:
                agreed[key] = b
            continue
        if pc_side_changed:
            if not to_hs:
                _keep(agreed, key, b)
                out.pending = True
                continue
            _set(shown, key, p)
            hs_changed = True
            out.hs_keys.add(key)
            _keep(agreed, key, p)
        else:
            rule = check_tag(key, h) if h is not None else None
            if rule is not None:
                out.refused[key] = rule
                _keep(agreed, key, b)
                continue
            if not to_pc:
                _keep(agreed, key, b)
                out.pending = True
                continue
            if h is None:
                out.to_untag.append(key)
            else:
                out.to_tag[key] = h
            out.pc_keys.add(key)
            _keep(agreed, key, h)
    # At most max_tags on the resource (aws: keys do not count, as in AWS's general tagging rules): new
    # keys beyond it are refused, the rest applied.
    limit = tag_rules().max_tags
    after = {k for k in pc if k not in out.to_untag and not k.startswith(RESERVED_PREFIX)} | set(out.to_tag)
    for key in sorted(k for k in out.to_tag if k not in pc)[::-1]:
        if len(after) <= limit:
            break
        after.discard(key)
        out.to_tag.pop(key)
        out.pc_keys.discard(key)
        out.refused[key] = f"an opportunity can have at most {limit} tags"
        _keep(agreed, key, known.get(key))
    out.hubspot = shown if hs_changed else None
    out.base_if_ok = agreed
    return out


def _set(tags: dict[str, str], key: str, value: str | None) -> None:
    if value is None:
        tags.pop(key, None)
    else:
        tags[key] = value


def _keep(agreed: dict[str, str], key: str, value: str | None) -> None:
    _set(agreed, key, value)


def merge_error(current: str | None, lines: list[str]) -> str:
    """The deal's ``aws_sync_error`` with this step's lines replaced (other steps' lines kept)."""
    return merge_step_error(current, ERROR_PREFIX, lines)


def error_lines(diff: TagDiff) -> list[str]:
    """Per-deal lines for ``aws_sync_error``: each refused tag with its rule, each conflict."""
    lines = [f"tag {key!r} not sent: {rule}" for key, rule in sorted(diff.refused.items())]
    lines += [
        f"tag {key!r} was changed in both HubSpot and Partner Central; neither value was copied. "
        "Make the two agree (edit either side) to settle it."
        for key in diff.conflicts
    ]
    return lines


# -- the step ------------------------------------------------------------------------------------------
def _state(frame: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    if frame is None or not len(frame):
        return {}
    out = {}
    for oid, row in frame.to_dict(orient="index").items():
        base = clean(row.get("base"))
        errors = clean(row.get("errors"))
        out[str(oid)] = {
            "deal_id": clean(row.get("deal_id")),
            "arn": clean(row.get("arn")),
            "base": json.loads(base) if base else None,
            "failed": clean(row.get("failed")) == "true",
            # This step's lines of the deal's aws_sync_error as last written (a change needs a write).
            "errors": json.loads(errors) if errors else [],
        }
    return out


def _frame(state: dict[str, dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    rows = {
        oid: {
            "deal_id": row.get("deal_id"),
            "arn": row.get("arn"),
            "base": json.dumps(row["base"], sort_keys=True) if row.get("base") is not None else None,
            "failed": "true" if row.get("failed") else None,
            "errors": json.dumps(row["errors"]) if row.get("errors") else None,
        }
        for oid, row in state.items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=STATE_COLUMNS).astype(object)
    frame.index.name = "opportunity_id"
    return frame


def _links(env: SyncEnv) -> dict[str, str]:
    """Opportunity -> deal, from the baseline (only linked records have tags to sync)."""
    try:
        base = env.baseline.load(columns=["deal_id"])
    except NotFoundError:
        return {}
    return {str(o): str(d) for o, d in base["deal_id"].items() if clean(d) is not None}


def _read_this_run(env: SyncEnv, pc: dict[str, Any] | None) -> dict[str, str | None]:
    """Opportunities the extract read this run -> their ARN (from the ``GetOpportunity`` snapshot)."""
    if not pc or not pc.get("key") or not pc.get("read"):
        return {}
    frame = env.snapshots.get_frame(pc["key"], columns=["_raw"])
    out: dict[str, str | None] = {}
    for oid, raw in zip(frame.index, frame["_raw"], strict=True):
        try:
            out[str(oid)] = json.loads(raw).get("Arn")
        except (TypeError, ValueError, AttributeError):
            out[str(oid)] = None
    return out


def _created_now(env: SyncEnv, applied: dict[str, Any] | None) -> set[str]:
    """Opportunities ``apply_partner_central`` created this run (not ones it linked or recovered)."""
    if not applied or not applied.get("key"):
        return set()
    try:
        results = env.snapshots.get_json(applied["key"])
    except NotFoundError:
        return set()
    return {
        str(c["opportunity_id"])
        for c in (results.get("created") or {}).values()
        if c.get("opportunity_id") and not c.get("recovered_from")
    }


def _changed_in_hubspot(env: SyncEnv, hs: dict[str, Any] | None) -> dict[str, str | None]:
    """Opportunities whose deal the HubSpot extract saw change -> the deal's tags text as it read it.

    The extract reads ``tags.property`` with the deal (``mapping.TAGS_COLUMN``), so a changed deal costs
    no read here; a snapshot without the column (written before it existed) gives ``None``: read it.
    """
    from cosell_sync.mapping import TAGS_COLUMN

    if not hs or not hs.get("key") or not hs.get("deals"):
        return {}
    frame = env.snapshots.get_frame(hs["key"])
    if TAGS_COLUMN not in frame.columns:
        return dict.fromkeys(map(str, frame.index))
    return {str(o): clean(t) or "" for o, t in zip(frame.index, frame[TAGS_COLUMN], strict=True)}


class _Calls:
    """Counted Partner Central calls (``calls`` per operation, as the other steps count them)."""

    def __init__(self, env: SyncEnv) -> None:
        self.pc = env.partner_central
        self.calls: Counter[str] = Counter()

    def __call__(self, op: str, method: str, **kwargs: Any) -> dict[str, Any]:
        self.calls[op] += 1
        return self.pc.call(method, **kwargs)


def _find_arns(call: _Calls, oids: list[str]) -> dict[str, str]:
    """ARNs of opportunities the step has none for: ``ListOpportunities`` by ``Identifier``, 20 a call."""
    found: dict[str, str] = {}
    for i in range(0, len(oids), IDS_PER_LIST):
        chunk = oids[i : i + IDS_PER_LIST]
        page = call("ListOpportunities", "list_opportunities", Identifier=chunk, MaxResults=len(chunk))
        for summary in page.get("OpportunitySummaries") or []:
            if summary.get("Arn"):
                found[str(summary["Id"])] = str(summary["Arn"])
    return found


def sync_tags(
    env: SyncEnv,
    run: dict[str, Any],
    pc: dict[str, Any] | None = None,
    hs: dict[str, Any] | None = None,
    applied: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Tags of the run's opportunities both ways (see the module doc).

    Args:
        env: clients and stores.
        run: the run description.
        pc: the Partner Central extract's result (which opportunities were read, their snapshot).
        hs: the HubSpot extract's result (which deals changed).
        applied: ``apply_partner_central``'s result (the opportunities it created hold no tags: no read).

    Returns:
        Counts, ``api_calls`` and ``key`` (the stored result); or ``skipped`` with the reason.
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers.hubspot import HubSpotWriter

    cfg = env.config.tags
    if run.get("dry_run") or not cfg.enabled:
        return {"skipped": "dry run" if run.get("dry_run") else "tags.enabled is false"}
    direction = run.get("direction") or Direction.BOTH.value
    to_pc = direction != Direction.TO_HUBSPOT.value
    to_hs = direction != Direction.TO_PARTNER_CENTRAL.value
    catalog = run["catalog"]
    step_state = StepState(env.snapshots, catalog, "tags")
    previous, meta = step_state.load()
    state = _state(previous)
    links = _links(env)
    if run.get("opportunity_ids"):
        # A run restricted to some opportunities touches only their tags (a full refresh waits for a run
        # over the whole book).
        links = {o: d for o, d in links.items() if o in set(run["opportunity_ids"])}
    now = datetime.now(UTC)
    last_full = parse_ts(meta["last_full_refresh"]) if meta.get("last_full_refresh") else None
    full = not run.get("opportunity_ids") and (
        run.get("mode") == "full"
        or last_full is None
        or now - last_full >= timedelta(hours=cfg.full_refresh_hours)
    )
    read_now = _read_this_run(env, pc)
    # Only a run over the whole book knows which links are gone.
    dropped = [] if run.get("opportunity_ids") else [oid for oid in state if oid not in links]
    for oid in dropped:
        del state[oid]  # no longer linked: its agreement means nothing now
    # Which opportunities: changed in this run (read by the extract, deal changed, failed last time, new
    # links) first, then those waiting from earlier runs, then at a full refresh every linked one.
    hs_text = {o: t for o, t in _changed_in_hubspot(env, hs).items() if o in links}
    hs_changed = set(hs_text)
    changed = set(read_now) | hs_changed
    changed |= {o for o, row in state.items() if row.get("failed")}
    first = [o for o in links if o in changed or o not in state]
    due = [o for o in meta.get("due") or [] if o in links]
    waiting = set(due)
    queue = list(dict.fromkeys([*first, *due, *(links if full else [])]))
    call = _Calls(env)
    #: Failures a later run may get past (throttling, 5xx): the opportunity goes to the retry queue.
    pc_retry: set[str] = set()
    pc_errors: dict[str, dict[str, Any]] = {}
    gw = HubSpotGateway(env.hubspot)
    try:
        # Opportunities this run created hold no tags yet (the create sends none): nothing to read.
        fresh = {o for o in _created_now(env, applied) if o in links}
        base_of = {o: (state.get(o) or {}).get("base") for o in queue}
        failed = {o for o in queue if (state.get(o) or {}).get("failed")}
        # Which need Partner Central's tags: at a full refresh every record; in between, records the run
        # read (their change is when a console tag edit is picked up), new links, failed and waiting ones.
        # A deal that merely changed (our own writes change deals too) needs them only if its tags moved.
        pc_side = [
            o
            for o in queue
            if o not in fresh and (full or base_of[o] is None or o in read_now or o in waiting or o in failed)
        ]
        # Many to read: search (100 a call; at a full refresh a scan of the catalog, else by id) shows whose
        # tags may have moved. The index may lag, so it only spares reads: whatever is acted on is read with
        # ListTagsForResource first.
        searched = (
            read_tags(env.partner_central, call.calls, None if full else pc_side)
            if len(pc_side) > SCAN_ABOVE
            else None
        )
        in_pc_side = set(pc_side)
        quiet = {
            o
            for o in queue
            if o not in failed
            and (
                o in fresh
                or o not in in_pc_side
                or (searched is not None and o in searched and canonical(searched[o]) == (base_of[o] or {}))
            )
        }
        # Between full refreshes a deal HubSpot did not see change still holds the agreed tags: a record
        # whose Partner Central side search shows unchanged is settled without reading its deal.
        settled = {o for o in quiet if not full and o not in hs_changed and base_of[o] is not None}
        quiet -= settled
        # The deals' side (100 a call): the tags and the sync error (this step keeps its own lines of it).
        wanted = [o for o in queue if o not in quiet and o not in settled][: cfg.reads_per_run] + sorted(
            quiet
        )
        # A deal the extract read is taken from its snapshot (its sync error is read only if written).
        deals = {links[o]: {cfg.property: hs_text[o]} for o in wanted if hs_text.get(o) is not None}
        got_deals, _ = gw.batch_read(
            DEAL.plural, sorted({links[o] for o in wanted} - set(deals)), [cfg.property, "aws_sync_error"]
        )
        deals.update({str(d["id"]): d.get("properties") or {} for d in got_deals})
        for oid in sorted(quiet):
            deal = deals.get(links[oid])
            seen = parse_tags((deal or {}).get(cfg.property))
            if deal is not None and not seen.invalid and seen.tags == (base_of[oid] or {}):
                # Neither side moved (as far as the run can tell): nothing to read or write.
                if base_of[oid] is None:
                    state[oid] = {"deal_id": links[oid], "arn": None, "base": {}, "failed": False}
            else:
                quiet.discard(oid)
        # A new opportunity whose deal has tags: Partner Central's side is known (none), no read.
        known = {o: {} for o in queue if o in fresh and o not in quiet}
        needs_read = [o for o in queue if o not in quiet and o not in known and o not in settled]
        # A restricted run keeps the other records' place in the queue.
        others = [o for o in meta.get("due") or [] if run.get("opportunity_ids") and o not in links]
        take, meta["due"] = needs_read[: cfg.reads_per_run], needs_read[cfg.reads_per_run :] + others
        if meta["due"]:
            log.info("Tags: %d opportunities read now, %d wait for later runs.", len(take), len(meta["due"]))
        take += list(known)
        missing = sorted({links[o] for o in take} - set(deals))
        if missing:
            more, _ = gw.batch_read(DEAL.plural, missing, [cfg.property, "aws_sync_error"])
            deals.update({str(d["id"]): d.get("properties") or {} for d in more})

        arns = {o: read_now.get(o) or (state.get(o) or {}).get("arn") for o in take}
        arns.update(_find_arns(call, sorted(o for o, a in arns.items() if not a)))
        # 1. Partner Central's tags, one read each (paced by the hook's read quota).
        pc_tags: dict[str, dict[str, str]] = {}
        for oid in take:
            if oid in known:
                pc_tags[oid] = known[oid]
                continue
            try:
                if not arns.get(oid):
                    raise NotFoundError(f"opportunity {oid}: no ARN found")
                got = call("ListTagsForResource", "list_tags_for_resource", ResourceArn=arns[oid])
            except NotFoundError:
                # Looked at again at the next full refresh, not in every run.
                log.warning("Opportunity %s is gone: its tags are not synced.", oid)
                state.setdefault(oid, {"deal_id": links[oid], "arn": None, "base": None, "failed": False})
                continue
            except AuthError:
                raise
            except SyncError as err:
                # One unreadable record does not stop the others (the hook already retried it).
                log.error("Tags of %s not read: %s", oid, err.message)
                pc_retry.add(oid)
                pc_errors[oid] = err.to_dict()
                continue
            pc_tags[oid] = canonical(got.get("Tags"))
    except AuthError as err:
        log.warning("Tags are not readable with this account (%s): skipped.", err.message)
        return {"skipped": "tags not permitted", "api_calls": dict(call.calls | gw.calls)}
    deal_of = {o: links[o] for o in pc_tags}

    # 3. Diff, then Partner Central's writes (the lease is held by the task).
    audit: list[dict[str, Any]] = []
    diffs: dict[str, TagDiff] = {}
    parsed: dict[str, Parsed] = {}
    pc_failed: dict[str, str] = {}
    for oid, tags in pc_tags.items():
        # Each opportunity's entries are written right after its writes: a task that dies later does not
        # lose the audit of what it already sent (a retry sends nothing twice: the tags then agree).
        _write_audit(env, run, audit)
        audit = []
        deal = deals.get(deal_of[oid])
        if deal is None:
            # The deal is gone (the baseline still links it): looked at again at the next full refresh.
            state.setdefault(
                oid, {"deal_id": deal_of[oid], "arn": arns.get(oid), "base": None, "failed": False}
            )
            continue
        row = state.get(oid) or {}
        parsed[oid] = parse_tags(deal.get(cfg.property))
        diff = diff_tags(row.get("base"), parsed[oid], tags, to_pc=to_pc, to_hs=to_hs)
        diffs[oid] = diff
        base = row.get("base") or {}
        if diff.to_tag:
            try:
                call(
                    "TagResource",
                    "tag_resource",
                    ResourceArn=arns[oid],
                    Tags=[{"Key": k, "Value": v} for k, v in sorted(diff.to_tag.items())],
                )
                audit.append(_entry(oid, deal_of[oid], "TAG_OPPORTUNITY", diff.to_tag, base, tags))
            except SyncError as err:
                pc_failed[oid], pc_errors[oid] = err.message, err.to_dict()
                audit.append(
                    _entry(oid, deal_of[oid], "TAG_OPPORTUNITY", diff.to_tag, base, tags, error=err.to_dict())
                )
                if not isinstance(err, ValidationError):
                    pc_retry.add(oid)
        if diff.to_untag and oid not in pc_failed:
            removed = dict.fromkeys(diff.to_untag)
            try:
                limit = tag_rules().untag_max
                for i in range(0, len(diff.to_untag), limit):
                    call(
                        "UntagResource",
                        "untag_resource",
                        ResourceArn=arns[oid],
                        TagKeys=diff.to_untag[i : i + limit],
                    )
                audit.append(_entry(oid, deal_of[oid], "UNTAG_OPPORTUNITY", removed, base, tags))
            except SyncError as err:
                pc_failed[oid], pc_errors[oid] = err.message, err.to_dict()
                if not isinstance(err, ValidationError):
                    pc_retry.add(oid)
                audit.append(
                    _entry(oid, deal_of[oid], "UNTAG_OPPORTUNITY", removed, base, tags, error=err.to_dict())
                )
        if diff.conflicts:
            audit.append(
                _entry(
                    oid,
                    deal_of[oid],
                    "CONFLICT_DETECTED",
                    {k: parsed[oid].tags.get(k) for k in diff.conflicts},
                    base,
                    tags,
                )
            )
        if diff.refused:
            audit.append(
                _entry(oid, deal_of[oid], "TAG_REFUSED", {}, base, tags, refused=sorted(diff.refused.items()))
            )

    # 4. The deals: tags Partner Central changed, and this step's lines of aws_sync_error.
    lines_of = {
        oid: error_lines(diff)
        + ([f"not written to Partner Central: {pc_failed[oid]}"] if oid in pc_failed else [])
        for oid, diff in diffs.items()
    }
    # A deal known from the extract's snapshot that gets a write is read now: its sync error, and a seller
    # edit made since the extract is never overwritten (that deal is written by the next run).
    fresh_ids = sorted(
        deal_of[o]
        for o, diff in diffs.items()
        if to_hs
        and "aws_sync_error" not in deals[deal_of[o]]
        and (diff.hubspot is not None or lines_of[o] != ((state.get(o) or {}).get("errors") or []))
    )
    moved_since: set[str] = set()
    if fresh_ids:
        got_fresh, _ = gw.batch_read(DEAL.plural, fresh_ids, [cfg.property, "aws_sync_error"])
        for d in got_fresh:
            props_now = d.get("properties") or {}
            if (props_now.get(cfg.property) or "") != (deals[str(d["id"])].get(cfg.property) or ""):
                moved_since.add(str(d["id"]))
            deals[str(d["id"])] = props_now
    updates: dict[str, dict[str, str]] = {}
    for oid, diff in diffs.items():
        deal_id = deal_of[oid]
        if deal_id in moved_since:
            diff.hubspot, diff.pending = None, True  # its agreement stays (see the state update below)
        props: dict[str, str] = {}
        if diff.hubspot is not None:
            props[cfg.property] = format_tags(diff.hubspot, parsed[oid].raw_invalid)
        if "aws_sync_error" in deals[deal_id]:
            current_error = deals[deal_id].get("aws_sync_error")
            wanted_error = merge_error(current_error, lines_of[oid])
            if to_hs and wanted_error != (current_error or ""):
                props["aws_sync_error"] = wanted_error
        if props:
            updates[deal_id] = props
    outcome = HubSpotWriter(env.config, gw).update_objects(
        {DEAL.plural: updates}, {(DEAL.plural, d): o for o, d in deal_of.items()}
    )
    for oid, diff in diffs.items():
        deal_id = deal_of[oid]
        hs_ok = oid not in outcome.failed
        if cfg.property in updates.get(deal_id, {}):
            before = parse_tags(deals[deal_id].get(cfg.property)).tags
            audit.append(
                _deal_entry(
                    oid, deal_id, before, diff.hubspot or {}, error=None if hs_ok else outcome.failed[oid]
                )
            )
        # The new agreement: keys whose write failed keep their old agreement (tried again next run).
        row = state.setdefault(oid, {"deal_id": deal_id, "arn": None, "base": None, "failed": False})
        agreed = dict(diff.base_if_ok)
        old = row.get("base") or {}
        deal_written = hs_ok and deal_id not in moved_since
        undone = (diff.pc_keys if oid in pc_failed else set()) | (diff.hs_keys if not deal_written else set())
        for key in undone:
            _set(agreed, key, old.get(key))
        row.update(
            deal_id=deal_id,
            arn=arns.get(oid),
            base=agreed,
            failed=oid in pc_retry or (not hs_ok and bool(diff.hs_keys)) or diff.pending,
        )
        if hs_ok and to_hs and deal_id not in moved_since:
            row["errors"] = lines_of[oid]
    for oid, error in outcome.failed.items():
        log.error("Tags not written to the deal of %s: %s", oid, error.get("message"))
    # Failures a later run may get past go to the retry queue as well: the next extract reads the record
    # again, which brings it back to this step (a refused tag waits for the seller instead).
    retry = [
        {
            "opportunity_id": oid,
            "deal_id": links[oid],
            "reason": RETRY_REASON,
            "error": pc_errors.get(oid) or outcome.failed.get(oid),
            "direction": (
                Direction.TO_PARTNER_CENTRAL.value if oid in pc_retry else Direction.TO_HUBSPOT.value
            ),
        }
        for oid in sorted(pc_retry | set(outcome.failed))
    ]
    if retry:
        env.retry.add(retry, run_id=run["run_id"])

    _write_audit(env, run, audit)
    if take or dropped or full:
        step_state.save_frame(_frame(state))
    if full:
        meta["last_full_refresh"] = now.isoformat()
    step_state.save_meta(meta)
    call.calls.update(gw.calls)
    result = {
        "read": len(pc_tags),
        "tagged": sum(1 for o, d in diffs.items() if d.to_tag and o not in pc_failed),
        "untagged": sum(1 for o, d in diffs.items() if d.to_untag and o not in pc_failed),
        "deals_written": len(outcome.updated),
        "refused": sum(len(d.refused) for d in diffs.values()),
        "conflicts": sum(len(d.conflicts) for d in diffs.values()),
        "failed": len(pc_failed) + len(outcome.failed),
        "waiting": len(meta["due"]),
        "full": full,
    }
    key = run_key(catalog, run["run_id"], "tags.json")
    env.snapshots.put_json({**result, "api_calls": dict(call.calls)}, key)
    log.info("Tags: %s", result)
    return {**result, "key": key, "api_calls": dict(call.calls)}


def _entry(
    oid: str,
    deal_id: str,
    action: str,
    new: dict[str, str | None],
    base: dict[str, str],
    pc: dict[str, str],
    *,
    error: dict[str, Any] | None = None,
    refused: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """One audit entry of a Partner Central tag write, a conflict or refused tags (keys and rules)."""
    # Keys and rules go to the error text, not the metadata (which must hold ids only; a key may look
    # like an e-mail address).
    refusals = "; ".join(f"{k}: {rule}" for k, rule in refused or [])
    return {
        "opportunity_id": oid,
        "deal_id": deal_id,
        "action": action,
        # Conflicts: old = Partner Central's value, new = HubSpot's; writes: old = Partner Central's before.
        "changes": {f"aws_tags.{k}": {"old": pc.get(k, base.get(k)), "new": v} for k, v in new.items()},
        "success": error is None and not refused,
        "error": error or ({"code": "INVALID_TAG", "message": refusals} if refused else None),
        "metadata": {},
    }


def _deal_entry(
    oid: str, deal_id: str, before: dict[str, str], after: dict[str, str], error: dict[str, Any] | None
) -> dict[str, Any]:
    keys = sorted({*before, *after})
    return {
        "opportunity_id": oid,
        "deal_id": deal_id,
        "action": "UPDATE_DEAL_TAGS",
        "changes": {
            f"aws_tags.{k}": {"old": before.get(k), "new": after.get(k)}
            for k in keys
            if before.get(k) != after.get(k)
        },
        "success": error is None,
        "error": error,
        "metadata": {},
    }


def _write_audit(env: SyncEnv, run: dict[str, Any], audit: list[dict[str, Any]]) -> None:
    """The step's audit entries (one per record and action in a run: deterministic keys, retry-safe)."""
    from cosell_sync.audit import AuditEntry, FieldChange

    if not audit:
        return
    started_at = parse_ts(run["started_at"])
    to_pc = {"TAG_OPPORTUNITY", "UNTAG_OPPORTUNITY", "TAG_REFUSED"}
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
                if a["action"] in to_pc
                else Direction.TO_HUBSPOT.value
            ),
            action=a["action"],
            source="PARTNER_CENTRAL" if a["action"] == "UPDATE_DEAL_TAGS" else "HUBSPOT",
            user=f"airflow:{run.get('dag_id', 'cosell_reconcile')}",
            changes={k: FieldChange(**v) for k, v in a["changes"].items()},
            success=a["success"],
            error=a["error"],
            api_calls={
                "TAG_OPPORTUNITY": ["TagResource"],
                "UNTAG_OPPORTUNITY": ["UntagResource"],
                "UPDATE_DEAL_TAGS": ["batch_update:deals"],
            }.get(a["action"], []),
            metadata=a["metadata"],
        )
        for a in audit
    ]
    env.audit.write(entries)
