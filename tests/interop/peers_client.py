"""Provisioning and a JSON-lines client for the independent-implementation interop peers.

Two peers live under ``tests/interop/peers/``:

* ``node/peer.js``   - npm ``libsignal`` 6.0.0 (pure JS, Signal Protocol v3, no sender keys);
* ``axolotl/peer.py`` - PyPI ``python-axolotl`` 0.2.3 (v3 + legacy sender keys), run by a venv of
  its own because it needs ``protobuf==3.20.3``.

Both speak the same protocol: one JSON object per line on stdin, one JSON object per line on stdout,
every response carrying ``"ok"``; see ``tests/interop/README.md`` for the operations.

Provisioning installs each peer once into ``<repo>/.interop-peers/`` (gitignored), guarded by an
``fcntl.flock`` so that pytest-xdist workers can race for it safely, and marks success with a marker
file that records what was installed. ``ensure_node_peer()`` and ``ensure_axolotl_peer()`` raise
``ProvisioningError`` when a tool is missing or an install fails; the fixtures in ``conftest.py``
turn that into a skip (or a failure when ``CI`` is set).

Importable as ``peers_client`` (``tests/interop/conftest.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

# The cache, its locks and the npm/pip runner are shared with the vectors adapters.
from vectors.adapters.npm_peers import NPM_TIMEOUT, ProvisioningError, cache_dir
from vectors.adapters.npm_peers import locked as _locked
from vectors.adapters.npm_peers import run as _run
from vectors.adapters.npm_peers import write_if_changed as _write_if_changed

__all__ = [
    "AXOLOTL_REQUIREMENTS",
    "DEFAULT_TIMEOUT",
    "Peer",
    "PeerCrashed",
    "PeerError",
    "PeerTimeout",
    "ProvisioningError",
    "axolotl_peer",
    "cache_dir",
    "ensure_axolotl_peer",
    "ensure_node_peer",
    "node_peer",
]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
PEERS_SRC = HERE / "peers"
NODE_SRC = PEERS_SRC / "node"
AXOLOTL_SCRIPT = PEERS_SRC / "axolotl" / "peer.py"

#: What the axolotl venv gets. protobuf 3.20.3 is the newest release whose runtime still accepts
#: axolotl's 2015-era generated ``_pb2`` modules with the default (C++/upb-less) implementation.
AXOLOTL_REQUIREMENTS: tuple[str, ...] = ("python-axolotl==0.2.3", "protobuf==3.20.3")

#: Seconds to wait for any single response from a peer.
DEFAULT_TIMEOUT = 30.0

PIP_TIMEOUT = 900


class PeerError(Exception):
    """The peer answered ``ok: false`` (``error_class`` is its short class name)."""

    def __init__(self, error_class: str, message: str, *, op: str | None = None,
                 peer: str | None = None, response: dict | None = None):
        self.error_class = error_class
        self.message = message
        self.op = op
        self.peer = peer
        self.response = response or {}
        super().__init__(f"{peer or 'peer'}: {op or '?'} failed: {error_class}: {message}")


class PeerTimeout(PeerError):
    """No response within the timeout; the peer process has been killed."""


class PeerCrashed(PeerError):
    """The peer process exited or wrote something that is not a JSON response."""


# ---------------------------------------------------------------------------------- provisioning

def ensure_node_peer() -> Path:
    """Install the npm libsignal peer once; return the directory holding ``peer.js``.

    Copies ``package.json``/``package-lock.json`` into ``<cache>/node/`` and runs ``npm ci``
    (``npm install`` if there is no lock file) unless the marker says this exact lock file is
    already installed. ``peer.js`` is refreshed on every call, which never triggers a reinstall.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise ProvisioningError("node and npm are needed for the npm libsignal peer "
                                f"(node: {node or 'missing'}, npm: {npm or 'missing'})")
    target = cache_dir() / "node"
    manifests = [p for p in (NODE_SRC / "package.json", NODE_SRC / "package-lock.json") if p.exists()]
    digest = hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in manifests))
    stamp = digest.hexdigest()
    marker = target / ".provisioned"
    with _locked("node"):
        target.mkdir(parents=True, exist_ok=True)
        _write_if_changed(NODE_SRC / "peer.js", target / "peer.js")
        if marker.exists() and marker.read_text().strip() == stamp \
                and (target / "node_modules" / "libsignal" / "package.json").exists():
            return target
        marker.unlink(missing_ok=True)
        shutil.rmtree(target / "node_modules", ignore_errors=True)
        for p in manifests:
            _write_if_changed(p, target / p.name)
        has_lock = (target / "package-lock.json").exists()
        argv = [npm, "ci" if has_lock else "install", "--no-audit", "--no-fund",
                "--ignore-scripts", "--loglevel=error"]
        _run(argv, cwd=target, timeout=NPM_TIMEOUT, what=" ".join(argv[:2]))
        _run([node, "-e", "require('libsignal')"], cwd=target, timeout=60,
             what="loading libsignal")
        marker.write_text(stamp + "\n")
    return target


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_axolotl_peer() -> Path:
    """Create ``<cache>/axolotl-venv`` with python-axolotl once; return its Python interpreter.

    python-axolotl 0.2.3 builds ``python-axolotl-curve25519`` from source, so a C compiler and
    the Python headers must be present.
    """
    venv = cache_dir() / "axolotl-venv"
    python = _venv_python(venv)
    stamp = " ".join(AXOLOTL_REQUIREMENTS)
    marker = venv / ".provisioned"
    with _locked("axolotl"):
        if marker.exists() and marker.read_text().strip() == stamp and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", None) or sys.executable
        _run([base, "-m", "venv", str(venv)], cwd=None, timeout=300, what="python -m venv")
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
        _run([str(python), "-m", "pip", "install", "--no-input", "--quiet",
              *AXOLOTL_REQUIREMENTS], cwd=None, timeout=PIP_TIMEOUT,
             what="pip install " + stamp, env=env)
        _run([str(python), "-c",
              "import axolotl.sessioncipher, axolotl.groups.groupcipher, google.protobuf"],
             cwd=None, timeout=120, what="importing axolotl")
        marker.write_text(stamp + "\n")
    return python


