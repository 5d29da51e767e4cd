"""Runs the provider in-process: binds the provider-server and harness sockets and serves both.

:class:`ReferenceProvider` is the embeddable form: ``async with ReferenceProvider() as p`` or
``await p.start(...)`` serves the provider server at :attr:`target_url` and the harness at
:attr:`harness_url` (both with hypercorn, on sockets bound before ``start`` returns).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from .app import ProviderApp
from .config import ProviderConfig
from .harness import build_harness
from .polyglot import serve_polyglot
from .tls import TlsFiles, ensure_certificates, server_context
from .tokens import PUSH_TOKEN_ALGS

__all__ = ["ReferenceProvider"]

log = logging.getLogger("reference_impl.provider")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


class _Config(HypercornConfig):
    """Hypercorn settings with our own TLS context (TRN-001..TRN-004)."""

    tls_context: ssl.SSLContext | None = None

    def create_ssl_context(self) -> ssl.SSLContext | None:  # type: ignore[override]
        return self.tls_context

    @property
    def ssl_enabled(self) -> bool:  # type: ignore[override]
        return self.tls_context is not None


def _no_lifespan(asgi):
    """Answer hypercorn's lifespan protocol here: the apps have no start-up work, and a
    cancelled lifespan task must not turn a clean shutdown into an error."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await asgi(scope, receive, send)

    return app


def _url(scheme: str, host: str, port: int) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"{scheme}://{h}:{port}"


class ReferenceProvider:
    """The reference provider in-process: ``await start()``, use the URLs, ``await stop()``."""

    #: What its declaration would list in ``push_token_algs`` (CHN-020): it accepts all three.
    push_token_algs: tuple[str, ...] = PUSH_TOKEN_ALGS

    def __init__(self) -> None:
        self.app: ProviderApp | None = None
        self.target_url = ""
        self.harness_url = ""
        self.ca_certificate: Path | None = None
        self.data_dir: Path | None = None
        self._shutdown = asyncio.Event()
        self._servers: list[asyncio.Task] = []
        self._sockets: list[socket.socket] = []

    async def start(self, host: str = "127.0.0.1", port: int = 0, harness_port: int = 0,
                    tls: bool = False, faults: tuple[str, ...] | list[str] = (),
                    data_dir: str | Path | None = None, harness_host: str = "127.0.0.1",
                    config: ProviderConfig | None = None) -> "ReferenceProvider":
        if config is None:  # no default temp dir made (and leaked) when data_dir is given
            config = ProviderConfig(data_dir=Path(data_dir)) if data_dir is not None else ProviderConfig()
        changes: dict[str, Any] = {"faults": frozenset(faults) | config.faults}
        if data_dir is not None:
            changes["data_dir"] = Path(data_dir)
        config = config.with_(**changes)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = config.data_dir
        app = ProviderApp(config)
        self.app = app
        self._shutdown = asyncio.Event()
        target_sock = _listen(host, port)
        harness_sock = _listen(harness_host, harness_port)
        self._sockets = [target_sock, harness_sock]
        tport, hport = target_sock.getsockname()[1], harness_sock.getsockname()[1]
        tls_ctx = None
        if tls:
            files: TlsFiles = ensure_certificates(config.data_dir / "tls", [host])
            tls_ctx = server_context(files, http2=not app.faults.on("http2_off"),
                                     cbc_ciphers=app.faults.on("tls_cbc_ciphers"),
                                     legacy_versions=app.faults.on("tls_legacy_versions"))
            self.ca_certificate = files.ca_cert
            app.own_ca = files.ca_cert.read_text()
        connect_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.target_url = _url("https" if tls else "http", connect_host, tport)
        self.harness_url = _url("http", harness_host, hport)
        app.set_base_url(self.target_url)
        app.load()
        app.configure_gatekeeper()
        app.start_clients()
        http2 = not app.faults.on("http2_off")
        self._servers = [
            asyncio.ensure_future(self._serve(build_harness(app), harness_sock, None, http2=True)),
        ]
        if tls_ctx is not None and app.faults.on("cleartext_on_tls_port"):
            # The bug: the public port sniffs each connection and also serves plain HTTP.
            tls_back, plain_back = _listen("127.0.0.1", 0), _listen("127.0.0.1", 0)
            self._sockets += [tls_back, plain_back]
            self._servers += [
                asyncio.ensure_future(self._serve(app.server.app, tls_back, tls_ctx, http2=http2)),
                asyncio.ensure_future(self._serve(app.server.app, plain_back, None, http2=http2)),
                asyncio.ensure_future(serve_polyglot(target_sock.dup(), tls_back.getsockname()[1],
                                                     plain_back.getsockname()[1], self._shutdown)),
            ]
        else:
            self._servers.append(asyncio.ensure_future(
                self._serve(app.server.app, target_sock, tls_ctx, http2=http2)))
        await asyncio.sleep(0)  # let hypercorn take over the sockets
        log.info(json.dumps({"event": "started", "target_url": self.target_url,
                             "harness_url": self.harness_url, "faults": sorted(config.faults)}))
        return self

    async def _serve(self, asgi, sock: socket.socket, tls_ctx: ssl.SSLContext | None,
                     http2: bool) -> None:
        cfg = _Config()
        cfg.tls_context = tls_ctx
        # hypercorn takes ownership of the descriptor it is given: give it a duplicate.
        cfg.bind = [f"fd://{os.dup(sock.fileno())}"]
        cfg.insecure_bind = []
        cfg.alpn_protocols = ["h2", "http/1.1"] if http2 else ["http/1.1"]
        cfg.accesslog = None
        cfg.errorlog = logging.getLogger("hypercorn.error")
        cfg.graceful_timeout = 2
        # Python >= 3.11.5 Server.wait_closed() waits for open connections, so idle keep-alive
        # connections should not live long; but a client reusing one that the server is just
        # closing gets a reset, so not too short either (callers close their side first).
        cfg.keep_alive_timeout = 5
        cfg.h11_max_incomplete_size = 64 * 1024
        cfg.wsgi_max_body_size = 0
        await serve(_no_lifespan(asgi), cfg, shutdown_trigger=self._shutdown.wait, mode="asgi")

    async def stop(self) -> None:
        if self.app is None:
            return
        # Clients first (their connections to G and to this server close), then the servers.
        await self.app.stop_clients()
        await self.app.close_http()
        self._shutdown.set()
        # Open TLS connections of peers that stopped reading (idle keep-alive pools) hold
        # the TLS shutdown; give them a few seconds, then cancel.
        done, pending = await asyncio.wait(self._servers, timeout=5)
        for t in pending:
            t.cancel()
        for t in self._servers:
            with contextlib.suppress(BaseException):
                await t
        await self.app.close()
        self.app = None
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()

    async def __aenter__(self) -> "ReferenceProvider":
        if self.app is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
