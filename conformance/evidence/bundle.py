"""``evidence.zip`` + ``evidence.zip.sig``.

The zip holds the reports, the per-check wire logs and ``manifest.json`` (SHA-256 of every
other file, kit and vectors versions, profile, declaration digest, target). The detached
signature is Ed25519 over the exact bytes of ``manifest.json``, hex-encoded. Zip entries get
a fixed timestamp so the same files give the same bundle.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["write_bundle", "MANIFEST", "BUNDLE", "SIGNATURE", "PUBLIC_KEY", "manifest_for"]

MANIFEST = "manifest.json"
BUNDLE = "evidence.zip"
SIGNATURE = "evidence.zip.sig"
PUBLIC_KEY = "evidence.pub.pem"
_EPOCH = (2020, 1, 1, 0, 0, 0)


def manifest_for(files: dict[str, bytes], report: dict[str, Any]) -> bytes:
    manifest = {
        "format": "1.0.0",
        "kit": report["kit"],
        "vectors_version": report["vectors_version"],
        "profile": report["profile"],
        "declaration_sha256": report["declaration_sha256"],
        "target": report["target"],
        "result": report["result"],
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


def _load_key(path: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"--signing-key {path} is not an Ed25519 private key")
    return key


def write_bundle(out: Path, files: dict[str, bytes], report: dict[str, Any], *,
                 signing_key: str | None = None) -> dict[str, Path]:
    manifest = manifest_for(files, report)
    bundle = out / BUNDLE
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(zipfile.ZipInfo(name, _EPOCH), files[name])
        zf.writestr(zipfile.ZipInfo(MANIFEST, _EPOCH), manifest)
    key = _load_key(signing_key) if signing_key else Ed25519PrivateKey.generate()
    (out / SIGNATURE).write_text(key.sign(manifest).hex() + "\n")
    paths = {"evidence.zip": bundle, "evidence.zip.sig": out / SIGNATURE}
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    (out / PUBLIC_KEY).write_bytes(pub)
    paths["evidence.pub.pem"] = out / PUBLIC_KEY
    return paths
