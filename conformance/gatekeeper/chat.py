"""One chat-channel connection (spec §5.1): WebSocket → binding (handshake, framing) → stanzas.

``ChatSession.run`` is the asyncio driver around the sans-IO binding (:mod:`.wire`: ``open``,
Noise XX + protobuf, or ``wa``, WA Noise + binary XML, as ``settings.wire`` says): it
authenticates the handshake through the ``authenticate`` callable it is given (:func:`.handshake.authenticate`), then reads frames and hands each stanza to ``handle``
(:func:`.routing.handle`), while one writer task encrypts and sends, in order, G's answers and
the login's mailbox. Every failure here ends this connection only. It knows the state core
(settings, log, mailbox, the connection registry) and nothing above it.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from reference_impl.channel import ChannelError, ClientHello
from reference_impl.wa.binary_xml import WAError
from reference_impl.wire import stanzas_pb2 as pb

from .directory import ProviderAccount
from .handshake import HandshakeRejected
from .stanzas import FrameError, code_name, describe, error_stanza, fresh_id
from .state import GatekeeperState
from .wire import HandshakeFailed, Hello, Incoming, ServerWire, make_server_wire

__all__ = ["SUBPROTOCOL", "ChatSession", "HandshakeRejected"]

SUBPROTOCOL = "interop.v1"
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
#: ``(remote_static, hello, session)`` -> the account, or raises :class:`HandshakeRejected`.
Authenticate = Callable[[bytes, ClientHello, "ChatSession"], Awaitable[ProviderAccount]]
#: ``(session, stanza)``: G's answer to one stanza a client sent.
Handle = Callable[["ChatSession", pb.Stanza], Awaitable[None]]
_conn_ids = itertools.count(1)


class _Closed(Exception):
    pass


class ChatSession:
    def __init__(self, gk: GatekeeperState, scope: dict[str, Any], receive: Receive, send: Send, *,
                 authenticate: Authenticate, handle: Handle) -> None:
        self.gk = gk
        self._authenticate, self._handle = authenticate, handle
        self.conn = f"c{next(_conn_ids)}"
        self.peer = "{}:{}".format(*(scope.get("client") or ("?", "?")))
        self._scope, self._receive, self._send = scope, receive, send
        self.login: str | None = None
        self.account: ProviderAccount | None = None
        #: The binding (spec §5.3): bytes of WebSocket messages <-> stanzas.
        self.wire: ServerWire = make_server_wire(
            gk.settings.wire, static_private=gk.handshake_noise_private(),
            cert_chain=gk.wa_cert_chain() if gk.settings.wire == "wa" else b"",
            max_frame=gk.settings.max_frame)
        self._early: deque[Incoming] = deque()
        self._replies: deque[pb.Stanza] = deque()
        self._wake = asyncio.Event()
        self._activity = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self.inflight: set[str] = set()
        self.pongs: dict[str, asyncio.Future[None]] = {}
        self._closing: tuple[int, str] | None = None
        self._closed = asyncio.Event()
        self.request_ids: deque[str] = deque(maxlen=gk.settings.remembered_ids)
        self._reader: asyncio.Task[None] | None = None
        self._hs: asyncio.Task[None] | None = None
        #: How far the Noise handshake got (logged when its total deadline ends it). The ASGI
        #: server hands over whole messages only: a message still trickling in fragments looks
        #: like silence here, so the stages count complete messages.
        self._hs_stage = "WebSocket accepted, waiting for handshake message 1"

    # -- logging helpers --------------------------------------------------------------------------
    def log(self, kind: str, **detail: Any) -> None:
        self.gk.log.append(kind, self.login, conn=self.conn, **detail)

    # -- driver -----------------------------------------------------------------------------------
    async def run(self) -> None:
        msg = await self._receive()
        if msg.get("type") != "websocket.connect":
            return
        offered = list(self._scope.get("subprotocols") or [])
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if SUBPROTOCOL in offered:
            accept["subprotocol"] = SUBPROTOCOL
        await self._send(accept)
        self.log("ws_connected", peer=self.peer, subprotocols=offered,
                 http_version=self._scope.get("http_version"))
        if SUBPROTOCOL not in offered:  # CHN-001; accepted anyway so the run can go on
            self.log("violation", requirement="CHN-001", detail=f"subprotocol {SUBPROTOCOL} not offered")
        writer: asyncio.Task[None] | None = None
        keepalive: asyncio.Task[None] | None = None
        reason = "closed by peer"
        self.gk.connections.add(self)
        try:
            self._hs = asyncio.create_task(self._handshake())
            done, _ = await asyncio.wait({self._hs}, timeout=self.gk.settings.handshake_timeout_s)
            if not done:
                self._hs.cancel()
                raise TimeoutError
            if self._hs.cancelled():  # close_soon() during the handshake (gatekeeper stopping)
                await self._close(*(self._closing or (1001, "closed")))
            self._hs.result()
            self._reader = asyncio.create_task(self._read_loop())
            writer = asyncio.create_task(self._writer())
            keepalive = asyncio.create_task(self._keepalive())
            # The writer cancels the reader when it closes the connection itself.
            await asyncio.wait({self._reader})
            if not self._reader.cancelled() and self._reader.exception() is not None:
                raise self._reader.exception()  # type: ignore[misc]
        except TimeoutError:
            reason = "handshake timeout"
            # The deadline is total (issue 13 §1): however slowly the peer trickles, it ends
            # here; the event says how far the handshake got.
            self.log("handshake_failed", reason="timeout", requirement="CHN-002",
                     got_to=self._hs_stage, deadline_s=self.gk.settings.handshake_timeout_s)
            try:
                await self._close(1008, "handshake timeout")
            except _Closed:
                pass
        except _Closed as exc:
            reason = str(exc) or reason
        finally:
            for task in (writer, keepalive, self._reader):
                if task is not None:
                    task.cancel()
            for fut in self.pongs.values():
                fut.cancel()
            self.gk.detach(self)
            self.gk.connections.discard(self)
            if self._closing:
                reason = self._closing[1]
            self.log("disconnected", reason=reason,
                     close_code=self._closing[0] if self._closing else None)
            self._closed.set()

    async def _frame(self) -> bytes:
        """The next binary WebSocket message; text messages break CHN-001."""
        msg = await self._receive()
        if msg["type"] == "websocket.disconnect":
            raise _Closed(f"peer closed ({msg.get('code')})")
        if msg.get("text") is not None:
            self.log("violation", requirement="CHN-001", detail="text WebSocket message")
            await self._fail(FrameError(pb.ERROR_CODE_MALFORMED, "text WebSocket message", "CHN-001"))
        data = msg.get("bytes") or b""
        if len(data) > self.gk.settings.max_frame:
            await self._fail(FrameError(pb.ERROR_CODE_TOO_LARGE,
                                        f"frame of {len(data)} bytes exceeds {self.gk.settings.max_frame}",
                                        "CHN-005", close_code=1009))
        self._activity.set()
        return data

    async def _handshake(self) -> None:
        wire = self.wire
        try:
            hello = None
            while hello is None:
                data = await self._frame()
                events = wire.receive(data)
                for out in wire.data_to_send():
                    await self._send({"type": "websocket.send", "bytes": out})
                self._hs_stage = wire.stage
                hello = next((e for e in events if isinstance(e, Hello)), None)
        except HandshakeFailed as exc:
            self.log("handshake_failed", reason="noise", detail=exc.detail, requirement=exc.requirement)
            await self._close(1002, "bad handshake")
        except FrameError as exc:  # wa: a frame after the handshake in the same message
            await self._fail(exc)
        if hello.problem is not None:
            await self._refuse(HandshakeRejected(*hello.problem))
        assert hello.hello is not None
        try:
            account = await self._authenticate(hello.remote_static, hello.hello, self)
        except HandshakeRejected as exc:
            await self._refuse(exc)
        self.login, self.account = account.login, account
        self.gk.attach(self)
        # CHN-002: a fingerprint of the client's handshake ephemeral (message 1), so that a
        # client reusing one ephemeral across connections can be told from a fresh handshake.
        self.log("connected", peer=self.peer, protocol_version=hello.hello.protocol_version,
                 wire=wire.name, ephemeral=hashlib.sha256(hello.ephemeral).hexdigest()[:16])
        for ev in events:  # stanzas that came in the same WebSocket message as the handshake
            if isinstance(ev, Incoming):
                self._early.append(ev)

    async def _refuse(self, exc: HandshakeRejected) -> None:
        self.log("handshake_failed", reason=code_name(exc.code), detail=exc.detail,
                 requirement=exc.requirement)
        await self._send_now(error_stanza("", exc.code, exc.detail))
        await self._close(1008, code_name(exc.code))

    async def _read_loop(self) -> None:
        while self._early:
            ev = self._early.popleft()
            self.log("stanza_received", **describe(ev.stanza, ev.size))
            await self._handle(self, ev.stanza)
        while True:
            frame = await self._frame()
            try:
                events = self.wire.receive(frame)
            except FrameError as exc:
                if exc.unparseable_size is not None:
                    self.log("stanza_received", type="unparseable", size=exc.unparseable_size)
                await self._fail(exc)
            for ev in events:
                if isinstance(ev, Incoming):
                    self.log("stanza_received", **describe(ev.stanza, ev.size))
                    await self._handle(self, ev.stanza)

    # -- sending -----------------------------------------------------------------------------------
    def reply(self, stanza: pb.Stanza) -> None:
        """Queue an answer; a client that lets answers pile up is disconnected (bounded memory)."""
        if len(self._replies) >= self.gk.settings.send_queue:
            self.log("send_queue_full", size=len(self._replies))
            self.close_soon(1008, "send queue full")
            return
        self._replies.append(stanza)
        self._wake.set()

    def kick(self) -> None:
        """The mailbox changed: let the writer look at it."""
        self._wake.set()

    async def _writer(self) -> None:
        settings = self.gk.settings
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._replies:
                await self._send_now(self._replies.popleft())
            if self.login is None:
                continue
            for entry in self.gk.mailbox.pending(self.login):
                if len(self.inflight) >= settings.max_inflight:
                    break
                if entry.stanza.id in self.inflight:
                    continue
                self.inflight.add(entry.stanza.id)
                await self._send_now(entry.stanza)
                if self._replies:  # answers go first
                    self._wake.set()
                    break
            if self._closing:
                try:
                    await self._close(*self._closing)
                finally:
                    if self._reader is not None:
                        self._reader.cancel()

    async def _send_now(self, stanza: pb.Stanza) -> None:
        async with self._send_lock:
            if not self.wire.ready:
                return
            size = self.wire.send(stanza)
            for out in self.wire.data_to_send():
                await self._send({"type": "websocket.send", "bytes": out})
        kind = "error_sent" if stanza.WhichOneof("body") == "error" else "stanza_sent"
        self.log(kind, **describe(stanza, size))

    async def ping(self) -> asyncio.Future[None]:
        sid = fresh_id("ping")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pongs[sid] = fut
        self.reply(pb.Stanza(id=sid, ping=pb.Ping()))
        return fut

    async def _keepalive(self) -> None:
        """CHN-008: ping a quiet connection; no pong within the timeout ends it."""
        s = self.gk.settings
        while True:
            try:
                await asyncio.wait_for(self._activity.wait(), s.ping_interval_s)
                self._activity.clear()
                continue
            except TimeoutError:
                pass
            fut = await self.ping()
            try:
                await asyncio.wait_for(fut, s.pong_timeout_s)
            except TimeoutError:
                self.log("ping_timeout", requirement="CHN-008")
                self.close_soon(1001, "no pong")
                return

    # -- closing -----------------------------------------------------------------------------------
    async def _fail(self, exc: FrameError) -> None:
        """A protocol error: tell the client why (when the channel allows) and close."""
        self.log("protocol_error", code=code_name(exc.code), detail=exc.detail,
                 requirement=exc.requirement)
        if self.wire.ready:
            try:
                await self._send_now(error_stanza("", exc.code, exc.detail))
            except (ChannelError, WAError):
                pass
        await self._close(exc.close_code, code_name(exc.code))

    def close_soon(self, code: int, reason: str) -> None:
        """Close from outside the reader (script, deletion, replacement): after queued answers."""
        if self._closing is None:
            self._closing = (code, reason)
        self._wake.set()
        if self._reader is None and self._hs is not None:
            self._hs.cancel()

    async def _close(self, code: int, reason: str) -> None:
        if self._closing is None or self._closing[1] != reason:
            self._closing = (code, reason)
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason[:120]})
        except Exception:  # noqa: BLE001, S110 - the socket may already be gone; best effort
            pass
        raise _Closed(reason)

    async def wait_closed(self, timeout: float) -> None:
        await asyncio.wait_for(self._closed.wait(), timeout)
