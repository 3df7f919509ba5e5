"""The one Partner Central writer: every create, update, association and submission goes through here.

Reconcile, conflict resolution and rollback all write opportunities with :class:`PartnerCentralWriter`,
so the API's rules are applied in one place:

- **Full record, optimistic lock.** UpdateOpportunity replaces the whole record and rejects a stale
  ``LastModifiedDate`` with ``ConflictException``: the change is merged into the record just read and
  sent with that record's ``LastModifiedDate``.
- **Gated on the record written.** The review-state rules (:mod:`cosell_sync.gating`) are applied to the
  record the change is merged into, on every attempt: after a ``ConflictException`` the fresh record is
  gated again, so a record AWS moved to ``Submitted`` meanwhile gets no write.
- **Re-diffed after a conflict.** When the caller says which value each field had when the change was
  planned (``expected``), a field whose value in the fresh record differs was edited in Partner Central
  after the plan: it is not overwritten but returned as ``superseded``, so the next run's three-way diff
  and the conflict strategy decide, with the fresh value.
- **Idempotent.** A payload the record already matches is not sent (a retried task re-sends nothing);
  creates carry a ``ClientToken`` derived from the deal.
- **Solutions first.** A move to ``Committed``/``Launched`` and a submission need one to ten associated
  partner solutions: they are associated (checked against ``ListSolutions``) before the write, and with
  none known the write waits with :class:`SolutionsRequiredError`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cosell_sync.common import Direction, clean, ts_key
from cosell_sync.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    from cosell_sync.clients import PartnerCentralApi
    from cosell_sync.config import SyncConfig
    from cosell_sync.env import SyncEnv
    from cosell_sync.journal import WriteJournal

log = logging.getLogger(__name__)

#: Stages Partner Central accepts only with an associated solution (or AWS product / Marketplace offer).
STAGES_NEEDING_SOLUTION = ("Committed", "Launched")
#: The stage a new opportunity is created at when its deal is already past it (see ``create``).
STAGE_BEFORE_SOLUTION = "Business Validation"
#: At most this many solutions may be associated with an opportunity.
MAX_SOLUTIONS = 10
#: Gate reason for a field mapped Partner Central -> HubSpot only.
READ_ONLY_IN_PARTNER_CENTRAL = "READ_ONLY_IN_PARTNER_CENTRAL"


class SolutionsRequiredError(ValidationError):
    """No partner solution is associated or known for a write that needs one: the write waits."""


@dataclass
class PartnerCentralWrite:
    """Outcome of :meth:`PartnerCentralWriter.update`.

    Attributes:
        written: field -> value sent in an UpdateOpportunity (or already held).
        gated: field -> reason code the review state gave for not writing it.
        superseded: field -> the value Partner Central holds now, for fields edited there after the plan
            was made (not overwritten; the next run decides).
        already_applied: the record already held every allowed value (nothing sent).
        last_modified: the record's ``LastModifiedDate`` after the write (or as read).
        review_status: the ``ReviewStatus`` the decision was made on.
        attempts: UpdateOpportunity attempts (more than one after ``ConflictException``).
        associated: solution ids associated before the write.
        other_contacts: how many other contacts (``Customer.Contacts[1..]``) the write set; None when
            it left them as they were.
        other_contacts_gated: the reason code the review state gave for not setting them now.
    """

    written: dict[str, str | None] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)
    superseded: dict[str, str | None] = field(default_factory=dict)
    already_applied: bool = False
    last_modified: str | None = None
    review_status: str | None = None
    attempts: int = 0
    associated: list[str] = field(default_factory=list)
    other_contacts: int | None = None
    other_contacts_gated: str | None = None

    @property
    def sent(self) -> bool:
        """True when the record was written (fields or other contacts), or already held the values."""
        return bool(self.written) or self.other_contacts is not None


def payload_matches(payload: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when sending ``payload`` would not change ``current`` (a retried task's second pass).

    Args:
        payload: an UpdateOpportunity request.
        current: the GetOpportunity response it was merged into.

    Returns:
        Whether every member of the payload already has that value in the record.
    """
    from cosell_sync.mapping import get_path

    def same(value: Any, path: str) -> bool:
        if isinstance(value, dict):
            return all(same(v, f"{path}.{k}" if path else k) for k, v in value.items())
        if isinstance(value, list):
            other = get_path(current, path)
            return (
                isinstance(other, list)
                and len(other) == len(value)
                and all(same(v, f"{path}[{i}]") for i, v in enumerate(value))
            )
        return get_path(current, path) == value

    return all(
        same(v, k) for k, v in payload.items() if k not in ("LastModifiedDate", "Catalog", "Identifier")
    )


