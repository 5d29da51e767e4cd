"""The WA Noise XX handshake (``reference_impl.wa.noise``) and certificate chain (``.certs``)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from noise.connection import Keypair, NoiseConnection

from reference_impl.signal.keys import KeyPair, PrivateKey
from reference_impl.signal.rng import DeterministicRng
from reference_impl.wa import certs, noise
from reference_impl.wa.frame import BadHeader, FrameTooLarge, encode_frame, pack_payload
from reference_impl.wa.noise import (
    BadPeerKey, ClientAuthenticated, ConnectionClosed, DecryptFailed, HandshakeComplete,
    MalformedHandshake, NonceExhausted, TransportFrame, UnexpectedMessage, WAClient, WAServer)
from reference_impl.wa.wa_handshake_pb2 import CertChain, ClientPayload, HandshakeMessage


class Keys:
    def __init__(self, seed: str = "wa-noise") -> None:
        self.rng = DeterministicRng(seed)
        self.root, self.inter, self.server, self.client, self.ce, self.se = (
            KeyPair.generate(self.rng) for _ in range(6))

    def chain(self, **kw) -> bytes:
        kw.setdefault("server_static", self.server.public.u)
        return certs.make_cert_chain(root=self.root.private, intermediate=self.inter,
                                     rng=self.rng, **kw)

    def pair(self, *, chain: bytes | None = None, payload=None, root=None, now=None,
             cert_check=None):
        server = WAServer(static=self.server, cert_chain=chain or self.chain(),
                          ephemeral=self.se, rng=self.rng)
        client = WAClient(static=self.client, ephemeral=self.ce, rng=self.rng, now=now,
                          payload=payload if payload is not None
                          else noise.interop_payload(token=b"header.claims.sig", account_id=42,
                                                     enable_read_receipts=True),
                          root_public=root or self.root.public.u, cert_check=cert_check)
        return client, server


def handshake(client: WAClient, server: WAServer, *, chunk: int | None = None):
    client.start()

    def deliver(data: bytes, to) -> list:
        if chunk is None:
            return to.receive_data(data)
        events = []
        for i in range(0, len(data), chunk):
            events += to.receive_data(data[i:i + chunk])
        return events

    assert deliver(client.data_to_send(), server) == []
    client_events = deliver(server.data_to_send(), client)
    server_events = deliver(client.data_to_send(), server)
    return client_events, server_events


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_handshake_and_transport_both_ways(chunk):
    k = Keys()
    client, server = k.pair()
    ce, se = handshake(client, server, chunk=chunk)
    assert ce == [HandshakeComplete(k.server.public.u)]
    assert len(se) == 1 and isinstance(se[0], ClientAuthenticated)
    auth = se[0]
    assert auth.client_static == k.client.public.u
    assert auth.payload.product == ClientPayload.INTEROP
    assert auth.payload.interopData.token == b"header.claims.sig"
    assert auth.payload.interopData.accountId == 42
    assert auth.payload.interopData.enableReadReceipts is True
    assert client.handshake_hash == server.handshake_hash
    for i in range(3):
        client.send(pack_payload(b"node-%d" % i))
        server.send(pack_payload(b"reply-%d" % i, compress=True))
    up, down = client.data_to_send(), server.data_to_send()
    assert [e.data for e in server.receive_data(up)] == [b"\x00node-%d" % i for i in range(3)]
    got = client.receive_data(down)
    assert all(isinstance(e, TransportFrame) for e in got) and len(got) == 3
    assert client.state == server.state == "transport"


def test_wire_layout():
    """Header first, then 3-byte framed protobufs; the payload field numbers are WAProto's."""
    k = Keys()
    client, server = k.pair()
    client.start()
    m1 = client.data_to_send()
    assert m1[:4] == b"WA\x06\x02"
    body = m1[7:]
    assert int.from_bytes(m1[4:7], "big") == len(body)
    # field 2 (clientHello), length 34, field 1 (ephemeral), length 32
    assert body[:4] == bytes([0x12, 34, 0x0A, 32]) and body[4:] == k.ce.public.u
    payload = noise.interop_payload(token=b"t", account_id=1).SerializeToString()
    assert payload == bytes([0xA0, 0x01, 0x02, 0xB2, 0x02, 0x05, 0x08, 0x01, 0x12, 0x01]) + b"t"


