"""A provider client for the simulator's tests, built from the reference implementation:
enlists over HTTP, speaks Noise XX over a ``websockets`` connection, exchanges stanzas and
Signal messages. Deliberately small and explicit; every wait has a timeout."""
from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect

from conformance.gatekeeper.enlistment import b64url_decode, b64url_encode
from reference_impl.channel import ClientHello, NoiseInitiator, NoiseTransport
from reference_impl.signal import Party, PreKeyBundle, PublicKey, xeddsa
from reference_impl.signal.padding import pad, unpad
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb

TIMEOUT = 5.0


class ProviderClient:
    def __init__(self, config: dict[str, str], token: str, *, sub: str) -> None:
        self.config = config
        self.token = token
        self.sub = sub
        self.party = Party(sub)
        self.spk = self.party.store.generate_signed_pre_key(1, self.party.rng)
        self.auth_private = os.urandom(32)
        self.authkey = X25519PrivateKey.from_private_bytes(self.auth_private).public_key().public_bytes_raw()
        self.login = ""
        self.ws: ClientConnection | None = None
        self.transport: NoiseTransport | None = None
        self.inbound: asyncio.Queue[pb.Stanza] = asyncio.Queue()
        self.answers: dict[str, asyncio.Future[pb.Stanza]] = {}
        self.auto_ack = True
        self.auto_pong = True
        self._held: list[pb.Stanza] = []
        self.closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._n = 0
        self._next_opk = 1

    # -- enlistment ------------------------------------------------------------------------------
    def form(self, **overrides: str | None) -> dict[str, str]:
        ident = self.party.identity_key.u
        f = {
            "authkey": b64url_encode(self.authkey),
            "e_keytype": b64url_encode(b"\x05"),
            "e_regid": b64url_encode(self.party.store.registration_id.to_bytes(4, "big")),
            "e_ident": b64url_encode(ident),
            "e_skey_id": b64url_encode((1).to_bytes(3, "big")),
            "e_skey_val": b64url_encode(self.spk.key_pair.public.u),
            "e_skey_sig": b64url_encode(self.spk.signature),
            "token": self.token,
        }  # the framework's eight fields (ENL-009); tests add version=... as a 1.0.0 client did
        for k, v in overrides.items():
            if v is None:
                f.pop(k, None)
            else:
                f[k] = v
        return f

    async def enlist(self, content: bytes | None = None, **overrides: str | None) -> dict[str, Any]:
        async with httpx.AsyncClient(verify=_verify(self.config)) as c:
            if content is None:
                r = await c.post(self.config["enlist_url"], data=self.form(**overrides), timeout=TIMEOUT)
            else:
                r = await c.post(self.config["enlist_url"], content=content, timeout=TIMEOUT,
                                 headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code in (200, 413), r.text
        body = r.json()
        if body.get("status") == "ok":
            self.login = body["login"]
        return body

    # -- channel ---------------------------------------------------------------------------------
    async def connect(self, *, hello: ClientHello | bytes | None = None,
                      subprotocols: list[str] | None = None) -> pb.Stanza | None:
        """Open the chat channel. Returns None on success, or the error stanza G answered."""
        import ssl
        ssl_ctx = ssl.create_default_context(cadata=self.config["ca_certificates"]) if self.config["ca_certificates"] else None
        self.ws = await connect(self.config["chat_url"], subprotocols=subprotocols or ["interop.v1"],
                                max_size=1 << 20, open_timeout=TIMEOUT, ssl=ssl_ctx)
        init = NoiseInitiator(self.auth_private)
        await self.ws.send(init.start())
        msg2 = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        if hello is None:
            hello = ClientHello(self.token, "1.0.0", self.login)
        await self.ws.send(init.finish(msg2, hello, expected_server_static=b64url_decode(self.config["noise_static_key"])))
        self.transport = init.transport
        self.closed.clear()
        self._reader = asyncio.create_task(self._read())
        # G answers a refused handshake with an error stanza and closes; a good one stays quiet.
        # A ping round trip tells the two apart without sleeping.
        try:
            pong = await self.request(pb.Stanza(ping=pb.Ping()))
        except ConnectionError:
            pong = None
        if pong is not None and pong.WhichOneof("body") == "pong":
            return None
        try:
            return await self.next_inbound("error")
        except TimeoutError:
            return None

    async def _read(self) -> None:
        assert self.ws is not None and self.transport is not None
        try:
            async for frame in self.ws:
                st = pb.Stanza.FromString(self.transport.decrypt(frame))
                fut = self.answers.pop(st.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(st)
                    continue
                if self.auto_ack and st.WhichOneof("body") in ("message", "receipt", "notification"):
                    await self.send(pb.Stanza(id=st.id, ack=pb.Ack()))
                elif st.WhichOneof("body") == "ping" and self.auto_pong:
                    await self.send(pb.Stanza(id=st.id, pong=pb.Pong()))
                    continue
                self.inbound.put_nowait(st)
        except Exception:  # noqa: BLE001, S110 - the connection ended; tests look at close_code
            pass
        finally:
            self.closed.set()
            for fut in self.answers.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("channel closed"))

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code if self.ws is not None else None

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def send(self, stanza: pb.Stanza) -> None:
        assert self.ws is not None and self.transport is not None
        await self.ws.send(self.transport.encrypt(stanza.SerializeToString()))

    def next_id(self) -> str:
        self._n += 1
        return f"t{self._n}.{os.urandom(3).hex()}"

    async def request(self, stanza: pb.Stanza, timeout: float = TIMEOUT) -> pb.Stanza:
        if not stanza.id:
            stanza.id = self.next_id()
        fut: asyncio.Future[pb.Stanza] = asyncio.get_running_loop().create_future()
        self.answers[stanza.id] = fut
        if self.closed.is_set():
            raise ConnectionError("channel closed")
        await self.send(stanza)
        return await asyncio.wait_for(fut, timeout)

    async def next_inbound(self, body: str | None = None, timeout: float = TIMEOUT) -> pb.Stanza:
        # Stanzas of other kinds stay, in order, for later calls.
        for i, st in enumerate(self._held):
            if body is None or st.WhichOneof("body") == body:
                del self._held[i]
                return st

        async def _get() -> pb.Stanza:
            while True:
                st = await self.inbound.get()
                if body is None or st.WhichOneof("body") == body:
                    return st
                self._held.append(st)
        return await asyncio.wait_for(_get(), timeout)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            try:
                await self.wait_closed()
            except TimeoutError:
                pass
        if self._reader is not None:
            self._reader.cancel()

    # -- keys and messages -------------------------------------------------------------------------
    async def upload_pre_keys(self, n: int = 60) -> pb.Stanza:
        keys = self.party.store.generate_pre_keys(self._next_opk, n, self.party.rng)
        self._next_opk += n
        up = pb.PreKeyUpload(one_time_pre_keys=[pb.OneTimePreKey(id=i, public_key=k.serialize()) for i, k in keys])
        return await self.request(pb.Stanza(pre_key_upload=up))

    async def fetch_bundle(self, user: str) -> pb.Stanza:
        return await self.request(pb.Stanza(key_fetch=pb.KeyFetchRequest(user=user)))

    async def send_content(self, to: str, content: cpb.Message, *, msg_id: str | None = None) -> pb.Stanza:
        if not self.party.store.sessions.get(to):
            answer = await self.fetch_bundle(to)
            if answer.WhichOneof("body") != "key_bundle":
                return answer
            kb = answer.key_bundle
            opk = kb.one_time_pre_key if kb.HasField("one_time_pre_key") else None
            self.party.process_bundle(to, PreKeyBundle(
                kb.registration_id, PublicKey.from_bytes(kb.identity_key), kb.signed_pre_key.id,
                PublicKey.from_bytes(kb.signed_pre_key.public_key), kb.signed_pre_key.signature,
                opk.id if opk else None, PublicKey.from_bytes(opk.public_key) if opk else None))
        ct = self.party.encrypt(to, pad(content.SerializeToString(), self.party.rng))
        st = pb.Stanza(id=msg_id or self.next_id(), message=pb.Message(
            recipient=to, sender=self.login, ciphertext=ct.body, timestamp_ms=1,
            type=pb.ENC_TYPE_PKMSG if ct.type == "pkmsg" else pb.ENC_TYPE_MSG))
        return await self.request(st)

    async def send_text(self, to: str, text: str, **kw: Any) -> pb.Stanza:
        return await self.send_content(to, cpb.Message(conversation=text), **kw)

    def decrypt(self, st: pb.Stanza) -> cpb.Message:
        m = st.message
        enc = {pb.ENC_TYPE_PKMSG: "pkmsg", pb.ENC_TYPE_MSG: "msg"}[m.type]
        return cpb.Message.FromString(unpad(self.party.decrypt(m.sender, enc, m.ciphertext)))


def _verify(config: dict[str, str]) -> Any:
    import ssl
    return ssl.create_default_context(cadata=config["ca_certificates"]) if config["ca_certificates"] else True


def sign_spk(party: Party, public33: bytes) -> bytes:
    return xeddsa.sign(party.store.identity.private, public33, party.rng)
