"""Provision the npm libsignal adapter: ``python -m vectors.adapters.node_env`` prints its command.

Copies ``vectors/adapters/node/{package.json,package-lock.json,adapter.js}`` into
``<repo>/.interop-peers/vectors-node/`` (gitignored) and runs ``npm ci`` there once per lock
file, under an ``fcntl`` lock so parallel test workers do not race. Idempotent: a marker holds
the hash of the manifests; ``adapter.js`` is refreshed on every call without reinstalling.
"""
from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SOURCE_DIR", "NodeUnavailable", "adapter_command", "ensure_node_adapter"]

SOURCE_DIR = Path(__file__).resolve().parent / "node"
REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_TIMEOUT = 600


class NodeUnavailable(RuntimeError):
    """node/npm missing, or npm ci failed."""


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _copy_if_changed(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    if not dst.exists() or dst.read_bytes() != data:
        dst.write_bytes(data)


def ensure_node_adapter(cache_root: Path | None = None) -> Path:
    """Return the directory holding a ready ``adapter.js`` with ``node_modules``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise NodeUnavailable(f"node and npm are required (node: {node or 'missing'}, npm: {npm or 'missing'})")
    root = cache_root or REPO_ROOT / ".interop-peers"
    target = root / "vectors-node"
    manifests = [SOURCE_DIR / "package.json", SOURCE_DIR / "package-lock.json"]
    stamp = hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in manifests)).hexdigest()
    marker = target / ".provisioned"
    with _locked(root / "vectors-node.lock"):
        target.mkdir(parents=True, exist_ok=True)
        _copy_if_changed(SOURCE_DIR / "adapter.js", target / "adapter.js")
        if marker.exists() and marker.read_text().strip() == stamp \
                and (target / "node_modules" / "libsignal" / "package.json").exists():
            return target
        marker.unlink(missing_ok=True)
        shutil.rmtree(target / "node_modules", ignore_errors=True)
        for p in manifests:
            _copy_if_changed(p, target / p.name)
        argv = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
        try:
            proc = subprocess.run(argv, cwd=target, capture_output=True, text=True, timeout=NPM_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise NodeUnavailable(f"npm ci timed out after {NPM_TIMEOUT}s") from exc
        if proc.returncode:
            raise NodeUnavailable(f"npm ci failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        marker.write_text(stamp + "\n")
    return target


def adapter_command(cache_root: Path | None = None) -> str:
    return f"node {ensure_node_adapter(cache_root) / 'adapter.js'}"


if __name__ == "__main__":
    try:
        print(adapter_command())
    except NodeUnavailable as exc:
        print(f"npm libsignal adapter unavailable: {exc}", file=sys.stderr)
        raise SystemExit(1)
