"""One provider client per user: enlistment, the chat channel, Signal sessions, content,
receipts, media, consent, blocking, back-off and re-enlistment.

Groups (sender keys, spec §10): membership comes from ``group_membership`` notifications and
is kept in ``state["groups"]`` with the participants that hold the client's current sender key;
sender keys (own and received) live in the persisted :class:`ProtocolStore`.

Everything the client knows is persisted (SQLite, through :class:`Storage`) before it is
acknowledged to the gatekeeper, so a restarted process continues every conversation without
losing or duplicating a message. Every network wait has a timeout.

Concurrency model (asyncio, one event loop):
- a *reader* task per connection decrypts incoming stanzas in order and answers them;
- a *sender* task per client sends the user's messages one by one, in order, each after the
  previous one was acknowledged (or failed);
- anything that must wait for an answer from G while the reader is busy (retry resends,
  receipts, blocklist updates) runs in its own task.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from google.protobuf.message import DecodeError
from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import WebSocketException

from reference_impl.channel import PROTOCOL_VERSION, ChannelError, ClientHello, NoiseInitiator
from reference_impl.media import MediaType, decrypt_media, derive_media_keys, encrypt_media
from reference_impl.signal import (
    KeyPair,
    PrivateKey,
    ProtocolStore,
    PublicKey,
    sender_keys,
    session,
    xeddsa,
)
from reference_impl.signal.crypto import aes_cbc_decrypt, sha256
from reference_impl.signal.errors import (
    DuplicateMessageError,
    InvalidMediaError,
    InvalidSignatureError,
    NoSessionError,
    SignalError,
    UntrustedIdentityError,
)
from reference_impl.signal.store import SignedPreKeyRecord
from reference_impl.signal.x3dh import PreKeyBundle
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb
from reference_impl.wire.message_key import target_author, target_key

from . import e2e
from .config import GatekeeperSettings, ProviderConfig
from .faults import Faults
from .storage import Storage
from .tokens import TokenIssuer, b64u

__all__ = ["ProviderClient", "ClientContext", "ClientError", "ConnectFailed", "EnlistFailed"]

#: E2E-005 / GRP-004: the profile allows at most 2000 skipped message keys (libsignal: 25 000).
PROFILE_MAX_SKIPPED_KEYS = 2000

log = logging.getLogger("reference_impl.provider.client")

SUBPROTOCOL = "interop.v1"
MAX_PRE_KEY_ID = 0xFFFFFF
_MEDIA_FIELDS = {"image": "image", "video": "video", "audio": "audio", "document": "document",
                 "sticker": "sticker"}
_CHECK_REASON = {"file_enc_sha256": "enc_sha256", "mac": "mac", "file_sha256": "sha256",
                 "length": "length", "decrypt": "mac", "media_key": "mac"}
_ERR = {v.number: v.name.removeprefix("ERROR_CODE_").lower()
        for v in pb.ErrorCode.DESCRIPTOR.values}


def _now_ms() -> int:
    return int(time.time() * 1000)


class ClientError(Exception):
    """A harness action the client refuses; ``kind`` is the problem type suffix."""

    def __init__(self, status: int, kind: str, detail: str = "", reason: str = "") -> None:
        super().__init__(detail or kind)
        self.status, self.kind, self.detail, self.reason = status, kind, detail, reason


class EnlistFailed(ClientError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(422, "enlistment-failed", detail or f"enlistment failed: {reason}", reason)


class ConnectFailed(ClientError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(502, "connect-failed", detail or f"connection refused: {reason}", reason)


class _StanzaError(Exception):
    def __init__(self, err: pb.Error) -> None:
        super().__init__(f"{_ERR.get(err.code, err.code)}: {err.detail}")
        self.code = _ERR.get(err.code, str(err.code))
        self.retry_after_ms = err.retry_after_ms
        self.user = err.user


class _ConnectionLost(Exception):
    pass


@dataclass
class ClientContext:
    """What every client shares: settings, storage, the token issuer and HTTP clients."""

    config: ProviderConfig
    faults: Faults
    storage: Storage
    tokens: TokenIssuer
    gatekeeper: Callable[[], GatekeeperSettings | None]
    g_http: Callable[[], httpx.AsyncClient]
    upload_url: Callable[[], str]
    own_http: Callable[[], httpx.AsyncClient]
    on_opt_out: Callable[[str], Awaitable[None]]


def default_state() -> dict[str, Any]:
    return {
        "authkey": secrets.token_bytes(32).hex(), "login": "", "enlisted": False,
        "opted_out": False, "deletion_pending": False, "online": False, "wake_on_push": True,
        "next_pre_key_id": 1, "next_spk_id": 1, "spk_id": 0, "needs_pre_keys": False,
        "needs_blocklist": False, "spk_upload_pending": False, "blocked": [], "block_ops": [],
        "consent": {}, "pings": {}, "retry_sent": {}, "enlist_attempts": [],
        "identity_notified": {},
        # gid -> {"participants": [...], "member": bool, "key_holders": [...]}; key_holders are
        # the participants that were sent the client's current sender key (GRP-001, GRP-005).
        "groups": {},
        # f"{sender}\n{message id}" -> group id, for group messages we asked to be resent
        "retry_groups": {},
    }


class ProviderClient:
    def __init__(self, ctx: ClientContext, handle: str, user_visible_id: str,
                 state: dict[str, Any], store_json: str | None) -> None:
        self.ctx = ctx
        self.faults = ctx.faults
        self.handle = handle
        self.user_visible_id = user_visible_id
        self.state = {**default_state(), **state}
        self.store = ProtocolStore.from_json(store_json) if store_json else ProtocolStore.generate()
        self._ws: ClientConnection | None = None
        self._transport = None
        self._reader: asyncio.Task | None = None
        self._send_lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future] = {}
        self._ready = asyncio.Event()
        self._closed_evt = asyncio.Event()
        self._closed_evt.set()
        self._conn_lock = asyncio.Lock()
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()
        self._sender: asyncio.Task | None = None
        self._reconnector: asyncio.Task | None = None
        self._id_counter = 0
        self._id_prefix = secrets.token_hex(4)
        self._kind_ready: dict[str, float] = {}
        self._kind_backoff: dict[str, float] = {}
        self._deliberate_close = False
        self._stopped = False
        self._conn_error = ""
        self._reenlisting = False

    # ------------------------------------------------------------------ persistence / events
    @property
    def login(self) -> str:
        return self.state["login"]

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def save(self) -> None:
        self.ctx.storage.save_user(self.handle, self.state, self.store.to_json())

    def event(self, type_: str, **fields: Any) -> dict:
        body = {"type": type_, **{k: v for k, v in fields.items() if v is not None}}
        ev = self.ctx.storage.add_event(self.handle, body)
        log.info(json.dumps({"event": "client_event", "user": self.handle, **body}))
        return ev

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, (_ConnectionLost, ClientError, asyncio.TimeoutError)):
                log.error("client %s task failed", self.handle, exc_info=exc)

    def start(self) -> None:
        """Start the sender; resume pending sends and the connection the user left on."""
        self._sender = self._spawn(self._send_loop())
        for item, _ in self.ctx.storage.messages_with_status(self.handle, "sending"):
            self._outbox.put_nowait((item["peer"], item["message_id"]))
        self._spawn(self._resume_pending_media())
        if self.state["online"] and self.state["enlisted"] and not self.state["opted_out"]:
            self._schedule_reconnect(initial=0.0)
        elif self.state["deletion_pending"]:
            self._spawn(self._deletion_loop())

    async def stop(self) -> None:
        """Stop all I/O without changing what the user asked for (used on shutdown)."""
        self._stopped = True
        await self._close(deliberate=True)
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t

    # ------------------------------------------------------------------ ids
    def _new_id(self, prefix: str = "r") -> str:
        self._id_counter += 1
        if self.faults.on("stanza_id_reuse"):
            return f"{prefix}{self._id_counter}"
        return f"{prefix}{self._id_prefix}{secrets.token_hex(6)}{self._id_counter}"

    # ------------------------------------------------------------------ enlistment
    def _gk(self) -> GatekeeperSettings:
        gk = self.ctx.gatekeeper()
        if gk is None:
            raise ClientError(409, "no-gatekeeper", "POST /reset with the gatekeeper's settings first")
        return gk

    def _ensure_spk(self) -> SignedPreKeyRecord:
        spk_id = self.state["spk_id"]
        if spk_id and spk_id in self.store.signed_pre_keys:
            return self.store.signed_pre_keys[spk_id]
        return self._new_spk()

    def _new_spk(self) -> SignedPreKeyRecord:
        rotating = bool(self.state["spk_id"])  # not the first signed pre-key of this store
        spk_id = self.state["next_spk_id"]
        self.state["next_spk_id"] = spk_id % MAX_PRE_KEY_ID + 1
        rec = self.store.generate_signed_pre_key(spk_id, timestamp=int(time.time()))
        if rotating and self.faults.on("spk_signature_raw_key"):
            sig = xeddsa.sign(self.store.identity.private, rec.key_pair.public.serialize()[1:])
            rec = SignedPreKeyRecord(rec.key_id, rec.key_pair, sig, rec.timestamp)
            self.store.signed_pre_keys[spk_id] = rec
        self.state["spk_id"] = spk_id
        # E2E-021: keep previous signed pre-keys for at least 7 days (we keep 30).
        cutoff = time.time() - 30 * 86400
        for kid, old in list(self.store.signed_pre_keys.items()):
            if kid != spk_id and old.timestamp and old.timestamp < cutoff:
                del self.store.signed_pre_keys[kid]
        return rec

    async def enlist(self) -> str:
        gk = self._gk()
        if self.state["opted_out"]:
            # CON-008: a new opt-in needs a new enlistment with new keys.
            self.store = ProtocolStore.generate()
            self.state.update(authkey=secrets.token_bytes(32).hex(), opted_out=False,
                              deletion_pending=False, spk_id=0, consent={}, retry_sent={})
        now = time.time()
        attempts = [t for t in self.state["enlist_attempts"] if now - t < 60]
        if len(attempts) >= 3:  # ENL-007: at most 3 enlistment requests per 60 s
            self.event("enlistment_failed", reason="local_rate_limit")
            raise EnlistFailed("local_rate_limit", "3 enlistment attempts within 60 s; try later")
        self.state["enlist_attempts"] = attempts + [now]
        spk = self._ensure_spk()
        authkey = PrivateKey(bytes.fromhex(self.state["authkey"]))
        spk_pub = spk.key_pair.public.serialize()
        sig = spk.signature
        if self.faults.on("enlist_signature_by_authkey"):
            sig = xeddsa.sign(authkey, spk_pub)
        form = {
            "authkey": b64u(authkey.public_key().serialize()[1:]),
            "e_keytype": b64u(b"\x05"),
            "e_regid": b64u(self.store.registration_id.to_bytes(4, "big")),
            "e_ident": b64u(self.store.identity.public.serialize()[1:]),
            "e_skey_id": b64u(spk.key_id.to_bytes(3, "big")),
            "e_skey_val": b64u(spk_pub[1:]),
            "e_skey_sig": b64u(sig),
            "token": self.ctx.tokens.issue(self.user_visible_id, handle=self.handle),
            "version": PROTOCOL_VERSION,
        }
        if self.faults.on("enlist_extra_field"):
            form["device_name"] = "reference-provider"
        self.state["enlisted"] = False
        self.save()
        reason, login = "", ""
        try:
            resp = await self.ctx.g_http().post(gk.enlist_url, data=form,
                                                timeout=self.ctx.config.network_timeout)
        except httpx.HTTPError as exc:
            reason = "network"
            detail = f"{type(exc).__name__}: {exc}"
        else:
            detail = f"HTTP {resp.status_code}"
            try:
                body = resp.json()
            except ValueError:
                body = None
            if self.faults.on("enlist_fail_as_success") and resp.status_code == 200:
                login = str(body.get("login") or "") if isinstance(body, dict) else ""
                reason = ""
            elif (resp.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok"
                  and isinstance(body.get("login"), str) and body["login"]):
                login = body["login"]
            else:
                reason = "malformed_answer"
                if isinstance(body, dict) and body.get("status") == "fail":
                    reason = str(body.get("reason") or "fail")
                elif resp.status_code != 200:
                    reason = f"http_{resp.status_code}"
        if reason:
            self.save()
            self.event("enlistment_failed", reason=reason)
            raise EnlistFailed(reason, f"enlistment failed ({reason}; {detail})")
        self.state.update(login=login, enlisted=True, needs_pre_keys=True, needs_blocklist=True,
                          identity_notified={})
        self.save()
        self.event("enlisted")
        return login

    # ------------------------------------------------------------------ connection
    def _ssl(self, url: str) -> ssl.SSLContext | None:
        if not url.startswith(("wss:", "https:")):
            return None
        ctx = ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # TRN-006
        gk = self._gk()
        if gk.ca_certificates:
            ctx.load_verify_locations(cadata=gk.ca_certificates)
        return ctx

    async def connect(self) -> None:
        """Connect and finish the start-up exchange; raises :class:`ConnectFailed`."""
        if self.state["opted_out"] and not self.state["deletion_pending"]:
            raise ClientError(409, "opted-out", "the user opted out; enlist again first")
        if not self.state["enlisted"] or not self.login:
            raise ClientError(409, "not-enlisted", "enlist the user first")
        async with self._conn_lock:
            if not self.connected:
                await self._connect_once()
        self.state["online"] = True
        self.save()

    async def _connect_once(self) -> None:
        gk = self._gk()
        timeout = self.ctx.config.network_timeout
        self._deliberate_close = False
        if self.faults.on("stanza_id_reuse"):
            self._id_counter = 0
        try:
            ws = await asyncio.wait_for(ws_connect(
                gk.chat_url, subprotocols=[SUBPROTOCOL], ssl=self._ssl(gk.chat_url),
                open_timeout=timeout, max_size=2 ** 17, ping_interval=None,
                close_timeout=2), timeout + 1)
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            raise ConnectFailed("network", f"cannot open the chat channel: {exc!r}") from None
        try:
            init = NoiseInitiator(bytes.fromhex(self.state["authkey"]))
            await ws.send(init.start())
            msg2 = await asyncio.wait_for(ws.recv(), timeout)
            if not isinstance(msg2, bytes):
                raise ChannelError("text frame in handshake")
            expected = None if self.faults.on("no_gatekeeper_key_check") else gk.noise_static_key
            hello = ClientHello(self.ctx.tokens.issue(self.user_visible_id, handle=self.handle),
                                PROTOCOL_VERSION, self.login)
            msg3 = init.finish(msg2, hello, expected_server_static=expected)
            await ws.send(msg3)
        except ChannelError as exc:
            await ws.close()
            raise ConnectFailed("handshake", str(exc)) from None
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await ws.close()
            raise ConnectFailed("network", f"handshake interrupted: {exc!r}") from None
        self._ws, self._transport = ws, init.transport
        self._closed_evt.clear()
        self._reader = self._spawn(self._read_loop(ws))
        try:
            await self._startup()
        except _StanzaError as exc:
            await self._close(deliberate=True)
            if exc.code == "un_enlisted":
                self._spawn(self._handle_un_enlisted())
            raise ConnectFailed(exc.code) from None
        except (_ConnectionLost, asyncio.TimeoutError) as exc:
            reason = getattr(self, "_conn_error", "") or "closed"
            await self._close(deliberate=True)
            if reason == "un_enlisted":
                self._spawn(self._handle_un_enlisted())
            raise ConnectFailed(reason, f"connection closed during start-up: {exc!r}") from None
        self._conn_error = ""
        self._ready.set()
        self.event("connected")
        log.info(json.dumps({"event": "connected", "user": self.handle, "login": self.login}))
        self._spawn(self._flush_control())

    async def _startup(self) -> None:
        # CON-006: read the blocklist before any message stanza (every connection).
        answer = await self._request(pb.Stanza(blocklist_get=pb.BlocklistGet()), ready=False)
        blocked = set(self.state["blocked"])
        if self.state["needs_blocklist"]:
            pending_removes = {op["peer"] for op in self.state["block_ops"] if op["op"] == "remove"}
            blocked |= set(answer.blocklist.users) - pending_removes
            self.state["blocked"] = sorted(blocked)
            self.state["needs_blocklist"] = False
        if self.state["needs_pre_keys"]:
            await self._upload_pre_keys(self.ctx.config.prekey_batch, ready=False)
            self.state["needs_pre_keys"] = False
        self.save()

    async def _flush_control(self) -> None:
        """Things to retry after every (re)connection until G acknowledges them."""
        if self.state["spk_upload_pending"]:
            with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError):
                await self._upload_spk()
        if self.state["block_ops"]:
            with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError):
                await self._flush_block_ops()
        if self.state["deletion_pending"]:
            with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError):
                await self._send_deletion()

    async def disconnect(self, wake_on_push: bool = True) -> None:
        self.state["online"] = False
        self.state["wake_on_push"] = bool(wake_on_push)
        self.save()
        if self._reconnector is not None:
            self._reconnector.cancel()
            self._reconnector = None
        await self._close(deliberate=True)

    async def _close(self, deliberate: bool) -> None:
        self._deliberate_close = self._deliberate_close or deliberate
        ws = self._ws
        self._ready.clear()
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)
        if self._reader is not None and self._reader is not asyncio.current_task():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
        if ws is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed_evt.wait(), 5)

    def _connection_lost(self) -> None:
        """Called once by the reader when its connection ends."""
        was_ready = self._ready.is_set()
        self._ready.clear()
        self._ws = self._transport = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(_ConnectionLost())
        self._pending.clear()
        self._closed_evt.set()
        if was_ready:
            self.event("disconnected")
        if not self._deliberate_close and not self._stopped and self.state["online"]:
            self._schedule_reconnect()

    def _schedule_reconnect(self, initial: float = 1.0) -> None:
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = self._spawn(self._reconnect_loop(initial))

    async def _reconnect_loop(self, initial: float) -> None:
        # CHN-011: wait >= 1 s before the first attempt, double up to 60 s.
        delay = initial
        while not self._stopped and self.state["online"] and not self.connected:
            await asyncio.sleep(delay)
            if self._stopped or not self.state["online"] or self.connected:
                return
            if not self.state["enlisted"]:
                return
            try:
                async with self._conn_lock:
                    if not self.connected:
                        await self._connect_once()
                return
            except ConnectFailed as exc:
                if exc.reason in ("un_enlisted", "protocol_version"):
                    return
            delay = min(max(delay * 2, 1.0), 60.0)

    async def wake(self) -> bool:
        """A push arrived for this user (CHN-019)."""
        if self.connected or not self.state["enlisted"] or not self.state["wake_on_push"]:
            return False
        self.state["online"] = True
        self.save()
        self._schedule_reconnect(initial=0.0)
        return True

    # ------------------------------------------------------------------ framing
    async def _write(self, stanza: pb.Stanza) -> None:
        async with self._send_lock:
            ws, transport = self._ws, self._transport
            if ws is None or transport is None:
                raise _ConnectionLost()
            frame = transport.encrypt(stanza.SerializeToString())
            try:
                await asyncio.wait_for(ws.send(frame), self.ctx.config.network_timeout)
            except (WebSocketException, OSError, asyncio.TimeoutError):
                raise _ConnectionLost() from None

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

    async def _request(self, stanza: pb.Stanza, *, ready: bool = True,
                       max_rate_retries: int = 8,
                       still_allowed: Callable[[], bool] | None = None) -> pb.Stanza:
        """Send a request and wait for its answer; resends after ``rate_limited``.

        ``still_allowed`` is asked again before every resend: consent may be revoked or the
        peer blocked while the request waits out its back-off (CON-004, CON-007)."""
        kind = stanza.WhichOneof("body")
        attempts = 0
        while True:
            if ready:
                await asyncio.wait_for(self._ready.wait(), self.ctx.config.network_timeout * 3)
            await self._wait_kind(kind)
            if attempts and still_allowed is not None and not still_allowed():
                raise ClientError(409, "refused", reason="consent_revoked")
            if not stanza.id or attempts:
                if kind != "message":  # a message keeps its id (it is the message id)
                    stanza.id = self._new_id()
            fut: asyncio.Future = asyncio.get_running_loop().create_future()
            self._pending[stanza.id] = fut
            try:
                await self._write(stanza)
                answer = await asyncio.wait_for(fut, self.ctx.config.network_timeout)
            finally:
                self._pending.pop(stanza.id, None)
            if answer.WhichOneof("body") != "error":
                self._kind_backoff[kind] = 0
                return answer
            err = _StanzaError(answer.error)
            if err.code == "rate_limited" and attempts < max_rate_retries:
                attempts += 1
                self._rate_limited(kind, err.retry_after_ms)
                continue
            if err.code == "un_enlisted":
                self._spawn(self._handle_un_enlisted())
            raise err

    # ------------------------------------------------------------------ reader
    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            while True:
                try:
                    frame = await ws.recv()
                except (WebSocketException, OSError):
                    return
                if not isinstance(frame, bytes) or self._transport is None:
                    return
                try:
                    plain = self._transport.decrypt(frame)
                    stanza = pb.Stanza.FromString(plain)
                except (ChannelError, DecodeError):
                    log.warning("client %s: undecodable frame; closing", self.handle)
                    return
                try:
                    await self._dispatch(stanza)
                except _ConnectionLost:
                    return
                except Exception:  # a bug handling one stanza must not kill the channel
                    log.exception("client %s: error handling a %s stanza", self.handle,
                                  stanza.WhichOneof("body"))
        finally:
            with contextlib.suppress(Exception):
                await ws.close()
            self._connection_lost()

    async def _dispatch(self, st: pb.Stanza) -> None:
        body = st.WhichOneof("body")
        if body in ("ack", "pong", "key_bundle", "blocklist") or (body == "error" and st.id):
            fut = self._pending.get(st.id)
            if fut is not None and not fut.done():
                fut.set_result(st)
            elif body == "error":
                err = _StanzaError(st.error)
                if err.code == "un_enlisted":
                    self._spawn(self._handle_un_enlisted())
            return
        if body == "error":  # connection-level
            err = _StanzaError(st.error)
            self._conn_error = err.code
            log.info(json.dumps({"event": "connection_error", "user": self.handle, "code": err.code}))
            if err.code == "un_enlisted" and self.connected:
                self._spawn(self._handle_un_enlisted())
            return
        if body == "ping":
            if not self.faults.on("no_pong"):
                await self._write(pb.Stanza(id=st.id, pong=pb.Pong()))
            return
        if body == "message":
            await self._on_message(st)
        elif body == "receipt":
            self._on_receipt(st)
        elif body == "notification":
            self._on_notification(st)
        # CHN-007 / CHN-013: every message, receipt, notification and unknown stanza is acked.
        if body == "receipt" and self.faults.on("no_ack_for_receipts"):
            return
        await self._ack(st.id)

    async def _ack(self, stanza_id: str) -> None:
        await self._write(pb.Stanza(id=stanza_id, ack=pb.Ack()))

    # ------------------------------------------------------------------ incoming messages
    def _is_blocked(self, peer: str) -> bool:
        return peer in self.state["blocked"] and not self.faults.on("ignore_blocklist")

    def _identity_changed(self, peer: str, key: bytes) -> None:
        known = self.state["identity_notified"].get(peer)
        if known == key.hex():
            return
        self.state["identity_notified"][peer] = key.hex()
        if not self.faults.on("silent_identity_change"):
            self.event("identity_changed", peer=peer)

    async def _on_message(self, st: pb.Stanza) -> None:
        m = st.message
        sender, mid = m.sender, st.id
        if m.type == pb.ENC_TYPE_SKMSG or m.group_id:
            await self._on_group_message(st)
            return
        # A pairwise resend of a group message we asked for (GRP-006/007) belongs in the group.
        group_id = self.state["retry_groups"].get(f"{sender}\n{mid}", "")
        if group_id and self.ctx.storage.has_message(self.handle, group_id, sender, mid):
            return
        replay_fault = self.faults.on("accept_replayed_message")
        if not replay_fault and self.ctx.storage.has_message(self.handle, sender, sender, mid):
            return  # redelivery of something already surfaced (e.g. after a restart)
        msg_type = {pb.ENC_TYPE_PKMSG: "pkmsg", pb.ENC_TYPE_MSG: "msg"}.get(m.type, "?")
        digest = hashlib.sha256(m.ciphertext).hexdigest()
        try:
            try:
                plain = session.decrypt(self.store, sender, msg_type, m.ciphertext,
                                        max_forward_jumps=PROFILE_MAX_SKIPPED_KEYS)
            except UntrustedIdentityError as exc:
                # E2E-019: surface the change before any message under the new identity.
                self._identity_changed(sender, exc.identity_key)
                self.store.trust_identity(sender, PublicKey.from_bytes(exc.identity_key))
                plain = session.decrypt(self.store, sender, msg_type, m.ciphertext,
                                        max_forward_jumps=PROFILE_MAX_SKIPPED_KEYS)
            content_bytes = e2e.unpad(plain, self.faults)
            content = cpb.Message.FromString(content_bytes)
        except DuplicateMessageError:
            cached = self.ctx.storage.recall_decrypted(self.handle, digest) if replay_fault else None
            if cached is None:
                return  # E2E-006: a replay is dropped silently
            content = cpb.Message.FromString(e2e.unpad(cached, self.faults))
            plain = cached
        except (SignalError, DecodeError, ValueError) as exc:
            self._decryption_failed(sender, mid, exc)
            return
        if replay_fault:
            self.ctx.storage.remember_decrypted(self.handle, digest, plain)
        with self.ctx.storage.tx():
            surfaced_media = self._apply_content(sender, mid, m, content, group_id)
            self.state["retry_groups"].pop(f"{sender}\n{mid}", None)
            self.save()
        if surfaced_media is not None:
            self._spawn(self._download_media(*surfaced_media))
        if not self.faults.on("no_delivery_receipt"):
            self._spawn(self._send_receipt(sender, [mid], pb.RECEIPT_TYPE_DELIVERY, group_id))

    async def _on_group_message(self, st: pb.Stanza) -> None:
        """GRP-003 / GRP-004 / GRP-006: decrypt with the sender's key for the group (signature
        first, at most 2000 skipped iterations, state unchanged on failure) and surface the
        message in the group's conversation."""
        m = st.message
        gid, sender, mid = m.group_id, m.sender, st.id
        if m.type != pb.ENC_TYPE_SKMSG or not gid:
            self.event("decryption_failed", peer=gid or sender, message_id=mid, reason="malformed")
            return
        if self.ctx.storage.has_message(self.handle, gid, sender, mid):
            return  # redelivery of something already surfaced
        try:
            plain = e2e.group_decrypt(self.store, gid, sender, m.ciphertext, self.faults,
                                      max_forward_jumps=PROFILE_MAX_SKIPPED_KEYS)
            content = cpb.Message.FromString(e2e.unpad(plain, self.faults))
        except DuplicateMessageError:
            return  # a replay is dropped silently
        except NoSessionError as exc:  # GRP-006: no sender key, or not this key id
            self._decryption_failed(sender, mid, exc, group_id=gid)
            return
        except (SignalError, DecodeError, ValueError) as exc:
            # A bad signature is a forgery and a jump past the window is refused (GRP-003,
            # GRP-004): reported, not retried, since the sender's key was usable.
            self._decryption_failed(sender, mid, exc, group_id=gid, retry=False)
            return
        with self.ctx.storage.tx():
            surfaced_media = self._apply_content(sender, mid, m, content, gid)
            self.save()
        if surfaced_media is not None:
            self._spawn(self._download_media(*surfaced_media))
        if not self.faults.on("no_delivery_receipt"):
            self._spawn(self._send_receipt(sender, [mid], pb.RECEIPT_TYPE_DELIVERY, gid))

    def _decryption_failed(self, sender: str, mid: str, exc: Exception, *, group_id: str = "",
                           retry: bool = True) -> None:
        log.info(json.dumps({"event": "decryption_failed", "user": self.handle, "peer": sender,
                             "group": group_id or None, "message_id": mid,
                             "error": type(exc).__name__}))
        self.event("decryption_failed", peer=group_id or sender, message_id=mid,
                   reason=type(exc).__name__, participant=sender if group_id else None)
        if not retry or self.faults.on("no_retry_receipt" if not group_id else "group_no_retry_receipt"):
            return
        key = f"{sender}\n{mid}"
        count = self.state["retry_sent"].get(key, 0) + 1
        if count > 5:  # E2E-017: at most 5 retry receipts per message id
            return
        self.state["retry_sent"][key] = count
        if group_id:
            self.state["retry_groups"][key] = group_id
        self.save()
        receipt = pb.Receipt(type=pb.RECEIPT_TYPE_RETRY, message_ids=[mid], recipient=sender,
                             sender=self.login, timestamp_ms=_now_ms(), group_id=group_id,
                             registration_id=self.store.registration_id, retry_count=count)
        self._spawn(self._request_quietly(pb.Stanza(receipt=receipt)))

    async def _request_quietly(self, stanza: pb.Stanza) -> None:
        with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError):
            await self._request(stanza, ready=False)

    def _apply_content(self, sender: str, mid: str, m: pb.Message,
                       content: cpb.Message, group_id: str = "") -> tuple | None:
        """Surface decrypted content (in ``group_id``'s conversation when set); returns media
        to download, if any."""
        storage = self.ctx.storage
        which = content.WhichOneof("content")
        if content.HasField("sender_key_distribution") and m.type != pb.ENC_TYPE_SKMSG:
            skd = content.sender_key_distribution
            try:  # GRP-003: the sender's key for that group, from a pairwise message only
                sender_keys.process_distribution(self.store, skd.group_id, sender,
                                                 skd.distribution_message)
            except SignalError as exc:
                log.info(json.dumps({"event": "bad_sender_key", "user": self.handle, "peer": sender,
                                     "group": skd.group_id, "error": str(exc)}))
            if which is None:
                return None
        peer = group_id or sender
        blocked = self._is_blocked(sender)
        item: dict[str, Any] = {"message_id": mid, "peer": peer, "sender": sender,
                                "timestamp_ms": int(m.timestamp_ms) or _now_ms()}
        if which == "reaction":
            if not blocked:
                self._apply_reaction(sender, content.reaction, peer)
            return None
        if which == "protocol":
            p = content.protocol
            # Only the sender of the target may revoke it (E2E-014): the key must name the
            # sender's own message, and the lookup is in the sender's messages only.
            author = target_author(p.key, sender=sender)
            if p.type == cpb.ProtocolMessage.REVOKE and (
                    author == sender or self.faults.on("revoke_by_anyone")):
                found = storage.get_message(self.handle, peer, author, p.key.id)
                if found is not None:
                    target = found[0]
                    for k in ("text", "quoted_message_id", "quoted_sender", "media", "reactions"):
                        target.pop(k, None)
                    target["kind"] = "revoked"
                    target.pop("_hidden", None)
                    storage.update_message(self.handle, target)
            return None
        if blocked:
            return None  # CON-007: not surfaced
        if which == "conversation":
            item.update(kind="text", text=content.conversation)
        elif which == "extended_text":
            et = content.extended_text
            item.update(kind="text", text=et.text)
            if et.HasField("context_info") and et.context_info.quoted_message_id:
                item.update(kind="reply", quoted_message_id=et.context_info.quoted_message_id,
                            quoted_sender=et.context_info.quoted_sender)
        elif which in _MEDIA_FIELDS:
            media = getattr(content, which)
            item.update(kind="media", _hidden=True)
            meta: dict[str, Any] = {"type": which, "mimetype": media.mimetype}
            for f in ("caption", "file_name", "width", "height", "seconds", "ptt"):
                if f in media.DESCRIPTOR.fields_by_name and getattr(media, f):
                    meta[f] = getattr(media, f)
            if meta.get("ptt") and self.faults.on("voice_note_as_audio"):
                del meta["ptt"]
            item["media"] = meta
            ctx = getattr(media, "context_info", None)
            if ctx is not None and ctx.quoted_message_id:
                item.update(quoted_message_id=ctx.quoted_message_id, quoted_sender=ctx.quoted_sender)
            storage.add_message(self.handle, item, content.SerializeToString())
            return (sender, mid, peer)
        else:
            item.update(kind="unsupported")  # E2E-011
        storage.add_message(self.handle, item)
        return None

    def _apply_reaction(self, sender: str, r: cpb.ReactionMessage, peer_hint: str = "") -> None:
        storage = self.ctx.storage
        author = target_author(r.key, sender=sender)
        for peer in dict.fromkeys(p for p in (author, sender, peer_hint) if p):
            found = storage.get_message(self.handle, peer, author, r.key.id)
            if found is not None:
                break
        else:
            return
        target = found[0]
        reactions = {x["sender"]: x for x in target.get("reactions", [])}
        prev = reactions.get(sender)
        ts = int(r.sender_timestamp_ms)
        if prev is not None and prev.get("_ts", 0) > ts:
            return  # E2E-013: the latest sender_timestamp_ms wins
        if r.emoji:
            reactions[sender] = {"sender": sender, "emoji": r.emoji, "_ts": ts}
        else:
            reactions.pop(sender, None)
            reactions[f"_removed:{sender}"] = {"sender": f"_removed:{sender}", "emoji": "", "_ts": ts}
        target["reactions"] = list(reactions.values())
        storage.update_message(self.handle, target)

    async def _resume_pending_media(self) -> None:
        for item in self.ctx.storage.inbox(self.handle):
            if (item.get("_hidden") and item.get("kind") == "media" and not item.get("_rejected")
                    and item["sender"] != self.login):
                await self._download_media(item["sender"], item["message_id"], item["peer"])

    async def _download_media(self, sender: str, mid: str, peer: str = "") -> None:
        storage = self.ctx.storage
        found = storage.get_message(self.handle, peer or sender, sender, mid)
        if found is None or found[1] is None:
            return
        item, raw = found
        content = cpb.Message.FromString(raw)
        which = content.WhichOneof("content")
        media = getattr(content, which)
        gk = self._gk()
        url = gk.media_host.rstrip("/") + media.direct_path
        reason = ""
        plaintext = b""
        try:
            resp = await self.ctx.g_http().get(url, timeout=self.ctx.config.network_timeout * 3)
            if resp.status_code != 200:
                raise InvalidMediaError(f"HTTP {resp.status_code}", check="download")
            blob = resp.content
            if self.faults.on("accept_tampered_media"):
                keys = derive_media_keys(media.media_key, MediaType(which))
                try:
                    plaintext = aes_cbc_decrypt(keys.cipher_key, keys.iv, blob[:-10])
                except SignalError:
                    plaintext = blob
            else:
                # MED-006: enc SHA-256, then MAC, then decrypt, then SHA-256 and length.
                plaintext = decrypt_media(blob, media.media_key, MediaType(which),
                                          media.file_sha256, media.file_enc_sha256)
                if len(plaintext) != media.file_length:
                    raise InvalidMediaError("plaintext length differs from file_length", check="length")
        except InvalidMediaError as exc:
            reason = "download" if exc.check == "download" else _CHECK_REASON.get(exc.check, exc.check)
        except httpx.HTTPError:
            reason = "download"
        with storage.tx():
            if reason:
                item["kind"] = "media"
                item["_rejected"] = reason
                storage.update_message(self.handle, item)
                self.event("media_rejected", message_id=mid, peer=sender, reason=reason)
            else:
                item.pop("_hidden", None)
                item["media"]["sha256"] = sha256(plaintext).hex()
                storage.update_message(self.handle, item)

    # ------------------------------------------------------------------ receipts in
    def _on_receipt(self, st: pb.Stanza) -> None:
        r = st.receipt
        peer = r.sender
        if r.type == pb.RECEIPT_TYPE_RETRY:
            if r.group_id and r.message_ids:  # GRP-007
                self._spawn(self._answer_retry(peer, r.message_ids[0], r.registration_id,
                                               r.retry_count, group_id=r.group_id))
            elif not self.faults.on("ignore_retry_receipt") and r.message_ids:
                self._spawn(self._answer_retry(peer, r.message_ids[0], r.registration_id,
                                               r.retry_count))
            return
        if self._is_blocked(peer):
            return  # CON-007
        kind = {pb.RECEIPT_TYPE_DELIVERY: "delivery", pb.RECEIPT_TYPE_READ: "read"}.get(r.type)
        if kind is None or self.faults.on("receipts_not_surfaced"):
            return
        storage = self.ctx.storage
        conv = r.group_id or peer
        rank = {"sending": 0, "sent": 1, "delivered": 2, "read": 3, "failed": -1}
        with storage.tx():
            for mid in r.message_ids:
                found = storage.get_message(self.handle, conv, self.login, mid)
                if found is None:
                    continue
                item = found[0]
                status = "read" if kind == "read" else "delivered"
                if r.group_id:
                    # GRP-008: per participant; the message is delivered (read) once every
                    # other participant has delivered (read) it.
                    got = item.setdefault("_receipts", {})
                    if rank[status] > rank.get(got.get(peer, ""), 0):
                        got[peer] = status
                    others = [p for p in self.state["groups"].get(r.group_id, {}).get(
                        "participants", [peer]) if p != self.login] or [peer]
                    status = min((got.get(p, "sent") for p in others), key=rank.__getitem__)
                    storage.update_message(self.handle, item)
                if rank[status] > rank.get(item.get("status", ""), 0):
                    item["status"] = status
                    storage.update_message(self.handle, item)
            self.event("receipt", peer=conv, message_ids=list(r.message_ids), receipt=kind,
                       participant=r.sender if r.group_id else None)

    async def _answer_retry(self, peer: str, mid: str, registration_id: int, retry_count: int,
                            group_id: str = "") -> None:
        """E2E-018: resend the same content under the same id with the receipt's retry_count.
        GRP-007: for a group message, the content goes to the requester pairwise (only to a
        current participant), still under the original id."""
        found = self.ctx.storage.get_message(self.handle, group_id or peer, self.login, mid)
        if found is None or found[1] is None:
            return
        if group_id and peer not in self.state["groups"].get(group_id, {}).get("participants", []):
            return
        item, content = found
        if not self._may_send_to(peer, explicit=False):
            return
        rec = self.store.sessions.get(peer)
        known = rec.current.remote_registration_id if rec and rec.current else None
        if known is None or known != registration_id:
            self.store.sessions.pop(peer, None)  # a new session from a fresh key_fetch
        with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError, ClientError):
            await self._send_content(peer, mid, content, retry_count=retry_count)

    # ------------------------------------------------------------------ notifications
    def _on_notification(self, st: pb.Stanza) -> None:
        n = st.notification
        kind = n.WhichOneof("kind")
        if kind == "identity_change":
            user = n.identity_change.user
            key = bytes(n.identity_change.identity_key)
            self._identity_changed(user, key)
            with contextlib.suppress(Exception):
                self.store.trust_identity(user, PublicKey.from_bytes(key))
            self.store.sessions.pop(user, None)  # the next message starts a new session
            self.save()
        elif kind == "consent_revoked":
            user = n.consent_revoked.user
            if not self.faults.on("ignore_consent_revocation"):
                self._set_consent(user, "revoked")
                self._fail_queued(user, "consent_revoked")
            self.save()
            self.event("consent_changed", peer=user, consent="revoked")
        elif kind == "consent_granted":
            user = n.consent_granted.user
            self._set_consent(user, "granted")
            self.save()
            self.event("consent_changed", peer=user, consent="granted")
        elif kind == "group_membership":
            self._on_group_membership(n.group_membership)
            self.save()
        elif kind == "low_pre_keys":
            if not self.faults.on("no_prekey_replenish"):
                want = max(self.ctx.config.prekey_batch - n.low_pre_keys.count, 50)
                self._spawn(self._replenish(want))

    def _on_group_membership(self, gm: pb.GroupMembership) -> None:
        """GRP-005: after a removal our sender key is replaced (the next group message first
        distributes the new one to the remaining participants); added participants lack the
        current key, so they get it before the next message."""
        gid = gm.group_id
        participants = list(dict.fromkeys(gm.participants))
        member = self.login in participants
        group = self.state["groups"].get(gid)
        if group is None:
            self.state["groups"][gid] = {"participants": participants, "member": member,
                                         "key_holders": []}
            return
        removed = (set(gm.removed) | set(group["participants"])) - set(participants)
        group.update(participants=participants, member=member)
        if not member or (removed and not self.faults.on("group_no_rekey_on_removal")):
            self.store.sender_keys.pop((gid, self.login), None)  # a new key on next use
            group["key_holders"] = []
        else:
            group["key_holders"] = [p for p in group["key_holders"] if p in participants]

    def _set_consent(self, user: str, value: str) -> None:
        self.state["consent"][user] = value
        for alias, target in list(self.state.get("aliases", {}).items()):
            if target == user:
                self.state["consent"][alias] = value

    def _fail_queued(self, peer: str, reason: str) -> None:
        storage = self.ctx.storage
        for item, _ in storage.messages_with_status(self.handle, "sending"):
            if item["peer"] == peer:
                item["status"] = "failed"
                storage.update_message(self.handle, item)
                self.event("send_failed", peer=peer, message_id=item["message_id"], reason=reason)

    async def _replenish(self, count: int) -> None:
        with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError):
            await self._upload_pre_keys(count, ready=False)

    # ------------------------------------------------------------------ pre-keys
    async def _upload_pre_keys(self, count: int, *, ready: bool) -> None:
        if self.faults.on("reuse_one_time_prekeys"):
            start = 1
        else:
            start = self.state["next_pre_key_id"]
            if start + count > MAX_PRE_KEY_ID:
                start = 1  # 16.7 million ids used: wrap (ids of deleted keys only)
        keys = self.store.generate_pre_keys(start, count)
        self.state["next_pre_key_id"] = max(self.state["next_pre_key_id"], start + count)
        self.save()  # persist the private keys before G can hand them out
        up = pb.PreKeyUpload(one_time_pre_keys=[
            pb.OneTimePreKey(id=i, public_key=k.serialize()) for i, k in keys])
        await self._request(pb.Stanza(pre_key_upload=up), ready=ready)

    async def rotate_signed_pre_key(self) -> None:
        self._new_spk()
        self.state["spk_upload_pending"] = True
        self.save()
        if self.connected:
            with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError):
                await self._upload_spk()

    async def _upload_spk(self) -> None:
        spk = self.store.signed_pre_keys[self.state["spk_id"]]
        up = pb.PreKeyUpload(signed_pre_key=pb.SignedPreKey(
            id=spk.key_id, public_key=spk.key_pair.public.serialize(), signature=spk.signature))
        await self._request(pb.Stanza(pre_key_upload=up), ready=False)
        self.state["spk_upload_pending"] = False
        self.save()

    # ------------------------------------------------------------------ blocking
    def block(self, peer: str, blocked: bool) -> None:
        current = set(self.state["blocked"])
        current.add(peer) if blocked else current.discard(peer)
        self.state["blocked"] = sorted(current)
        self.state["block_ops"].append({"op": "add" if blocked else "remove", "peer": peer})
        self.save()
        if self.connected:
            self._spawn(self._flush_block_ops_quietly())

    async def _flush_block_ops_quietly(self) -> None:
        with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError):
            await self._flush_block_ops()

    async def _flush_block_ops(self) -> None:
        while self.state["block_ops"]:
            op = self.state["block_ops"][0]
            body = pb.BlocklistSet(add=[op["peer"]]) if op["op"] == "add" else pb.BlocklistSet(remove=[op["peer"]])
            await self._request(pb.Stanza(blocklist_set=body), ready=False)
            if self.state["block_ops"] and self.state["block_ops"][0] == op:
                self.state["block_ops"].pop(0)
            self.save()

    # ------------------------------------------------------------------ consent
    def _may_send_to(self, peer: str, explicit: bool) -> bool:
        consent = self.state["consent"].get(peer)
        if consent == "pinged" and not self.faults.on("send_without_consent"):
            return False
        if consent == "revoked" and not self.faults.on("ignore_consent_revocation"):
            return False
        if consent == "not_opted_in" and not explicit:
            return False
        return True

    async def reachability_ping(self, recipient: str) -> None:
        now = time.time()
        last = self.state["pings"].get(recipient, 0)
        if now - last < 86400:  # CON-003
            raise ClientError(429, "rate-limited", "a ping to this user was sent within 24 h")
        if not self.connected:
            raise ClientError(409, "not-connected", "the client is offline")
        self.state["pings"][recipient] = now
        if self.state["consent"].get(recipient) != "granted":
            self.state["consent"][recipient] = "pinged"
        self.save()
        self._spawn(self._ping(recipient))

    async def _ping(self, recipient: str) -> None:
        reason = ""
        try:
            await self._request(pb.Stanza(reachability_ping=pb.ReachabilityPing(recipient=recipient)))
        except _StanzaError as exc:
            reason = exc.code
        except (_ConnectionLost, asyncio.TimeoutError):
            reason = "connection_lost"
        self.event("reachability_result", peer=recipient, reason=reason)

    # ------------------------------------------------------------------ opt-out
    async def opt_out(self) -> None:
        if self.faults.on("no_deletion_on_opt_out"):
            self.state.update(opted_out=True, online=False)
            self.save()
            await self.disconnect(wake_on_push=False)
            await self.ctx.on_opt_out(self.user_visible_id)
            return
        self.state.update(opted_out=True, deletion_pending=bool(self.state["enlisted"]))
        self.save()
        await self.ctx.on_opt_out(self.user_visible_id)
        if self.state["deletion_pending"]:
            with contextlib.suppress(ClientError, _ConnectionLost, _StanzaError, asyncio.TimeoutError):
                if not self.connected:
                    async with self._conn_lock:
                        if not self.connected:
                            await self._connect_once()
                await self._send_deletion()
            if self.state["deletion_pending"]:
                self._spawn(self._deletion_loop())
        if not self.state["deletion_pending"]:
            await self._close(deliberate=True)

    async def _deletion_loop(self) -> None:
        delay = 1.0
        while self.state["deletion_pending"] and not self._stopped:
            await asyncio.sleep(delay)
            with contextlib.suppress(ClientError, _ConnectionLost, _StanzaError, asyncio.TimeoutError):
                if not self.connected:
                    async with self._conn_lock:
                        if not self.connected:
                            await self._connect_once()
                await self._send_deletion()
            delay = min(delay * 2, 60)

    async def _send_deletion(self) -> None:
        if not self.state["deletion_pending"]:
            return
        await self._request(pb.Stanza(deletion_request=pb.DeletionRequest(
            reason=pb.DELETION_REASON_OPT_OUT)), ready=False)
        # CON-008: never connect or send with this login or these keys again.
        self.state.update(deletion_pending=False, enlisted=False, login="", online=False)
        self.save()
        self._fail_queued_all("opted_out")
        await self._close(deliberate=True)

    def _fail_queued_all(self, reason: str) -> None:
        for item, _ in self.ctx.storage.messages_with_status(self.handle, "sending"):
            self._fail_queued(item["peer"], reason)

    # ------------------------------------------------------------------ un_enlisted
    async def _handle_un_enlisted(self) -> None:
        if getattr(self, "_reenlisting", False):
            return
        self._reenlisting = True
        try:
            await self._close(deliberate=True)
            if self.faults.on("no_reenlistment"):
                self._deliberate_close = False
                self._schedule_reconnect()
                return
            # CON-011: enlist again with a fresh JWT before reconnecting.
            self.state["enlisted"] = False
            self.save()
            delay = 1.0
            for _ in range(5):
                try:
                    await self.enlist()
                    break
                except EnlistFailed as exc:
                    if exc.reason == "local_rate_limit":
                        await asyncio.sleep(20)
                    else:
                        await asyncio.sleep(delay)
                        delay *= 2
            else:
                return
            self.state["online"] = True
            self.save()
            with contextlib.suppress(ClientError):
                async with self._conn_lock:
                    if not self.connected:
                        await self._connect_once()
        finally:
            self._reenlisting = False

    # ------------------------------------------------------------------ sending
    def _content_for(self, req: dict[str, Any]) -> tuple[cpb.Message, dict[str, Any]]:
        kind = req["kind"]
        item: dict[str, Any] = {}
        if kind == "text":
            msg = cpb.Message(conversation=req["text"])
            item.update(kind="text", text=req["text"])
        elif kind == "reply":
            msg = cpb.Message(extended_text=cpb.ExtendedTextMessage(
                text=req["text"], context_info=cpb.ContextInfo(
                    quoted_message_id=req["quoted_message_id"], quoted_sender=req["quoted_sender"])))
            if self.faults.on("reply_context_legacy_tag"):  # profile 1.0.0: context_info on tag 2
                et = msg.extended_text
                ctx = et.context_info.SerializeToString()
                n, length = len(ctx), bytearray()
                while True:  # the varint length of the field
                    length.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
                    n >>= 7
                    if not n:
                        break
                et.ParseFromString(cpb.ExtendedTextMessage(text=et.text).SerializeToString()
                                   + b"\x12" + bytes(length) + ctx)
            item.update(kind="reply", text=req["text"], quoted_message_id=req["quoted_message_id"],
                        quoted_sender=req["quoted_sender"])
        elif kind == "reaction":
            key = target_key(me=self.login or "", chat=req["to"], target_sender=req["target_sender"],
                             target_id=req["target_message_id"],
                             group=req["to"] in self.state["groups"])
            if self.faults.on("reaction_key_inverted"):
                key.from_me = not key.from_me
            msg = cpb.Message(reaction=cpb.ReactionMessage(
                key=key, emoji=req["emoji"], sender_timestamp_ms=_now_ms()))
            item.update(kind="text", _hidden=True)
        else:
            raise ClientError(400, "bad-request", f"unknown kind {kind!r}")
        return msg, item

    async def _media_content(self, media: dict[str, Any]) -> tuple[cpb.Message, dict[str, Any]]:
        mtype = media["type"]
        try:
            data = base64.b64decode(media["data"], validate=True)
        except (ValueError, TypeError):
            raise ClientError(400, "bad-request", "media.data is not base64") from None
        media_key = None
        if self.faults.on("media_key_reuse"):  # one key derived once per user, reused forever
            media_key = hashlib.sha256(b"media-key:" + self.handle.encode()).digest()
        enc = encrypt_media(data, MediaType(mtype), media_key=media_key)
        upload = data if self.faults.on("plaintext_media_upload") else enc.blob
        token = self.ctx.tokens.issue(self.user_visible_id, handle=self.handle)
        try:
            resp = await self.ctx.own_http().post(
                self.ctx.upload_url(), content=upload,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
                timeout=self.ctx.config.network_timeout * 3)
        except httpx.HTTPError as exc:
            raise ClientError(502, "upload-failed", f"media upload failed: {exc!r}") from None
        if resp.status_code != 201:
            raise ClientError(502, "upload-failed", f"media upload answered {resp.status_code}")
        ref = resp.json()["storage_reference"]
        enc_sha = sha256(enc.blob[:-10]) if self.faults.on("wrong_file_enc_sha256") else enc.file_enc_sha256
        common = dict(mimetype=media["mimetype"], file_sha256=enc.file_sha256,
                      file_length=enc.file_length, media_key=enc.media_key,
                      file_enc_sha256=enc_sha,
                      direct_path=f"/interop/whatsapp/download/{self.ctx.config.integrator_id}/{ref}/")
        w, h, s = media.get("width", 0), media.get("height", 0), media.get("seconds", 0)
        cap = media.get("caption", "")
        if mtype == "image":
            body = cpb.Message(image=cpb.ImageMessage(caption=cap, width=w, height=h, **common))
        elif mtype == "video":
            body = cpb.Message(video=cpb.VideoMessage(caption=cap, width=w, height=h, seconds=s, **common))
        elif mtype == "audio":
            ptt = bool(media.get("ptt")) and not self.faults.on("voice_note_as_audio")
            body = cpb.Message(audio=cpb.AudioMessage(seconds=s, ptt=ptt, **common))
        elif mtype == "document":
            body = cpb.Message(document=cpb.DocumentMessage(caption=cap, file_name=media.get("file_name", ""),
                                                            **common))
        else:
            body = cpb.Message(sticker=cpb.StickerMessage(width=w, height=h, **common))
        meta = {"type": mtype, "mimetype": media["mimetype"], "sha256": enc.file_sha256.hex()}
        for f in ("caption", "file_name", "width", "height", "seconds"):
            if media.get(f):
                meta[f] = media[f]
        return body, {"kind": "media", "media": meta}

    async def send(self, req: dict[str, Any]) -> str:
        if not self.state["enlisted"] or not self.login:
            raise ClientError(409, "not-enlisted", "enlist the user first")
        peer = req["to"]
        group = self.state["groups"].get(peer)
        if group is not None and not group["member"]:
            raise ClientError(409, "not-a-member", f"the user is not a member of group {peer}")
        if peer in self.state["blocked"] and not self.faults.on("ignore_blocklist"):
            raise ClientError(409, "blocked", f"{peer} is blocked")
        if not self._may_send_to(peer, explicit=True):
            raise ClientError(409, "not-opted-in", f"{peer} has not consented to messages")
        if self.state["consent"].get(peer) == "not_opted_in":
            self.state["consent"].pop(peer)  # CON-002: a new explicit send may try again
        if req["kind"] == "media":
            content, item = await self._media_content(req["media"])
        else:
            content, item = self._content_for(req)
        mid = self._new_id("m")
        item.update(message_id=mid, peer=peer, sender=self.login, status="sending",
                    timestamp_ms=_now_ms())
        with self.ctx.storage.tx():
            self.ctx.storage.add_message(self.handle, item, content.SerializeToString())
            if req["kind"] == "reaction":
                self._apply_reaction(self.login, content.reaction, peer)
        self._outbox.put_nowait((peer, mid))
        return mid

    async def _send_loop(self) -> None:
        while True:
            peer, mid = await self._outbox.get()
            while True:
                found = self.ctx.storage.get_message(self.handle, peer, self.login, mid)
                if found is None or found[0].get("status") != "sending":
                    break
                item, content = found
                if self.state["opted_out"]:
                    self._mark(item, "failed", "opted_out")
                    break
                if not self._may_send_to(peer, explicit=False):
                    self._mark(item, "failed", "consent_revoked"
                               if self.state["consent"].get(peer) == "revoked" else "not_opted_in")
                    break
                await self._ready.wait()
                try:
                    if peer in self.state["groups"]:
                        await self._send_group(peer, mid, content or b"")
                    else:
                        await self._send_content(peer, mid, content or b"", retry_count=0)
                except (_ConnectionLost, asyncio.TimeoutError):
                    continue  # resent after the next connection
                except _StanzaError as exc:
                    if self._on_send_error(item, exc):
                        continue
                    break
                except ClientError as exc:
                    self._mark(item, "failed", exc.reason or exc.kind)
                    break
                self._mark(item, "sent")
                break

    def _mark(self, item: dict, status: str, reason: str = "") -> None:
        found = self.ctx.storage.get_message(self.handle, item["peer"], item["sender"], item["message_id"])
        if found is not None:
            item = found[0]
        item["status"] = status
        self.ctx.storage.update_message(self.handle, item)
        if status == "failed":
            self.event("send_failed", peer=item["peer"], message_id=item["message_id"], reason=reason)

    def _on_send_error(self, item: dict, exc: _StanzaError) -> bool:
        """Returns True to resend."""
        peer = item["peer"]
        if exc.code == "not_opted_in":
            self._set_consent(peer, "not_opted_in")
            self.save()
            self._mark(item, "failed", "not_opted_in")  # CON-002: reported, not resent
            if self.faults.on("retry_after_not_opted_in"):
                item = self.ctx.storage.get_message(self.handle, peer, self.login, item["message_id"])[0]
                item["status"] = "sending"
                self.ctx.storage.update_message(self.handle, item)
                self.state["consent"].pop(peer, None)
                self._spawn(self._requeue_later(peer, item["message_id"], 1.0))
            return False
        if exc.code == "un_enlisted" and not self.faults.on("no_reenlistment"):
            return True  # re-enlistment runs; the message is resent afterwards (CON-011)
        if exc.code == "internal":
            return True
        if exc.code == "un_enlisted":
            self._mark(item, "failed", exc.code)
            return False
        self._mark(item, "failed", exc.code)  # rate_limited past retries, blocked, ...
        return False

    async def _requeue_later(self, peer: str, mid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._outbox.put_nowait((peer, mid))

    async def _ensure_session(self, peer: str) -> None:
        if session.has_session(self.store, peer):
            return
        answer = await self._request(pb.Stanza(key_fetch=pb.KeyFetchRequest(user=peer)))
        kb = answer.key_bundle
        try:
            bundle = PreKeyBundle(
                registration_id=kb.registration_id,
                identity_key=PublicKey.from_bytes(kb.identity_key),
                signed_pre_key_id=kb.signed_pre_key.id,
                signed_pre_key=PublicKey.from_bytes(kb.signed_pre_key.public_key),
                signed_pre_key_signature=bytes(kb.signed_pre_key.signature),
                pre_key_id=kb.one_time_pre_key.id if kb.HasField("one_time_pre_key") else None,
                pre_key=PublicKey.from_bytes(kb.one_time_pre_key.public_key)
                if kb.HasField("one_time_pre_key") else None)
        except SignalError as exc:
            raise ClientError(502, "bad-bundle", str(exc), reason="bad_bundle") from None
        try:
            try:
                e2e.process_bundle(self.store, peer, bundle, self.faults)
            except UntrustedIdentityError as exc:
                self._identity_changed(peer, exc.identity_key)
                self.store.trust_identity(peer, bundle.identity_key)
                e2e.process_bundle(self.store, peer, bundle, self.faults)
        except InvalidSignatureError:
            # E2E-002: no content to a user whose signed pre-key does not verify.
            raise ClientError(502, "bad-bundle", "signed pre-key signature does not verify",
                              reason="bad_signature") from None
        self.save()

    async def _send_content(self, peer: str, mid: str, content: bytes, *, retry_count: int) -> None:
        await self._ensure_session(peer)

        def allowed() -> bool:
            return self._may_send_to(peer, explicit=True) and not (
                peer in self.state["blocked"] and not self.faults.on("ignore_blocklist"))

        if not allowed():
            raise ClientError(409, "refused", reason="consent_revoked")
        ct = e2e.encrypt(self.store, peer, e2e.pad(content, self.faults), self.faults)
        self.save()  # never reuse a message key, even after a crash
        enc_type = pb.ENC_TYPE_PKMSG if ct.type == "pkmsg" else pb.ENC_TYPE_MSG
        stanza = pb.Stanza(id=mid, message=pb.Message(
            recipient=peer, sender=self.login, type=enc_type, ciphertext=ct.body,
            timestamp_ms=_now_ms(), retry_count=retry_count))
        await self._request(stanza, still_allowed=allowed)

    # ------------------------------------------------------------------ groups: sending
    def _group_peers(self, gid: str) -> list[str]:
        return [p for p in self.state["groups"][gid]["participants"] if p != self.login]

    def _sender_key_distribution(self, gid: str) -> bytes:
        """Content carrying our current sender key for ``gid`` (created on first use)."""
        skdm = sender_keys.create_distribution(self.store, gid, self.login)
        return cpb.Message(sender_key_distribution=cpb.SenderKeyDistribution(
            group_id=gid, distribution_message=skdm.serialize())).SerializeToString()

    async def _distribute_sender_key(self, gid: str) -> None:
        """GRP-001 / GRP-005: every current participant without our current sender key gets it
        pairwise, and only they do. A participant we cannot reach now (refused, blocked, bad
        bundle) stays without it: its retry receipt is answered pairwise (GRP-007) and the
        next group message tries again. Re-reads the group after every wait: a membership
        change may arrive meanwhile."""
        group = self.state["groups"][gid]
        skipped: set[str] = set()
        while True:
            pending = [p for p in self._group_peers(gid)
                       if p not in group["key_holders"] and p not in skipped]
            if not pending:
                return
            peer = pending[0]
            content = self._sender_key_distribution(gid)
            self.save()  # the chain exists before anyone can hold it
            try:
                await self._send_content(peer, self._new_id("m"), content, retry_count=0)
            except (_StanzaError, ClientError) as exc:
                log.info(json.dumps({"event": "sender_key_not_sent", "user": self.handle,
                                     "group": gid, "peer": peer, "error": str(exc)}))
                skipped.add(peer)
                continue
            group = self.state["groups"][gid]
            if peer in group["participants"] and peer not in group["key_holders"]:
                group["key_holders"].append(peer)
            self.save()

    async def _send_group(self, gid: str, mid: str, content: bytes) -> None:
        """GRP-002: the key first where it is missing, then one ``skmsg`` that G fans out."""
        if not self.state["groups"][gid]["member"]:
            raise ClientError(409, "not-a-member", reason="not_a_member")
        await self._distribute_sender_key(gid)
        if self.faults.on("group_fanout_pairwise"):
            for peer in self._group_peers(gid):
                await self._send_content(peer, mid, content, retry_count=0)
            return
        self._sender_key_distribution(gid)  # a chain even for a group of one
        body = sender_keys.group_encrypt(self.store, gid, self.login, e2e.pad(content, self.faults))
        self.save()  # never reuse a chain iteration, even after a crash
        stanza = pb.Stanza(id=mid, message=pb.Message(
            sender=self.login, type=pb.ENC_TYPE_SKMSG, ciphertext=body, group_id=gid,
            timestamp_ms=_now_ms()))
        await self._request(stanza)

    async def mark_read(self, peer: str, message_ids: list[str]) -> None:
        if peer in self.state["groups"]:
            await self._mark_group_read(peer, message_ids)
            return
        if peer in self.state["blocked"] and not self.faults.on("ignore_blocklist"):
            return  # CON-007: no read receipts to blocked users
        ids = [m for m in message_ids if self.ctx.storage.has_message(self.handle, peer, peer, m)]
        if ids:
            await self._send_receipt(peer, ids, pb.RECEIPT_TYPE_READ)

    async def _mark_group_read(self, gid: str, message_ids: list[str]) -> None:
        """GRP-008: one read receipt per original sender, with the group id."""
        by_sender: dict[str, list[str]] = {}
        wanted = set(message_ids)
        for item in self.ctx.storage.inbox(self.handle, gid):
            if item["message_id"] in wanted and item["sender"] != self.login:
                by_sender.setdefault(item["sender"], []).append(item["message_id"])
        for sender, ids in by_sender.items():
            if not self._is_blocked(sender):  # CON-007
                await self._send_receipt(sender, ids, pb.RECEIPT_TYPE_READ, group_id=gid)

    async def _send_receipt(self, peer: str, ids: list[str], rtype: int, group_id: str = "") -> None:
        if self.faults.on("group_receipt_without_group_id"):
            group_id = ""
        receipt = pb.Receipt(type=rtype, message_ids=ids, recipient=peer, sender=self.login,
                             timestamp_ms=_now_ms(), group_id=group_id)
        with contextlib.suppress(_ConnectionLost, _StanzaError, asyncio.TimeoutError):
            await self._request(pb.Stanza(receipt=receipt), ready=False)

    # ------------------------------------------------------------------ harness views
    def inbox(self, peer: str | None) -> list[dict]:
        out = []
        for item in self.ctx.storage.inbox(self.handle, peer):
            if item.get("_hidden"):
                continue
            view = {k: v for k, v in item.items() if not k.startswith("_")}
            if "reactions" in view:
                view["reactions"] = [{"sender": r["sender"], "emoji": r["emoji"]}
                                     for r in view["reactions"] if r["emoji"]]
            if item["sender"] != self.login:
                view.pop("status", None)
            out.append(view)
        return out
