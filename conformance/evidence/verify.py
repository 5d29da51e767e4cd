"""``conformance verify BUNDLE [--profile P] [--public-key PEM | --fingerprint HEX | --allowed-signers FILE]``.

Checks, in order: the zip's entry metadata (no duplicate names, only regular files, no
encryption or unexpected flags or methods, size and entry-count limits); the Ed25519 signature
over ``manifest.json`` and who made it (the pinned key, or the key beside the bundle, which
proves integrity only); that the signer fingerprint named in the manifest and report matches;
that the zip holds exactly the files the manifest lists, each with its SHA-256; that
``report.json`` matches its schema and is neither an interrupted run's nor a partial
selection's (``--provenance``); that every requirement the
profile requires is present; and that none is FAIL, ERROR or (MUST) NOT_TESTED.

Exit codes:
  0  pass, signed by the pinned key
  2  unreadable input or usage (not a zip, truncated, over a size limit, wrong JSON shape)
  3  tampered (signature, signer not the pinned key, hash, file set, duplicate or non-regular
     or encrypted entries, bad CRC)
  4  incomplete (schema, interrupted run, missing or NOT_TESTED required requirement)
  5  failed (FAIL / ERROR)
  6  would pass, but the signer is unverified (no --public-key / --fingerprint / --allowed-signers)
It never exits 1. One verdict line goes to stdout whatever the outcome.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .bundle import MANIFEST, PUBLIC_KEY, fingerprint
from .safezip import MAX_JSON, BundleError, SafeZip

EXIT_OK, EXIT_USAGE, EXIT_TAMPERED, EXIT_INCOMPLETE, EXIT_FAILED, EXIT_UNVERIFIED = 0, 2, 3, 4, 5, 6
_NAMES = {0: "OK", 2: "UNREADABLE", 3: "TAMPERED", 4: "INCOMPLETE", 5: "FAILED", 6: "OK-UNVERIFIED-SIGNER"}
_SMALL_FILE = 64 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class VerifyError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = __doc__.split("\n", 2)[2]
    p.add_argument("bundle", help="evidence.zip (its .sig is read from beside it)")
    p.add_argument("--profile", help="profile the bundle must satisfy (default: the one it names)")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument("--public-key", help="Ed25519 public key (PEM) the bundle must be signed with")
    pin.add_argument("--fingerprint", action="append", default=[], metavar="HEX",
                     help="SHA-256 (hex) of the raw Ed25519 public key that must have signed "
                          "(repeatable); the key itself is read from evidence.pub.pem beside the bundle")
    pin.add_argument("--allowed-signers", metavar="FILE",
                     help="file of allowed signer fingerprints, one per line (# comments)")
    p.add_argument("--signature", help="detached signature file (default: BUNDLE.sig)")


def _read_capped(path: Path, what: str, limit: int = _SMALL_FILE, code: int = EXIT_USAGE) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise VerifyError(code, f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise VerifyError(code, f"{what} {path} is larger than {limit} bytes")
    return data


def _load_public_key(path: Path, code: int = EXIT_USAGE) -> Ed25519PublicKey:
    data = _read_capped(path, "public key", code=code)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise VerifyError(code, f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise VerifyError(code, f"{path} is not an Ed25519 public key")
    return key


def parse_fingerprints(values: list[str], source: str) -> set[str]:
    out = set()
    for raw in values:
        fp = raw.split("#", 1)[0].strip().lower().replace(":", "")
        if not fp:
            continue
        if not _HEX64.match(fp):
            raise VerifyError(EXIT_USAGE, f"{source}: {raw.strip()[:80]!r} is not a 64-hex-digit fingerprint")
        out.add(fp)
    return out


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise VerifyError(EXIT_USAGE, f"{name} is not JSON: {str(exc)[:120]}") from exc
    if not isinstance(value, dict):
        raise VerifyError(EXIT_USAGE, f"{name} is a JSON {type(value).__name__}, not an object")
    return value


def verify(bundle: Path, *, profile: str | None = None, public_key: Path | None = None,
           fingerprints: set[str] | None = None,
           signature: Path | None = None) -> tuple[dict, list[str], str | None]:
    """Return ``(report, notes, pinned_fingerprint_or_None)`` or raise :class:`VerifyError`.

    With no pin the signature is checked against the key beside the bundle and the returned
    pin is ``None``: the caller must not call that a pass (exit 6)."""
    notes: list[str] = []
    sig_path = signature or bundle.with_name(bundle.name + ".sig")
    pinned: str | None = None
    if public_key is not None:
        key = _load_public_key(public_key)
        pinned = fingerprint(key)
    else:
        shipped = bundle.with_name(PUBLIC_KEY)
        key = _load_public_key(shipped, code=EXIT_TAMPERED if fingerprints else EXIT_USAGE)
        if fingerprints:
            fp = fingerprint(key)
            if fp not in fingerprints:
                raise VerifyError(EXIT_TAMPERED, f"signed by key {fp[:16]}…, which is not a pinned signer")
            pinned = fp
        else:
            notes.append(f"using {shipped.name} from beside the bundle: this proves integrity, "
                         "not who signed it; pin --public-key, --fingerprint or --allowed-signers")
    try:
        with SafeZip(bundle) as zf:
            sig_text = _read_capped(sig_path, "signature", 1024, EXIT_TAMPERED)
            try:
                sig = bytes.fromhex(sig_text.decode("ascii").strip())
            except (ValueError, UnicodeDecodeError) as exc:
                raise VerifyError(EXIT_TAMPERED, f"signature {sig_path} is not hex") from exc
            if MANIFEST not in zf.names():
                raise VerifyError(EXIT_TAMPERED, "bundle has no manifest.json")
            manifest_bytes = zf.read_small(MANIFEST)
            try:
                key.verify(sig, manifest_bytes)
            except InvalidSignature as exc:
                raise VerifyError(EXIT_TAMPERED, "signature does not match manifest.json"
                                  + (" under the pinned key" if pinned else "")) from exc
            manifest = _json_object(manifest_bytes, MANIFEST)
            signer = fingerprint(key)
            named = manifest.get("signer_fingerprint")
            if named is not None and named != signer:
                raise VerifyError(EXIT_TAMPERED, "manifest names a signer other than the key that signed it")
            if named is None:
                notes.append("1.0.0-era bundle: the manifest names no signer")
            listed = manifest.get("files")
            if not isinstance(listed, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in listed.items()):
                raise VerifyError(EXIT_USAGE, "manifest.json 'files' is not an object of name -> sha256")
            present = zf.names() - {MANIFEST}
            if present - set(listed):
                raise VerifyError(EXIT_TAMPERED, f"files not in the manifest: {sorted(present - set(listed))[:5]}")
            if set(listed) - present:
                raise VerifyError(EXIT_TAMPERED, f"files missing from the bundle: {sorted(set(listed) - present)[:5]}")
            for name, digest in sorted(listed.items()):
                if zf.sha256(name) != digest:
                    raise VerifyError(EXIT_TAMPERED, f"{name}: SHA-256 differs from the manifest")
            if "report.json" not in present:
                raise VerifyError(EXIT_INCOMPLETE, "bundle has no report.json")
            report = _json_object(zf.read_small("report.json", MAX_JSON), "report.json")
    except BundleError as exc:
        raise VerifyError(EXIT_TAMPERED if exc.kind == "tampered" else EXIT_USAGE, str(exc)) from exc
    rfp = report.get("signer_fingerprint")
    if rfp is not None and rfp != signer:
        raise VerifyError(EXIT_TAMPERED, "report.json names a signer other than the key that signed it")
    from ..reporting import validate_report

    errors = validate_report(report)
    if errors:
        raise VerifyError(EXIT_INCOMPLETE, "report.json does not match its schema: " + "; ".join(errors[:3])[:400])
    if report.get("interrupted"):
        raise VerifyError(EXIT_INCOMPLETE, "report.json is an interrupted run's partial report")
    selection = report.get("selection")  # absent in 1.0.0-era reports: they ran everything
    if isinstance(selection, dict) and selection.get("complete") is False:
        raise VerifyError(EXIT_INCOMPLETE, "report.json is a partial selection's (provenance "
                          f"{','.join(selection.get('provenance', []))}), not a whole-profile run")
    from ..profile import ProfileError, load_profile

    from ..catalog import CatalogError, requirements_at

    try:  # the requirements of the version the report was made under (IDs never change meaning)
        catalog = requirements_at(str(report["profile"]["version"]))
    except CatalogError as exc:
        raise VerifyError(EXIT_INCOMPLETE, f"report.json names an unknown profile version: {exc}") from exc
    try:
        prof = load_profile(profile or report["profile"]["name"], catalog=catalog)
    except ProfileError as exc:
        raise VerifyError(EXIT_USAGE, str(exc).splitlines()[0] if str(exc) else "unknown profile") from exc
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
    return report, notes, pinned


def _pins(args: argparse.Namespace) -> set[str] | None:
    if args.allowed_signers:
        path = Path(args.allowed_signers)
        text = _read_capped(path, "allowed-signers file", 1024 * 1024).decode("utf-8", "replace")
        pins = parse_fingerprints(text.splitlines(), str(path))
        if not pins:
            raise VerifyError(EXIT_USAGE, f"{path} lists no fingerprint")
        return pins
    if args.fingerprint:
        return parse_fingerprints(args.fingerprint, "--fingerprint")
    return None


def main(argv: list[str] | None = None) -> int:
    """In-process entry point (what the fuzz tests drive): parse, verify, print, return the code."""
    p = argparse.ArgumentParser(prog="conformance verify")
    add_arguments(p)
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    return run(args)


def run(args: argparse.Namespace) -> int:
    unverified = " [signer unverified]"
    try:
        pins = _pins(args)
        if args.public_key:
            unverified = ""
        elif pins:
            unverified = ""
        report, notes, pinned = verify(Path(args.bundle), profile=args.profile,
                                       public_key=Path(args.public_key) if args.public_key else None,
                                       fingerprints=pins,
                                       signature=Path(args.signature) if args.signature else None)
    except VerifyError as exc:
        line = " ".join(str(exc).split())[:600]
        print(f"{_NAMES[exc.code]}{unverified}: {line}")
        print(f"verify: {line}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        line = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        print(f"UNREADABLE{unverified}: {line}")
        print(f"verify: unexpected input problem: {line}", file=sys.stderr)
        return EXIT_USAGE
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    s = report["summary"]["by_verdict"]
    summary = (f"{report['profile']['name']} {report['profile']['version']}, "
               f"{report['summary']['requirements']} requirements: "
               + ", ".join(f"{k} {v}" for k, v in s.items() if v))
    if pinned is None:
        print(f"OK-UNVERIFIED-SIGNER: {summary}; signer unverified (key {fingerprint_of_report(report)})"
              " — pin --public-key, --fingerprint or --allowed-signers")
        return EXIT_UNVERIFIED
    print(f"OK: {summary}; signed by pinned key {pinned}")
    return EXIT_OK


def fingerprint_of_report(report: dict) -> str:
    fp = report.get("signer_fingerprint")
    return fp if isinstance(fp, str) else "not named: 1.0.0-era bundle"


if __name__ == "__main__":
    sys.exit(main())
