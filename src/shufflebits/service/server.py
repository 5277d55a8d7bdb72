"""Run the app with uvicorn: in the foreground (``shufflebits serve``) or in a thread.

``BackgroundServer`` binds its socket before uvicorn starts, so port 0 picks a
free port with no race, and the URL is known as soon as the context opens.

uvicorn times out neither a connection that never sends a request nor one that
sends its headers a byte at a time (its keep-alive timer starts only after a
first answer, and any byte cancels it), so each connection here must finish a
request's headers within ``header_timeout`` seconds of opening or of its last
answer; the app times the body itself (``create_app(request_timeout=...)``).
"""

from __future__ import annotations

import socket
import threading
import time

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import ShuffleBitsError

DEFAULT_HEADER_TIMEOUT = 10.0


def header_deadline_protocol(header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing connections whose request headers are not complete in time."""
    if not header_timeout > 0:
        raise ShuffleBitsError(f"header_timeout must be positive, got {header_timeout}")

    class HeaderDeadline(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._deadline = self.loop.call_later(header_timeout, self._expire)

        def on_response_complete(self) -> None:
            self._deadline.cancel()
            self._deadline = self.loop.call_later(header_timeout, self._expire)
            super().on_response_complete()

        def connection_lost(self, exc) -> None:
            self._deadline.cancel()
            super().connection_lost(exc)

        def _expire(self) -> None:
            # IDLE: the next request's headers have not all arrived (the body is the app's to time)
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket, or a one-line error (port taken, bad address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ShuffleBitsError(f"cannot listen on {host}:{port}: {error.strerror}") from error
    return sock


def serve(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> None:
    """Serve ``app`` until interrupted (Ctrl+C / SIGTERM stop it cleanly)."""
    protocol = header_deadline_protocol(header_timeout)
    sock = bind(host, port)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level=log_level, http=protocol)).run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """``with BackgroundServer(app) as server: ... server.url ...`` on loopback."""

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 20.0,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    ):
        protocol = header_deadline_protocol(header_timeout)
        self._socket = bind(host, port)
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._start_timeout = start_timeout
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", http=protocol))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise ShuffleBitsError(f"the server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()
