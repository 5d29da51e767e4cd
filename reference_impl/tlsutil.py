"""Throw-away test certificates: one CA and one server certificate signed by it.

Both the gatekeeper simulator (TLS to G, TRN-006) and the reference provider (local TLS runs)
need the same thing, so it lives here, below both. ``cryptography`` builds the certificates;
only the choice of extensions is ours.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsMaterial", "generate_tls", "subject_alt_names"]


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """PEM texts: the CA certificate (what a client trusts), the leaf and its private key."""

    ca_pem: str
    cert_pem: str
    key_pem: str


def subject_alt_names(names: list[str]) -> list[x509.GeneralName]:
    """IP-address entries for addresses, DNS entries for everything else (duplicates dropped)."""
    out: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def generate_tls(hosts: list[str], *, days: int = 7, ca_common_name: str = "Test CA",
                 common_name: str | None = None,
                 backdate: dt.timedelta = dt.timedelta(minutes=5)) -> TlsMaterial:
    """A fresh P-256 CA and a server-auth leaf for ``hosts`` (its subject alternative names).

    ``backdate`` moves ``notBefore`` into the past so small clock skews do not reject it.
    """
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - backdate, now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cn = common_name or hosts[0]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(subject_alt_names(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return TlsMaterial(
        ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
