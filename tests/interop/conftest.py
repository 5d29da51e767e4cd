"""Fixtures for the interop tests that drive independent Signal v3 implementations as subprocesses.

``node_peer_factory`` / ``axolotl_peer_factory`` return a callable
``make(name=None, registration_id=None, *, timeout=30.0) -> peers_client.Peer``: it starts a fresh
peer process (calling ``init`` when ``name`` is given) and closes every peer it made at teardown.

Provisioning runs once per session (and once per machine thanks to the marker files). When a peer
cannot be provisioned (node/npm missing, registry unreachable, no C compiler) the tests are skipped,
or fail loudly when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import peers_client  # noqa: E402
from peers_client import DEFAULT_TIMEOUT, Peer, ProvisioningError  # noqa: E402

PeerFactory = Callable[..., Peer]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(what: str, exc: Exception) -> None:
    reason = f"{what} interop peer unavailable: {exc}"
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_peer_dir() -> Path:
    """Directory with the provisioned npm libsignal 6.0.0 peer (``peer.js`` + ``node_modules``)."""
    try:
        return peers_client.ensure_node_peer()
    except ProvisioningError as exc:
        error = exc
    _unavailable("npm libsignal", error)  # skips or fails; outside the except for a clean report
    raise error


@pytest.fixture(scope="session")
def axolotl_peer_python() -> Path:
    """Python interpreter of the venv that has python-axolotl 0.2.3 + protobuf 3.20.3."""
    try:
        return peers_client.ensure_axolotl_peer()
    except ProvisioningError as exc:
        error = exc
    _unavailable("python-axolotl", error)
    raise error


def _factory(start: Callable[[float], Peer]) -> Iterator[PeerFactory]:
    started: list[Peer] = []

    def make(name: str | None = None, registration_id: int | None = None, *,
             timeout: float = DEFAULT_TIMEOUT) -> Peer:
        peer = start(timeout)
        started.append(peer)
        peer.ops()
        if name is not None:
            peer.init(name, registration_id)
        return peer

    yield make
    for peer in reversed(started):
        peer.close()


@pytest.fixture
def node_peer_factory(node_peer_dir: Path) -> Iterator[PeerFactory]:
    """``make(name=None, registration_id=None, *, timeout=30.0) -> Peer`` for npm libsignal 6.0.0."""
    yield from _factory(lambda timeout: peers_client.node_peer(node_peer_dir, timeout=timeout))


@pytest.fixture
def axolotl_peer_factory(axolotl_peer_python: Path) -> Iterator[PeerFactory]:
    """``make(name=None, registration_id=None, *, timeout=30.0) -> Peer`` for python-axolotl 0.2.3."""
    yield from _factory(
        lambda timeout: peers_client.axolotl_peer(axolotl_peer_python, timeout=timeout))
