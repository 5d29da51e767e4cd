"""Fixtures: the reference provider on loopback (TLS, HTTP/1.1 + HTTP/2), with and without the
gatekeeper simulator, and a harness client. Waits are event-driven (``wait_until`` on the
provider, ``log.wait_for`` on the gatekeeper), each with a timeout."""
from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reference_impl.provider import ReferenceProvider


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def provider(tmp_path) -> AsyncIterator[ReferenceProvider]:
    p = ReferenceProvider()
    await p.start(tls=True, data_dir=tmp_path / "prov")
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
async def https(provider: ReferenceProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=provider.target_url, verify=ssl.create_default_context(cafile=provider.ca_certificate),
                                 http2=True, timeout=20) as c:
        yield c


@dataclass
class Env:
    gk: Any
    provider: ReferenceProvider
    h: httpx.AsyncClient

    @property
    def app(self):
        return self.provider.app

    async def user(self, visible: str | None = None, *, enlist: bool = True,
                   connect: bool = True) -> tuple[str, str]:
        r = await self.h.post("/users", json={"user_visible_id": visible} if visible else {})
        assert r.status_code == 201, r.text
        handle = r.json()["user"]
        login = ""
        if enlist:
            r = await self.h.post(f"/users/{handle}/enlist")
            assert r.status_code == 200, r.text
            login = r.json()["login"]
        if connect:
            r = await self.h.post(f"/users/{handle}/connect")
            assert r.status_code == 204, r.text
        return handle, login

    def client(self, handle: str):
        return self.app.clients[handle]

    async def inbox_until(self, handle: str, n: int, timeout: float = 15.0) -> list[dict]:
        c = self.client(handle)
        await self.app.wait_until(lambda: len(c.inbox(None)) >= n, timeout, f"{n} inbox items")
        r = await self.h.get(f"/users/{handle}/inbox")
        assert r.status_code == 200
        return r.json()["items"]

    async def event(self, handle: str, type_: str, timeout: float = 15.0, **match: Any) -> dict:
        st = self.app.storage

        def find() -> dict | None:
            for e in st.events(handle):
                if e["type"] == type_ and all(e.get(k) == v for k, v in match.items()):
                    return e
            return None

        return await self.app.wait_until(find, timeout, f"event {type_} {match}")


async def start_env(tmp_path, faults: tuple[str, ...] = (), data_dir=None, port: int = 0):
    from conformance.gatekeeper import Gatekeeper

    gk = Gatekeeper()
    await gk.start(tls=True)
    p = ReferenceProvider()
    await p.start(tls=True, faults=faults, data_dir=data_dir or tmp_path / "prov", port=port)
    register(gk, p)
    h = httpx.AsyncClient(base_url=p.harness_url, timeout=30)
    r = await h.post("/reset", json=gk.config_for_provider())
    assert r.status_code == 204, r.text
    return Env(gk, p, h)


def register(gk, p: ReferenceProvider) -> None:
    t = p.target_url
    gk.register_provider("refprov", t + "/.well-known/oauth/openid/jwks", t + "/push", t + "/media",
                         issuer=t, audience=t, ca_certificates=p.ca_certificate.read_text())


async def stop_env(env: Env) -> None:
    # Each server's shutdown waits for its open TLS connections: close every client side
    # first (provider -> G, harness client, G -> provider), then the servers.
    await env.app.stop_clients()
    await env.app.close_http()
    await env.h.aclose()
    await env.gk.stop()
    await env.provider.stop()


@pytest.fixture
async def env(tmp_path) -> AsyncIterator[Env]:
    e = await start_env(tmp_path)
    try:
        yield e
    finally:
        await stop_env(e)
