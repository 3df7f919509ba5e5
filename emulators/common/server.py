"""A threaded WSGI server for the emulators, usable from tests (port 0) and from ``python -m``."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server


class ThreadedServer:
    """Serve a WSGI app on a background thread; ``port=0`` picks a free port.

    Args:
        app: the WSGI application.
        host: interface to bind.
        port: TCP port; 0 lets the OS choose one.
    """

    def __init__(self, app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The bound host."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the real one when started on port 0)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedServer:
        """Start serving on a daemon thread and return self."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_main(
    name: str,
    build_app: Callable[[argparse.Namespace], Callable[..., Any]],
    argv: list[str] | None = None,
    extra_args: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Entry point for ``python -m emulators.<name>``: parse args, print the URL line, serve forever.

    The first stdout line is ``<name> emulator listening on http://HOST:PORT``; scripts wait for it.
    """
    parser = argparse.ArgumentParser(prog=f"python -m emulators.{name.lower().replace(' ', '_')}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    if extra_args is not None:
        extra_args(parser)
    args = parser.parse_args(argv)
    server = ThreadedServer(build_app(args), host=args.host, port=args.port)
    print(f"{name} emulator listening on {server.url}", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass
    finally:
        server._server.server_close()
        sys.stdout.flush()
