"""The events queue's watcher trigger: the amazon provider's SQS trigger, run on boto3 instead of aiobotocore.

``SqsSensorTrigger`` (what common-messaging's ``MessageQueueTrigger(scheme="sqs")`` resolves to) opens its
client with ``SqsHook.get_async_conn()``, which needs ``aiobotocore``; no aiobotocore release accepts the
botocore this project pins (1.44.x; aiobotocore 3.10 stops at 1.43), so in this environment that trigger
fails in the triggerer with ``ModuleNotFoundError: aiobotocore``. :class:`ThreadedSqsTrigger` keeps the
provider's parameters, its receive/filter/delete logic (``poke``) and its event payload
(``{"status": "success", "message_batch": [...]}``), and only runs the boto3 calls in worker threads
(``asyncio.to_thread``, as ``cosell_runtime.triggers`` does for Partner Central). When an aiobotocore
release supports the pinned botocore, ``MessageQueueTrigger(scheme="sqs", ...)`` with the same keyword
arguments can replace it in ``cosell_runtime.assets.events_schedule``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger
from airflow.triggers.base import TriggerEvent


class _ThreadedClient:
    """A boto3 client whose methods are awaitable (each call runs in a worker thread)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._client, name)

        async def call(**kwargs: Any) -> Any:
            return await asyncio.to_thread(method, **kwargs)

        return call


class ThreadedSqsTrigger(SqsSensorTrigger):
    """``SqsSensorTrigger`` with boto3 in worker threads: fires once with the messages it received.

    Same arguments as the provider's trigger (``sqs_queue``, ``aws_conn_id``, ``max_messages``,
    ``wait_time_seconds``, ``visibility_timeout``, ``delete_message_on_reception``, ``waiter_delay``...).
    As an ``AssetWatcher``'s trigger it is started again by the triggerer after each event.
    """

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Receive until a batch arrives (long polling, then ``waiter_delay`` between empty receives)."""
        # The connection lookup and the client are sync too: off the triggerer's event loop.
        client = _ThreadedClient(await asyncio.to_thread(self.hook.get_conn))
        while True:
            messages = await self.poke(client=client)
            if messages:
                self.log.info("received %d message(s) from the events queue", len(messages))
                yield TriggerEvent({"status": "success", "message_batch": messages})
                return
            await asyncio.sleep(self.waiter_delay)
