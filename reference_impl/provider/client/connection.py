"""Opening, keeping and closing the chat channel (spec §5): connect with the start-up exchange
(blocklist first, pre-keys), reconnect with back-off, wake on push, disconnect.

The bytes on the wire are :class:`~.channel.Channel`'s; this mixin decides *when* to connect
and what to do first once connected."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl

from reference_impl.channel import PROTOCOL_VERSION, ClientHello
from reference_impl.wire import stanzas_pb2 as pb

from .base import ClientBase
from .channel import Channel
from .context import now_ms
from .errors import ClientError, ConnectFailed, ConnectionLost, StanzaError

__all__ = ["ConnectionMixin"]

log = logging.getLogger("reference_impl.provider.client")


class ConnectionMixin(ClientBase):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._conn_lock = asyncio.Lock()
        self._reconnector: asyncio.Task | None = None
        self._deliberate_close = False
        #: When the current connection became ready (ms since the epoch; 0 before).
        self.connected_at_ms = 0
        self._handshake_token = ""  # fault handshake_token_cached only
        self._extra_channels: list[Channel] = []  # fault push_opens_second_connection only

    def _ssl(self, url: str) -> ssl.SSLContext | None:
        if not url.startswith(("wss:", "https:")):
            return None
        ctx = ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # TRN-006
        gk = self.gatekeeper()
        if gk.ca_certificates:
            ctx.load_verify_locations(cadata=gk.ca_certificates)
        if self.faults.on("chat_no_hostname_check"):
            ctx.check_hostname = False
        return ctx

    async def connect(self) -> None:
        """Connect and finish the start-up exchange; raises :class:`ConnectFailed`."""
        if self.state["opted_out"] and not self.state["deletion_pending"]:
            raise ClientError(409, "opted-out", "the user opted out; enlist again first")
        if not self.state["enlisted"] or not self.login:
            raise ClientError(409, "not-enlisted", "enlist the user first")
        await self.ensure_connected()
        self.state["online"] = True
        self.save()

    async def ensure_connected(self) -> None:
        """Connect unless connected (one attempt; raises :class:`ConnectFailed`)."""
        async with self._conn_lock:
            if not self.connected:
                await self._connect_once()

    async def _connect_once(self) -> None:
        gk = self.gatekeeper()
        self._deliberate_close = False
        await self.channel.open(
            gk.chat_url, self._ssl(gk.chat_url), bytes.fromhex(self.state["authkey"]),
            hello=self._hello,
            expected_server_static=None if self.faults.on("no_gatekeeper_key_check")
            else gk.noise_static_key, **self._wire_args())
        try:
            await self._startup()
        except StanzaError as exc:
            await self.close_channel(deliberate=True)
            if exc.code == "un_enlisted":
                self.spawn(self.handle_un_enlisted())
            raise ConnectFailed(exc.code) from None
        except (ConnectionLost, asyncio.TimeoutError) as exc:
            reason = self.channel.error or "closed"
            await self.close_channel(deliberate=True)
            if reason == "un_enlisted":
                self.spawn(self.handle_un_enlisted())
            raise ConnectFailed(reason, f"connection closed during start-up: {exc!r}") from None
        self.channel.error = ""
        self.connected_at_ms = now_ms()
        self.channel.ready.set()
        self.event("connected")
        log.info(json.dumps({"event": "connected", "user": self.handle, "login": self.login}))
        self.spawn(self._flush_control())

    def _hello(self) -> ClientHello:
        """The handshake payload: a fresh user JWT every time (CHN-014)."""
        if not (self.faults.on("handshake_token_cached") and self._handshake_token):
            self._handshake_token = self.ctx.tokens.issue(self.user_visible_id, handle=self.handle)
        version = "1.0.3" if self.faults.on("handshake_sdk_version") else PROTOCOL_VERSION
        return ClientHello(self._handshake_token, version, self.login)

    async def _startup(self) -> None:
        # CON-006: read the blocklist before any message stanza (every connection).
        answer = await self.channel.request(pb.Stanza(blocklist_get=pb.BlocklistGet()), ready=False)
        blocked = set(self.state["blocked"])
        if self.state["needs_blocklist"]:
            pending_removes = {op["peer"] for op in self.state["block_ops"] if op["op"] == "remove"}
            if not self.faults.on("blocklist_answer_not_applied"):
                blocked |= set(answer.blocklist.users) - pending_removes
            self.state["blocked"] = sorted(blocked)
            self.state["needs_blocklist"] = False
        if self.state["needs_pre_keys"]:
            await self.upload_pre_keys(self.ctx.config.prekey_batch, ready=False)
            self.state["needs_pre_keys"] = False
        self.save()

    async def _flush_control(self) -> None:
        """Things to retry after every (re)connection until G acknowledges them."""
        if self.state["spk_upload_pending"]:
            with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError):
                await self.upload_signed_pre_key()
        if self.state["block_ops"]:
            with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError):
                await self.flush_block_ops()
        if self.state["deletion_pending"]:
            with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError):
                await self.send_deletion()

    async def disconnect(self, wake_on_push: bool = True) -> None:
        self.state["online"] = False
        self.state["wake_on_push"] = bool(wake_on_push)
        self.save()
        if self._reconnector is not None:
            self._reconnector.cancel()
            self._reconnector = None
        await self.close_channel(deliberate=True)

    async def close_channel(self, deliberate: bool) -> None:
        self._deliberate_close = self._deliberate_close or deliberate
        await self.channel.close()

    def channel_lost(self, was_ready: bool) -> None:
        """The channel's connection ended (called once per connection)."""
        if was_ready:
            self.event("disconnected")
        if not self._deliberate_close and not self.stopped and self.state["online"]:
            self.schedule_reconnect(initial=0.0 if self.faults.on("reconnect_at_once") else 1.0)

    def schedule_reconnect(self, initial: float = 1.0) -> None:
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = self.spawn(self._reconnect_loop(initial))

    def reconnect_later(self) -> None:
        """Reconnect with back-off although the last close was deliberate."""
        self._deliberate_close = False
        self.schedule_reconnect()

    async def _reconnect_loop(self, initial: float) -> None:
        # CHN-011: wait >= 1 s before the first attempt, double up to 60 s (on the client's
        # clock, so a harness clock advance can carry the back-off to its cap).
        cap = 30.0 if self.faults.on("backoff_capped_at_30s") else 60.0
        delay = initial
        while not self.stopped and self.state["online"] and not self.connected:
            await self.clock.sleep(delay)
            if self.stopped or not self.state["online"] or self.connected:
                return
            if not self.state["enlisted"]:
                return
            try:
                await self.ensure_connected()
                return
            except ConnectFailed as exc:
                if exc.reason in ("un_enlisted", "protocol_version"):
                    return
            delay = min(max(delay * 2, 1.0), cap)

    async def wake(self) -> bool:
        """A push arrived for this user (CHN-019)."""
        if self.connected and self.faults.on("push_opens_second_connection"):
            self.spawn(self._second_connection())
            return True
        if self.connected or not self.state["enlisted"] or not self.state["wake_on_push"]:
            return False
        self.state["online"] = True
        self.save()
        self.schedule_reconnect(initial=0.0)
        return True

    async def _second_connection(self) -> None:
        """Fault ``push_opens_second_connection``: a new connection beside the live one."""
        gk = self.gatekeeper()
        ch = Channel(handle=self.handle, faults=self.faults, timeout=self.ctx.config.network_timeout,
                     spawn=self.spawn, on_stanza=self.on_stanza, on_lost=lambda _: None,
                     on_un_enlisted=lambda: None)
        self._extra_channels.append(ch)
        await ch.open(gk.chat_url, self._ssl(gk.chat_url), bytes.fromhex(self.state["authkey"]),
                      hello=self._hello, expected_server_static=gk.noise_static_key,
                      **self._wire_args())

    def _wire_args(self) -> dict:
        """The binding G's chat endpoint speaks (harness ``wire``) and what it needs."""
        gk = self.gatekeeper()
        return {"wire": gk.wire or "open", "login": self.login or "", "root_public": gk.wa_root_key}
