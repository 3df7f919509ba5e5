"""Airflow hook for the HubSpot CRM API (hubspot-api-client).

The hook builds one ``hubspot.Client`` from the ``hubspot_default`` connection and makes every HTTP request
that client sends (all API packages, and ``client.api_request``) go through one transport that:

* paces requests to HubSpot's limits before sending them: a rolling budget per 10 seconds (100 for a
  free/starter private app, extra ``requests_per_10s``) and 5 search requests a second;
* retries 429 and 5xx for every method (the SDK's default retry skips POST/PATCH, which is what batch
  writes use), honouring ``Retry-After`` and otherwise backing off exponentially with jitter;
* applies connect/read timeouts (the SDK waits forever unless each call passes ``_request_timeout``).

How: hubspot-api-client lets the caller replace how API objects are built (``api_factory`` in the client
config). Our factory builds them the SDK's way, caches them (the SDK otherwise builds a new ``ApiClient`` and
connection pool on every ``client.crm.deals.batch_api`` access) and hands each one our
:class:`PacedPoolManager`, whose connection pools wait on the limiter inside ``urlopen``. That is below
urllib3's retry loop, so every attempt, retries included, is paced.

Connection ``hubspot_default`` (any conn type: ``hubspot``, ``http`` or ``generic``): the private-app token
as *password*; *host* optionally points at another base URL (e.g. the emulator, ``http://127.0.0.1:8765``);
extra for example ``{"requests_per_10s": 190, "max_retries": 5, "connect_timeout": 5, "read_timeout": 30}``.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import urllib3
from airflow.sdk import BaseHook
from hubspot import Client
from hubspot.discovery.discovery_base import DiscoveryBase
from hubspot.utils.requests.http_request_builder import Request
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from cosell_hooks.ratelimit import CompositeLimiter, RollingWindowLimiter, registry
from cosell_sync.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    FatalError,
    NotFoundError,
    ServiceUnavailableError,
    SyncError,
    ThrottledError,
    ValidationError,
)

if TYPE_CHECKING:
    from urllib3.response import BaseHTTPResponse

SERVICE = "hubspot"
DEFAULT_BASE_URL = "https://api.hubapi.com"

Pace = Callable[[str, str], None]

_ERRORS_BY_STATUS: dict[int, type[SyncError]] = {
    400: ValidationError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    429: ThrottledError,
}


# -- transport ---------------------------------------------------------------------------------------


class _PacedPoolMixin:
    """Connection-pool mixin: call ``pace(method, path)`` before every attempt.

    urllib3 retries by calling ``urlopen`` again on the same pool, so pacing here covers retries too.
    """

    pace: Pace | None = None

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> BaseHTTPResponse:
        if self.pace is not None:
            self.pace(method, url)
        return super().urlopen(method, url, *args, **kwargs)  # type: ignore[misc]


class _PacedHTTPConnectionPool(_PacedPoolMixin, HTTPConnectionPool):
    """Plain-HTTP pool (the local emulator)."""


class _PacedHTTPSConnectionPool(_PacedPoolMixin, HTTPSConnectionPool):
    """HTTPS pool (api.hubapi.com)."""


class PacedPoolManager(urllib3.PoolManager):
    """A urllib3 ``PoolManager`` whose pools call ``pace`` before each request attempt.

    Args:
        pace: called with the method and the request path (plus query) before every attempt; may sleep.
        **kwargs: for ``urllib3.PoolManager`` (``retries``, ``timeout``, ``maxsize``...).
    """

    def __init__(self, pace: Pace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pace = pace
        self.pool_classes_by_scheme = {"http": _PacedHTTPConnectionPool, "https": _PacedHTTPSConnectionPool}

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        # urllib3 documents _new_pool as the place to customise pool creation.
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.pace = self.pace  # type: ignore[attr-defined]
        return pool

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> BaseHTTPResponse:
        """Open ``url``, with the pool's default timeout when the caller passed ``timeout=None``."""
        # The SDK passes timeout=None when a call has no _request_timeout, which urllib3 reads as "no
        # timeout at all"; dropping it lets the pool's default (connect/read from the connection) apply.
        if kw.get("timeout", 0) is None:
            del kw["timeout"]
        return super().urlopen(method, url, redirect=redirect, **kw)