def test_deterministic_transcript():
    """Fixed keys and rng give the same bytes every run (the vectors rely on it)."""
    def transcript(seed: str) -> list[bytes]:
        client, server = Keys(seed).pair()
        client.start()
        out = [client.data_to_send()]
        server.receive_data(out[-1])
        out.append(server.data_to_send())
        client.receive_data(out[-1])
        out.append(client.data_to_send())
        return out
    assert transcript("same") == transcript("same")
    assert transcript("same") != transcript("other")


def test_nonce_is_32bit_counter_at_offset_8():
    key = bytes(range(32))
    cs = noise.CipherState(key)
    cs.n = 0x01020304
    ct = cs.encrypt(b"ad", b"x")
    assert ct == AESGCM(key).encrypt(bytes(8) + bytes([1, 2, 3, 4]), b"x", b"ad")
    cs.n = noise.MAX_NONCE + 1
    with pytest.raises(NonceExhausted):
        cs.encrypt(b"", b"x")


@pytest.mark.filterwarnings("ignore:One of ephemeral keypairs")
def test_symmetric_state_matches_noiseprotocol_on_standard_xx():
    """Our primitives, driven through *standard* XX, give noiseprotocol's bytes exactly."""
    k = Keys("std")
    prologue = b"WA\x06\x02"
    ini = NoiseConnection.from_name(b"Noise_XX_25519_AESGCM_SHA256")
    ini.set_as_initiator()
    ini.set_prologue(prologue)
    ini.set_keypair_from_private_bytes(Keypair.STATIC, k.client.private.serialize())
    ini.set_keypair_from_private_bytes(Keypair.EPHEMERAL, k.ce.private.serialize())
    ini.start_handshake()
    m1 = ini.write_message(b"")

    ss = noise.SymmetricState(b"Noise_XX_25519_AESGCM_SHA256")
    assert ss.h == noise.NOISE_MODE
    ss.mix_hash(prologue)
    ss.mix_hash(k.ce.public.u)
    ss.mix_hash(b"")  # standard Noise hashes the empty payload; WA does not
    assert m1 == k.ce.public.u

    resp = NoiseConnection.from_name(b"Noise_XX_25519_AESGCM_SHA256")
    resp.set_as_responder()
    resp.set_prologue(prologue)
    resp.set_keypair_from_private_bytes(Keypair.STATIC, k.server.private.serialize())
    resp.set_keypair_from_private_bytes(Keypair.EPHEMERAL, k.se.private.serialize())
    resp.start_handshake()
    resp.read_message(m1)
    m2 = resp.write_message(b"cert")
    ss.mix_hash(k.se.public.u)
    ss.mix_key(k.ce.private.agree(k.se.public))
    mine = k.se.public.u + ss.encrypt_and_hash(k.server.public.u)
    ss.mix_key(k.server.private.agree(k.ce.public))
    mine += ss.encrypt_and_hash(b"cert")
    assert m2 == mine
    ini.read_message(m2)
    m3 = ini.write_message(b"payload")
    mine = ss.encrypt_and_hash(k.client.public.u)
    ss.mix_key(k.client.private.agree(k.se.public))
    mine += ss.encrypt_and_hash(b"payload")
    assert m3 == mine
    assert ini.get_handshake_hash() == ss.h
    c1, _ = ss.split()
    assert ini.encrypt(b"frame") == c1.encrypt(b"", b"frame")


