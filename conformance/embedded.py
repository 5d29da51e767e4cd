"""The kit's own servers: G (the gatekeeper simulator) and, when no ``--target`` is given, the
embedded reference provider, started and stopped on the kit's private loop.

One place for both the pytest kit (``conformance.suite.kit``) and the load scene
(``conformance.load.scene``): the stop order matters (below) and two copies of it drift.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from conformance.gatekeeper import Gatekeeper
from conformance.loop import LoopThread

__all__ = ["start_gatekeeper", "start_embedded_provider", "stop_servers", "first_line",
           "stop_process", "ProviderProcess"]

log = logging.getLogger("conformance")

#: Seconds G, the embedded provider, and the whole shutdown may take.
GATEKEEPER_START_S = 30.0
PROVIDER_START_S = 60.0
STOP_S = 60.0


def start_gatekeeper(loop: LoopThread, gk: Gatekeeper, listen: str,
                     public_url: str | None) -> None:
    """Start G's HTTPS server on ``listen`` (``host:port``, port 0: any free one)."""
    host, _, port = listen.rpartition(":")
    loop.run(gk.start(listen=host or "127.0.0.1", port=int(port or 0), tls=True,
                      public_url=public_url), GATEKEEPER_START_S)


def start_embedded_provider(loop: LoopThread, faults: tuple[str, ...] = (), *,
                            prefix: str = "refprov-") -> tuple[Any, Path]:
    """Start the reference provider (TLS, loopback) with ``faults``; returns it and its data
    folder (0700, holds its identities and keys: the caller removes it after stopping)."""
    from reference_impl.provider import ReferenceProvider

    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    embedded = ReferenceProvider()
    try:
        loop.run(embedded.start(tls=True, data_dir=data_dir, faults=faults), PROVIDER_START_S)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return embedded, data_dir


def stop_servers(loop: LoopThread, gk: Gatekeeper, embedded: Any, *, http: Any = None,
                 what: str = "kit") -> None:
    """Stop the kit's own servers, then close ``loop``.

    Order: our keep-alive connections (``http``) first, since servers wait for open connections
    when stopping; then the embedded provider's client sides (they hold connections to G) and
    its outbound HTTP; then G; then the embedded provider's servers. A shutdown that is not
    clean (a peer's connection dying badly, say) says nothing about the provider under test:
    it is logged, never turned into a verdict.
    """
    if http is not None:
        http.close()

    async def _stop() -> None:
        app = getattr(embedded, "app", None)
        if app is not None:
            await app.stop_clients()
            await app.close_http()
        await gk.stop()
        if embedded is not None:
            await embedded.stop()
    try:
        loop.run(_stop(), STOP_S)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("%s shutdown was not clean: %r", what, exc)
    finally:
        loop.close()


# -- child processes (the load run: scene, Locust, and the reference provider of its own) -------
def first_line(proc: subprocess.Popen[str], timeout: float, what: str) -> str:
    """The child's first stdout line, or a RuntimeError naming ``what`` after ``timeout``
    (never a hang on a child that prints nothing)."""
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""),
                         daemon=True)
    t.start()
    t.join(timeout)
    if not box:
        raise RuntimeError(f"{what} printed nothing within {timeout:g} s")
    return box[0]


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class ProviderProcess:
    """The reference provider in a process of its own (``conformance serve-reference --tls``).

    Why, for load runs: the load judges the provider's resident memory (LOAD-007), and in the
    scene's process G's own evidence log and inboxes grew with the conversation traffic (about
    7 KiB per message, traced) and were counted as the provider's.
    """

    def __init__(self, faults: tuple[str, ...] = (), *, prefix: str = "refprov-load-") -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix=prefix))  # 0700: its identities and keys
        cmd = [sys.executable, "-m", "conformance.cli", "serve-reference", "--tls",
               "--data-dir", str(self.data_dir)]
        for f in faults:
            cmd += ["--fault", f]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            line = first_line(self.proc, PROVIDER_START_S, "the reference provider")
            try:
                info = json.loads(line)
            except ValueError:
                raise RuntimeError(f"the reference provider did not start (exit "
                                   f"{self.proc.poll()}): {line.strip()[:300] or 'no output'}") from None
        except BaseException:
            self.close()
            raise
        self.target_url: str = info["target_url"]
        self.harness_url: str = info["harness_url"]
        self.ca_certificate: str = info["ca_certificate"]
        self.pid = self.proc.pid

    def close(self) -> None:
        stop_process(self.proc, grace=30)
        shutil.rmtree(self.data_dir, ignore_errors=True)
