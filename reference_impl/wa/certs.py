"""The WA server certificate chain: root key -> intermediate -> leaf (the server's static key).

In message 2 the server sends, encrypted, a ``CertChain`` (``docs/spec/proto/wa_handshake.proto``):
two ``NoiseCertificate``\\ s, each a serialized ``Details`` plus a 64-byte XEdDSA signature over
those exact bytes. Observed rules (whatsmeow ``handshake.go`` ``verifyServerCert``, S13):

1. both certificates have details and a 64-byte signature;
2. the intermediate's details verify under the root key (XEdDSA, Curve25519 key — libsignal's
   ``ecc.VerifySignature``, not plain Ed25519);
3. the intermediate's ``issuerSerial`` is 0 (the root) and its ``key`` is 32 bytes;
4. the leaf's details verify under the intermediate's key;
5. the leaf's ``issuerSerial`` equals the intermediate's ``serial``;
6. the leaf's ``key`` equals the static key the server just revealed.

Baileys 6.17.16 checks only rule 3's ``issuerSerial == 0`` and no signature. Validity times
(``notBefore``/``notAfter``) are checked by neither; here only when the caller passes ``now``.
The real root key is WhatsApp's; the kit's simulator signs under its own test root, so a client
under test must let its root key be configured for the run.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from reference_impl.signal import xeddsa
from reference_impl.signal.errors import InvalidSignatureError
from reference_impl.signal.keys import KeyPair, PrivateKey, PublicKey
from reference_impl.signal.rng import Rng, system_rng
from reference_impl.wa.binary_xml import WAError
from reference_impl.wa.wa_handshake_pb2 import CertChain

__all__ = ["CertificateError", "OBSERVED_WA_ROOT_PUBLIC", "ROOT_SERIAL", "make_cert_chain",
           "verify_cert_chain"]

#: WhatsApp's root public key as whatsmeow pins it (``WACertPubKey``, S13); public data, for
#: documentation and for checking captured chains. Observed, not public.
OBSERVED_WA_ROOT_PUBLIC = bytes.fromhex(
    "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b")
#: The issuer serial an intermediate must carry (Baileys ``WA_CERT_DETAILS.SERIAL``; S13).
ROOT_SERIAL = 0


class CertificateError(WAError):
    """The server's certificate chain is malformed or does not prove its static key."""


def _details(*, serial: int, issuer_serial: int, key: bytes, not_before: int | None,
             not_after: int | None) -> CertChain.NoiseCertificate.Details:
    d = CertChain.NoiseCertificate.Details(serial=serial, issuerSerial=issuer_serial, key=key)
    if not_before is not None:
        d.notBefore = not_before
    if not_after is not None:
        d.notAfter = not_after
    return d


def make_cert_chain(*, root: PrivateKey, intermediate: KeyPair, server_static: bytes,
                    intermediate_serial: int = 1, leaf_serial: int = 2,
                    not_before: int | None = None, not_after: int | None = None,
                    rng: Rng = system_rng) -> bytes:
    """A serialized ``CertChain`` proving ``server_static`` (32 bytes) under ``root``."""
    chain = CertChain()
    inter = _details(serial=intermediate_serial, issuer_serial=ROOT_SERIAL,
                     key=intermediate.public.u, not_before=not_before, not_after=not_after)
    leaf = _details(serial=leaf_serial, issuer_serial=intermediate_serial, key=server_static,
                    not_before=not_before, not_after=not_after)
    inter_raw, leaf_raw = inter.SerializeToString(), leaf.SerializeToString()
    chain.intermediate.details = inter_raw
    chain.intermediate.signature = xeddsa.sign(root, inter_raw, rng)
    chain.leaf.details = leaf_raw
    chain.leaf.signature = xeddsa.sign(intermediate.private, leaf_raw, rng)
    return chain.SerializeToString()


def _parse(raw: bytes, what: str) -> CertChain.NoiseCertificate.Details:
    d = CertChain.NoiseCertificate.Details()
    try:
        d.ParseFromString(raw)
    except DecodeError as exc:
        raise CertificateError(f"{what} details do not parse: {exc}") from None
    return d


def _verify(key: bytes, raw: bytes, sig: bytes, what: str) -> None:
    try:
        xeddsa.verify(PublicKey(key), raw, sig)
    except InvalidSignatureError as exc:
        raise CertificateError(f"{what} signature does not verify: {exc}") from None


def _check_time(d: CertChain.NoiseCertificate.Details, now: int | None, what: str) -> None:
    if now is None:
        return
    if d.HasField("notBefore") and now < d.notBefore:
        raise CertificateError(f"{what} not valid before {d.notBefore} (now {now})")
    if d.HasField("notAfter") and now > d.notAfter:
        raise CertificateError(f"{what} expired at {d.notAfter} (now {now})")


def verify_cert_chain(data: bytes, *, server_static: bytes, root_public: bytes,
                      now: int | None = None) -> tuple[CertChain.NoiseCertificate.Details,
                                                       CertChain.NoiseCertificate.Details]:
    """Check rules 1-6 (and validity times if ``now``); return (intermediate, leaf) details."""
    if len(root_public) != 32:
        raise ValueError("root_public must be 32 bytes")
    chain = CertChain()
    try:
        chain.ParseFromString(data)
    except DecodeError as exc:
        raise CertificateError(f"certificate chain does not parse: {exc}") from None
    inter, leaf = chain.intermediate, chain.leaf
    if not (inter.details and inter.signature and leaf.details and leaf.signature):
        raise CertificateError("certificate chain lacks details or signatures")
    for cert, what in ((inter, "intermediate"), (leaf, "leaf")):
        if len(cert.signature) != xeddsa.SIGNATURE_LENGTH:
            raise CertificateError(f"{what} signature is {len(cert.signature)} bytes, expected 64")
    _verify(root_public, inter.details, inter.signature, "intermediate")
    inter_d = _parse(inter.details, "intermediate")
    if inter_d.issuerSerial != ROOT_SERIAL:
        raise CertificateError(f"intermediate issuerSerial {inter_d.issuerSerial}, expected 0")
    if len(inter_d.key) != 32:
        raise CertificateError(f"intermediate key is {len(inter_d.key)} bytes, expected 32")
    _verify(inter_d.key, leaf.details, leaf.signature, "leaf")
    leaf_d = _parse(leaf.details, "leaf")
    if leaf_d.issuerSerial != inter_d.serial:
        raise CertificateError(f"leaf issuerSerial {leaf_d.issuerSerial} is not the "
                               f"intermediate's serial {inter_d.serial}")
    if leaf_d.key != server_static:
        raise CertificateError("leaf key is not the server's static key")
    _check_time(inter_d, now, "intermediate")
    _check_time(leaf_d, now, "leaf")
    return inter_d, leaf_d
