"""What the sync logic needs from an API client, as protocols.

The Airflow hooks in ``plugins/cosell_hooks`` satisfy these; the sync logic never imports them, so it
stays testable and free of Airflow. Both hooks translate API failures into :mod:`cosell_sync.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol


class PartnerCentralApi(Protocol):
    """A Partner Central client: rate limited, retried, with typed errors (``PartnerCentralHook``)."""

    @property
    def catalog(self) -> str:
        """``AWS`` or ``Sandbox``."""
        ...

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Call a boto3 operation by its snake_case name; ``Catalog`` is added when absent."""
        ...

    def paginate(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Yield every page of a list operation."""
        ...


class HubSpotApi(Protocol):
    """A HubSpot client: ``hubspot.Client`` plus a ``call`` that translates errors (``HubSpotHook``)."""

    @property
    def client(self) -> Any:
        """The configured ``hubspot.Client`` (retries, timeouts and rate limits applied)."""
        ...

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Invoke an SDK method, turning ``ApiException`` into a typed :class:`SyncError`."""
        ...
