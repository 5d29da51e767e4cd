"""The provider's state and behaviour, without sockets: storage, keys, server app, clients.

:class:`ProviderApp` is what the harness API drives (:mod:`.harness` depends on it, never the
reverse); :mod:`.process` binds the sockets and serves both.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
from pathlib import Path
import httpx

from .client import ClientContext, ProviderClient, default_state
from .config import GatekeeperSettings, ProviderConfig
from .faults import Faults
from .problems import ProblemError
from .server import ProviderServer
from .storage import Storage
from .tokens import KeyStore, PushVerifier, TokenIssuer

__all__ = ["ProviderApp"]

log = logging.getLogger("reference_impl.provider")


class ProviderApp:
    """Everything but the sockets: storage, keys, server app, clients.

    The harness API (:mod:`.harness`) is built on top of this object by :mod:`.process`;
    the app knows nothing of it.
    """

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.faults = Faults(config.faults)
        self.storage = Storage(config.data_dir)
        self.keys = KeyStore(config.data_dir / "keys.json", config.token_lifetime, self.faults)
        self.tokens = TokenIssuer(self.keys, self.faults)
        self.push = PushVerifier(self.faults)
        self.server = ProviderServer(config, self.faults, self.storage, self.keys, self.tokens,
                                     self.push, self.on_push)
        self.clients: dict[str, ProviderClient] = {}
        self.gatekeeper: GatekeeperSettings | None = None
        self.base_url = ""
        self.own_ca: str | None = None
        self._g_http: httpx.AsyncClient | None = None
        self._own_http: httpx.AsyncClient | None = None
        self._change = asyncio.Event()
        self._wake_queue: asyncio.Queue[ProviderClient] | None = None
        self._wake_worker: asyncio.Future[None] | None = None
        self.storage.listeners.append(self._on_change)
        self.ctx = ClientContext(
            config=config, faults=self.faults, storage=self.storage, tokens=self.tokens,
            gatekeeper=lambda: self.gatekeeper, g_http=self.g_http,
            upload_url=lambda: self.base_url + self.server.media_base, own_http=self.own_http,
            on_opt_out=self.on_opt_out, on_account_deleted=self.on_account_deleted)

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
        self.configure_gatekeeper()

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
            if d.get("wa_root_key"):
                d["wa_root_key"] = bytes.fromhex(d["wa_root_key"])
            self.gatekeeper = GatekeeperSettings(**d)
        elif self.config.gatekeeper is not None:
            self.gatekeeper = self.config.gatekeeper

    def configure_gatekeeper(self) -> None:
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
        if self._wake_worker is not None:
            self._wake_worker.cancel()
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
        d["wa_root_key"] = gk.wa_root_key.hex() if gk.wa_root_key else None
        self._gk_file().write_text(json.dumps(d), "utf-8")
        if self._g_http is not None:
            await self._g_http.aclose()
            self._g_http = None
        self.configure_gatekeeper()

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
        if self.faults.on("push_wake_queue_drops"):
            return self._queue_wake(client)
        return await client.wake()

    def _queue_wake(self, client: ProviderClient) -> bool:
        """The push_wake_queue_drops fault: a bounded wake queue, one slow worker, drops."""
        if self._wake_queue is None:
            self._wake_queue = asyncio.Queue(maxsize=2)
            self._wake_worker = asyncio.ensure_future(self._wake_loop(self._wake_queue))
        try:
            self._wake_queue.put_nowait(client)
        except asyncio.QueueFull:
            log.info(json.dumps({"event": "push_dropped", "user": client.handle}))
        return True

    async def _wake_loop(self, queue: "asyncio.Queue[ProviderClient]") -> None:
        while True:
            client = await queue.get()
            await client.wake()
            await asyncio.sleep(0.25)  # the fault's slow worker: 4 wake-ups per second

    async def on_opt_out(self, user_visible_id: str) -> None:
        n = self.server.delete_media_of(user_visible_id)  # CON-009
        log.info(json.dumps({"event": "opt_out_media_deleted", "count": n}))

    async def on_account_deleted(self, handle: str) -> None:
        """CON-014: G acknowledged the deletion; the user and everything kept for it are gone
        (the harness then answers 404 for the handle)."""
        self.clients.pop(handle, None)
        self.storage.delete_user(handle)
        log.info(json.dumps({"event": "account_deleted", "user": handle}))
