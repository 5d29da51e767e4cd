"""Provisioning shared by every independent-implementation peer: the vectors adapters here and the
interop tests' peers (``tests/interop/peers_client.py``, ``baileys_client.py``) import it.

* the cache: ``$INTEROP_PEERS_DIR`` or ``<repo>/.interop-peers`` (gitignored), one directory per
  peer, filled once under an ``fcntl`` lock so parallel test workers do not race, with a marker
  file recording what was installed;
* the Baileys tarball (npm ``baileys`` 6.17.16, MIT): ``npm pack`` fetches it (a plain install
  fails on Baileys' git-only dependencies), its sha512 must equal the registry integrity pinned
  here, and callers extract only the members they load (:func:`extract`);
* ``ensure_baileys_modules``: the members Baileys' WA Noise handler and binary-XML codec load,
  unmodified, with protobufjs from ``baileys/package-lock.json``; ``baileys/shims.js`` stands in
  for the git-only ``libsignal`` when they are loaded (by the vectors adapter ``baileys/adapter.js``
  and the interop handshake oracle ``tests/interop/peers/baileys/noise/noise.js``).

Every failure raises :class:`ProvisioningError` (a tool missing, the registry unreachable, a
digest that does not match); callers turn it into a skip, or a failure when ``CI`` is set.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "BAILEYS_INTEGRITY", "BAILEYS_MODULE_DIRS", "BAILEYS_MODULE_FILES", "BAILEYS_SRC",
    "BAILEYS_VERSION", "NPM_TIMEOUT", "ProvisioningError", "baileys_adapter_command",
    "baileys_tarball", "cache_dir", "ensure_baileys_modules", "extract", "locked", "run",
    "write_if_changed",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_TIMEOUT = 600

BAILEYS_VERSION = "6.17.16"
BAILEYS_INTEGRITY = ("sha512-5dLjZ6+yRR4K7u56xKGCOsLPu5o7PrfLpAW0wV3WELpQQ6m33xwFK+Jd6hu+xDSVfMr7"
                     "SqP2Dn0jqj+zH8ymdw==")
#: Adapter code around Baileys (ours): the vectors adapter, the shims, protobufjs' manifests.
BAILEYS_SRC = Path(__file__).resolve().parent / "baileys"
#: Tarball members the noise handler loads, unmodified: itself and what it requires
#: (``lib/Utils/crypto.js``, ``lib/Defaults``, ``lib/WABinary``) and ``WAProto`` (protobufjs).
BAILEYS_MODULE_FILES = ("package/package.json", "package/lib/Utils/noise-handler.js",
                        "package/lib/Utils/crypto.js", "package/WAProto/index.js")
BAILEYS_MODULE_DIRS = ("package/lib/Defaults/", "package/lib/WABinary/")


class ProvisioningError(RuntimeError):
    """A peer could not be installed (tool missing, registry unreachable, build failure)."""


def cache_dir() -> Path:
    """``$INTEROP_PEERS_DIR`` or ``<repo>/.interop-peers``."""
    override = os.environ.get("INTEROP_PEERS_DIR")
    return Path(override).resolve() if override else REPO_ROOT / ".interop-peers"


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold ``<cache>/<name>.lock``. Not re-entrant: a process must not take one name twice."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def run(argv: Sequence[str], *, cwd: Path | None, timeout: int, what: str,
        env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise ProvisioningError(f"{what}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProvisioningError(f"{what}: timed out after {timeout} s") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ProvisioningError(f"{what} exited with {proc.returncode}:\n{tail}")


def write_if_changed(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    if not dst.exists() or dst.read_bytes() != data:
        tmp = dst.with_name(dst.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dst)


def _node_npm() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise ProvisioningError("node and npm are needed for the Baileys peers "
                                f"(node: {node or 'missing'}, npm: {npm or 'missing'})")
    return node, npm


def _integrity(tgz: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()


def baileys_tarball() -> Path:
    """``<cache>/baileys/baileys-<version>.tgz``, fetched with ``npm pack`` if missing or not the
    pinned bytes; its integrity is checked on every call."""
    _, npm = _node_npm()
    directory = cache_dir() / "baileys"
    tgz = directory / f"baileys-{BAILEYS_VERSION}.tgz"
    with locked("baileys-tarball"):
        directory.mkdir(parents=True, exist_ok=True)
        if not tgz.exists() or _integrity(tgz) != BAILEYS_INTEGRITY:
            tgz.unlink(missing_ok=True)
            run([npm, "pack", f"baileys@{BAILEYS_VERSION}", "--silent"], cwd=directory,
                timeout=NPM_TIMEOUT, what="npm pack baileys")
        digest = _integrity(tgz)
        if digest != BAILEYS_INTEGRITY:
            raise ProvisioningError(f"baileys tarball integrity {digest} != pinned {BAILEYS_INTEGRITY}")
    return tgz


def extract(tgz: Path, target: Path, *, files: Iterable[str] = (), dirs: Iterable[str] = ()) -> None:
    """Replace ``target/package`` with the named members (exact ``files``, ``dirs`` prefixes)."""
    names, prefixes = set(files), tuple(dirs)
    shutil.rmtree(target / "package", ignore_errors=True)
    with tarfile.open(tgz) as tar:
        wanted = [m for m in tar.getmembers() if m.isfile()
                  and (m.name in names or (prefixes and m.name.startswith(prefixes)))]
        tar.extractall(target, members=wanted, filter="data")


def npm_ci(target: Path, manifests: Sequence[Path]) -> None:
    """Install ``target/node_modules`` from the committed ``manifests`` (package.json + lock)."""
    _, npm = _node_npm()
    shutil.rmtree(target / "node_modules", ignore_errors=True)
    for manifest in manifests:
        write_if_changed(manifest, target / manifest.name)
    run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=target, timeout=NPM_TIMEOUT, what=f"npm ci ({target.name})")


def ensure_baileys_modules(scripts: Iterable[Path] = ()) -> Path:
    """Provision ``<cache>/baileys-noise``: Baileys' noise handler and codec modules under
    ``package/``, protobufjs, and copies of ``scripts`` (refreshed on every call, never a
    reinstall). Returns the directory."""
    tgz = baileys_tarball()
    manifests = [BAILEYS_SRC / "package.json", BAILEYS_SRC / "package-lock.json"]
    stamp = BAILEYS_INTEGRITY + " " + hashlib.sha256(
        b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in manifests)).hexdigest()
    target = cache_dir() / "baileys-noise"
    marker = target / ".provisioned"
    with locked("baileys-noise"):
        target.mkdir(parents=True, exist_ok=True)
        for script in scripts:
            write_if_changed(script, target / script.name)
        if marker.exists() and marker.read_text().strip() == stamp \
                and (target / "node_modules" / "protobufjs" / "package.json").exists():
            return target
        marker.unlink(missing_ok=True)
        extract(tgz, target, files=BAILEYS_MODULE_FILES, dirs=BAILEYS_MODULE_DIRS)
        npm_ci(target, manifests)
        marker.write_text(stamp + "\n")
    return target


def baileys_adapter_command() -> str:
    """The command of the vectors adapter around Baileys (``python -m vectors.check --adapter``).

    ``adapter.js`` and ``shims.js`` run from the repository; the argument is the extracted tarball.
    """
    node, _ = _node_npm()
    package = ensure_baileys_modules() / "package"
    return shlex.join([node, str(BAILEYS_SRC / "adapter.js"), str(package)])


if __name__ == "__main__":
    try:
        print(baileys_adapter_command())
    except ProvisioningError as exc:
        print(f"Baileys vectors adapter unavailable: {exc}", file=sys.stderr)
        raise SystemExit(1)
