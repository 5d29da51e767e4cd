"""A generated certificate authority and server certificate for local TLS runs, as files.

The CA certificate (``ca.pem``) is what the kit trusts; the leaf names ``localhost``, the
loopback addresses and the host the server binds, so TRN-001's name check passes.
"""
from __future__ import annotations

import datetime as dt
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from ..tlsutil import generate_tls

__all__ = ["TlsFiles", "ensure_certificates", "server_context"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path


def ensure_certificates(directory: Path, hosts: list[str]) -> TlsFiles:
    """Create (once) a CA and a leaf certificate for ``hosts`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    marker = directory / "hosts.txt"
    wanted = ",".join(sorted(set(hosts)))
    if files.cert.exists() and marker.exists() and marker.read_text() == wanted:
        return files
    m = generate_tls(["localhost", "127.0.0.1", "::1", *hosts], days=30,
                     ca_common_name="Reference provider test CA",
                     common_name=hosts[0] if hosts else "localhost", backdate=dt.timedelta(hours=1))
    files.ca_cert.write_text(m.ca_pem)
    files.cert.write_text(m.cert_pem)
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(m.key_pem)
    marker.write_text(wanted)
    return files


def server_context(files: TlsFiles, *, http2: bool = True, cbc_ciphers: bool = False,
                   legacy_versions: bool = False) -> ssl.SSLContext:
    """TLS 1.2+ with ECDHE + AEAD only (TRN-001..TRN-003), ALPN h2 and http/1.1 (TRN-004)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20"
    if cbc_ciphers:  # fault tls_cbc_ciphers
        ciphers += ":ECDHE+AES+SHA:AES128-SHA:AES256-SHA"
    if legacy_versions:  # fault tls_legacy_versions
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ciphers += ":ECDHE+AES+SHA:AES128-SHA:AES256-SHA:@SECLEVEL=0"
    ctx.set_ciphers(ciphers)
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    ctx.load_cert_chain(files.cert, files.key)
    return ctx
