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

A value a transform cannot convert raises :class:`TransformError`, which names the field and the rule
it broke but never the value (values are customer data and the message reaches task logs, the deal's
``aws_sync_error`` and retry items); callers record it against the record and carry on with the batch.

A few HubSpot free-text values are *normalised* rather than rejected, where that is safe: a phone number
without a country code is completed with ``hubspot.default_phone_region`` (checked against the numbering
plan), and a country name becomes its ISO code. :meth:`Converter.normalisation` says which rule was
applied, so the audit can record that the written value is not what the user typed.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import phonenumbers
import pycountry

from cosell_sync.errors import ValidationError
from cosell_sync.pc_model import pc_enum

if TYPE_CHECKING:
    from cosell_sync.config import FieldMapping, SyncConfig

__all__ = [
    "TRANSFORMS",
    "Converter",
    "InvalidValuesError",
    "TransformError",
    "converters_for",
]


class TransformError(ValidationError):
    """A value could not be converted for a field.

    The message is ``"{field}: {reason}"``: the field and the rule, never the value, because it is
    logged and copied to the deal's ``aws_sync_error`` and to retry items, where an e-mail address or
    a 20,000-character description must not end up. The value stays on the exception (``value``) for
    the caller that needs it; it is not part of ``str()`` or :meth:`to_dict`.

    Args:
        field: the mapping name (``project_title``).
        value: the offending value (kept out of the message).
        reason: the rule it broke, phrased to follow the field name (``is not a decimal amount``).
    """

    code = "INVALID_VALUE"

    def __init__(self, field: str, value: Any, reason: str, *, record_id: str | None = None) -> None:
        # ``fields`` names the field (never the value): a Partner Central write that fails this way is
        # a value Partner Central's model rejects, for that field (a REJECTED_VALUE conflict).
        super().__init__(f"{field}: {reason}", code=self.code, record_id=record_id, fields=[field])
        self.field = field
        self.value = value
        self.reason = reason


class InvalidValuesError(ValidationError):
    """A record holds HubSpot values that can never be written to Partner Central; nothing was sent.

    The message lists each field with the rule its value broke (never the value), e.g.
    ``HubSpot values cannot be written to Partner Central: contact_phone: is not a phone number ...``.

    Args:
        fields: field name -> rule.
        record_id: the opportunity id, or ``deal:{id}`` for a create.
    """

    def __init__(self, fields: Mapping[str, str], *, record_id: str | None = None) -> None:
        listed = "; ".join(f"{name}: {rule}" for name, rule in sorted(fields.items()))
        super().__init__(
            f"HubSpot values cannot be written to Partner Central: {listed}",
            service="hubspot",
            code=TransformError.code,
            record_id=record_id,
        )
        self.fields = dict(fields)


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

    def normalisation(self, value: Any) -> str | None:
        """The rule applied when a HubSpot value was *normalised* on its way to canonical, else None.

        Only converters that rewrite what the user typed beyond whitespace and case (a phone number
        completed with the default region, a country name turned into its code) return a note; the
        frame builder records it so the audit of a write can say the value was normalised.

        Args:
            value: the raw HubSpot value (already known to convert).

        Returns:
            A short, value-free description of the rule, or None.
        """
        return None

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


@lru_cache(maxsize=4096)
def _iso_country(text: str) -> str | None:
    """The alpha-2 code ISO 3166 gives a country name, official name or alpha-3 code, else None.

    ``pycountry`` matches exactly (case-insensitive), never fuzzily: "Narnia" stays unknown rather
    than becoming the nearest real country.
    """
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return None


