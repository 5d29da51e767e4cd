"""The chat channel of one client (spec §5): WebSocket, the binding (:mod:`.wire`), requests and
their answers, rate-limit back-off, and the reader that hands every other stanza on.

One :class:`Channel` lives as long as its client and carries one connection at a time. It
answers what belongs to the channel itself (answers to pending requests, ``ping``) and hands
messages, receipts, notifications and unknown stanzas to ``on_stanza``, in order, one at a time.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import WebSocketException

from reference_impl.channel import ChannelError, ClientHello
from reference_impl.wire import stanzas_pb2 as pb

from ..faults import Faults
from .errors import ClientError, ConnectFailed, ConnectionLost, StanzaError
from .wire import ClientWire, make_client_wire

__all__ = ["Channel", "SUBPROTOCOL"]

SUBPROTOCOL = "interop.v1"

log = logging.getLogger("reference_impl.provider.client")

#: Stanzas that answer a request by its id.
ANSWERS = ("ack", "pong", "key_bundle", "blocklist")


class Channel:
    """One client's connection to G and its request/answer bookkeeping."""

    def __init__(self, *, handle: str, faults: Faults, timeout: float,
                 spawn: Callable[[Awaitable[object]], asyncio.Task],
                 on_stanza: Callable[[pb.Stanza], Awaitable[None]],
                 on_lost: Callable[[bool], None],
                 on_un_enlisted: Callable[[], None]) -> None:
        self.handle = handle
        self.faults = faults
        self.timeout = timeout
        self._spawn = spawn
        self._on_stanza = on_stanza
        self._on_lost = on_lost
        self._on_un_enlisted = on_un_enlisted
        self._ws: ClientConnection | None = None
        self._wire: ClientWire | None = None
        self._reader: asyncio.Task | None = None
        self._send_lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future] = {}
        #: Set once the start-up exchange is done (by the client), cleared when the connection ends.
        self.ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._closed.set()
        #: The last connection-level error code G sent (e.g. ``un_enlisted``).
        self.error = ""
        self._kind_ready: dict[str, float] = {}
        self._kind_backoff: dict[str, float] = {}
        self._id_counter = 0
        self._id_prefix = secrets.token_hex(4)
        #: Fault ``noise_ephemeral_reused`` only: one ephemeral private key for every handshake.
        self._cached_ephemeral = secrets.token_bytes(32) if faults.on("noise_ephemeral_reused") else None

    @property
    def connected(self) -> bool:
        return self.ready.is_set()

    # ------------------------------------------------------------------ ids
    def new_id(self, prefix: str = "r") -> str:
        self._id_counter += 1
        if self.faults.on("stanza_id_reuse"):
            return f"{prefix}{self._id_counter}"
        return f"{prefix}{self._id_prefix}{secrets.token_hex(6)}{self._id_counter}"

    # ------------------------------------------------------------------ open / close
    async def open(self, url: str, ssl_ctx: ssl.SSLContext | None, authkey: bytes,
                   hello: Callable[[], ClientHello], expected_server_static: bytes | None, *,
                   wire: str = "open", login: str = "", root_public: bytes | None = None) -> None:
        """Connect, run the binding's handshake and start the reader; raises :class:`ConnectFailed`.
        ``hello`` gives the handshake payload (a fresh JWT): ``open`` asks once G's handshake
        message arrived, ``wa`` when the connection starts (its payload is fixed up front)."""
        timeout = self.timeout
        if self.faults.on("stanza_id_reuse"):
            self._id_counter = 0
        try:
            ws = await asyncio.wait_for(ws_connect(
                url, subprotocols=None if self.faults.on("ws_no_subprotocol") else [SUBPROTOCOL],
                ssl=ssl_ctx,
                open_timeout=timeout, max_size=2 ** 17, ping_interval=None,
                close_timeout=2), timeout + 1)
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            raise ConnectFailed("network", f"cannot open the chat channel: {exc!r}") from None
        try:
            binding = make_client_wire(wire, authkey=authkey, hello=hello, login=login,
                                       root_public=root_public,
                                       expected_server_static=expected_server_static,
                                       faults=self.faults,
                                       ephemeral_private=self._cached_ephemeral)
            for out in binding.start():
                await ws.send(out)
            final: list[bytes] | None = None
            while final is None:
                msg2 = await asyncio.wait_for(ws.recv(), timeout)
                if not isinstance(msg2, bytes):
                    raise ChannelError("text frame in handshake")
                final = binding.handshake(msg2)
            for out in final:
                await ws.send(out)
        except ChannelError as exc:
            await ws.close()
            raise ConnectFailed("handshake", str(exc)) from None
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await ws.close()
            raise ConnectFailed("network", f"handshake interrupted: {exc!r}") from None
        self._ws, self._wire = ws, binding
        self._closed.clear()
        self._reader = self._spawn(self._read_loop(ws))

    async def close(self) -> None:
        """Close the connection (if any) and wait until the reader has finished with it."""
        ws = self._ws
        self.ready.clear()
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)
        if self._reader is not None and self._reader is not asyncio.current_task():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
        if ws is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed.wait(), 5)

    def _lost(self) -> None:
        """Called once by the reader when its connection ends."""
        was_ready = self.ready.is_set()
        self.ready.clear()
        self._ws, self._wire = None, None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost())
        self._pending.clear()
        self._closed.set()
        self._on_lost(was_ready)

    # ------------------------------------------------------------------ framing
    async def write(self, stanza: pb.Stanza) -> None:
        async with self._send_lock:
            ws, binding = self._ws, self._wire
            if ws is None or binding is None:
                raise ConnectionLost()
            try:
                for frame in binding.encode(stanza):
                    await asyncio.wait_for(ws.send(frame), self.timeout)
            except (WebSocketException, OSError, asyncio.TimeoutError):
                raise ConnectionLost() from None

    async def ack(self, stanza_id: str) -> None:
        await self.write(pb.Stanza(id=stanza_id, ack=pb.Ack()))

    async def _wait_kind(self, kind: str) -> None:
        """CON-010: no stanza of a rate-limited kind before its delay has passed."""
        if self.faults.on("no_backoff"):
            return
        delay = self._kind_ready.get(kind, 0) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _rate_limited(self, kind: str, retry_after_ms: int) -> float:
        if retry_after_ms:
            delay = retry_after_ms / 1000
            self._kind_backoff[kind] = 0
        else:
            delay = max(1.0, self._kind_backoff.get(kind, 0) * 2)
            self._kind_backoff[kind] = delay
        self._kind_ready[kind] = time.monotonic() + delay
        return delay

    async def request(self, stanza: pb.Stanza, *, ready: bool = True,
                      max_rate_retries: int = 8,
                      still_allowed: Callable[[], bool] | None = None) -> pb.Stanza:
        """Send a request and wait for its answer; resends after ``rate_limited``.

        ``still_allowed`` is asked again before every resend: consent may be revoked or the
        peer blocked while the request waits out its back-off (CON-004, CON-007)."""
        kind = stanza.WhichOneof("body")
        attempts = 0
        while True:
            if ready:
                await asyncio.wait_for(self.ready.wait(), self.timeout * 3)
            await self._wait_kind(kind)
            if attempts and still_allowed is not None and not still_allowed():
                raise ClientError(409, "refused", reason="consent_revoked")
            if not stanza.id or attempts:
                if kind != "message":  # a message keeps its id (it is the message id)
                    stanza.id = self.new_id()
            fut: asyncio.Future = asyncio.get_running_loop().create_future()
            self._pending[stanza.id] = fut
            try:
                await self.write(stanza)
                answer = await asyncio.wait_for(fut, self.timeout)
            finally:
                self._pending.pop(stanza.id, None)
            if answer.WhichOneof("body") != "error":
                self._kind_backoff[kind] = 0
                return answer
            err = StanzaError(answer.error)
            if err.code == "rate_limited" and attempts < max_rate_retries:
                attempts += 1
                self._rate_limited(kind, err.retry_after_ms)
                continue
            if err.code == "un_enlisted":
                self._on_un_enlisted()
            raise err

    # ------------------------------------------------------------------ reader
    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            while True:
                try:
                    frame = await ws.recv()
                except (WebSocketException, OSError):
                    return
                if not isinstance(frame, bytes) or self._wire is None:
                    return
                try:
                    stanzas = self._wire.receive(frame)
                except ChannelError:
                    log.warning("client %s: undecodable frame; closing", self.handle)
                    return
                for stanza in stanzas:
                    try:
                        await self._dispatch(stanza)
                    except ConnectionLost:
                        return
                    except Exception:  # a bug handling one stanza must not kill the channel
                        log.exception("client %s: error handling a %s stanza", self.handle,
                                      stanza.WhichOneof("body"))
        finally:
            with contextlib.suppress(Exception):
                await ws.close()
            self._lost()

    async def _dispatch(self, st: pb.Stanza) -> None:
        body = st.WhichOneof("body")
        if body in ANSWERS or (body == "error" and st.id):
            fut = self._pending.get(st.id)
            if fut is not None and not fut.done():
                fut.set_result(st)
            elif body == "error":
                err = StanzaError(st.error)
                if err.code == "un_enlisted":
                    self._on_un_enlisted()
            return
        if body == "error":  # connection-level
            err = StanzaError(st.error)
            self.error = err.code
            log.info(json.dumps({"event": "connection_error", "user": self.handle, "code": err.code}))
            if err.code == "un_enlisted" and self.connected:
                self._on_un_enlisted()
            return
        if body == "ping":
            if not self.faults.on("no_pong"):
                await self.write(pb.Stanza(id=st.id, pong=pb.Pong()))
            return
        await self._on_stanza(st)