@pytest.mark.filterwarnings("ignore:One of ephemeral keypairs")
def test_standard_noise_initiator_is_rejected():
    """Why noiseprotocol cannot be used: a standard XX initiator disagrees on h at message 2."""
    k = Keys("std2")
    server = WAServer(static=k.server, cert_chain=k.chain(), ephemeral=k.se, rng=k.rng)
    ini = NoiseConnection.from_name(b"Noise_XX_25519_AESGCM_SHA256")
    ini.set_as_initiator()
    ini.set_prologue(b"WA\x06\x02")
    ini.set_keypair_from_private_bytes(Keypair.STATIC, k.client.private.serialize())
    ini.set_keypair_from_private_bytes(Keypair.EPHEMERAL, k.ce.private.serialize())
    ini.start_handshake()
    hello = HandshakeMessage()
    hello.clientHello.ephemeral = bytes(ini.write_message(b""))
    server.receive_data(b"WA\x06\x02" + encode_frame(hello.SerializeToString()))
    reply = HandshakeMessage()
    reply.ParseFromString(server.data_to_send()[3:])
    sh = reply.serverHello
    with pytest.raises(InvalidTag):  # the server static's tag: h differs by SHA256(h || "")
        ini.read_message(sh.ephemeral + sh.static + sh.payload)


# ------------------------------------------------------------------ malformed input

def _m1(k: Keys) -> bytes:
    c, _ = k.pair()
    c.start()
    return c.data_to_send()


def test_bad_connection_header():
    k = Keys()
    _, server = k.pair()
    with pytest.raises(BadHeader):
        server.receive_data(b"WA\x05\x02" + _m1(k)[4:])
    with pytest.raises(ConnectionClosed):
        server.receive_data(b"")


def test_wrong_dict_version_in_header():
    k = Keys()
    _, server = k.pair()
    with pytest.raises(BadHeader):
        server.receive_data(b"WA\x06\x03" + _m1(k)[4:])


@pytest.mark.parametrize("body, error", [
    (b"\xff\xff\xff", MalformedHandshake),                       # not a protobuf
    (b"", UnexpectedMessage),                                     # empty HandshakeMessage
    (bytes([0x22, 0x00]), UnexpectedMessage),                    # clientFinish first
    (bytes([0x12, 0x02, 0x0A, 0x00]), MalformedHandshake),       # ephemeral of 0 bytes
    (bytes([0x12, 0x04, 0x0A, 0x00, 0x12, 0x00]), MalformedHandshake),  # IK static present
])
def test_malformed_client_hello(body, error):
    k = Keys()
    _, server = k.pair()
    with pytest.raises(error):
        server.receive_data(b"WA\x06\x02" + encode_frame(body))


def test_low_order_ephemeral():
    k = Keys()
    _, server = k.pair()
    hello = HandshakeMessage()
    hello.clientHello.ephemeral = bytes(32)
    with pytest.raises(BadPeerKey):
        server.receive_data(b"WA\x06\x02" + encode_frame(hello.SerializeToString()))


def test_frame_length_over_limit():
    k = Keys()
    server = WAServer(static=k.server, cert_chain=k.chain(), rng=k.rng, max_frame=1000)
    with pytest.raises(FrameTooLarge):
        server.receive_data(b"WA\x06\x02" + (1001).to_bytes(3, "big"))


def _server_hello(k: Keys, **kw) -> tuple[WAClient, bytes]:
    client, server = k.pair(**{x: kw.pop(x) for x in ("chain", "root", "now", "cert_check")
                               if x in kw})
    client.start()
    server.receive_data(client.data_to_send())
    return client, server.data_to_send()


def _edit_server_hello(frame: bytes, edit) -> bytes:
    msg = HandshakeMessage()
    msg.ParseFromString(frame[3:])
    edit(msg.serverHello)
    return encode_frame(msg.SerializeToString())


def test_tampered_server_static():
    k = Keys()
    client, m2 = _server_hello(k)

    def flip(sh):
        sh.static = bytes([sh.static[0] ^ 1]) + sh.static[1:]
    with pytest.raises(DecryptFailed):
        client.receive_data(_edit_server_hello(m2, flip))
    with pytest.raises(ConnectionClosed):
        client.send(b"\x00")


