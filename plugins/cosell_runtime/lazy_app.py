"""An ASGI app that builds the real one on its first request, so the plugin stays cheap to import.

Every Airflow component imports the plugins folder (scheduler, DAG processor, workers, triggerer), but only
the API server serves the plugin's ``fastapi_apps``. Building the Co-sell app at import time would load
FastAPI and Airflow's API security module (the ORM models, the auth manager) into all of them; this
wrapper defers that to the first request the API server routes to it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyASGIApp:
    """An ASGI app standing in for ``module:factory()`` until its first request.

    Args:
        target: ``"package.module:factory"``; the factory takes no arguments and returns an ASGI app.
    """

    def __init__(self, target: str) -> None:
        module, _, factory = target.partition(":")
        if not module or not factory:
            raise ValueError(f"target must be 'module:factory', got {target!r}")
        self.target = target
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """The real app, built on first use (once, even when two requests arrive together)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    module, _, factory = self.target.partition(":")
                    self._app = getattr(importlib.import_module(module), factory)()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request to the real app."""
        await self.app(scope, receive, send)