def parse_solution_ids(value: str | None) -> list[str]:
    """Solution ids from the deal property (``;``, ``,`` or whitespace separated), de-duplicated in order."""
    if not value:
        return []
    parts = [p.strip() for chunk in str(value).replace(",", ";").split(";") for p in chunk.split()]
    return list(dict.fromkeys(p for p in parts if p))


class PartnerCentralWriter:
    """Writes opportunities of one catalog under the API's rules (see the module doc).

    Args:
        cfg: the sync configuration.
        api: the Partner Central client.
        catalog: the run's effective catalog; every call names it explicitly.
        calls: the API call counter to update (one per step, for the run report).
    """

    def __init__(
        self,
        cfg: SyncConfig,
        api: PartnerCentralApi,
        catalog: str,
        calls: Counter[str] | None = None,
        *,
        journal: WriteJournal | None = None,
        run_id: str | None = None,
        run_started_at: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.catalog = catalog
        self.calls: Counter[str] = calls if calls is not None else Counter()
        self.journal = journal if run_id else None
        self.run_id = run_id
        self.run_started_at = run_started_at
        self._active_solutions: set[str] | None = None
        self._stage_field = next((f.name for f in cfg.fields if f.partner_central == "LifeCycle.Stage"), None)

    @classmethod
    def for_run(cls, env: SyncEnv, run: dict[str, Any], calls: Counter[str]) -> PartnerCentralWriter:
        """The writer of one sync run's steps: its catalog, and its writes journaled under the run.

        Args:
            env: clients and stores (config, Partner Central client, write journal).
            run: the run description (``catalog``, ``run_id``, ``started_at``).
            calls: the step's API call counter.
        """
        return cls(
            env.config,
            env.partner_central,
            run["catalog"],
            calls,
            journal=env.journal,
            run_id=run["run_id"],
            run_started_at=run.get("started_at"),
        )

    # -- reads ----------------------------------------------------------------------------------------
    @property
    def stage_field(self) -> str | None:
        """The mapped field holding ``LifeCycle.Stage``, if the config maps one."""
        return self._stage_field

    def get(self, opportunity_id: str) -> dict[str, Any]:
        """``GetOpportunity`` without the response metadata."""
        self.calls["GetOpportunity"] += 1
        opp = self.api.call("get_opportunity", Catalog=self.catalog, Identifier=opportunity_id)
        opp.pop("ResponseMetadata", None)
        return opp

    def canonical(self, opportunity: dict[str, Any]) -> dict[str, str | None]:
        """The record's mapped fields as canonical values."""
        from cosell_sync.mapping import opportunities_to_frame

        row = opportunities_to_frame([opportunity], self.cfg).iloc[0]
        return {f: clean(row.get(f)) for f in self.cfg.field_names()}

    # -- the write journal ------------------------------------------------------------------------------
    def _begin(self, kind: str, record: str, **details: Any) -> str | None:
        """Record the intent of a write before it is sent (``cosell_sync.journal``)."""
        if self.journal is None or self.run_id is None:
            return None
        return self.journal.begin(self.run_id, kind, record, run_started_at=self.run_started_at, **details)

    def _finish(self, key: str | None, status: str, outcome: dict[str, Any] | None = None) -> None:
        if self.journal is not None and key is not None:
            self.journal.finish(key, status, outcome)

    def gate(self, review_status: str | None, names: list[str]) -> dict[str, str]:
        """The fields the review state (or the field's direction) forbids writing now.

        Args:
            review_status: the opportunity's ``LifeCycle.ReviewStatus``.
            names: mapping field names.

        Returns:
            Field -> reason code, only for the fields that may not be written.
        """
        from cosell_sync.gating import UNKNOWN_REVIEW_STATUS, UnknownReviewStatusError, gate

        out: dict[str, str] = {}
        paths: dict[str, str] = {}
        for name in names:
            if self.cfg.field(name).direction == Direction.TO_HUBSPOT:
                out[name] = READ_ONLY_IN_PARTNER_CENTRAL
            else:
                paths[name] = self.cfg.field(name).partner_central
        if not paths:
            return out
        try:
            decision = gate(review_status, paths.values())
        except UnknownReviewStatusError:
            return {**out, **dict.fromkeys(paths, UNKNOWN_REVIEW_STATUS)}
        for name, path in paths.items():
            reason = decision.deferred.get(path) or decision.blocked.get(path)
            if reason:
                out[name] = reason
        return out

    # -- solutions ------------------------------------------------------------------------------------
    def active_solutions(self) -> set[str]:
        """The partner's active solution ids in this catalog (``ListSolutions``, read once per writer)."""
        if self._active_solutions is None:
            found: set[str] = set()
            for page in self.api.paginate("list_solutions", Catalog=self.catalog, Status=["Active"]):
                self.calls["ListSolutions"] += 1
                found |= {s["Id"] for s in page.get("SolutionSummaries", [])}
            self._active_solutions = found
        return self._active_solutions

    def ensure_solutions(self, current: dict[str, Any], wanted: list[str]) -> list[str]:
        """Associate solutions so the record has one to ten before a write that needs them.

        Args:
            current: the record as just read.
            wanted: solution ids the deal asks for (empty: the config's defaults).

        Returns:
            The ids associated now (empty when the record already had a solution and wants no more).

        Raises:
            SolutionsRequiredError: none associated and none known, or a wanted id is not an active
                solution of this catalog (names the property and the rule, never a customer value).
            SyncError: AssociateOpportunity failed.
        """
        oid = current["Id"]
        prop = self.cfg.submission.solution_ids_property
        have = list((current.get("RelatedEntityIdentifiers") or {}).get("Solutions") or [])
        wanted = wanted or list(self.cfg.submission.default_solution_ids)
        missing = [s for s in wanted if s not in have]
        if not missing:
            if have:
                return []
            raise SolutionsRequiredError(
                f"opportunity {oid}: no partner solution is associated and none is known; add a line item "
                "of a solution's product (cosell_catalog) to the deal, or set the deal property "
                f"{prop} (solution ids separated by ';') or submission.default_solution_ids. "
                "Partner Central requires 1 to 10 solutions before submission and before stage "
                "Committed or Launched; the write waits for the next run.",
                service="partner_central",
                code="SOLUTION_REQUIRED",
                record_id=oid,
            )
        unknown = [s for s in missing if s not in self.active_solutions()]
        if unknown:
            raise SolutionsRequiredError(
                f"opportunity {oid}: {prop} names {len(unknown)} id(s) that are not active solutions of "
                f"the {self.catalog} catalog ({', '.join(unknown)}); the write waits for the next run.",
                service="partner_central",
                code="SOLUTION_NOT_FOUND",
                record_id=oid,
            )
        if len(have) + len(missing) > MAX_SOLUTIONS:
            raise SolutionsRequiredError(
                f"opportunity {oid}: {prop} would associate {len(have) + len(missing)} solutions; "
                f"Partner Central accepts at most {MAX_SOLUTIONS}.",
                service="partner_central",
                code="TOO_MANY_SOLUTIONS",
                record_id=oid,
            )
        for sid in missing:
            self.calls["AssociateOpportunity"] += 1
            self.api.call(
                "associate_opportunity",
                Catalog=self.catalog,
                OpportunityIdentifier=oid,
                RelatedEntityType="Solutions",
                RelatedEntityIdentifier=sid,
            )
        log.info("Associated %d solution(s) with opportunity %s", len(missing), oid)
        return missing

    # -- writes ---------------------------------------------------------------------------------------
    def update(
        self,
        opportunity_id: str,
        changes: dict[str, str | None],
        *,
        current: dict[str, Any] | None = None,
        expected: dict[str, str | None] | None = None,
        solution_ids: list[str] | None = None,
        other_contacts: list[dict[str, str]] | None = None,
        dropped_contacts: list[str] | None = None,
    ) -> PartnerCentralWrite:
        """Write canonical field values to an opportunity, journaled (see :meth:`_update`)."""
        from cosell_sync.errors import SyncError
        from cosell_sync.journal import APPLIED, FAILED

        sent: dict[str, str | None] = {}
        try:
            out = self._update(
                opportunity_id,
                changes,
                current=current,
                expected=expected,
                solution_ids=solution_ids,
                sent=sent,
                other_contacts=other_contacts,
                dropped_contacts=dropped_contacts,
            )
        except SyncError as err:
            self._finish(sent.get("key"), FAILED, {"error": err.to_dict()})
            raise
        if sent.get("key"):
            self._finish(
                sent["key"],
                APPLIED if out.sent and not out.already_applied else FAILED,
                {
                    "written": out.written,
                    "last_modified": out.last_modified,
                    "gated": out.gated,
                    "other_contacts": out.other_contacts,
                },
            )
        return out

    def _update(
        self,
        opportunity_id: str,
        changes: dict[str, str | None],
        *,
        current: dict[str, Any] | None = None,
        expected: dict[str, str | None] | None = None,
        solution_ids: list[str] | None = None,
        sent: dict[str, Any] | None = None,
        other_contacts: list[dict[str, str]] | None = None,
        dropped_contacts: list[str] | None = None,
    ) -> PartnerCentralWrite:
        """Write canonical field values to an opportunity: Get -> gate -> re-diff -> merge -> Update.

        Args:
            opportunity_id: the opportunity.
            changes: field -> canonical value.
            current: a recent GetOpportunity response to start from (saves a read); a stale one costs
                one ``ConflictException`` and a re-read.
            expected: field -> the Partner Central value the change was planned against; a field whose
                value in the record differs is left alone and returned in ``superseded``.
            solution_ids: the deal's solution ids, for a move to a stage that needs a solution.
            sent: filled with the journal ``key`` of the write once one is about to be sent.
            other_contacts: the deal's other contacts for ``Customer.Contacts[1..]``
                (``cosell_sync.deal_contacts``); None keeps the record's. Merged with the record's own
                (``merge_other_contacts``: only ``dropped_contacts``, e-mails the sync sent before, are
                removed) and sent only when that differs from the record's and the review state allows.
            dropped_contacts: e-mails of other contacts the sync sent before that the deal no longer has.

        Returns:
            What was written, gated and superseded.

        Raises:
            ConflictError: still conflicting after ``conflict_retries`` re-reads.
            SolutionsRequiredError: the change needs a solution and none is known.
            SyncError: any other Partner Central failure.
        """
        from cosell_sync.deal_contacts import (
            merge_other_contacts,
            other_contacts_of,
            others_key,
            with_other_contacts,
        )
        from cosell_sync.gating import DEFERRED_REASONS, gate_reason
        from cosell_sync.mapping import merge_into_opportunity

        result = PartnerCentralWrite()
        conflicts = 0  # ConflictExceptions seen: only these use up ``conflict_retries``
        rechecked = False  # one re-read after a rejection that a review-state change may explain
        while True:
            if current is None:
                current = self.get(opportunity_id)
            result.review_status = (current.get("LifeCycle") or {}).get("ReviewStatus")
            result.last_modified = ts_key(current.get("LastModifiedDate"))
            # Gated on the record we merge into, not on an older read: AWS may have moved the review since.
            result.gated = self.gate(result.review_status, list(changes))
            allowed = {k: v for k, v in changes.items() if k not in result.gated}
            now = self.canonical(current)
            if expected:
                # Re-diff: a field Partner Central changed after the plan was made keeps its newer value.
                result.superseded = {k: now[k] for k in allowed if k in expected and now[k] != expected[k]}
                if result.superseded:
                    log.warning(
                        "Opportunity %s changed in Partner Central after the plan: %s not overwritten",
                        opportunity_id,
                        ", ".join(sorted(result.superseded)),
                    )
                allowed = {k: v for k, v in allowed.items() if k not in result.superseded}
            others_due = False
            merged: list[dict[str, str]] = []
            if other_contacts is not None:
                # HubSpot decides Customer.Contacts[1..] (one way); the review state may hold them back.
                # A state that will never take them (Rejected) is no wait: nothing is retried for it.
                reason = gate_reason(result.review_status, "Customer.Contacts[1].Email")
                result.other_contacts_gated = reason if reason in DEFERRED_REASONS else None
                held = other_contacts_of(current, self.cfg)
                primary = ((current.get("Customer") or {}).get("Contacts") or [{}])[0] or {}
                merged = merge_other_contacts(
                    other_contacts, held, dropped_contacts or [], primary.get("Email")
                )
                others_due = reason is None and others_key(merged) != others_key(held)
            if not allowed and not others_due:
                if not changes and other_contacts is not None and result.other_contacts_gated is None:
                    result.already_applied = True  # the record already holds the deal's other contacts
                return result
            if not others_due and all(now.get(k) == v for k, v in allowed.items()):
                # The record already holds every value (a retried task's second pass, or a cleared
                # field that is already empty): nothing to send.
                result.already_applied = True
                result.written = allowed
                return result
            if self._stage_field and allowed.get(self._stage_field) in STAGES_NEEDING_SOLUTION:
                associated = self.ensure_solutions(current, solution_ids or [])
                if associated:
                    # The association moved LastModifiedDate: read again (this is not a conflict).
                    result.associated += associated
                    current = None
                    continue
            payload = merge_into_opportunity(current, allowed, self.cfg)
            if others_due and not with_other_contacts(payload, merged):
                # No primary contact to put them after: the first would be read back as the primary.
                others_due = False
                if not allowed:
                    return result
            if sent is not None and "key" not in sent:
                # Journal the intent before the first send: a run that dies now still gets audited.
                sent["key"] = self._begin(
                    "UPDATE_OPPORTUNITY",
                    opportunity_id,
                    changes={k: {"old": now.get(k), "new": v} for k, v in allowed.items()},
                    **({"other_contacts": len(merged)} if others_due else {}),
                )
            try:
                self.calls["UpdateOpportunity"] += 1
                result.attempts += 1
                updated = self.api.call("update_opportunity", **payload)
            except ConflictError as err:
                # Someone changed the record since we read it: re-read, re-gate, re-diff, try again.
                conflicts += 1
                log.warning(
                    "ConflictException on %s (conflict %d): %s", opportunity_id, conflicts, err.message
                )
                current = None
                if conflicts > self.cfg.conflict_retries:
                    raise ConflictError(
                        f"opportunity {opportunity_id}: still changing after "
                        f"{self.cfg.conflict_retries} re-reads",
                        service="partner_central",
                        code="ConflictException",
                        record_id=opportunity_id,
                    ) from err
                continue
            except ValidationError:
                # Partner Central checks the review state before the lock: a record submitted since our
                # read answers with a ValidationException. Re-read once; if the review now holds the
                # fields back, they are gated (they wait), not failed.
                if rechecked:
                    raise
                fresh = self.get(opportunity_id)
                status = (fresh.get("LifeCycle") or {}).get("ReviewStatus")
                if status == result.review_status:
                    raise
                rechecked, current = True, fresh
                continue
            result.written = allowed
            result.other_contacts = len(merged) if others_due else None
            result.last_modified = ts_key(updated.get("LastModifiedDate")) or result.last_modified
            return result

    def create(
        self,
        deal_id: str,
        values: dict[str, str | None],
        solution_ids: list[str] | None = None,
        team: list[dict[str, str]] | None = None,
        other_contacts: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Create the opportunity of a HubSpot deal (idempotent ClientToken) and read it back.

        A deal already at ``Committed`` or ``Launched`` cannot be created there (a new opportunity has no
        solution yet): it is created at :data:`STAGE_BEFORE_SOLUTION`, its solutions are associated and
        the stage is moved in a second write. When that second write cannot be made, the stage is
        returned in ``held_back`` with the ``error``, so the caller reports it and leaves the deal's stage.

        Args:
            deal_id: the HubSpot deal id (``PartnerOpportunityIdentifier`` and the token's key).
            values: field -> canonical value from the deal.
            solution_ids: the deal's solution ids (empty: the config's defaults).
            team: the ``OpportunityTeam`` contacts (``cosell_sync.team``; None or empty: none sent).
            other_contacts: ``Customer.Contacts[1..]``, after the primary (``cosell_sync.deal_contacts``).

        Returns:
            ``opportunity_id``, ``last_modified``, ``review_status``, the stored ``values``, the stored
            ``team`` (Partner Central's ``OpportunityTeam``) and, when the stage could not be set,
            ``held_back`` and ``error``.
        """
        request, held, sent = self.create_request(deal_id, values, team, other_contacts)
        created = self._create(deal_id, request, sent)
        # Read it back: the deal gets the values Partner Central holds (review status, defaults) in this
        # run, and the baseline starts from what Partner Central really stored.
        stored = self.get(created["Id"])
        out: dict[str, Any] = {
            "opportunity_id": created["Id"],
            "last_modified": ts_key(stored.get("LastModifiedDate")),
            "review_status": (stored.get("LifeCycle") or {}).get("ReviewStatus"),
            "values": self.canonical(stored),
            "team": stored.get("OpportunityTeam") or [],
        }
        return self._move_held_stage(out, held, stored, solution_ids)

    def create_request(
        self,
        deal_id: str,
        values: dict[str, str | None],
        team: list[dict[str, str]] | None = None,
        other_contacts: list[dict[str, str]] | None = None,
    ) -> tuple[dict[str, Any], dict[str, str | None], dict[str, str | None]]:
        """The CreateOpportunity request for a deal, and the stage held back for after the create.

        A deal at ``Committed`` or ``Launched`` is created at :data:`STAGE_BEFORE_SOLUTION` (a new
        opportunity has no solution yet); its stage is returned as ``held`` for a second write.
        ``team`` becomes ``OpportunityTeam`` (create only: ``UpdateOpportunity`` has no such member); the
        ``ClientToken`` stays derived from the deal alone. ``other_contacts`` follow the primary contact
        in ``Customer.Contacts`` (none without a primary: ``cosell_sync.deal_contacts``).

        Returns:
            ``(request, held, sent values)``.
        """
        from cosell_sync.deal_contacts import with_other_contacts
        from cosell_sync.mapping import new_opportunity_request

        held: dict[str, str | None] = {}
        if self._stage_field and values.get(self._stage_field) in STAGES_NEEDING_SOLUTION:
            held = {self._stage_field: values[self._stage_field]}
            values = {**values, self._stage_field: STAGE_BEFORE_SOLUTION}
        request = new_opportunity_request(values, deal_id, self.cfg, self.catalog)
        if team:
            request["OpportunityTeam"] = [dict(member) for member in team]
        if other_contacts:
            with_other_contacts(request, other_contacts)
        return request, held, values

    def _move_held_stage(
        self,
        out: dict[str, Any],
        held: dict[str, str | None],
        stored: dict[str, Any] | None,
        solution_ids: list[str] | None,
    ) -> dict[str, Any]:
        """After a create: associate solutions and move the stage held back; errors go in ``out``."""
        from cosell_sync.errors import SyncError

        if not held:
            return out
        try:
            moved = self.update(out["opportunity_id"], held, current=stored, solution_ids=solution_ids)
        except SyncError as err:
            log.error("Opportunity %s created; its stage waits: %s", out["opportunity_id"], err.message)
            out.update({"held_back": held, "error": err.to_dict()})
            return out
        out["values"].update(moved.written)
        out["last_modified"] = moved.last_modified
        return out

    def adopt_bulk_created(
        self,
        opportunity_id: str,
        stored_values: dict[str, str | None],
        held: dict[str, str | None],
        solution_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """The outcome of a deal's create made by a bulk job, shaped like :meth:`create`'s.

        No read-back (10,000 creates must not cost 10,000 reads): the values are the ones the job
        sent, and the opportunity's ``LastModifiedDate`` comes with the next run's read of it. A deal
        whose stage was held back gets its solutions and stage now (one read, one write).

        Args:
            opportunity_id: the opportunity the job created for the deal.
            stored_values: canonical values of the request the job sent (see :meth:`canonical`).
            held: the stage held back by :meth:`create_request`.
            solution_ids: the deal's solution ids.
        """
        out: dict[str, Any] = {
            "opportunity_id": opportunity_id,
            "last_modified": None,
            # Every create starts there (API reference, CreateOpportunity).
            "review_status": "Pending Submission",
            "values": dict(stored_values),
            "bulk": True,
        }
        return self._move_held_stage(out, held, None, solution_ids)

    def adopt_existing(self, deal_id: str, opportunity_id: str, how: str) -> dict[str, Any]:
        """Link a deal to the opportunity that already exists for it (found by its partner id).

        Args:
            deal_id: the deal.
            opportunity_id: its opportunity.
            how: where it was found, kept in ``recovered_from`` (the deal keeps its own newer values).
        """
        stored = self.get(opportunity_id)
        log.info(
            "Deal %s already has opportunity %s (%s): linking it, not creating one.",
            deal_id,
            opportunity_id,
            how,
        )
        return {
            "opportunity_id": opportunity_id,
            "last_modified": ts_key(stored.get("LastModifiedDate")),
            "review_status": (stored.get("LifeCycle") or {}).get("ReviewStatus"),
            "values": self.canonical(stored),
            "team": stored.get("OpportunityTeam") or [],
            "recovered_from": how,
        }

    def _create(self, deal_id: str, request: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """Send a CreateOpportunity request, journaled with the request itself (for its recovery)."""
        from cosell_sync.errors import SyncError
        from cosell_sync.journal import APPLIED, FAILED

        key = self._begin(
            "CREATE_OPPORTUNITY",
            f"deal:{deal_id}",
            deal_id=deal_id,
            changes={k: {"old": None, "new": v} for k, v in values.items() if v is not None},
            request=request,
        )
        self.calls["CreateOpportunity"] += 1
        try:
            created = self.api.call("create_opportunity", **request)
        except SyncError as err:
            self._finish(key, FAILED, {"error": err.to_dict()})
            raise
        self._finish(key, APPLIED, {"opportunity_id": created["Id"]})
        return created

    def recover_create(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Finish a create a dead run journaled: resend its exact request and read the record back.

        The same request with the same ClientToken returns the opportunity the first send made (or
        makes it, if that send never arrived): never a second one, whatever happened to the deal since.

        Args:
            entry: the journal entry (``request``, ``deal_id``).

        Returns:
            Like :meth:`create`.
        """
        self.calls["CreateOpportunity"] += 1
        created = self.api.call("create_opportunity", **entry["request"])
        stored = self.get(created["Id"])
        log.info(
            "Recovered the opportunity a dead run created for deal %s: %s", entry["deal_id"], created["Id"]
        )
        return {
            "opportunity_id": created["Id"],
            "last_modified": ts_key(stored.get("LastModifiedDate")),
            "review_status": (stored.get("LifeCycle") or {}).get("ReviewStatus"),
            "values": self.canonical(stored),
            "team": stored.get("OpportunityTeam") or [],
            "recovered_from": entry.get("run_id"),
        }

    def submit(self, opportunity_id: str, solution_ids: list[str] | None = None) -> dict[str, Any]:
        """Submit an opportunity to AWS (``StartEngagementFromOpportunityTask``), solutions first.

        Args:
            opportunity_id: the opportunity.
            solution_ids: the deal's solution ids (empty: the config's defaults).

        Returns:
            ``opportunity_id``, ``task_id`` and the solutions ``associated`` now.

        Raises:
            SolutionsRequiredError: no solution associated or known; nothing was sent.
            SyncError: the API refused the task.
        """
        from cosell_sync.mapping import client_token

        current = self.get(opportunity_id)
        associated = self.ensure_solutions(current, solution_ids or [])
        self.calls["StartEngagementFromOpportunityTask"] += 1
        task = self.api.call(
            "start_engagement_from_opportunity_task",
            Catalog=self.catalog,
            Identifier=opportunity_id,
            ClientToken=client_token(self.catalog, f"submit-{opportunity_id}"),
            AwsSubmission={"InvolvementType": "Co-Sell", "Visibility": "Full"},
        )
        return {"opportunity_id": opportunity_id, "task_id": task.get("TaskId"), "associated": associated}
