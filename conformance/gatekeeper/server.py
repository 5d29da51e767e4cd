"""Serving an ASGI app in-process with hypercorn (HTTP/1.1, HTTP/2, WebSocket) on a socket we
bind ourselves, so port 0 works and the real port is known before the first request."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

from .tls import generate_tls

__all__ = ["AsgiServer"]

_log = logging.getLogger("conformance.gatekeeper.http")


class AsgiServer:
    def __init__(self, app: Any, *, listen: str = "127.0.0.1", port: int = 0, tls: bool = False,
                 max_ws_message: int = 1 << 17, tls_hosts: list[str] | None = None) -> None:
        self.app, self.listen, self.port, self.tls = app, listen, port, tls
        self.max_ws_message = max_ws_message
        self.tls_hosts = tls_hosts or []
        self.ca_pem = ""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> str:
        """Bind, start serving, and return the base URL (``http(s)://host:port``)."""
        family = socket.AF_INET6 if ":" in self.listen else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.listen, self.port))
        sock.listen(128)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        config = Config()
        config.websocket_max_message_size = self.max_ws_message
        config.accesslog = None
        config.errorlog = _log
        config.graceful_timeout = 2.0
        config.include_server_header = False
        host = f"[{self.listen}]" if family == socket.AF_INET6 else self.listen
        if self.tls:
            names = self.tls_hosts + ["localhost", "127.0.0.1", "::1"]
            if self.listen not in ("0.0.0.0", "::"):
                names.insert(0, self.listen)
            material = generate_tls(names)
            self._tmp = tempfile.TemporaryDirectory(prefix="gk-tls-")
            cert, key = Path(self._tmp.name, "cert.pem"), Path(self._tmp.name, "key.pem")
            cert.write_text(material.cert_pem)
            key.write_text(material.key_pem)
            key.chmod(0o600)
            config.certfile, config.keyfile = str(cert), str(key)
            self.ca_pem = material.ca_pem
            sockets = Sockets([sock], [], [])
        else:
            sockets = Sockets([], [sock], [])
        self._task = asyncio.create_task(worker_serve(wrap_app(self.app, config.wsgi_max_body_size, "asgi"),
                                                      config, sockets=sockets,
                                                      shutdown_trigger=self._stop.wait))
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1" if family == socket.AF_INET else "[::1]"
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except TimeoutError:
                self._task.cancel()
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - see below
                # A peer's connection dying badly during shutdown (e.g. data after
                # close_notify) is the peer's business, not a failure of the stop.
                _log.debug("ignored during server shutdown: %r", exc)
            self._task = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
