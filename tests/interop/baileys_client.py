"""Provision the Baileys binary-XML oracle (npm ``baileys`` 6.17.16, MIT) and talk to it.

``npm pack`` fetches the pinned tarball (a plain install fails on Baileys' git-only
dependencies); its sha512 is checked against the registry integrity pinned here, then only
``package.json`` and ``lib/WABinary/*`` are extracted: those modules need no npm packages, so
there is nothing else to install and no lock file. Cached in ``<cache>/baileys`` with a marker.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tarfile
from pathlib import Path

import peers_client
from peers_client import Peer, ProvisioningError

BAILEYS_VERSION = "6.17.16"
BAILEYS_INTEGRITY = ("sha512-5dLjZ6+yRR4K7u56xKGCOsLPu5o7PrfLpAW0wV3WELpQQ6m33xwFK+Jd6hu+xDSVfMr7"
                     "SqP2Dn0jqj+zH8ymdw==")
ADAPTER = Path(__file__).resolve().parent / "peers" / "baileys" / "wabinary.js"


def ensure_baileys() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise ProvisioningError("node and npm are needed for the Baileys oracle")
    target = peers_client.cache_dir() / "baileys"
    marker = target / ".provisioned"
    with peers_client._locked("baileys"):
        target.mkdir(parents=True, exist_ok=True)
        peers_client._write_if_changed(ADAPTER, target / "wabinary.js")
        if marker.exists() and marker.read_text().strip() == BAILEYS_INTEGRITY:
            return target
        tgz = target / f"baileys-{BAILEYS_VERSION}.tgz"
        tgz.unlink(missing_ok=True)
        peers_client._run([npm, "pack", f"baileys@{BAILEYS_VERSION}", "--silent"], cwd=target,
                          timeout=peers_client.NPM_TIMEOUT, what="npm pack baileys")
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if digest != BAILEYS_INTEGRITY:
            raise ProvisioningError(f"baileys tarball integrity {digest} != pinned")
        shutil.rmtree(target / "package", ignore_errors=True)
        with tarfile.open(tgz) as tar:
            wanted = [m for m in tar.getmembers() if m.isfile() and (
                m.name == "package/package.json" or m.name.startswith("package/lib/WABinary/"))]
            tar.extractall(target, members=wanted, filter="data")
        marker.write_text(BAILEYS_INTEGRITY + "\n")
    return target


def baileys_peer(directory: Path, *, timeout: float = 30.0) -> Peer:
    peer = Peer([shutil.which("node") or "node", str(directory / "wabinary.js")],
                label="baileys-wabinary", cwd=directory, timeout=timeout)
    return peer


# ---------------------------------------------------------------- the noise-handler oracle (h11)

NOISE_SRC = Path(__file__).resolve().parent / "peers" / "baileys" / "noise"
#: Tarball members the handshake oracle loads, unmodified: the noise handler and what it requires
#: (``lib/Utils/crypto.js``, ``lib/Defaults``, ``lib/WABinary``) and ``WAProto`` (needs protobufjs,
#: installed from ``peers/baileys/noise/package-lock.json``). libsignal (git-only) and
#: ``@hapi/boom`` are replaced by ``peers/baileys/noise/shims.js``.
NOISE_MEMBERS = ("package/package.json", "package/lib/Utils/noise-handler.js",
                 "package/lib/Utils/crypto.js", "package/WAProto/index.js")
NOISE_MEMBER_DIRS = ("package/lib/Defaults/", "package/lib/WABinary/")


def ensure_baileys_noise() -> Path:
    """Provision ``<cache>/baileys-noise``: the noise-handler adapter, its members, protobufjs."""
    tgz = ensure_baileys() / f"baileys-{BAILEYS_VERSION}.tgz"
    npm = shutil.which("npm") or "npm"
    manifests = [NOISE_SRC / "package.json", NOISE_SRC / "package-lock.json"]
    stamp = BAILEYS_INTEGRITY + " " + hashlib.sha256(
        b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in manifests)).hexdigest()
    target = peers_client.cache_dir() / "baileys-noise"
    marker = target / ".provisioned"
    with peers_client._locked("baileys-noise"):
        target.mkdir(parents=True, exist_ok=True)
        for name in ("noise.js", "shims.js"):
            peers_client._write_if_changed(NOISE_SRC / name, target / name)
        if marker.exists() and marker.read_text().strip() == stamp \
                and (target / "node_modules" / "protobufjs" / "package.json").exists():
            return target
        marker.unlink(missing_ok=True)
        if not tgz.exists():  # ensure_baileys keeps it; re-fetch if a cache was trimmed
            (ensure_baileys() / ".provisioned").unlink(missing_ok=True)
            tgz = ensure_baileys() / f"baileys-{BAILEYS_VERSION}.tgz"
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if digest != BAILEYS_INTEGRITY:
            raise ProvisioningError(f"baileys tarball integrity {digest} != pinned")
        shutil.rmtree(target / "package", ignore_errors=True)
        with tarfile.open(tgz) as tar:
            wanted = [m for m in tar.getmembers() if m.isfile() and (
                m.name in NOISE_MEMBERS or m.name.startswith(NOISE_MEMBER_DIRS))]
            tar.extractall(target, members=wanted, filter="data")
        shutil.rmtree(target / "node_modules", ignore_errors=True)
        for p in manifests:
            peers_client._write_if_changed(p, target / p.name)
        peers_client._run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                          cwd=target, timeout=peers_client.NPM_TIMEOUT, what="npm ci (baileys-noise)")
        marker.write_text(stamp + "\n")
    return target


def baileys_noise_peer(directory: Path, *, timeout: float = 30.0) -> Peer:
    import os
    env = dict(os.environ, BAILEYS_DIR=str(directory / "package"))
    return Peer([shutil.which("node") or "node", str(directory / "noise.js")],
                label="baileys-noise", cwd=directory, env=env, timeout=timeout)