# ---------------------------------------------------------------------------------- client

class Peer:
    """One running peer subprocess speaking JSON lines.

    ``call(op, **fields)`` sends ``{"op": op, **fields}`` and returns the response dict. With
    ``check=True`` an ``ok: false`` response raises ``PeerError`` (``.error_class`` holds the
    peer's class name). Every read has a timeout; on timeout the process is killed and
    ``PeerTimeout`` is raised. Use as a context manager or call ``close()``.
    """

    def __init__(self, argv: Sequence[str], *, label: str, cwd: Path | None = None,
                 env: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.label = label
        self.timeout = timeout
        self.argv = list(argv)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._responses: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1,
        )
        self._readers = [
            threading.Thread(target=self._pump_stdout, name=f"{label}-stdout", daemon=True),
            threading.Thread(target=self._pump_stderr, name=f"{label}-stderr", daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.impl: str | None = None
        self.name: str | None = None
        self.identity_key: bytes | None = None

    # -- plumbing -----------------------------------------------------------------------
    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._responses.put(line)
        self._responses.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip("\n"))

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    def __repr__(self) -> str:
        return f"<Peer {self.label} pid={self.proc.pid} impl={self.impl}>"

    def call(self, op: str, *, check: bool = False, timeout: float | None = None,
             **fields: Any) -> dict:
        """Send one request and return its response (raise ``PeerError`` on failure if ``check``)."""
        request_id = next(self._ids)
        request = {"op": op, **fields, "id": request_id}
        wait = self.timeout if timeout is None else timeout
        with self._lock:
            if self.proc.poll() is not None:
                raise PeerCrashed("Crashed", f"process exited with {self.proc.returncode}; "
                                  f"stderr:\n{self.stderr_tail()}", op=op, peer=self.label)
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise PeerCrashed("Crashed", f"cannot write request: {exc}; stderr:\n"
                                  f"{self.stderr_tail()}", op=op, peer=self.label) from exc
            deadline = time.monotonic() + wait
            while True:
                try:
                    line = self._responses.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    self._kill()
                    raise PeerTimeout("Timeout", f"no response within {wait} s; stderr:\n"
                                      f"{self.stderr_tail()}", op=op, peer=self.label) from None
                if line is None:
                    self.proc.wait(timeout=5)
                    raise PeerCrashed("Crashed", f"process exited with {self.proc.returncode}"
                                      f"; stderr:\n{self.stderr_tail()}", op=op, peer=self.label)
                try:
                    response = json.loads(line)
                except ValueError:
                    self._kill()
                    raise PeerCrashed("Crashed", f"non-JSON output {line!r}", op=op,
                                      peer=self.label) from None
                if not isinstance(response, dict) or "ok" not in response:
                    self._kill()
                    raise PeerCrashed("Crashed", f"malformed response {line!r}", op=op,
                                      peer=self.label)
                if "id" in response and response["id"] != request_id:
                    continue  # a stale answer (cannot happen while requests are serialised)
                break
        if check and not response["ok"]:
            raise PeerError(str(response.get("error")), str(response.get("message")), op=op,
                            peer=self.label, response=response)
        return response

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(PeerError, OSError, ValueError):
                self.call("quit", timeout=5)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()
        for t in self._readers:
            t.join(timeout=2)

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- typed conveniences (all raise PeerError on ok:false) ------------------------------
    def ops(self) -> list[str]:
        response = self.call("ops", check=True)
        self.impl = response["impl"]
        return list(response["ops"])

    def init(self, name: str, registration_id: int | None = None) -> bytes:
        fields: dict[str, Any] = {"name": name}
        if registration_id is not None:
            fields["registration_id"] = registration_id
        response = self.call("init", check=True, **fields)
        self.name = name
        self.identity_key = bytes.fromhex(response["identity_key"])
        return self.identity_key

    def bundle(self, signed_pre_key_id: int, pre_key_id: int | None) -> dict:
        response = self.call("bundle", check=True, signed_pre_key_id=signed_pre_key_id,
                             pre_key_id=pre_key_id)
        return {k: v for k, v in response.items() if k not in ("ok", "id")}

    def process_bundle(self, peer: str, bundle: dict) -> None:
        self.call("process_bundle", check=True, peer=peer, bundle=bundle)

    def encrypt(self, peer: str, plaintext: bytes) -> tuple[str, bytes]:
        response = self.call("encrypt", check=True, peer=peer, plaintext=plaintext.hex())
        return response["type"], bytes.fromhex(response["body"])

    def decrypt(self, peer: str, kind: str, body: bytes) -> bytes:
        response = self.call("decrypt", check=True, peer=peer, type=kind, body=body.hex())
        return bytes.fromhex(response["plaintext"])

    def group_create(self, group: str, sender: str | None = None) -> bytes:
        fields = {"group": group} if sender is None else {"group": group, "sender": sender}
        return bytes.fromhex(self.call("group_create", check=True, **fields)["skdm"])

    def group_process(self, group: str, sender: str, skdm: bytes) -> None:
        self.call("group_process", check=True, group=group, sender=sender, skdm=skdm.hex())

    def group_encrypt(self, group: str, plaintext: bytes) -> bytes:
        response = self.call("group_encrypt", check=True, group=group, plaintext=plaintext.hex())
        return bytes.fromhex(response["body"])

    def group_decrypt(self, group: str, sender: str, body: bytes) -> bytes:
        response = self.call("group_decrypt", check=True, group=group, sender=sender,
                             body=body.hex())
        return bytes.fromhex(response["plaintext"])


def node_peer(peer_dir: Path | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> Peer:
    """Start the npm libsignal peer (provisioning it first unless ``peer_dir`` is given)."""
    peer_dir = peer_dir or ensure_node_peer()
    node = shutil.which("node") or "node"
    return Peer([node, str(peer_dir / "peer.js")], label="npm-libsignal", cwd=peer_dir,
                timeout=timeout)


def axolotl_peer(python: Path | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> Peer:
    """Start the python-axolotl peer (provisioning it first unless ``python`` is given)."""
    python = python or ensure_axolotl_peer()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return Peer([str(python), "-I", str(AXOLOTL_SCRIPT)], label="python-axolotl",
                env=env, timeout=timeout)
