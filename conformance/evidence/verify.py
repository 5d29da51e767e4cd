"""``conformance verify BUNDLE [--profile P] [--public-key K]``.

Checks, in order: the Ed25519 signature over ``manifest.json``; that the zip holds exactly the
files the manifest lists, each with its SHA-256; that ``report.json`` matches its schema; that
every requirement the profile requires is present; and that none is FAIL, ERROR or (MUST)
NOT_TESTED.

Exit codes: 0 pass · 2 unreadable input or usage · 3 tampered (signature, hash, file set) ·
4 incomplete (schema, missing or NOT_TESTED required requirement) · 5 failed (FAIL / ERROR).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .bundle import MANIFEST, PUBLIC_KEY, SIGNATURE

EXIT_OK, EXIT_USAGE, EXIT_TAMPERED, EXIT_INCOMPLETE, EXIT_FAILED = 0, 2, 3, 4, 5
MAX_MEMBER = 64 * 1024 * 1024


class VerifyError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="evidence.zip (its .sig is read from beside it)")
    p.add_argument("--profile", help="profile the bundle must satisfy (default: the one it names)")
    p.add_argument("--public-key", help="Ed25519 public key (PEM) the bundle must be signed with")
    p.add_argument("--signature", help="detached signature file (default: BUNDLE.sig)")


def verify(bundle: Path, *, profile: str | None = None, public_key: Path | None = None,
           signature: Path | None = None) -> tuple[dict, list[str]]:
    """Return the report and notes, or raise :class:`VerifyError` with the exit code."""
    notes: list[str] = []
    sig_path = signature or bundle.with_name(bundle.name + ".sig")
    if public_key is None:
        public_key = bundle.with_name(PUBLIC_KEY)
        notes.append(f"using {public_key.name} from beside the bundle: this proves integrity, "
                     "not who signed it; pass --public-key for that")
    try:
        zf = zipfile.ZipFile(bundle)
    except (OSError, zipfile.BadZipFile) as exc:
        raise VerifyError(EXIT_USAGE, f"cannot read bundle {bundle}: {exc}") from exc
    try:
        sig = bytes.fromhex(sig_path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise VerifyError(EXIT_TAMPERED, f"signature {sig_path} missing or not hex: {exc}") from exc
    try:
        key = serialization.load_pem_public_key(public_key.read_bytes())
    except (OSError, ValueError) as exc:
        raise VerifyError(EXIT_USAGE, f"cannot read public key {public_key}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise VerifyError(EXIT_USAGE, f"{public_key} is not an Ed25519 public key")
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        if MANIFEST not in infos:
            raise VerifyError(EXIT_TAMPERED, "bundle has no manifest.json")
        if any(i.file_size > MAX_MEMBER for i in infos.values()):
            raise VerifyError(EXIT_TAMPERED, "bundle member larger than 64 MiB")
        manifest_bytes = zf.read(MANIFEST)
        try:
            key.verify(sig, manifest_bytes)
        except InvalidSignature as exc:
            raise VerifyError(EXIT_TAMPERED, "signature does not match manifest.json") from exc
        manifest = json.loads(manifest_bytes)
        listed = manifest.get("files", {})
        present = set(infos) - {MANIFEST}
        if present - set(listed):
            raise VerifyError(EXIT_TAMPERED, f"files not in the manifest: {sorted(present - set(listed))}")
        if set(listed) - present:
            raise VerifyError(EXIT_TAMPERED, f"files missing from the bundle: {sorted(set(listed) - present)}")
        for name, digest in listed.items():
            if hashlib.sha256(zf.read(name)).hexdigest() != digest:
                raise VerifyError(EXIT_TAMPERED, f"{name}: SHA-256 differs from the manifest")
        try:
            report = json.loads(zf.read("report.json"))
        except (KeyError, ValueError) as exc:
            raise VerifyError(EXIT_INCOMPLETE, f"report.json missing or not JSON: {exc}") from exc
    from ..reporting import validate_report

    errors = validate_report(report)
    if errors:
        raise VerifyError(EXIT_INCOMPLETE, "report.json does not match its schema: " + "; ".join(errors[:5]))
    from ..profile import ProfileError, load_profile

    try:
        prof = load_profile(profile or report["profile"]["name"])
    except ProfileError as exc:
        raise VerifyError(EXIT_USAGE, str(exc)) from exc
    got = {r["id"]: r for r in report["requirements"]}
    missing = sorted(r.id for r in prof.requirements if r.level == "MUST" and r.id not in got)
    if missing:
        raise VerifyError(EXIT_INCOMPLETE, f"required requirements absent from the report: {', '.join(missing)}")
    failed = sorted(rid for rid, r in got.items() if r["verdict"] in ("FAIL", "ERROR"))
    if failed:
        raise VerifyError(EXIT_FAILED, f"requirements with FAIL or ERROR: {', '.join(failed)}")
    untested = sorted(r.id for r in prof.requirements if r.level == "MUST" and got[r.id]["verdict"] == "NOT_TESTED")
    if untested:
        raise VerifyError(EXIT_INCOMPLETE, f"required requirements NOT_TESTED: {', '.join(untested)}")
    return report, notes


def run(args: argparse.Namespace) -> int:
    try:
        report, notes = verify(Path(args.bundle), profile=args.profile,
                               public_key=Path(args.public_key) if args.public_key else None,
                               signature=Path(args.signature) if args.signature else None)
    except VerifyError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return exc.code
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    s = report["summary"]["by_verdict"]
    print(f"OK: {report['profile']['name']} {report['profile']['version']}, "
          f"{report['summary']['requirements']} requirements: "
          + ", ".join(f"{k} {v}" for k, v in s.items() if v))
    return EXIT_OK
