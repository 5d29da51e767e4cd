"""The naive provider's client: one :class:`Client` per provider user. Enlistment over HTTPS,
Noise XX over a WebSocket, stanzas, Signal v3 (from ``reference_impl.signal``), media download.

Written from docs/spec alone, in the simplest way that could pass; the corners it cuts are
marked ``CUT`` and listed in ``cuts.py``. Nothing here waits for a request's answer inside
the reader task (that would deadlock); incoming stanzas are handled one by one, in order.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from cryptography.hazmat.primitives import padding as sympad
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from noise.connection import Keypair, NoiseConnection

from reference_impl.signal import PreKeyBundle, ProtocolStore, PublicKey, session
from reference_impl.signal.errors import DuplicateMessageError, SignalError, UntrustedIdentityError
from reference_impl.signal.padding import pad_with, unpad
from reference_impl.signal.wire import PreKeySignalMessage, SignalMessage
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb

from .cuts import FIXED_PADDING, RECONNECT_ATTEMPTS, RECONNECT_DELAY_S

VERSION = "1.0.0"
PROLOGUE = b"interop-chat/1"
ANSWER_TIMEOUT = 10.0
MEDIA_LABELS = {"image": b"WhatsApp Image Keys", "video": b"WhatsApp Video Keys",
                "audio": b"WhatsApp Audio Keys", "document": b"WhatsApp Document Keys",
                "sticker": b"WhatsApp Image Keys"}
_ids = itertools.count(1)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def now_ms() -> int:
    return int(time.time() * 1000)


def code_name(code: int) -> str:
    try:
        return pb.ErrorCode.Name(code).removeprefix("ERROR_CODE_").lower()
    except ValueError:
        return f"code_{code}"


class ConnectFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StanzaError(Exception):
    def __init__(self, err: pb.Error) -> None:
        super().__init__(code_name(err.code))
        self.code, self.retry_after_ms = err.code, err.retry_after_ms


def decrypt_media(blob: bytes, media_type: str, m: Any) -> tuple[bytes | None, str]:
    """MED-006: enc sha256, MAC, decrypt, sha256, length; (plaintext, "") or (None, failed check)."""
    if hashlib.sha256(blob).digest() != m.file_enc_sha256:
        return None, "enc_sha256"
    keys = HKDF(SHA256(), 112, None, MEDIA_LABELS[media_type]).derive(m.media_key)
    iv, cipher_key, mac_key = keys[:16], keys[16:48], keys[48:80]
    ct, mac = blob[:-10], blob[-10:]
    if len(blob) < 10 or not hmac.compare_digest(hmac.new(mac_key, iv + ct, hashlib.sha256).digest()[:10], mac):
        return None, "mac"
    try:
        dec = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).decryptor()
        padded = dec.update(ct) + dec.finalize()
        unp = sympad.PKCS7(128).unpadder()
        plain = unp.update(padded) + unp.finalize()
    except ValueError:
        return None, "mac"
    if hashlib.sha256(plain).digest() != m.file_sha256:
        return None, "sha256"
    if len(plain) != m.file_length:
        return None, "length"
    return plain, ""


def skips_needed(store: ProtocolStore, peer: str, mtype: str, body: bytes) -> int:
    """How many message keys decrypting this would skip (E2E-005 caps it at 2000; the Signal
    library alone allows far more). 0 when the message does not parse: decrypt rejects it."""
    try:
        sm = PreKeySignalMessage.parse(body).message if mtype == "pkmsg" else SignalMessage.parse(body)
    except Exception:  # noqa: BLE001
        return 0
    rec = store.sessions.get(peer)
    states = rec.states() if rec else []
    for st in states:
        for chain in st.receiver_chains:
            if chain.ratchet_key == sm.ratchet_key:
                return max(sm.counter - chain.index, 0)
    cur = states[0].receiver_chains[-1] if states and states[0].receiver_chains else None
    return sm.counter + (max(sm.previous_counter - cur.index, 0) if cur else 0)


@dataclass
class Item:
    """One inbox entry."""
    message_id: str
    peer: str
    sender: str
    kind: str
    timestamp_ms: int
    text: str | None = None
    quoted_message_id: str | None = None
    quoted_sender: str | None = None
    media: dict[str, Any] | None = None
    status: str | None = None
    content: bytes = b""  # serialized content of a sent message (to resend after un_enlisted)


@dataclass
class Client:
    handle: str
    user_visible_id: str
    provider: Any  # the NaiveProvider: token issuing and the gatekeeper config
    login: str = ""
    store: ProtocolStore | None = None
    noise_private: bytes = b""
    enlisted_ok: bool = False
    fresh_enlistment: bool = False
    opted_out: bool = False
    version_refused: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    reactions: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    revokes: dict[str, set[str]] = field(default_factory=dict)
    seen: set[bytes] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    block_ops: list[tuple[str, str]] = field(default_factory=list)  # (add|remove, peer) not yet acked
    revoked: set[str] = field(default_factory=set)
    awaiting_consent: set[str] = field(default_factory=set)
    deletion_pending: bool = False
    account_deleted: bool = False
    typing_sent: dict[str, tuple[int, float]] = field(default_factory=dict)  # peer -> (state, when)
    enlist_times: list[float] = field(default_factory=list)
    next_opk: int = 1
    next_spk: int = 1
    # connection state
    ws: Any = None
    noise: Any = None
    reader: asyncio.Task | None = None
    answers: dict[str, asyncio.Future] = field(default_factory=dict)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    conn_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    msg_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    user_offline: bool = True
    conn_error: str = ""
    tasks: set[asyncio.Task] = field(default_factory=set)

    # -- bookkeeping ----------------------------------------------------------------------------
    def event(self, type_: str, **kw: Any) -> None:
        self.events.append({"seq": len(self.events) + 1, "time_ms": now_ms(), "type": type_,
                            **{k: v for k, v in kw.items() if v is not None}})

    def spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    @property
    def g(self) -> dict[str, Any]:
        return self.provider.gatekeeper

    def tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.g["ca_certificates"])  # TRN-006
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    @property
    def connected(self) -> bool:
        return self.ws is not None and self.noise is not None

    # -- enlistment (ENL-002..ENL-010) ------------------------------------------------------------
    async def enlist(self) -> tuple[bool, str]:
        now = time.monotonic()
        self.enlist_times = [t for t in self.enlist_times if now - t < 60]
        if len(self.enlist_times) >= 3:  # ENL-007: at most 3 requests per 60 s
            self.event("enlistment_failed", reason="local_rate_limit")
            return False, "local_rate_limit"
        self.enlist_times.append(now)
        store = ProtocolStore.generate(secrets.randbelow(16380) + 1)
        spk = store.generate_signed_pre_key(self.next_spk)
        self.next_spk += 1
        noise_priv = X25519PrivateKey.generate()
        authkey = noise_priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        form = {"authkey": b64u(authkey), "e_keytype": b64u(b"\x05"),
                "e_regid": b64u(store.registration_id.to_bytes(4, "big")),
                "e_ident": b64u(store.identity.public.u), "e_skey_id": b64u(spk.key_id.to_bytes(3, "big")),
                "e_skey_val": b64u(spk.key_pair.public.u), "e_skey_sig": b64u(spk.signature),
                "token": self.provider.server.issue_token(self.user_visible_id)}  # the 8 fields (ENL-009)
        reason = ""
        try:
            async with httpx.AsyncClient(verify=self.tls(), timeout=ANSWER_TIMEOUT) as c:
                r = await c.post(self.g["enlist_url"], data=form)
            body = r.json() if r.status_code == 200 else None
            if isinstance(body, dict) and body.get("status") == "ok" and isinstance(body.get("login"), str) and body["login"]:
                self.login, self.store, self.enlisted_ok, self.fresh_enlistment = body["login"], store, True, True
                self.noise_private = noise_priv.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                              serialization.NoEncryption())
                self.opted_out = self.version_refused = False
                self.event("enlisted", reason=None)
                return True, ""
            reason = str(body.get("reason", "")) if isinstance(body, dict) else f"http_{r.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            reason = f"transport: {type(exc).__name__}"
        self.enlisted_ok = False  # ENL-007: never connect with keys that failed to enlist
        self.event("enlistment_failed", reason=reason or "fail")
        return False, reason or "fail"

    # -- connection (CHN-001..CHN-014) ----------------------------------------------------------
    async def connect(self) -> None:
        async with self.conn_lock:
            self.user_offline = False
            if self.connected:
                return
            if self.opted_out or not self.enlisted_ok:
                raise ConnectFailed("not_enlisted")
            if self.version_refused:
                raise ConnectFailed("protocol_version")  # CHN-014: never again with 1.0.0
            await self._open()
        await self._after_connect()

    async def _open(self) -> None:
        self.conn_error = ""
        try:
            ws = await websockets.connect(self.g["chat_url"], subprotocols=["interop.v1"], ssl=self.tls(),
                                          open_timeout=ANSWER_TIMEOUT, max_size=1 << 17, ping_interval=None)
        except (TimeoutError, OSError, websockets.WebSocketException) as exc:
            raise ConnectFailed(f"transport: {type(exc).__name__}") from None
        try:
            noise = NoiseConnection.from_name(b"Noise_XX_25519_AESGCM_SHA256")
            noise.set_as_initiator()
            noise.set_keypair_from_private_bytes(Keypair.STATIC, self.noise_private)
            noise.set_prologue(PROLOGUE)
            noise.start_handshake()
            await ws.send(bytes(noise.write_message()))
            noise.read_message(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT))
            if noise.noise_protocol.handshake_state.rs.public_bytes != b64u_dec(self.g["noise_static_key"]):
                await ws.close()  # CHN-003: no message 3
                raise ConnectFailed("gatekeeper_key_mismatch")
            hello = pb.HandshakePayload(jwt=self.provider.server.issue_token(self.user_visible_id),
                                        protocol_version=VERSION, login=self.login)
            await ws.send(bytes(noise.write_message(hello.SerializeToString())))
        except ConnectFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - any handshake trouble fails this connect
            await ws.close()
            raise ConnectFailed(f"handshake: {type(exc).__name__}") from None
        self.ws, self.noise = ws, noise
        self.reader = asyncio.get_running_loop().create_task(self._read_loop(ws))
        try:
            await self.request(pb.Stanza(ping=pb.Ping()))  # G says nothing on success; a pong proves it
        except (TimeoutError, StanzaError, ConnectionError) as exc:
            await self._close()
            reason = self.conn_error or (str(exc) if isinstance(exc, StanzaError) else "closed")
            raise ConnectFailed(reason) from None
        self.event("connected")

    async def _after_connect(self) -> None:
        """Post-enlistment duties (CON-006, E2E-020), then everything pending."""
        try:
            if self.deletion_pending:
                await self._send_deletion()
                return
            if self.fresh_enlistment:
                bl = await self.request(pb.Stanza(blocklist_get=pb.BlocklistGet()))
                self.blocked = set(bl.blocklist.users) | {p for op, p in self.block_ops if op == "add"}
                self.blocked -= {p for op, p in self.block_ops if op == "remove"}
                keys = self.store.generate_pre_keys(self.next_opk, 100)
                self.next_opk += 100
                await self.request(pb.Stanza(pre_key_upload=pb.PreKeyUpload(one_time_pre_keys=[
                    pb.OneTimePreKey(id=i, public_key=k.serialize()) for i, k in keys])))
                self.fresh_enlistment = False
            await self._flush_blocklist()
            for item in [i for i in self.items if i.status == "sending"]:
                self.spawn(self._deliver(item))
        except (TimeoutError, StanzaError, ConnectionError):
            pass

    async def disconnect(self) -> None:
        self.user_offline = True
        await self._close()

    async def _close(self) -> None:
        ws, self.ws, self.noise = self.ws, None, None
        if ws is not None:
            await ws.close()
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
        self.reader = None
        for fut in list(self.answers.values()):
            if not fut.done():
                fut.set_exception(ConnectionError("disconnected"))

    async def send_stanza(self, st: pb.Stanza) -> None:
        async with self.send_lock:
            if not self.connected:
                raise ConnectionError("not connected")
            await self.ws.send(self.noise.encrypt(st.SerializeToString()))

    async def request(self, st: pb.Stanza, timeout: float = ANSWER_TIMEOUT) -> pb.Stanza:
        st.id = st.id or f"n{next(_ids)}-{secrets.token_hex(4)}"
        fut = asyncio.get_running_loop().create_future()
        self.answers[st.id] = fut
        try:
            await self.send_stanza(st)
            ans = await asyncio.wait_for(fut, timeout)
        finally:
            self.answers.pop(st.id, None)
        if ans.WhichOneof("body") == "error":
            raise StanzaError(ans.error)
        return ans

    async def _read_loop(self, ws: Any) -> None:
        try:
            async for frame in ws:
                if isinstance(frame, str) or ws is not self.ws:
                    continue
                st = pb.Stanza()
                st.ParseFromString(self.noise.decrypt(frame))
                await self._on_stanza(st)
        except Exception:  # noqa: BLE001, S110 - a broken frame ends this connection
            pass
        lost = ws is self.ws
        if lost:
            self.ws = self.noise = None
            self.reader = None
        for fut in list(self.answers.values()):
            if not fut.done():
                fut.set_exception(ConnectionError(self.conn_error or "connection lost"))
        if lost and not self.user_offline:
            self.event("disconnected", reason=self.conn_error or "connection lost")
            if self.conn_error == "protocol_version":
                self.version_refused = True
            elif self.conn_error != "deleted":
                self.spawn(self._reconnect())

    async def _reconnect(self) -> None:
        """CUT (CHN-011): fixed short delay, no back-off, bounded attempts."""
        for _ in range(RECONNECT_ATTEMPTS):
            await asyncio.sleep(RECONNECT_DELAY_S)
            if self.user_offline or self.opted_out or self.version_refused or self.connected:
                return
            if not self.enlisted_ok and not (await self.enlist())[0]:
                continue  # CON-011: enlist again before connecting
            try:
                await self.connect()
                return
            except ConnectFailed as exc:
                if exc.reason == "protocol_version":
                    self.version_refused = True
                    return
                if exc.reason == "un_enlisted":
                    self.enlisted_ok = False

    # -- incoming stanzas ---------------------------------------------------------------------------
    async def _answer(self, st_id: str, **body: Any) -> None:
        try:
            await self.send_stanza(pb.Stanza(id=st_id, **body))
        except ConnectionError:
            pass

    async def _on_stanza(self, st: pb.Stanza) -> None:
        kind = st.WhichOneof("body")
        if kind in ("ack", "pong", "key_bundle", "blocklist", "error") and st.id in self.answers:
            if not self.answers[st.id].done():
                self.answers[st.id].set_result(st)
            if kind == "error" and st.error.code == pb.ERROR_CODE_UN_ENLISTED:
                self._un_enlisted()
            return
        if kind == "error":  # connection-level (empty id), or a late answer
            if not st.id:
                self.conn_error = code_name(st.error.code)
            if st.error.code == pb.ERROR_CODE_UN_ENLISTED:
                self._un_enlisted()
            return
        if kind == "ping":
            return await self._answer(st.id, pong=pb.Pong())
        if kind == "message":
            await self._answer(st.id, ack=pb.Ack())
            return await self._on_message(st)
        if kind == "receipt":
            await self._answer(st.id, ack=pb.Ack())
            return self._on_receipt(st.receipt)
        if kind == "notification":
            await self._answer(st.id, ack=pb.Ack())
            return self._on_notification(st.notification)
        if kind == "chatstate":  # E2E-025: shown, unless blocked; not answered (spec 6.5)
            c = st.chatstate
            if c.sender not in self.blocked and c.state in (pb.CHAT_STATE_TYPE_COMPOSING,
                                                            pb.CHAT_STATE_TYPE_PAUSED):
                state = "composing" if c.state == pb.CHAT_STATE_TYPE_COMPOSING else "paused"
                self.event("typing", peer=c.sender, state=state)
            return
        if st.id and kind not in ("ack", "pong", "key_bundle", "blocklist"):
            await self._answer(st.id, ack=pb.Ack())  # CHN-013: unknown body

    def _un_enlisted(self) -> None:
        """CON-011: forget the login; the reconnect task enlists again before connecting."""
        self.enlisted_ok = False
        self.conn_error = "un_enlisted"
        if self.ws is not None:
            self.spawn(self.ws.close())

    def _on_receipt(self, r: pb.Receipt) -> None:
        if r.sender in self.blocked or r.type not in (pb.RECEIPT_TYPE_DELIVERY, pb.RECEIPT_TYPE_READ):
            return  # CUT (E2E-018): retry receipts are acknowledged and ignored
        kind = "delivery" if r.type == pb.RECEIPT_TYPE_DELIVERY else "read"
        ids = list(r.message_ids)
        for item in self.items:
            if item.message_id in ids and item.sender == self.login and item.status != "read":
                item.status = kind if kind == "read" else "delivered"
        self.event("receipt", peer=r.sender, message_ids=ids, receipt=kind,
                   participant=r.sender if r.group_id else None)

    def _on_notification(self, n: pb.Notification) -> None:
        kind = n.WhichOneof("kind")
        if kind == "identity_change":
            self.store.identities.pop(n.identity_change.user, None)
            self.store.sessions.pop(n.identity_change.user, None)
            self.event("identity_changed", peer=n.identity_change.user)
        elif kind == "consent_revoked":
            self.revoked.add(n.consent_revoked.user)
            self.event("consent_changed", peer=n.consent_revoked.user, consent="revoked")
        elif kind == "consent_granted":
            self.revoked.discard(n.consent_granted.user)
            self.awaiting_consent.discard(n.consent_granted.user)
            self.event("consent_changed", peer=n.consent_granted.user, consent="granted")
        # CUT (E2E-020): low_pre_keys is acknowledged and ignored; group_membership too.

    async def _on_message(self, st: pb.Stanza) -> None:
        m = st.message
        if m.type not in (pb.ENC_TYPE_PKMSG, pb.ENC_TYPE_MSG) or not m.sender:
            return  # groups are not claimed
        digest = hashlib.sha256(m.ciphertext).digest()
        if digest in self.seen:
            return  # E2E-006
        mtype = "pkmsg" if m.type == pb.ENC_TYPE_PKMSG else "msg"
        try:
            if skips_needed(self.store, m.sender, mtype, m.ciphertext) > 2000:
                raise ValueError("more than 2000 skipped message keys")
            try:
                padded = session.decrypt(self.store, m.sender, mtype, m.ciphertext)
            except UntrustedIdentityError:  # E2E-019: new identity in a PreKeySignalMessage
                self.store.identities.pop(m.sender, None)
                self.event("identity_changed", peer=m.sender)
                padded = session.decrypt(self.store, m.sender, mtype, m.ciphertext)
            content = cpb.Message()
            content.ParseFromString(unpad(padded))
        except DuplicateMessageError:
            return
        except Exception:  # noqa: BLE001 - any failure: nothing surfaced
            # CUT (E2E-017): no retry receipt.
            self.event("decryption_failed", message_id=st.id, peer=m.sender)
            return
        self.seen.add(digest)
        if m.sender in self.blocked:
            return  # CON-007, and CON-013: no delivery receipt discloses the block
        await self._answer(f"r{next(_ids)}-{secrets.token_hex(4)}", receipt=pb.Receipt(
            type=pb.RECEIPT_TYPE_DELIVERY, message_ids=[st.id], recipient=m.sender, timestamp_ms=now_ms()))
        await self._surface(st.id, m.sender, m.timestamp_ms or now_ms(), content)

    async def _surface(self, mid: str, sender: str, ts: int, c: cpb.Message) -> None:
        kind = c.WhichOneof("content")
        item = Item(mid, sender, sender, "text", ts)
        if kind == "conversation":
            item.text = c.conversation
        elif kind == "extended_text":
            item.text = c.extended_text.text
            if c.extended_text.HasField("context_info"):
                item.kind = "reply"
                item.quoted_message_id = c.extended_text.context_info.quoted_message_id
                item.quoted_sender = c.extended_text.context_info.quoted_sender
        elif kind == "reaction":
            r = c.reaction
            mine = self.reactions.setdefault(r.key.id, {})
            if sender not in mine or mine[sender][1] <= r.sender_timestamp_ms:
                mine[sender] = (r.emoji, r.sender_timestamp_ms)
            return
        elif kind == "protocol":
            if c.protocol.type == cpb.ProtocolMessage.REVOKE:
                self.revokes.setdefault(c.protocol.key.id, set()).add(sender)
            return
        elif kind in MEDIA_LABELS:
            m = getattr(c, kind)
            try:
                async with httpx.AsyncClient(verify=self.tls(), timeout=ANSWER_TIMEOUT) as cl:
                    r = await cl.get(self.g["media_host"].rstrip("/") + m.direct_path)
                blob = r.content if r.status_code == 200 else None
            except httpx.HTTPError:
                blob = None
            plain, why = decrypt_media(blob, kind, m) if blob is not None else (None, "download")
            if plain is None:
                self.event("media_rejected", message_id=mid, reason=why)
                return
            item.kind = "media"
            item.media = {"type": kind, "mimetype": m.mimetype, "sha256": hashlib.sha256(plain).hexdigest()}
            for f in ("caption", "file_name", "width", "height", "seconds", "ptt"):
                if f in m.DESCRIPTOR.fields_by_name and getattr(m, f):
                    item.media[f] = getattr(m, f)
        elif c.HasField("sender_key_distribution") and kind is None:
            return  # groups are not claimed
        else:
            item.kind = "unsupported"  # E2E-011: a placeholder
        self.items.append(item)
        self.event("message_received", peer=sender, message_id=mid)

    # -- the user's actions ---------------------------------------------------------------------------
    def send(self, peer: str, content: cpb.Message) -> str:
        mid = f"m{next(_ids)}-{secrets.token_hex(6)}"
        item = Item(mid, peer, self.login, "text", now_ms(), status="sending", content=content.SerializeToString())
        kind = content.WhichOneof("content")
        if kind == "conversation":
            item.text = content.conversation
        elif kind == "extended_text":
            item.kind, item.text = "reply", content.extended_text.text
            item.quoted_message_id = content.extended_text.context_info.quoted_message_id
            item.quoted_sender = content.extended_text.context_info.quoted_sender
        if kind != "reaction":
            self.items.append(item)
        else:
            r = content.reaction
            self.reactions.setdefault(r.key.id, {})[self.login] = (r.emoji, r.sender_timestamp_ms)
        self.spawn(self._deliver(item))
        return mid

    async def _deliver(self, item: Item) -> None:
        async with self.msg_lock:  # one at a time, in order
            if item.status != "sending" or not self.connected:
                return
            if item.peer in self.revoked or item.peer in self.blocked:  # CON-004 / CON-007
                return self._failed(item, "consent_revoked" if item.peer in self.revoked else "blocked")
            try:
                await self._deliver_once(item)
            except StanzaError as exc:
                if exc.code == pb.ERROR_CODE_RATE_LIMITED:
                    try:  # CUT (CON-010): resend at once
                        await self._deliver_once(item)
                        return
                    except StanzaError as again:
                        exc = again
                if exc.code == pb.ERROR_CODE_UN_ENLISTED:
                    return  # stays "sending": resent after re-enlistment (CON-011)
                self._failed(item, code_name(exc.code))
            except SignalError as exc:  # E2E-002: a bad signed pre-key signature
                self._failed(item, f"bad_bundle: {type(exc).__name__}")
            except (TimeoutError, ConnectionError):
                pass  # stays "sending"

    async def _deliver_once(self, item: Item) -> None:
        if not session.has_session(self.store, item.peer):
            b = (await self.request(pb.Stanza(key_fetch=pb.KeyFetchRequest(user=item.peer)))).key_bundle
            opk = b.one_time_pre_key if b.HasField("one_time_pre_key") else None
            bundle = PreKeyBundle(b.registration_id, PublicKey.from_bytes(b.identity_key), b.signed_pre_key.id,
                                  PublicKey.from_bytes(b.signed_pre_key.public_key), b.signed_pre_key.signature,
                                  opk.id if opk else None, PublicKey.from_bytes(opk.public_key) if opk else None)
            try:
                session.process_prekey_bundle(self.store, item.peer, bundle)
            except UntrustedIdentityError:
                self.store.identities.pop(item.peer, None)
                self.event("identity_changed", peer=item.peer)
                session.process_prekey_bundle(self.store, item.peer, bundle)
        ct = session.encrypt(self.store, item.peer, pad_with(item.content, FIXED_PADDING))  # CUT (E2E-008)
        await self.request(pb.Stanza(id=item.message_id, message=pb.Message(
            recipient=item.peer, sender=self.login, ciphertext=ct.body, timestamp_ms=now_ms(),
            type=pb.ENC_TYPE_PKMSG if ct.type == "pkmsg" else pb.ENC_TYPE_MSG)))
        if item.status == "sending":
            item.status = "sent"

    def _failed(self, item: Item, reason: str) -> None:
        item.status = "failed"
        self.event("send_failed", message_id=item.message_id, reason=reason, peer=item.peer)

    async def mark_read(self, peer: str, ids: list[str]) -> None:
        """E2E-015: read receipts for what the user has seen; none to a blocked user (CON-007)."""
        if peer in self.blocked:
            return
        try:
            await self.request(pb.Stanza(receipt=pb.Receipt(
                type=pb.RECEIPT_TYPE_READ, message_ids=ids, recipient=peer, timestamp_ms=now_ms())))
        except (TimeoutError, StanzaError, ConnectionError):
            pass

    def typing(self, peer: str, state: int) -> None:
        """E2E-024: a chatstate on each change; none repeated within 10 s, none to blocked or
        non-consenting users."""
        if peer in self.blocked or peer in self.revoked or peer in self.awaiting_consent:
            return
        last = self.typing_sent.get(peer)
        if last and last[0] == state and time.monotonic() - last[1] < 10:
            return
        if self.connected:
            self.typing_sent[peer] = (state, time.monotonic())
            self.spawn(self._quiet(self.request(pb.Stanza(chatstate=pb.ChatState(
                recipient=peer, sender=self.login, state=state)))))

    @staticmethod
    async def _quiet(coro: Any) -> None:
        try:
            await coro
        except (TimeoutError, StanzaError, ConnectionError):
            pass

    async def block(self, peer: str, add: bool) -> None:
        (self.blocked.add if add else self.blocked.discard)(peer)
        self.block_ops.append(("add" if add else "remove", peer))
        self.spawn(self._flush_blocklist())

    async def _flush_blocklist(self) -> None:
        """CON-005: send pending blocklist changes; the ones not acknowledged stay for next time."""
        for op in list(self.block_ops):
            if not self.connected:
                return
            body = pb.BlocklistSet(add=[op[1]]) if op[0] == "add" else pb.BlocklistSet(remove=[op[1]])
            try:
                await self.request(pb.Stanza(blocklist_set=body))
                if op in self.block_ops:
                    self.block_ops.remove(op)
            except (TimeoutError, StanzaError, ConnectionError):
                return

    async def reachability_ping(self, recipient: str) -> None:
        """CUT (CON-003): no suppression of repeated pings."""
        self.awaiting_consent.add(recipient)  # CON-001: no message before consent
        try:
            await self.request(pb.Stanza(reachability_ping=pb.ReachabilityPing(recipient=recipient)))
            self.event("reachability_result", peer=recipient, reason="")
        except StanzaError as exc:
            self.event("reachability_result", peer=recipient, reason=str(exc))
        except (TimeoutError, ConnectionError) as exc:
            self.event("reachability_result", peer=recipient, reason=f"transport: {type(exc).__name__}")

    async def rotate_signed_prekey(self) -> None:
        spk = self.store.generate_signed_pre_key(self.next_spk)
        self.next_spk += 1
        for old in [k for k in self.store.signed_pre_keys if k != spk.key_id]:
            del self.store.signed_pre_keys[old]  # CUT (E2E-021): the previous one is gone at once
        up = pb.PreKeyUpload(signed_pre_key=pb.SignedPreKey(
            id=spk.key_id, public_key=spk.key_pair.public.serialize(), signature=spk.signature))
        self.spawn(self.request(pb.Stanza(pre_key_upload=up)))

    async def opt_out(self) -> None:
        self.deletion_pending = True
        if self.connected:
            self.spawn(self._send_deletion())

    async def delete_account(self) -> None:
        """CON-014: like opting out, but the request says so and the conversations go at once."""
        self.account_deleted = True
        self.items.clear()
        self.reactions.clear()
        await self.opt_out()

    async def _send_deletion(self) -> None:
        """CON-008: retried on every connect until acknowledged; then never connect again."""
        reason = pb.DELETION_REASON_ACCOUNT_DELETED if self.account_deleted else pb.DELETION_REASON_OPT_OUT
        try:
            await self.request(pb.Stanza(deletion_request=pb.DeletionRequest(reason=reason)))
        except (TimeoutError, StanzaError, ConnectionError):
            return
        self.deletion_pending, self.opted_out, self.enlisted_ok = False, True, False
        self.conn_error = "deleted"
        self.user_offline = True
        await self._close()
        self.login, self.store, self.noise_private = "", None, b""

    # -- what the user sees -----------------------------------------------------------------------
    def inbox(self, peer: str | None) -> list[dict[str, Any]]:
        out = []
        for it in sorted(self.items, key=lambda i: i.timestamp_ms):
            if peer and it.peer != peer:
                continue
            d: dict[str, Any] = {"message_id": it.message_id, "peer": it.peer, "sender": it.sender,
                                 "kind": it.kind, "timestamp_ms": it.timestamp_ms}
            for f in ("text", "quoted_message_id", "quoted_sender", "media", "status"):
                if getattr(it, f) is not None:
                    d[f] = getattr(it, f)
            if it.sender in self.revokes.get(it.message_id, ()):
                d = {k: v for k, v in d.items() if k not in ("text", "media")} | {"kind": "revoked"}
            reacts = self.reactions.get(it.message_id, {})
            d["reactions"] = [{"sender": s, "emoji": e} for s, (e, _) in reacts.items()
                              if e and s not in self.blocked]
            out.append(d)
        return out

    async def stop(self) -> None:
        self.user_offline = True
        for t in list(self.tasks):
            t.cancel()
        await self._close()
