"""The simulator's chat endpoint over the wa binding (spec §5.3): real WebSocket, WA Noise with the
certificate chain, binary-XML stanzas; each broken binding rule ends the connection on its
requirement."""
from __future__ import annotations

import asyncio
import ssl

import pytest
from websockets.asyncio.client import connect

from conformance.gatekeeper import Settings
from conformance.gatekeeper.enlistment import b64url_decode
from reference_impl.signal.keys import KeyPair
from reference_impl.wa import binary_xml, frame as waframe, noise as wanoise
from reference_impl.wa.certs import CertificateError
from reference_impl.provider.client.wire import jid_pair_without_integrator
from reference_impl.wa.stanza_map import from_node, to_node
from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio
TIMEOUT = 5.0


@pytest.fixture
def settings() -> Settings:
    return Settings(wire="wa")


class WAConn:
    """One wa connection of an enlisted test client, driven byte by byte."""

    def __init__(self, client, *, token: bytes | None = None, header: bytes | None = None) -> None:
        cfg = client.config
        integrator, _, rest = client.login.partition("-")
        payload = wanoise.interop_payload(
            token=client.token.encode() if token is None else token, account_id=int(integrator),
            username=int(rest.partition("@")[0]), device=0, app_version=(1, 0, 0))
        self.wa = wanoise.WAClient(static=KeyPair.from_private(client.auth_private), payload=payload,
                                   root_public=b64url_decode(cfg["wa_root_key"]), header=header)
        self.cfg = cfg
        self.ws = None

    async def open(self) -> None:
        ctx = ssl.create_default_context(cadata=self.cfg["ca_certificates"]) if self.cfg["ca_certificates"] else None
        self.ws = await connect(self.cfg["chat_url"], subprotocols=["interop.v1"], open_timeout=TIMEOUT,
                                ssl=ctx, max_size=1 << 20)
        self.wa.start()
        await self.ws.send(self.wa.data_to_send())

    async def handshake(self) -> None:
        await self.open()
        events = self.wa.receive_data(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        assert any(isinstance(e, wanoise.HandshakeComplete) for e in events)
        await self.ws.send(self.wa.data_to_send())

    async def send(self, stanza: pb.Stanza, *, raw: bytes | None = None) -> None:
        self.wa.send(raw if raw is not None else waframe.pack_payload(binary_xml.encode(to_node(stanza))))
        await self.ws.send(self.wa.data_to_send())

    async def recv(self) -> pb.Stanza:
        while True:
            frames = self.wa.receive_data(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            for f in frames:
                return from_node(binary_xml.decode(waframe.unpack_payload(f.data)))

    async def closed(self) -> int | None:
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        except Exception:  # noqa: BLE001 - the close is what the test waits for
            return self.ws.close_code


async def _failure(gk, kind: str) -> dict:
    return await gk.log.wait_for(kind=kind, timeout=TIMEOUT)


async def test_handshake_ping_and_blocklist_round_trip(gk, make_client):
    c = await make_client(connect=False)
    conn = WAConn(c)
    await conn.handshake()
    await conn.send(pb.Stanza(id="p1", ping=pb.Ping()))
    assert (await conn.recv()) == pb.Stanza(id="p1", pong=pb.Pong())
    await conn.send(pb.Stanza(id="b1", blocklist_get=pb.BlocklistGet()))
    answer = await conn.recv()
    assert answer.id == "b1" and answer.WhichOneof("body") == "blocklist"
    ev = await gk.log.wait_for(kind="connected", login=c.login, timeout=1)
    assert ev["detail"]["wire"] == "wa" and ev["detail"]["protocol_version"] == "1.0.0"


async def test_wrong_header_is_chn_030(gk, make_client):
    conn = WAConn(await make_client(connect=False), header=b"WA\x05\x02")
    await conn.open()
    assert await conn.closed() == 1002
    assert (await _failure(gk, "handshake_failed"))["detail"]["requirement"] == "CHN-030"


async def test_payload_without_token_is_refused_on_chn_035(gk, make_client):
    conn = WAConn(await make_client(connect=False), token=b"")
    await conn.handshake()
    err = await conn.recv()
    assert err.WhichOneof("body") == "error" and err.error.code == pb.ERROR_CODE_MALFORMED
    assert await conn.closed() == 1008
    assert (await _failure(gk, "handshake_failed"))["detail"]["requirement"] == "CHN-035"


async def test_frame_length_without_tag_is_chn_031(gk, make_client):
    conn = WAConn(await make_client(connect=False))
    await conn.handshake()
    conn.wa.send(waframe.pack_payload(binary_xml.encode(to_node(pb.Stanza(id="p", ping=pb.Ping())))))
    out = conn.wa.data_to_send()
    await conn.ws.send((int.from_bytes(out[:3], "big") - 16).to_bytes(3, "big") + out[3:])
    assert (await _failure(gk, "protocol_error"))["detail"]["requirement"] == "CHN-031"


async def test_flag_lie_is_chn_032(gk, make_client):
    conn = WAConn(await make_client(connect=False))
    await conn.handshake()
    node = binary_xml.encode(to_node(pb.Stanza(id="p", ping=pb.Ping())))
    await conn.send(pb.Stanza(), raw=bytes([waframe.FLAG_COMPRESSED]) + node)
    assert (await _failure(gk, "protocol_error"))["detail"]["requirement"] == "CHN-032"


async def test_unknown_token_is_chn_033(gk, make_client):
    conn = WAConn(await make_client(connect=False))
    await conn.handshake()
    await conn.send(pb.Stanza(), raw=b"\x00" + bytes([248, 1, 240]))
    assert (await _failure(gk, "protocol_error"))["detail"]["requirement"] == "CHN-033"


async def test_jid_without_integrator_is_chn_034(gk, make_client):
    c = await make_client(connect=False)
    conn = WAConn(c)
    await conn.handshake()
    node = to_node(pb.Stanza(id="m1", message=pb.Message(recipient="g:4915100000000", sender=c.login,
                                                         type=pb.ENC_TYPE_MSG, ciphertext=b"\x33x")))
    data = jid_pair_without_integrator(node, binary_xml.DEFAULT_DICTIONARY)
    assert binary_xml.decode(data).attrs["from"].integrator is None
    await conn.send(pb.Stanza(), raw=waframe.pack_payload(data))
    ev = await _failure(gk, "protocol_error")
    assert ev["detail"]["requirement"] == "CHN-034" and "integrator" in ev["detail"]["detail"]


async def test_impostor_static_key_fails_the_certificate_check(gk, make_client):
    c = await make_client(connect=False)
    impostor = gk.script.present_wrong_noise_key()
    try:
        conn = WAConn(c)
        await conn.open()
        with pytest.raises(CertificateError):
            conn.wa.receive_data(await asyncio.wait_for(conn.ws.recv(), TIMEOUT))
        await conn.ws.close()
    finally:
        gk.script.restore_noise_key(impostor)
