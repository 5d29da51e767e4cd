"""Provision the Baileys oracles (npm ``baileys`` 6.17.16, MIT) and talk to them.

The tarball (``npm pack``, sha512 pinned), the cache and the handshake oracle's modules are
provisioned by ``vectors.adapters.npm_peers``, shared with the vectors adapter around Baileys; from
the verified tarball only the members named below are extracted:

* ``WABINARY_MEMBERS`` - the binary-XML codec (``peers/baileys/wabinary.js``); needs no npm package;
* ``WAPROTO_MEMBERS`` - ``WAProto/`` (``WAProto.proto`` and its generated protobufjs code) and the
  ``lib/Utils``/``lib/Defaults`` files holding ``writeRandomPadMax16``/``unpadRandomMax16`` and
  ``getMediaKeys``/``hkdfInfoKey`` (``peers/baileys/waproto.js``); they load ``protobufjs`` and
  ``@hapi/boom``, installed with ``npm ci`` from ``peers/baileys/package-lock.json``.

Cached in ``<cache>/baileys`` with a marker recording the tarball, the members and the lock file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from peers_client import Peer, ProvisioningError

from vectors.adapters import npm_peers
from vectors.adapters.npm_peers import BAILEYS_INTEGRITY, BAILEYS_VERSION

__all__ = ["BAILEYS_INTEGRITY", "BAILEYS_VERSION", "ProvisioningError", "baileys_noise_peer",
           "baileys_peer", "ensure_baileys", "ensure_baileys_noise", "waproto_peer"]

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
    node = shutil.which("node") or "node"
    tgz = npm_peers.baileys_tarball()
    target = npm_peers.cache_dir() / "baileys"
    marker = target / ".provisioned"
    with npm_peers.locked("baileys"):
        target.mkdir(parents=True, exist_ok=True)
        npm_peers.write_if_changed(ADAPTER, target / "wabinary.js")
        npm_peers.write_if_changed(WAPROTO_ADAPTER, target / "waproto.js")
        members = WABINARY_MEMBERS + WAPROTO_MEMBERS
        stamp = hashlib.sha256("\0".join((BAILEYS_INTEGRITY, *members)).encode()
                               + b"".join(p.read_bytes() for p in NPM_MANIFESTS)).hexdigest()
        if marker.exists() and marker.read_text().strip() == stamp:
            return target
        marker.unlink(missing_ok=True)
        npm_peers.extract(tgz, target, dirs=members)
        npm_peers.npm_ci(target, NPM_MANIFESTS)
        npm_peers.run([node, "-e", "require('protobufjs'); require('@hapi/boom')"], cwd=target,
                      timeout=60, what="loading protobufjs")
        marker.write_text(stamp + "\n")
    return target


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


def ensure_baileys_noise() -> Path:
    """``<cache>/baileys-noise`` (``npm_peers.ensure_baileys_modules``) with ``noise.js`` and the
    shims it loads (``vectors/adapters/baileys/shims.js``)."""
    return npm_peers.ensure_baileys_modules(
        scripts=(NOISE_SRC / "noise.js", npm_peers.BAILEYS_SRC / "shims.js"))


def baileys_noise_peer(directory: Path, *, timeout: float = 30.0) -> Peer:
    env = dict(os.environ, BAILEYS_DIR=str(directory / "package"))
    return Peer([shutil.which("node") or "node", str(directory / "noise.js")],
                label="baileys-noise", cwd=directory, env=env, timeout=timeout)
