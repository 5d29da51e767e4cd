"""``NaiveProvider``: the provider server (TLS, HTTP/1.1 and HTTP/2 via hypercorn) and the
harness (plain HTTP on a private address) in one asyncio loop, all state in memory."""
from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from .harness import Harness
from .server import ProviderServer, make_tls


def _bind(host: str, port: int) -> tuple[str, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    return f"fd://{sock.detach()}", bound


class NaiveProvider:
    def __init__(self) -> None:
        self.gatekeeper: dict[str, Any] = {}
        self.server = ProviderServer(gatekeeper=self.gatekeeper)
        self.harness = Harness(self)
        self.server.enlisted = lambda uvid: any(
            c.user_visible_id == uvid and c.enlisted_ok for c in self.harness.users.values())
        self.target_url = self.harness_url = ""
        self.ca_certificate: Path | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self, host: str = "127.0.0.1", port: int = 0, harness_port: int = 0,
                    tls: bool = True, data_dir: Path | None = None) -> NaiveProvider:
        self._stop = asyncio.Event()
        fd, port = _bind(host, port)
        scheme = "https" if tls else "http"
        self.target_url = f"{scheme}://{host}:{port}"
        self.server.issuer = self.target_url
        cfg = Config()
        cfg.bind = [fd]
        cfg.accesslog = cfg.errorlog = None
        cfg.loglevel = "WARNING"
        if tls:
            d = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="naive-provider-"))
            self.ca_certificate, cert, key = make_tls(d, host)
            cfg.certfile, cfg.keyfile = str(cert), str(key)
        hfd, hport = _bind(host, harness_port)
        self.harness_url = f"http://{host}:{hport}"
        hcfg = Config()
        hcfg.bind = [hfd]
        hcfg.accesslog = hcfg.errorlog = None
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(serve(self.server.app(), cfg, shutdown_trigger=self._stop.wait)),
                       loop.create_task(serve(self.harness.app(), hcfg, shutdown_trigger=self._stop.wait))]
        await asyncio.sleep(0.05)
        for t in self._tasks:
            if t.done():
                t.result()
        return self

    async def stop(self) -> None:
        for c in list(self.harness.users.values()):
            await c.stop()
        self._stop.set()
        await asyncio.wait(self._tasks, timeout=10)
