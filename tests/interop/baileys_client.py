"""Provision the Baileys oracles (npm ``baileys`` 6.17.16, MIT) and talk to them.

``npm pack`` fetches the pinned tarball (a plain install fails on Baileys' git-only
dependencies); its sha512 is checked against the registry integrity pinned here, then only the
members named below are extracted:

* ``WABINARY_MEMBERS`` - the binary-XML codec (``peers/baileys/wabinary.js``); needs no npm package;
* ``WAPROTO_MEMBERS`` - ``WAProto/`` (``WAProto.proto`` and its generated protobufjs code) and the
  ``lib/Utils``/``lib/Defaults`` files holding ``writeRandomPadMax16``/``unpadRandomMax16`` and
  ``getMediaKeys``/``hkdfInfoKey`` (``peers/baileys/waproto.js``); they load ``protobufjs`` and
  ``@hapi/boom``, installed with ``npm ci`` from ``peers/baileys/package-lock.json``.

Cached in ``<cache>/baileys`` with a marker recording the tarball, the members and the lock file.
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
#: Tarball members (prefixes) for the binary-XML oracle.
WABINARY_MEMBERS: tuple[str, ...] = ("package/package.json", "package/lib/WABinary/")
#: Tarball members (prefixes) for the content oracle: WhatsApp's E2E protobuf schema and generated
#: code, padding (generics.js) and media keys (messages-media.js, crypto.js, lib/Defaults).
WAPROTO_MEMBERS: tuple[str, ...] = (
    "package/WAProto/", "package/lib/Utils/generics.js", "package/lib/Utils/messages-media.js",
    "package/lib/Utils/crypto.js", "package/lib/Defaults/",
)
WAPROTO_ADAPTER = ADAPTER.with_name("waproto.js")
#: npm modules the content oracle loads (protobufjs, @hapi/boom), pinned by this lock file.
NPM_MANIFESTS = (ADAPTER.with_name("package.json"), ADAPTER.with_name("package-lock.json"))


def ensure_baileys() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise ProvisioningError("node and npm are needed for the Baileys oracle")
    target = peers_client.cache_dir() / "baileys"
    marker = target / ".provisioned"
    with peers_client._locked("baileys"):
        target.mkdir(parents=True, exist_ok=True)
        peers_client._write_if_changed(ADAPTER, target / "wabinary.js")
        peers_client._write_if_changed(WAPROTO_ADAPTER, target / "waproto.js")
        members = WABINARY_MEMBERS + WAPROTO_MEMBERS
        stamp = hashlib.sha256("\0".join((BAILEYS_INTEGRITY, *members)).encode()
                               + b"".join(p.read_bytes() for p in NPM_MANIFESTS)).hexdigest()
        if marker.exists() and marker.read_text().strip() == stamp:
            return target
        marker.unlink(missing_ok=True)
        tgz = target / f"baileys-{BAILEYS_VERSION}.tgz"
        tgz.unlink(missing_ok=True)
        peers_client._run([npm, "pack", f"baileys@{BAILEYS_VERSION}", "--silent"], cwd=target,
                          timeout=peers_client.NPM_TIMEOUT, what="npm pack baileys")
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if digest != BAILEYS_INTEGRITY:
            raise ProvisioningError(f"baileys tarball integrity {digest} != pinned")
        shutil.rmtree(target / "package", ignore_errors=True)
        with tarfile.open(tgz) as tar:
            wanted = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(members)]
            tar.extractall(target, members=wanted, filter="data")
        _npm_ci(npm, node, target)
        marker.write_text(stamp + "\n")
    return target


def _npm_ci(npm: str, node: str, target: Path) -> None:
    """Install the content oracle's npm modules from the committed lock file."""
    shutil.rmtree(target / "node_modules", ignore_errors=True)
    for manifest in NPM_MANIFESTS:
        peers_client._write_if_changed(manifest, target / manifest.name)
    argv = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    peers_client._run(argv, cwd=target, timeout=peers_client.NPM_TIMEOUT, what="npm ci (baileys)")
    peers_client._run([node, "-e", "require('protobufjs'); require('@hapi/boom')"], cwd=target,
                      timeout=60, what="loading protobufjs")


def baileys_peer(directory: Path, *, timeout: float = 30.0) -> Peer:
    peer = Peer([shutil.which("node") or "node", str(directory / "wabinary.js")],
                label="baileys-wabinary", cwd=directory, timeout=timeout)
    return peer


def waproto_peer(directory: Path, *, timeout: float = 30.0) -> Peer:
    """Start the content oracle (``waproto.js``) in a provisioned ``directory``."""
    return Peer([shutil.which("node") or "node", str(directory / "waproto.js")],
                label="baileys-waproto", cwd=directory, timeout=timeout)


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
