"""EventBridge events as Partner Central emits them, plus optional delivery to an HTTP target.

Envelope and detail shapes follow the AWS Partner Central developer guide, "Notifications for the AWS Partner
Central Selling API"
(https://docs.aws.amazon.com/partner-central/latest/developer-guide/selling-api-events.html)
and the EventBridge reference "AWS Partner Central Selling events"
(https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-partnercentral-selling.html):
``source`` is ``aws.partnercentral-selling``, delivery is best effort, and ``detail`` carries ``catalog`` plus
the identifiers only (``Opportunity Updated`` holds ``opportunity.identifier``, never the record), so
consumers
must call ``GetOpportunity``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.request
import uuid
from typing import Any

log = logging.getLogger(__name__)

SOURCE = "aws.partnercentral-selling"

# The detail-types AWS documents for this source: the EventBridge events reference lists twelve; the developer
# guide's "Learn more about selling API events" adds "Engagement Created" and "Engagement Updated" (with
# sample events), so the emulator accepts both lists.
DETAIL_TYPES = frozenset(
    {
        "Opportunity Created",
        "Opportunity Updated",
        "Opportunity Accepted",
        "Opportunity Rejected",
        "Engagement Invitation Created",
        "Engagement Invitation Accepted",
        "Engagement Invitation Rejected",
        "Engagement Invitation Expired",
        "Engagement Member Joined",
        "Resource Snapshot Created",
        "Engagement Member Added",
        "Engagement Resource Snapshot Created",
        "Engagement Created",
        "Engagement Updated",
    }
)


def envelope_version(detail_type: str) -> str:
    """The envelope ``version`` AWS's samples show: "1" for opportunity events, "0" for engagement ones."""
    return "1" if detail_type.startswith("Opportunity") else "0"


class EventBus:
    """Records emitted events and, when a target is set, POSTs each one there (like an API destination).

    Args:
        account: the 12-digit account id in the envelope.
        region: the region in the envelope (Partner Central events arrive in us-east-1).
    """

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        self.enabled = True
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._target: dict[str, Any] | None = None
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._worker: threading.Thread | None = None

    def emit(
        self, detail_type: str, detail: dict[str, Any], resources: list[str], time_iso: str
    ) -> dict[str, Any]:
        """Build the full envelope, record it and queue it for the target."""
        assert detail_type in DETAIL_TYPES, detail_type
        event = {
            # The developer guide's samples: "1" for Opportunity events, "0" for Engagement* events.
            "version": envelope_version(detail_type),
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": SOURCE,
            "account": self.account,
            "time": time_iso,
            "region": self.region,
            "resources": resources,
            "detail": detail,
        }
        if not self.enabled:
            return event
        with self._lock:
            self._events.append(event)
            target = self._target
        if target is not None:
            self._queue.put(event)
        return event

    def events(self) -> list[dict[str, Any]]:
        """All events recorded so far, oldest first."""
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        """Forget recorded events (the target stays)."""
        with self._lock:
            self._events.clear()

    def set_target(self, url: str | None, headers: dict[str, str] | None = None) -> None:
        """POST every later event to ``url`` with ``headers``; ``None`` stops delivery."""
        with self._lock:
            self._target = {"url": url, "headers": headers or {}} if url else None
        if url and self._worker is None:
            self._worker = threading.Thread(target=self._deliver_forever, daemon=True)
            self._worker.start()

    def _deliver_forever(self) -> None:
        while True:
            event = self._queue.get()
            with self._lock:
                target = self._target
            if target is None:
                continue
            body = json.dumps(event).encode()
            request = urllib.request.Request(  # noqa: S310 - the target URL is set by the test harness
                target["url"],
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", **target["headers"]},
            )
            try:
                with urllib.request.urlopen(request, timeout=5):  # noqa: S310
                    pass
            except OSError as err:  # best effort, as EventBridge documents for this source
                log.warning("event delivery to %s failed: %s", target["url"], err)
