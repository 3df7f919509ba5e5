"""Value transforms between Partner Central, HubSpot and the canonical form the diff compares.

Every mapped field names a transform. A transform bound to one field (a :class:`Converter`) turns
each side's raw value into a *canonical* string (or ``None`` for null/empty), so the three-way diff
compares values exactly, and turns canonical values back into what each API expects.

Canonical forms:
    text          stripped string
    date          ``YYYY-MM-DD`` (UTC calendar day)
    amount        plain decimal string, at most 2 decimals, no trailing zeros (``"1000"``, ``"1000.5"``)
    enum          the Partner Central enum value (HubSpot values are translated through the field's map)
    stage         the Partner Central ``LifeCycle.Stage`` value
    country_code  ISO-3166 alpha-2, upper case
    email         lower-cased address
    phone         E.164 (``+14155550100``)

A value a transform cannot convert raises :class:`TransformError`, which names the field and the
value; callers record it against the record and carry on with the rest of the batch.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from cosell_sync.errors import ValidationError
from cosell_sync.pc_model import pc_enum

if TYPE_CHECKING:
    from cosell_sync.config import FieldMapping, SyncConfig

__all__ = [
    "TRANSFORMS",
    "Converter",
    "TransformError",
    "converters_for",
]


class TransformError(ValidationError):
    """A value could not be converted for a field.

    Args:
        field: the mapping name (``project_title``).
        value: the offending value (shown with ``repr`` so whitespace and case are visible).
        reason: why it was rejected.
    """

    def __init__(self, field: str, value: Any, reason: str, *, record_id: str | None = None) -> None:
        super().__init__(f"{field}: {value!r} {reason}", record_id=record_id)
        self.field = field
        self.value = value
        self.reason = reason


class Converter:
    """The four conversions of one mapped field.

    Subclasses override the ``_`` hooks; the public methods handle ``None``/empty uniformly, so a
    transform only ever sees a real value.

    Args:
        field: the field mapping this converter serves.
        cfg: the sync configuration (stage map, defaults).
    """

    name = "text"

    def __init__(self, field: FieldMapping, cfg: SyncConfig | None = None) -> None:
        self.field = field
        self.field_name = field.name

    # Public API ---------------------------------------------------------------------------------
    def from_partner_central(self, value: Any) -> str | None:
        """Partner Central value -> canonical string (``None`` for null/empty)."""
        if value is None or value == "":
            return None
        return self._from_pc(value)

    def from_hubspot(self, value: str | None) -> str | None:
        """HubSpot property string -> canonical string (``None`` for null/empty)."""
        if value is None:
            return None
        if not isinstance(value, str):
            value = str(value)
        if not value.strip():
            return None
        return self._from_hs(value)

    def to_partner_central(self, canonical: str | None) -> Any:
        """Canonical string -> the value Partner Central expects (``None`` stays ``None``)."""
        if canonical is None:
            return None
        return self._to_pc(canonical)

    def to_hubspot(self, canonical: str | None) -> str:
        """Canonical string -> HubSpot property string.

        ``None`` becomes ``""`` because HubSpot clears a property when it is set to an empty string.
        """
        if canonical is None:
            return ""
        return self._to_hs(canonical)

    # Hooks --------------------------------------------------------------------------------------
    def _from_pc(self, value: Any) -> str | None:
        return _text(value)

    def _from_hs(self, value: str) -> str | None:
        return _text(value)

    def _to_pc(self, canonical: str) -> Any:
        return canonical

    def _to_hs(self, canonical: str) -> str:
        return canonical

    def error(self, value: Any, reason: str) -> TransformError:
        """Build the error for ``value`` on this converter's field."""
        return TransformError(self.field_name, value, reason)

    def fast_from_partner_central(self) -> Callable[[Any], str | None]:
        """:meth:`from_partner_central` for bulk use (frame building over 100k records).

        Conversions are pure, and enum/stage/date/amount/country values repeat across records, so
        results are memoised per distinct value; free-text subclasses override this.
        """
        return _memoised(self.from_partner_central)

    def fast_from_hubspot(self) -> Callable[[Any], str | None]:
        """:meth:`from_hubspot` for bulk use (memoised like :meth:`fast_from_partner_central`)."""
        return _memoised(self.from_hubspot)


_MISSING = object()
_MEMO_LIMIT = 50_000


