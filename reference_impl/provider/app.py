"""Wires the provider server, the clients and the harness into one process.

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
import secrets
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from .client import ClientContext, ProviderClient, default_state
from .config import GatekeeperSettings, ProviderConfig
from .faults import Faults
from .harness import build_harness
from .problems import ProblemError
from .server import ProviderServer
from .storage import Storage
from .tls import TlsFiles, ensure_certificates, server_context
from .tokens import KeyStore, PushVerifier, TokenIssuer

__all__ = ["ProviderApp", "ReferenceProvider"]

log = logging.getLogger("reference_impl.provider")


class ProviderApp:
    """Everything but the sockets: storage, keys, server app, clients, harness app."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.faults = Faults(config.faults)
        self.storage = Storage(config.data_dir)
        self.keys = KeyStore(config.data_dir / "keys.json", config.token_lifetime, self.faults)
        self.tokens = TokenIssuer(self.keys, self.faults)
        self.push = PushVerifier(self.faults)
        self.server = ProviderServer(config, self.faults, self.storage, self.keys, self.tokens,
                                     self.push, self.on_push)
        self.harness = build_harness(self)
        self.clients: dict[str, ProviderClient] = {}
        self.gatekeeper: GatekeeperSettings | None = None
        self.base_url = ""
        self.own_ca: str | None = None
        self._g_http: httpx.AsyncClient | None = None
        self._own_http: httpx.AsyncClient | None = None
        self._change = asyncio.Event()
        self.storage.listeners.append(self._on_change)
        self.ctx = ClientContext(
            config=config, faults=self.faults, storage=self.storage, tokens=self.tokens,
            gatekeeper=lambda: self.gatekeeper, g_http=self.g_http,
            upload_url=lambda: self.base_url + self.server.media_base, own_http=self.own_http,
            on_opt_out=self.on_opt_out)

    def _on_change(self) -> None:
        ev, self._change = self._change, asyncio.Event()
        ev.set()

    async def wait_until(self, predicate, timeout: float = 10.0, what: str = "condition"):
        """Wait, event-driven, until ``predicate()`` is truthy (re-checked after every change
        to an inbox or event list); returns its value. Raises TimeoutError naming ``what``."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._change.wait()
        except TimeoutError:
            raise TimeoutError(f"gave up waiting {timeout:g} s for {what}") from None

    # -- settings ------------------------------------------------------------------------
    def set_base_url(self, base_url: str) -> None:
        self.base_url = base_url
        self.tokens.issuer = self.config.issuer or base_url
        self._configure_gatekeeper()

    @property
    def push_audience(self) -> str:
        return self.config.push_audience or self.base_url

    def _gk_file(self) -> Path:
        return self.config.data_dir / "gatekeeper.json"

    def _load_gatekeeper(self) -> None:
        path = self._gk_file()
        if path.exists():
            d = json.loads(path.read_text("utf-8"))
            d["noise_static_key"] = bytes.fromhex(d["noise_static_key"])
            self.gatekeeper = GatekeeperSettings(**d)
        elif self.config.gatekeeper is not None:
            self.gatekeeper = self.config.gatekeeper

    def _configure_gatekeeper(self) -> None:
        gk = self.gatekeeper
        self.tokens.audience = gk.audience if gk and gk.audience else ""
        if gk is not None and gk.jwks_url:
            url = gk.jwks_url

            async def fetch() -> dict:
                r = await self.g_http().get(url, timeout=self.config.network_timeout)
                r.raise_for_status()
                return r.json()

            self.push.configure(fetch, gk.issuer, self.push_audience)
        else:
            self.push.configure(None, gk.issuer if gk else "", self.push_audience)

    def _verify(self, pem: str | None) -> ssl.SSLContext | bool:
        if not pem:
            return True
        ctx = ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cadata=pem)
        return ctx

    def g_http(self) -> httpx.AsyncClient:
        if self._g_http is None:
            gk = self.gatekeeper
            self._g_http = httpx.AsyncClient(verify=self._verify(gk.ca_certificates if gk else None),
                                             follow_redirects=False)
        return self._g_http

    def own_http(self) -> httpx.AsyncClient:
        if self._own_http is None:
            self._own_http = httpx.AsyncClient(verify=self._verify(self.own_ca))
        return self._own_http

    # -- lifecycle -----------------------------------------------------------------------
    def load(self) -> None:
        self._load_gatekeeper()
        for handle, visible, state, store_json in self.storage.load_users():
            self.clients[handle] = ProviderClient(self.ctx, handle, visible, state, store_json)

    def start_clients(self) -> None:
        for c in self.clients.values():
            c.start()

    async def stop_clients(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.clients.values()), return_exceptions=True)

    async def close_http(self) -> None:
        for client in (self._g_http, self._own_http):
            if client is not None:
                await client.aclose()
        self._g_http = self._own_http = None

    async def close(self) -> None:
        await self.stop_clients()
        await self.close_http()
        self.storage.close()

    # -- harness operations --------------------------------------------------------------
    async def reset(self, gk: GatekeeperSettings) -> None:
        await self.stop_clients()
        self.clients.clear()
        self.storage.reset()
        self.gatekeeper = gk
        d = {k: getattr(gk, k) for k in gk.__dataclass_fields__}
        d["noise_static_key"] = gk.noise_static_key.hex()
        self._gk_file().write_text(json.dumps(d), "utf-8")
        if self._g_http is not None:
            await self._g_http.aclose()
            self._g_http = None
        self._configure_gatekeeper()

    async def create_user(self, user_visible_id: str | None) -> tuple[str, str]:
        visible = user_visible_id or f"user-{secrets.token_hex(5)}@refprov.test"
        if not visible or len(visible) > 256:
            raise ProblemError(400, "bad-request", "user_visible_id must be 1..256 characters")
        if self.storage.user_exists_visible(visible):
            raise ProblemError(409, "conflict", f"user_visible_id {visible!r} exists")
        handle = "u" + secrets.token_hex(6)
        client = ProviderClient(self.ctx, handle, visible, default_state(), None)
        self.storage.create_user(handle, visible, client.state)
        client.save()
        self.clients[handle] = client
        client.start()
        return handle, visible

    async def on_push(self, to: str) -> bool:
        handle = self.storage.handle_for_visible(to)
        client = self.clients.get(handle) if handle else None
        if client is None:
            return False
        return await client.wake()

    async def on_opt_out(self, user_visible_id: str) -> None:
        n = self.server.delete_media_of(user_visible_id)  # CON-009
        log.info(json.dumps({"event": "opt_out_media_deleted", "count": n}))


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
        config = config or ProviderConfig()
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
                                     cbc_ciphers=app.faults.on("tls_cbc_ciphers"))
            self.ca_certificate = files.ca_cert
            app.own_ca = files.ca_cert.read_text()
        connect_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.target_url = _url("https" if tls else "http", connect_host, tport)
        self.harness_url = _url("http", harness_host, hport)
        app.set_base_url(self.target_url)
        app.load()
        app._configure_gatekeeper()
        app.start_clients()
        self._servers = [
            asyncio.ensure_future(self._serve(app.server.app, target_sock, tls_ctx,
                                              http2=not app.faults.on("http2_off"))),
            asyncio.ensure_future(self._serve(app.harness, harness_sock, None, http2=True)),
        ]
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