@pytest.mark.parametrize("field, value", [("ephemeral", b"\x01" * 31), ("static", b"\x00" * 47),
                                          ("payload", b"\x00" * 15)])
def test_server_hello_field_sizes(field, value):
    client, m2 = _server_hello(Keys())
    with pytest.raises(MalformedHandshake):
        client.receive_data(_edit_server_hello(m2, lambda sh: setattr(sh, field, value)))


def test_server_hello_with_extra_message_kind():
    client, m2 = _server_hello(Keys())
    msg = HandshakeMessage()
    msg.ParseFromString(m2[3:])
    msg.clientHello.ephemeral = b"x"
    with pytest.raises(MalformedHandshake):
        client.receive_data(encode_frame(msg.SerializeToString()))


def test_wrong_root_key():
    k = Keys()
    client, m2 = _server_hello(k, root=k.inter.public.u)
    with pytest.raises(certs.CertificateError, match="intermediate signature"):
        client.receive_data(m2)


def test_chain_for_another_server_key():
    k = Keys()
    client, m2 = _server_hello(k, chain=k.chain(server_static=k.client.public.u))
    with pytest.raises(certs.CertificateError, match="not the server's static key"):
        client.receive_data(m2)


def test_cert_check_hook_without_leaf_pin_is_the_fault_and_still_checks_signatures():
    """Fault ``no_gatekeeper_key_check`` on wa: the chain of another key passes a check that
    verifies signatures only; a chain under another root still does not."""
    from reference_impl.provider.client.wire import chain_check_without_leaf_pin

    k = Keys()
    client, server = k.pair(chain=k.chain(server_static=k.client.public.u),
                            cert_check=chain_check_without_leaf_pin(k.root.public.u))
    client_events, server_events = handshake(client, server)
    assert client_events[0].server_static == k.server.public.u
    assert server_events  # message 3 went out: the impostor key was accepted
    client, m2 = _server_hello(k, chain=k.chain(server_static=k.client.public.u),
                               cert_check=chain_check_without_leaf_pin(k.inter.public.u))
    with pytest.raises(certs.CertificateError, match="intermediate signature"):
        client.receive_data(m2)


def test_expired_chain_only_with_now():
    k = Keys()
    chain = k.chain(not_before=100, not_after=200)
    client, m2 = _server_hello(k, chain=chain, now=150)
    assert isinstance(client.receive_data(m2)[0], HandshakeComplete)
    client, m2 = _server_hello(Keys(), chain=Keys().chain(not_before=100, not_after=200), now=201)
    with pytest.raises(certs.CertificateError, match="expired"):
        client.receive_data(m2)


def _verify(k: Keys, chain: bytes):
    return certs.verify_cert_chain(chain, server_static=k.server.public.u,
                                   root_public=k.root.public.u)


def _edited_chain(k: Keys, edit) -> bytes:
    chain = CertChain()
    chain.ParseFromString(k.chain())
    edit(chain)
    return chain.SerializeToString()


def test_cert_chain_checks():
    k = Keys()
    inter_d, leaf_d = _verify(k, k.chain(intermediate_serial=9, leaf_serial=10))
    assert (inter_d.serial, inter_d.issuerSerial, leaf_d.issuerSerial) == (9, 0, 9)
    with pytest.raises(certs.CertificateError, match="does not parse"):
        _verify(k, b"\xff\xff")
    with pytest.raises(certs.CertificateError, match="lacks"):
        _verify(k, _edited_chain(k, lambda c: c.ClearField("leaf")))
    with pytest.raises(certs.CertificateError, match="63 bytes"):
        _verify(k, _edited_chain(k, lambda c: setattr(c.leaf, "signature",
                                                      c.leaf.signature[:63])))
    with pytest.raises(certs.CertificateError, match="leaf signature"):
        _verify(k, _edited_chain(k, lambda c: setattr(c.leaf, "details",
                                                      c.leaf.details + b"\x08\x01")))