def _memoised(convert: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    memo: dict[Any, str | None] = {}

    def fast(value: Any) -> str | None:
        try:
            hit = memo.get(value, _MISSING)
        except TypeError:  # unhashable (a list where a string was expected): no memo
            return convert(value)
        if hit is _MISSING:
            hit = convert(value)  # errors propagate and are never memoised
            if len(memo) < _MEMO_LIMIT:
                memo[value] = hit
        return hit

    return fast


def _text(value: Any) -> str | None:
    text = value.strip() if isinstance(value, str) else str(value).strip()
    return text or None


class TextConverter(Converter):
    """Free text: stripped; an empty string is ``None``."""

    name = "text"

    def fast_from_partner_central(self) -> Callable[[Any], str | None]:
        """Strip without memoising: free-text values rarely repeat."""

        def fast(value: Any) -> str | None:
            if value.__class__ is str:
                return value.strip() or None
            return None if value is None else _text(value)

        return fast

    def fast_from_hubspot(self) -> Callable[[Any], str | None]:
        """Same as :meth:`fast_from_partner_central` (HubSpot values are strings too)."""
        return self.fast_from_partner_central()


_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class DateConverter(Converter):
    """Calendar dates.

    Partner Central dates are ``YYYY-MM-DD`` (botocore ``Date`` pattern). HubSpot date and datetime
    properties come back as ISO datetimes (``2025-03-01T00:00:00Z`` / ``.000Z``) or, in some API
    versions and webhooks, epoch milliseconds; both are UTC, so the canonical day is the UTC day.
    HubSpot accepts ``YYYY-MM-DD`` for date properties and midnight-UTC for datetime properties.
    """

    name = "date"

    def __init__(self, field: FieldMapping, cfg: SyncConfig | None = None) -> None:
        super().__init__(field, cfg)
        # Dates repeat a lot across records (quarter ends); parsing is the hot path of the frame
        # build, so each distinct raw value is parsed once.
        self._memo: dict[Any, str] = {}

    def _parse(self, value: Any) -> str:
        memo = self._memo.get(value)
        if memo is not None:
            return memo
        out = self._parse_uncached(value)
        if len(self._memo) < 100_000:
            self._memo[value] = out
        return out

    def _parse_uncached(self, value: Any) -> str:
        if isinstance(value, datetime):
            stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
            return stamp.astimezone(UTC).date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        text = str(value).strip()
        if _ISO_DAY.match(text):
            try:
                return date.fromisoformat(text).isoformat()
            except ValueError as err:
                raise self.error(value, "is not a valid calendar date") from err
        if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
            try:
                return datetime.fromtimestamp(int(text) / 1000, tz=UTC).date().isoformat()
            except (OverflowError, OSError, ValueError) as err:
                raise self.error(value, "is not a valid epoch-milliseconds timestamp") from err
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as err:
            raise self.error(value, "is not a date (expected YYYY-MM-DD, ISO datetime or epoch ms)") from err
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).date().isoformat()

    def _from_pc(self, value: Any) -> str | None:
        return self._parse(value)

    def _from_hs(self, value: str) -> str | None:
        return self._parse(value)


class AmountConverter(Converter):
    r"""Money amounts as decimal strings.

    Partner Central's ``Amount`` pattern is ``((0|([1-9][0-9]{0,30}))(\.[0-9]{0,2})?)?``: no sign, no
    separators, at most two decimals. The canonical form is rounded half-up to cents (PC cannot
    store more, and comparing unrounded HubSpot values would report a change on every run) with
    trailing zeros removed, which is also a valid PC amount.
    """

    name = "amount"
    _CENT = Decimal("0.01")

    def __init__(self, field: FieldMapping, cfg: SyncConfig | None = None) -> None:
        super().__init__(field, cfg)
        self._memo: dict[Any, str] = {}

    def _parse(self, value: Any) -> str:
        memo = self._memo.get(value)
        if memo is not None:
            return memo
        if isinstance(value, bool):
            raise self.error(value, "is not an amount")
        text = str(value).strip().replace(",", "").replace("_", "")
        try:
            number = Decimal(text)
        except InvalidOperation as err:
            raise self.error(value, "is not a decimal amount") from err
        if not number.is_finite():
            raise self.error(value, "is not a finite amount")
        if number < 0:
            raise self.error(value, "is negative; Partner Central amounts are unsigned")
        number = number.quantize(self._CENT, rounding=ROUND_HALF_UP)
        out = format(number, "f")
        if "." in out:
            out = out.rstrip("0").rstrip(".")
        if len(out.split(".")[0]) > 31:
            raise self.error(value, "has more than 31 integer digits (Partner Central Amount pattern)")
        if len(self._memo) < 100_000:
            self._memo[value] = out
        return out

    def _from_pc(self, value: Any) -> str | None:
        return self._parse(value)

    def _from_hs(self, value: str) -> str | None:
        return self._parse(value)