class CountryCodeConverter(Converter):
    """ISO-3166 alpha-2 country codes (PC ``CountryCode`` enum); HubSpot may hold a country's name.

    A name is looked up in the usual spellings (``UK``, ``USA``, ``England``) and then in ISO 3166
    (names, official names, alpha-3 codes); the result must still be a code Partner Central accepts.
    """

    name = "country_code"
    _RULE = "is not an ISO-3166 country code or country name Partner Central accepts"

    def __init__(self, field: FieldMapping, cfg: SyncConfig | None = None) -> None:
        super().__init__(field, cfg)
        self._codes = _country_codes()

    def _lookup(self, value: Any) -> tuple[str | None, bool]:
        """(code or None, whether a name was translated)."""
        text = str(value).strip().upper()
        if text in self._codes:
            return text, False
        code = _COUNTRY_NAMES.get(text) or _iso_country(text)
        return (code, True) if code in self._codes else (None, True)

    def _code(self, value: Any) -> str:
        code, _ = self._lookup(value)
        if code is None:
            raise self.error(value, self._RULE)
        return code

    def _from_pc(self, value: Any) -> str | None:
        return self._code(value)

    def _from_hs(self, value: str) -> str | None:
        return self._code(value)

    def normalisation(self, value: Any) -> str | None:
        """A country name (not the code itself) was translated to its ISO-3166 alpha-2 code."""
        if value is None or not str(value).strip():
            return None
        code, translated = self._lookup(value)
        return "country name translated to its ISO-3166 alpha-2 code" if code and translated else None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
        # HubSpot may hold any text in an e-mail property (imports, integrations); one that is not an
        # address is reported for the record here rather than sent for Partner Central to refuse.
        text = self._from_pc(value)
        if text is not None and not _EMAIL.match(text):
            raise self.error(value, "is not an e-mail address (name@domain)")
        return text


_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_PHONE_PUNCTUATION = str.maketrans("", "", " -().\t/")


class PhoneConverter(Converter):
    r"""Phone numbers in E.164 (PC ``PhoneNumber`` pattern ``\+[1-9]\d{1,14}``).

    HubSpot phone properties are free text; spaces, dashes, dots and brackets are dropped and a
    leading ``00`` becomes ``+``. A HubSpot number without a country code is completed with the
    config's ``hubspot.default_phone_region`` only when the result is a valid number of that region's
    numbering plan (``phonenumbers``): ``(415) 555-0100`` becomes ``+14155550100`` for ``US``, while
    ``5551234`` (no area code) is reported for the record rather than guessed. Without a default
    region every number needs its country code. Partner Central values are already E.164.
    """

    name = "phone"

    def __init__(self, field: FieldMapping, cfg: SyncConfig | None = None) -> None:
        super().__init__(field, cfg)
        settings = getattr(cfg, "hubspot", None)
        self.region: str | None = getattr(settings, "default_phone_region", None)
        if self.region:
            self._rule = (
                "is not a phone number: needs a country code (+ and up to 15 digits) "
                f"or a valid number of the default region {self.region}"
            )
        else:
            self._rule = "is not an E.164 phone number (+ country code and up to 15 digits)"

    @staticmethod
    def _strip(value: Any) -> str:
        text = str(value).strip().translate(_PHONE_PUNCTUATION)
        return "+" + text[2:] if text.startswith("00") else text

    def _e164(self, value: Any) -> str:
        text = self._strip(value)
        if not _E164.match(text):
            raise self.error(value, "is not an E.164 phone number (+ country code and up to 15 digits)")
        return text

    def _with_region(self, value: Any) -> str | None:
        """E.164 of a national number in the default region, when it is a valid number there."""
        if not self.region:
            return None
        try:
            number = phonenumbers.parse(str(value), self.region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        out = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return out if _E164.match(out) else None

    def _from_pc(self, value: Any) -> str | None:
        return self._e164(value)

    def _from_hs(self, value: str) -> str | None:
        text = self._strip(value)
        if _E164.match(text):
            # Already international: kept as typed (no validity check), as before the default region.
            return text
        out = self._with_region(value) if not text.startswith("+") else None
        if out is None:
            raise self.error(value, self._rule)
        return out

    def normalisation(self, value: Any) -> str | None:
        """A number without a country code was completed with the default region."""
        if value is None or not str(value).strip() or _E164.match(self._strip(value)):
            return None
        return f"phone number completed to E.164 with the default region {self.region}"


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
