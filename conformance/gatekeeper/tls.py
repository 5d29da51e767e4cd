"""A throw-away CA and server certificate, so providers can test TLS to G (TRN-006) without
a public certificate: the CA's PEM goes to the client as ``ca_certificates``.

The certificate building is shared with the reference provider in :mod:`reference_impl.tlsutil`.
"""
from __future__ import annotations

from reference_impl.tlsutil import TlsMaterial
from reference_impl.tlsutil import generate_tls as _generate

__all__ = ["TlsMaterial", "generate_tls"]


def generate_tls(hosts: list[str], days: int = 7) -> TlsMaterial:
    return _generate(hosts, days=days, ca_common_name="Interop conformance kit test CA")