class EnumConverter(Converter):
    """A closed set of values, translated through the field's ``values`` map.

    The map goes Partner Central value -> HubSpot option value; the canonical form is the Partner
    Central value (enum values are exact, e.g. ``In review``). ``hubspot_aliases`` adds extra
    HubSpot options that read as a PC value (many HubSpot industries fold into one PC industry);
    writes always use the primary HubSpot value. Without a map the value passes through unchanged.
    """

    name = "enum"

    def __init__(self, field: FieldMapping, cfg: SyncConfig | None = None) -> None:
        super().__init__(field, cfg)
        values: Mapping[str, str] = field.values or {}
        self._pc_to_hs: dict[str, str] = dict(values)
        self._hs_to_pc: dict[str, str] = {}
        for pc_value, hs_value in values.items():
            self._hs_to_pc.setdefault(hs_value, pc_value)
        for hs_value, pc_value in (field.hubspot_aliases or {}).items():
            self._hs_to_pc.setdefault(hs_value, pc_value)
        self._passthrough = not values

    def _from_pc(self, value: Any) -> str | None:
        text = value if isinstance(value, str) else str(value)
        if self._passthrough or text in self._pc_to_hs:
            return text
        raise self.error(value, "is not a Partner Central value in the field's value map")

    def _from_hs(self, value: str) -> str | None:
        if self._passthrough:
            return value.strip()
        pc_value = self._hs_to_pc.get(value)
        if pc_value is None:
            pc_value = self._hs_to_pc.get(value.strip())
        if pc_value is None:
            raise self.error(value, "is not a HubSpot value in the field's value map")
        return pc_value

    def _to_hs(self, canonical: str) -> str:
        if self._passthrough:
            return canonical
        try:
            return self._pc_to_hs[canonical]
        except KeyError as err:
            raise self.error(canonical, "has no HubSpot value in the field's value map") from err


class StageConverter(Converter):
    """HubSpot ``dealstage`` id <-> Partner Central ``LifeCycle.Stage`` via the config's stage map.

    Several HubSpot stages may map to one PC stage; writing to HubSpot uses the first listed.
    """

    name = "stage"

    def __init__(self, field: FieldMapping, cfg: SyncConfig | None = None) -> None:
        super().__init__(field, cfg)
        stages = cfg.stages if cfg is not None else []
        self._hs_to_pc = {s.hubspot_stage: s.partner_central_stage for s in stages}
        self._pc_to_hs: dict[str, str] = {}
        for s in stages:
            self._pc_to_hs.setdefault(s.partner_central_stage, s.hubspot_stage)

    def _from_pc(self, value: Any) -> str | None:
        text = value if isinstance(value, str) else str(value)
        if text in self._pc_to_hs:
            return text
        raise self.error(value, "is a Partner Central stage with no HubSpot stage in the stage map")

    def _from_hs(self, value: str) -> str | None:
        pc_value = self._hs_to_pc.get(value.strip())
        if pc_value is None:
            raise self.error(value, "is not a HubSpot deal stage in the stage map")
        return pc_value

    def _to_hs(self, canonical: str) -> str:
        try:
            return self._pc_to_hs[canonical]
        except KeyError as err:
            raise self.error(canonical, "has no HubSpot stage in the stage map") from err


def _country_codes() -> frozenset[str]:
    # The PC CountryCode enum is the authority on which codes PC accepts.
    return frozenset(pc_enum("CountryCode"))


# HubSpot's default ``country`` property is free text; these are the spellings seen most often.
# Anything else must be the alpha-2 code itself.
_COUNTRY_NAMES = {
    "UNITED STATES": "US",
    "UNITED STATES OF AMERICA": "US",
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "UNITED KINGDOM": "GB",
    "UK": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "CANADA": "CA",
    "MEXICO": "MX",
    "BRAZIL": "BR",
    "ARGENTINA": "AR",
    "CHILE": "CL",
    "COLOMBIA": "CO",
    "GERMANY": "DE",
    "FRANCE": "FR",
    "SPAIN": "ES",
    "ITALY": "IT",
    "NETHERLANDS": "NL",
    "BELGIUM": "BE",
    "SWITZERLAND": "CH",
    "AUSTRIA": "AT",
    "SWEDEN": "SE",
    "NORWAY": "NO",
    "DENMARK": "DK",
    "FINLAND": "FI",
    "IRELAND": "IE",
    "PORTUGAL": "PT",
    "POLAND": "PL",
    "INDIA": "IN",
    "JAPAN": "JP",
    "CHINA": "CN",
    "SOUTH KOREA": "KR",
    "KOREA": "KR",
    "SINGAPORE": "SG",
    "AUSTRALIA": "AU",
    "NEW ZEALAND": "NZ",
    "ISRAEL": "IL",
    "UNITED ARAB EMIRATES": "AE",
    "UAE": "AE",
    "SAUDI ARABIA": "SA",
    "SOUTH AFRICA": "ZA",
}