def _signed(k: Keys, *, inter: CertChain.NoiseCertificate.Details,
            leaf: CertChain.NoiseCertificate.Details) -> bytes:
    from reference_impl.signal import xeddsa
    chain = CertChain()
    chain.intermediate.details = inter.SerializeToString()
    chain.intermediate.signature = xeddsa.sign(k.root.private, chain.intermediate.details, k.rng)
    chain.leaf.details = leaf.SerializeToString()
    chain.leaf.signature = xeddsa.sign(k.inter.private, chain.leaf.details, k.rng)
    return chain.SerializeToString()


def test_cert_chain_serials_and_key_length():
    k = Keys()
    D = CertChain.NoiseCertificate.Details
    leaf = D(serial=2, issuerSerial=1, key=k.server.public.u)
    with pytest.raises(certs.CertificateError, match="issuerSerial 5"):
        _verify(k, _signed(k, inter=D(serial=1, issuerSerial=5, key=k.inter.public.u), leaf=leaf))
    with pytest.raises(certs.CertificateError, match="key is 31 bytes"):
        _verify(k, _signed(k, inter=D(serial=1, issuerSerial=0, key=k.inter.public.u[:31]),
                           leaf=leaf))
    with pytest.raises(certs.CertificateError, match="not the intermediate's serial"):
        _verify(k, _signed(k, inter=D(serial=3, issuerSerial=0, key=k.inter.public.u), leaf=leaf))


def _to_finish(k: Keys, payload) -> tuple[WAServer, bytes]:
    client, server = k.pair(payload=payload)
    client.start()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    return server, client.data_to_send()


def test_client_payload_that_is_no_protobuf():
    server, m3 = _to_finish(Keys(), b"\xff\xff\xff")
    with pytest.raises(MalformedHandshake, match="ClientPayload"):
        server.receive_data(m3)


def test_tampered_client_finish():
    server, m3 = _to_finish(Keys(), noise.interop_payload(token=b"t"))
    with pytest.raises(DecryptFailed):
        server.receive_data(m3[:-1] + bytes([m3[-1] ^ 0x80]))


def test_payload_without_token_is_reported_not_refused():
    """Policy belongs to the caller (a check reports it); the handshake still completes."""
    server, m3 = _to_finish(Keys(), ClientPayload(product=ClientPayload.WHATSAPP))
    (auth,) = server.receive_data(m3)
    assert not auth.payload.HasField("interopData") and auth.payload.product == 0


def test_tampered_transport_frame_and_misuse():
    k = Keys()
    client, server = k.pair()
    with pytest.raises(ConnectionClosed):
        client.send(b"\x00")
    with pytest.raises(ConnectionClosed):
        client.receive_data(b"\x00\x00\x01x")  # before start(): misuse ends the connection
    with pytest.raises(ConnectionClosed):
        client.start()
    client, server = k.pair()
    handshake(client, server)
    with pytest.raises(ConnectionClosed):
        client.start()
    client.send(b"\x00abc")
    frame = client.data_to_send()
    with pytest.raises(DecryptFailed):
        server.receive_data(frame[:-1] + bytes([frame[-1] ^ 1]))
    with pytest.raises(ConnectionClosed):
        server.receive_data(frame)


def test_short_transport_frame():
    k = Keys()
    client, server = k.pair()
    handshake(client, server)
    with pytest.raises(DecryptFailed, match="shorter than the tag"):
        server.receive_data(encode_frame(b"\x00" * 15))


def test_interop_payload_app_version():
    p = noise.interop_payload(token=b"t", app_version=(1, 0, 0))
    assert (p.userAgent.appVersion.primary, p.userAgent.appVersion.tertiary) == (1, 0)
    with pytest.raises(ValueError):
        noise.interop_payload(token=b"t", app_version=(1,) * 6)


def test_private_key_type_is_signal_curve25519():
    assert isinstance(Keys().client.private, PrivateKey)