class _PacedHTTPAdapter(HTTPAdapter):
    """A requests adapter on a :class:`PacedPoolManager`, for ``api_request`` (built on requests)."""

    def __init__(self, pace: Pace, retry: Retry) -> None:
        self._pace = pace
        super().__init__(max_retries=retry)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Build the pool manager requests sends through (called by ``HTTPAdapter.__init__``)."""
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = PacedPoolManager(
            self._pace, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )


class HubSpotRetry(Retry):
    """urllib3 ``Retry`` for HubSpot: every request is resent after a 429, none that creates after a 5xx.

    - 429: refused before any work, so every request is resent (after ``Retry-After``).
    - 5xx or a read timeout: resent when the request is idempotent, which at HubSpot is every request
      but a create: searches, batch reads, updates and upserts are POSTs that may be repeated. A create
      (:func:`is_create`) may have been applied; it is never resent, and the error goes to the writer,
      which reads back what exists and creates only what is missing.
    - A connection that could not be opened sent nothing: resent whatever the request.
    """

    RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        """Retry listed statuses whatever the method; defer to urllib3 otherwise."""
        if self.status_forcelist and status_code in self.status_forcelist:
            return True
        return super().is_retry(method, status_code, has_retry_after)

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        """Never resend a create after a 5xx or a read timeout: HubSpot may have applied it.

        A create (``POST .../batch/create`` or ``POST /crm/v3/objects/{type}``) is not idempotent; a 429
        was refused before any work and is safe to resend. After a 5xx or a timeout the writer reads back
        what exists and creates only what is missing (``HubSpotWriter``), so the error goes to it instead.
        """
        status = getattr(response, "status", None)
        creates = method == "POST" and is_create(url or "")
        if creates and error is not None and not self._is_connection_error(error):
            # Sent, then no answer (a read timeout): HubSpot may have applied it.
            raise error.with_traceback(_stacktrace) if _stacktrace else error
        if creates and status and status >= 500:
            raise urllib3.exceptions.MaxRetryError(
                _pool,
                url or "",
                urllib3.exceptions.ResponseError(
                    f"{status} on a create: not resent (it may have been applied)"
                ),
            )
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_backoff_time(self) -> float:
        """``backoff_factor * 2 ** (n - 1)`` plus jitter, from the first retry on.

        urllib3 retries the first failure immediately; after a 429 without ``Retry-After`` that only spends
        another request of the budget, so the first retry waits ``backoff_factor`` too.
        """
        if not self.history:
            return 0.0
        consecutive = 0
        for attempt in reversed(self.history):
            if attempt.redirect_location is not None:
                break
            consecutive += 1
        if consecutive == 0:
            return 0.0
        backoff = self.backoff_factor * (2 ** (consecutive - 1))
        if self.backoff_jitter:
            backoff += _jitter(self.backoff_jitter)
        return float(max(0.0, min(self.backoff_max, backoff)))


def is_create(url: str) -> bool:
    """Whether a request path creates objects (not idempotent: never resent blindly)."""
    path = url.split("?", 1)[0].rstrip("/")
    if path.endswith("/batch/create"):
        return "/associations/" not in path  # creating an association twice is harmless
    parts = path.split("/")
    # POST /crm/v3/objects/{type}: a single create (search, batch and merge have more segments)
    return len(parts) >= 4 and parts[-3:-1] == ["v3", "objects"]


def _jitter(upper: float) -> float:
    # Jitter spreads the retries of parallel workers; it is not security sensitive.
    return random.uniform(0, upper)


# -- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubSpotSettings:
    """Everything the hook reads from its connection (the token stays out of ``repr``).

    Args:
        base_url: API base URL without trailing slash.
        access_token: the private-app token.
        requests_per_10s: the rolling 10-second budget.
        search_requests_per_s: the search budget per second.
        max_retries: retries after the first attempt.
        backoff_factor: seconds; the n-th retry waits ``backoff_factor * 2 ** (n - 1)`` plus jitter.
        backoff_max: upper bound of one backoff wait.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for a response.
    """

    base_url: str
    access_token: str
    requests_per_10s: int = 100
    search_requests_per_s: int = 5
    max_retries: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def __repr__(self) -> str:
        return (
            f"HubSpotSettings(base_url={self.base_url!r}, requests_per_10s={self.requests_per_10s}, "
            f"max_retries={self.max_retries}, timeouts=({self.connect_timeout}, {self.read_timeout}))"
        )


def _base_url(host: str | None, port: int | None, schema: str | None, extra: Mapping[str, Any]) -> str:
    """Base URL: extra ``base_url``/``host``, else the connection host, else api.hubapi.com."""
    url = extra.get("base_url") or extra.get("host") or host
    if not url:
        return DEFAULT_BASE_URL
    url = str(url).rstrip("/")
    if "://" not in url:
        # A URI-style connection (hubspot://:token@host:port) splits the URL into host, port and schema.
        scheme = schema if schema in ("http", "https") else "https"
        url = f"{scheme}://{url}{f':{port}' if port else ''}"
    elif port and urlsplit(url).port is None:
        url = f"{url}:{port}"
    return url


# -- hook --------------------------------------------------------------------------------------------


class HubSpotHook(BaseHook):
    """Interact with the HubSpot CRM through hubspot-api-client, paced, retried and with typed errors.

    Use :attr:`client` (or :attr:`crm`) like a ``hubspot.Client``; API objects are cached, so
    ``hook.crm.deals.batch_api`` is built once. Wrap calls in :meth:`call` (or :meth:`translate_errors`)
    to get :mod:`cosell_sync.errors` instead of the SDK's ``ApiException``.

    Args:
        hubspot_conn_id: the Airflow connection holding the private-app token.
    """

    conn_name_attr = "hubspot_conn_id"
    default_conn_name = "hubspot_default"
    conn_type = "hubspot"
    hook_name = "HubSpot"

    #: Slack added to the windows we enforce: HubSpot counts requests when they arrive, we count them when
    #: we send them, and network jitter can bring two requests closer together on the way.
    BURST_WINDOW_S = 10.0 + 0.25
    SEARCH_WINDOW_S = 1.0 + 0.05

    def __init__(
        self,
        hubspot_conn_id: str = default_conn_name,
        *,
        requests_per_10s: int | None = None,
        search_requests_per_s: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hubspot_conn_id = hubspot_conn_id
        # Defaults from the sync config's quotas; a connection extra still wins (it knows the app's tier).
        self._requests_per_10s = requests_per_10s
        self._search_requests_per_s = search_requests_per_s
        self._api_lock = threading.Lock()
        self._apis: dict[tuple[str, str], Any] = {}

    # -- UI ---------------------------------------------------------------------------------------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for the connection form (Airflow 2 style; needs wtforms, absent in Airflow 3 core)."""
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import IntegerField
        except ImportError:
            return {}
        return {
            "requests_per_10s": IntegerField(
                lazy_gettext("Requests per 10 s"), widget=BS3TextFieldWidget(), default=100
            ),
            "max_retries": IntegerField(lazy_gettext("Max retries"), widget=BS3TextFieldWidget(), default=5),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Field behaviour for the connection form."""
        return {
            "hidden_fields": ["schema", "login", "port"],
            "relabeling": {"password": "Private app access token", "host": "API base URL (optional)"},
            "placeholders": {
                "host": DEFAULT_BASE_URL,
                "extra": json.dumps(
                    {
                        "requests_per_10s": 100,
                        "max_retries": 5,
                        "backoff_factor": 0.5,
                        "connect_timeout": 5,
                        "read_timeout": 30,
                    },
                    indent=2,
                ),
            },
        }

    # -- configuration ----------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> HubSpotSettings:
        """Settings read from the connection (validated once).

        Raises:
            ConfigError: no token, or a non-numeric limit, retry or timeout setting.
        """
        conn = self.get_connection(self.hubspot_conn_id)
        if not conn.password:
            raise ConfigError(
                f"connection {self.hubspot_conn_id!r}: the private-app token (password) is empty",
                service=SERVICE,
            )
        _mask_secret(conn.password)
        extra = conn.extra_dejson or {}
        defaults = HubSpotSettings(base_url=DEFAULT_BASE_URL, access_token="")
        try:
            return HubSpotSettings(
                base_url=_base_url(conn.host, conn.port, conn.schema, extra),
                access_token=conn.password,
                requests_per_10s=int(
                    extra.get("requests_per_10s", self._requests_per_10s or defaults.requests_per_10s)
                ),
                search_requests_per_s=int(
                    extra.get(
                        "search_requests_per_s", self._search_requests_per_s or defaults.search_requests_per_s
                    )
                ),
                max_retries=int(extra.get("max_retries", defaults.max_retries)),
                backoff_factor=float(extra.get("backoff_factor", defaults.backoff_factor)),
                backoff_max=float(extra.get("backoff_max", defaults.backoff_max)),
                connect_timeout=float(extra.get("connect_timeout", defaults.connect_timeout)),
                read_timeout=float(extra.get("read_timeout", defaults.read_timeout)),
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"connection {self.hubspot_conn_id!r}: invalid numeric extra ({err})", service=SERVICE
            ) from err

    @property
    def base_url(self) -> str:
        """The API base URL the client talks to."""
        return self.settings.base_url

    @cached_property
    def retry(self) -> HubSpotRetry:
        """The urllib3 retry policy shared by every request."""
        settings = self.settings
        return HubSpotRetry(
            total=settings.max_retries,
            status_forcelist=HubSpotRetry.RETRY_STATUSES,
            backoff_factor=settings.backoff_factor,
            backoff_jitter=settings.backoff_factor,
            backoff_max=settings.backoff_max,
            respect_retry_after_header=True,
            # Read errors are retried for every method but creates (see HubSpotRetry.increment).
            allowed_methods=None,
            retry_after_max=60,
            # Hand the last 429/5xx back to the SDK, which raises ApiException with HubSpot's body.
            raise_on_status=False,
        )

    @property
    def timeout(self) -> urllib3.Timeout:
        """Default connect/read timeout (a call may pass its own ``_request_timeout``)."""
        return urllib3.Timeout(connect=self.settings.connect_timeout, read=self.settings.read_timeout)

    # -- rate limiting ----------------------------------------------------------------------------------

    def _limiter_key(self, kind: str, *params: Any) -> tuple[Any, ...]:
        # The budgets belong to the private app (the token), i.e. to the connection and its endpoint, so
        # every hook for it in this process shares them.
        return (SERVICE, self.hubspot_conn_id, self.base_url, kind, *params)

    @cached_property
    def burst_limiter(self) -> RollingWindowLimiter:
        """The rolling per-10-second budget for all requests."""
        calls, window = self.settings.requests_per_10s, self.BURST_WINDOW_S
        return registry.get_or_create(
            self._limiter_key("burst", calls, window), lambda: RollingWindowLimiter(calls, window)
        )

    @cached_property
    def search_limiter(self) -> CompositeLimiter:
        """Search requests count against both the search budget and the 10-second budget."""
        calls, window = self.settings.search_requests_per_s, self.SEARCH_WINDOW_S
        search = registry.get_or_create(
            self._limiter_key("search", calls, window), lambda: RollingWindowLimiter(calls, window)
        )
        return CompositeLimiter(search, self.burst_limiter)

    def pace(self, method: str, url: str) -> None:
        """Wait until the request may be sent (called by the transport before every attempt).

        Args:
            method: HTTP method.
            url: request path (and query), or a full URL.
        """
        path = urlsplit(url).path
        limiter = self.search_limiter if "/search" in path else self.burst_limiter
        waited = limiter.acquire()
        if waited:
            self.log.debug("Paced %s %s by %.3f s to stay within the HubSpot limits.", method, path, waited)

    @cached_property
    def pool_manager(self) -> PacedPoolManager:
        """The paced, retrying connection pool every SDK API object sends through."""
        return PacedPoolManager(self.pace, retries=self.retry, timeout=self.timeout, maxsize=10)

    # -- client -----------------------------------------------------------------------------------------

    def _api_factory(self, api_client_package: Any, api_name: str, config: dict[str, Any]) -> Any:
        """Build (once) an SDK API object the SDK's way, then route it through :attr:`pool_manager`."""
        key = (api_client_package.__name__, api_name)
        with self._api_lock:
            api = self._apis.get(key)
            if api is None:
                api = DiscoveryBase._default_api_factory(api_client_package, api_name, config)
                api.api_client.rest_client.pool_manager = self.pool_manager
                self._apis[key] = api
            return api

    @cached_property
    def client(self) -> Client:
        """The configured ``hubspot.Client`` (built on first use)."""
        settings = self.settings
        session = requests.Session()
        adapter = _PacedHTTPAdapter(self.pace, self.retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return _PacedClient.create(
            access_token=settings.access_token,
            retry=self.retry,
            # ``host`` is what the generated API clients use, ``base_url`` what ``api_request`` uses.
            host=settings.base_url,
            base_url=settings.base_url,
            api_factory=self._api_factory,
            http_session=session,
            request_timeout=(settings.connect_timeout, settings.read_timeout),
        )

    def get_conn(self) -> Client:
        """Return the ``hubspot.Client`` (Airflow's conventional accessor)."""
        return self.client

    @property
    def crm(self) -> Any:
        """``client.crm``: ``hook.crm.deals.batch_api`` and the like (cached API objects)."""
        return self.client.crm

    # -- calls ------------------------------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], /, *args: Any, record_id: str | None = None, **kwargs: Any) -> Any:
        """Call an SDK method and translate its failures.

        Args:
            fn: a bound SDK method, e.g. ``hook.crm.deals.basic_api.get_by_id``.
            *args: positional arguments for ``fn``.
            record_id: the record the call concerns, for the error; defaults to a ``*_id`` argument.
            **kwargs: keyword arguments for ``fn`` (``_request_timeout``, ``_preload_content``...).

        Returns:
            Whatever ``fn`` returns.

        Raises:
            SyncError: a subclass per failure class (throttled, unavailable, validation, auth...).
        """
        if record_id is None:
            record_id = next(
                (str(v) for k, v in kwargs.items() if k.endswith("_id") and isinstance(v, str | int)), None
            )
        with self.translate_errors(getattr(fn, "__qualname__", repr(fn)), record_id=record_id):
            return fn(*args, **kwargs)

    @contextlib.contextmanager
    def translate_errors(self, operation: str = "request", *, record_id: str | None = None) -> Iterator[None]:
        """Turn SDK and transport errors raised inside the block into :mod:`cosell_sync.errors` types.

        Args:
            operation: what was being called, for the message.
            record_id: the record concerned, if any.

        Raises:
            SyncError: the translated error, chained to the original.
        """
        try:
            yield
        except SyncError:
            raise
        except Exception as err:
            translated = _translate(err, operation, record_id)
            if translated is None:
                raise
            raise translated from err

    def api_request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        qs: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        record_id: str | None = None,
    ) -> requests.Response:
        """Send a request the SDK has no method for, paced and retried like the rest; raise on failure.

        Args:
            method: HTTP method.
            path: path under the base URL, e.g. ``/crm/v4/associations/deals/contacts/batch/read``.
            body: JSON body (dict or list).
            qs: query parameters.
            headers: extra headers.
            record_id: the record concerned, for errors.

        Returns:
            The ``requests.Response`` (2xx).

        Raises:
            SyncError: for a non-2xx answer or a transport failure.
        """
        options: dict[str, Any] = {"method": method, "path": path}
        if body is not None:
            options["body"] = body
        if qs:
            options["qs"] = dict(qs)
        if headers:
            options["headers"] = dict(headers)
        operation = f"{method.upper()} {path}"
        with self.translate_errors(operation, record_id=record_id):
            response = self.client.api_request(options)
        if not 200 <= response.status_code < 300:
            raise _error_for_status(response.status_code, response.content, operation, record_id)
        return response

    def webhook_client_secret(self) -> str:
        """The HubSpot app's client secret (extra ``client_secret``): the key of its webhook signatures.

        Read on every call (no cache), so a rotated secret applies at once; registered with the log masker.

        Raises:
            ConfigError: the connection has no ``client_secret`` extra (named, never echoed).
        """
        conn = self.get_connection(self.hubspot_conn_id)
        secret = (conn.extra_dejson or {}).get("client_secret")
        if not isinstance(secret, str) or not secret:
            raise ConfigError(
                f"connection {self.hubspot_conn_id!r}: extra 'client_secret' (the HubSpot app's client "
                "secret, which signs webhooks) is missing",
                service=SERVICE,
            )
        _mask_secret(secret)
        return secret

    def test_connection(self) -> tuple[bool, str]:
        """Check the token with one cheap read (first deal).

        Returns:
            ``(True, description)`` on success, else ``(False, reason)``, as Airflow's UI expects.
        """
        try:
            self.call(self.crm.deals.basic_api.get_page, limit=1)
        except (SyncError, ValueError) as err:
            return False, f"{type(err).__name__}: {err}"
        return True, f"Connected to HubSpot at {self.base_url}."


class _PacedClient(Client):
    """``hubspot.Client`` whose ``api_request`` sends through the hook's paced, retrying session.

    The SDK's own ``api_request`` calls ``requests.get``/``post`` directly: no retry, no timeout, no pacing.
    This keeps its request building (base URL, auth header, query string, JSON body) and only changes how
    the request is sent. It returns the ``requests.Response`` whatever the status, like the SDK.

    Args:
        http_session: the session (with the paced adapter mounted) to send through.
        request_timeout: ``(connect, read)`` seconds.
        **kwargs: ``hubspot.Client`` settings (``access_token``, ``retry``, ``host``, ``api_factory``...).
    """

    def __init__(
        self, *, http_session: requests.Session, request_timeout: tuple[float, float], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._http_session = http_session
        self._request_timeout = request_timeout

    def api_request(self, options: dict[str, Any]) -> requests.Response:
        """Send a raw request built by the SDK's ``Request`` helper (same options as the SDK's)."""
        request = Request(self.config, dict(options))
        return self._http_session.request(
            request.get_method(),
            request.get_url(),
            timeout=self._request_timeout,
            **request.get_options_for_sending(),
        )


# -- error translation ---------------------------------------------------------------------------------


def _is_api_exception(err: BaseException) -> bool:
    """Every API package of the SDK defines its own ``ApiException``, with no common base class."""
    return any(
        cls.__name__ == "ApiException" and cls.__module__.startswith("hubspot.") for cls in type(err).__mro__
    )


def _translate(err: Exception, operation: str, record_id: str | None) -> SyncError | None:
    if _is_api_exception(err):
        status = int(getattr(err, "status", 0) or 0)
        if status == 0:  # SSL or request-building failure inside the SDK: no answer from HubSpot
            return ServiceUnavailableError(
                f"HubSpot {operation} failed: {getattr(err, 'reason', err)}",
                service=SERVICE,
                code="NoResponse",
                record_id=record_id,
            )
        return _error_for_status(
            status, getattr(err, "body", None), operation, record_id, reason=getattr(err, "reason", None)
        )
    if isinstance(err, urllib3.exceptions.HTTPError | requests.ConnectionError | requests.Timeout):
        # Connection refused/reset, timeouts, retries exhausted on connection errors.
        return ServiceUnavailableError(
            f"HubSpot {operation} failed: {type(err).__name__}: {err}",
            service=SERVICE,
            code=type(err).__name__,
            record_id=record_id,
        )
    return None


_PROPERTY_ERRORS = "Property values were not valid: "


def without_values(message: str) -> str:
    """HubSpot's property-validation message reduced to property names and error codes.

    HubSpot embeds a JSON list whose messages quote the rejected value (``foo was not one of the
    allowed options``, an e-mail address, a 20,000-character text); the log, the deal's
    ``aws_sync_error`` and retry items need only which property broke which rule.
    """
    if not message.startswith(_PROPERTY_ERRORS):
        return message
    try:
        items = json.loads(message[len(_PROPERTY_ERRORS) :])
    except ValueError:
        return _PROPERTY_ERRORS + "(details withheld: they quote the values)"
    if not isinstance(items, list):
        return _PROPERTY_ERRORS + "(details withheld: they quote the values)"
    named = [
        f"{item.get('name')} ({item.get('error') or 'INVALID'})" for item in items if isinstance(item, dict)
    ]
    return _PROPERTY_ERRORS + ", ".join(named)


def _error_for_status(
    status: int, body: bytes | str | None, operation: str, record_id: str | None, reason: str | None = None
) -> SyncError:
    """Build the typed error for an HTTP failure, keeping HubSpot's ``category`` and ``message``."""
    payload: dict[str, Any] = {}
    if body:
        with contextlib.suppress(ValueError, TypeError):
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                payload = parsed
    category = payload.get("category") or payload.get("policyName")
    message = without_values(str(payload.get("message") or reason or "no message"))
    error_cls = ServiceUnavailableError if status >= 500 else _ERRORS_BY_STATUS.get(status, FatalError)
    details = f"HubSpot {operation} failed: HTTP {status}"
    if category:
        details += f" {category}"
    details += f": {message}"
    if payload.get("correlationId"):
        details += f" (correlationId {payload['correlationId']})"
    return error_cls(details, service=SERVICE, code=str(category or status), record_id=record_id)


def _mask_secret(secret: str) -> None:
    """Register the token with Airflow's log masker (it must never appear in task logs)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older layouts
        return
    mask_secret(secret)