class CountryCodeConverter(Converter):
    """ISO-3166 alpha-2 country codes (PC ``CountryCode`` enum); HubSpot may hold a common name."""

    name = "country_code"

    def __init__(self, field: FieldMapping, cfg: SyncConfig | None = None) -> None:
        super().__init__(field, cfg)
        self._codes = _country_codes()

    def _code(self, value: Any) -> str:
        text = str(value).strip().upper()
        if text in self._codes:
            return text
        code = _COUNTRY_NAMES.get(text)
        if code is not None:
            return code
        raise self.error(value, "is not an ISO-3166 alpha-2 country code Partner Central accepts")

    def _from_pc(self, value: Any) -> str | None:
        return self._code(value)

    def _from_hs(self, value: str) -> str | None:
        return self._code(value)


class EmailConverter(Converter):
    """E-mail addresses, lower-cased.

    Partner Central's ``Email`` pattern only admits lower-case letters, while HubSpot keeps what the
    user typed; lower-casing both sides makes ``Jane@Acme.com`` and ``jane@acme.com`` the same value.
    """

    name = "email"

    def _from_pc(self, value: Any) -> str | None:
        text = _text(value)
        return text.lower() if text else None

    def _from_hs(self, value: str) -> str | None:
        return self._from_pc(value)


_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_PHONE_PUNCTUATION = str.maketrans("", "", " -().\t/")


class PhoneConverter(Converter):
    r"""Phone numbers in E.164 (PC ``PhoneNumber`` pattern ``\+[1-9]\d{1,14}``).

    HubSpot phone properties are free text; spaces, dashes, dots and brackets are dropped and a
    leading ``00`` becomes ``+``. A number without a country code cannot be made E.164 safely, so
    it is reported for the record instead of guessed.
    """

    name = "phone"

    def _normalise(self, value: Any) -> str:
        text = str(value).strip().translate(_PHONE_PUNCTUATION)
        if text.startswith("00"):
            text = "+" + text[2:]
        if not _E164.match(text):
            raise self.error(value, "is not an E.164 phone number (+ country code and up to 15 digits)")
        return text

    def _from_pc(self, value: Any) -> str | None:
        return self._normalise(value)

    def _from_hs(self, value: str) -> str | None:
        return self._normalise(value)


#: Transform name -> converter class. Config validation rejects any other name.
TRANSFORMS: dict[str, type[Converter]] = {
    "text": TextConverter,
    "date": DateConverter,
    "amount": AmountConverter,
    "enum": EnumConverter,
    "stage": StageConverter,
    "country_code": CountryCodeConverter,
    "email": EmailConverter,
    "phone": PhoneConverter,
}


# Converters are derived state, not configuration, so they are cached here rather than on the config:
# id(cfg) -> (weak reference to cfg, converters). Configs are unhashable pydantic models, hence the id key;
# the weak reference guards against id reuse and a finalizer drops the entry when the config goes away.
_CONVERTERS: dict[int, tuple[weakref.ref[SyncConfig], dict[str, Converter]]] = {}
_CONVERTERS_LOCK = threading.Lock()


def converters_for(cfg: SyncConfig) -> dict[str, Converter]:
    """The bound converter of every mapped field, by mapping name (built once per config object).

    Args:
        cfg: a validated sync configuration.

    Returns:
        ``{field name: Converter}`` in mapping order.
    """
    key = id(cfg)
    entry = _CONVERTERS.get(key)
    if entry is not None and entry[0]() is cfg:
        return entry[1]
    built = {f.name: TRANSFORMS[f.transform](f, cfg) for f in cfg.fields}
    with _CONVERTERS_LOCK:
        entry = _CONVERTERS.get(key)
        if entry is not None and entry[0]() is cfg:
            return entry[1]
        _CONVERTERS[key] = (weakref.ref(cfg, lambda _ref, key=key: _forget(key, _ref)), built)
    return built


def _forget(key: int, ref: weakref.ref[SyncConfig]) -> None:
    # Called when a cached config is garbage-collected; a newer config may already hold the id.
    entry = _CONVERTERS.get(key)
    if entry is not None and entry[0] is ref:
        _CONVERTERS.pop(key, None)
