"""``evidence.zip`` + ``evidence.zip.sig``.

The zip holds the reports, the per-check wire logs and ``manifest.json`` (SHA-256 of every
other file, kit and vectors versions, profile, declaration digest, target). The detached
signature is Ed25519 over the exact bytes of ``manifest.json``, hex-encoded. The manifest (and
``report.json``) name the signer by :func:`fingerprint`, so a verifier can pin the key. Zip
entries get a fixed timestamp so the same files give the same bundle.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["write_bundle", "MANIFEST", "BUNDLE", "SIGNATURE", "PUBLIC_KEY", "manifest_for",
           "fingerprint", "load_signing_key", "MANIFEST_FORMAT"]

MANIFEST = "manifest.json"
BUNDLE = "evidence.zip"
SIGNATURE = "evidence.zip.sig"
PUBLIC_KEY = "evidence.pub.pem"
_EPOCH = (2020, 1, 1, 0, 0, 0)
MANIFEST_FORMAT = "1.1.0"  # 1.1.0 added signer_fingerprint


def fingerprint(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """SHA-256 of the raw 32-byte Ed25519 public key, hex: what a CI config pins."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def manifest_for(files: dict[str, bytes], report: dict[str, Any], signer_fingerprint: str) -> bytes:
    manifest = {
        "format": MANIFEST_FORMAT,
        "signer_fingerprint": signer_fingerprint,
        "kit": report["kit"],
        "vectors_version": report["vectors_version"],
        "profile": report["profile"],
        "declaration_sha256": report["declaration_sha256"],
        "target": report["target"],
        "result": report["result"],
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


def load_signing_key(path: str | None) -> Ed25519PrivateKey:
    """The configured key, or a fresh throwaway one (its bundles verify only as "signer
    unverified" unless the verifier pins the fingerprint printed in the manifest)."""
    if not path:
        return Ed25519PrivateKey.generate()
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"--signing-key {path} is not an Ed25519 private key")
    return key


def _zip_bytes(files: dict[str, bytes], manifest: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(zipfile.ZipInfo(name, _EPOCH), files[name])
        zf.writestr(zipfile.ZipInfo(MANIFEST, _EPOCH), manifest)
    return buf.getvalue()


def bundle_files(files: dict[str, bytes], report: dict[str, Any],
                 key: Ed25519PrivateKey) -> dict[str, bytes]:
    """The three bundle files by name, in memory, so the caller can write them atomically."""
    manifest = manifest_for(files, report, fingerprint(key))
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return {BUNDLE: _zip_bytes(files, manifest), SIGNATURE: (key.sign(manifest).hex() + "\n").encode(),
            PUBLIC_KEY: pub}


def write_bundle(out: Path, files: dict[str, bytes], report: dict[str, Any], *,
                 signing_key: str | Ed25519PrivateKey | None = None) -> dict[str, Path]:
    key = signing_key if isinstance(signing_key, Ed25519PrivateKey) else load_signing_key(signing_key)
    paths = {}
    for name, data in bundle_files(files, report, key).items():
        (out / name).write_bytes(data)
        paths[name] = out / name
    return paths
