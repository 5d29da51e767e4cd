from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from gk_client import ProviderClient
from gk_provider_stub import ProviderStub

from conformance.gatekeeper import Gatekeeper, Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def provider() -> AsyncIterator[ProviderStub]:
    stub = ProviderStub()
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
async def gk(provider: ProviderStub, settings: Settings) -> AsyncIterator[Gatekeeper]:
    g = Gatekeeper(settings)
    await g.start()
    g.register_provider("prov", provider.jwks_url, provider.push_url, provider.media_base,
                        provider.issuer)
    provider.g_jwks_url = g.config_for_provider()["jwks_url"]
    yield g
    await g.stop()


ClientFactory = Callable[..., Awaitable[ProviderClient]]


@pytest.fixture
async def make_client(gk: Gatekeeper, provider: ProviderStub) -> AsyncIterator[ClientFactory]:
    """A provider client; ``enlist=True`` enlists it, ``connect=True`` also opens the channel."""
    clients: list[ProviderClient] = []

    async def make(sub: str = "alice@provider.test", *, enlist: bool = True, connect: bool = True,
                   pre_keys: int = 0) -> ProviderClient:
        cfg = gk.config_for_provider()
        c = ProviderClient(cfg, provider.token(sub, cfg["audience"]), sub=sub)
        clients.append(c)
        if enlist:
            assert (await c.enlist())["status"] == "ok"
            if connect:
                assert await c.connect() is None
                if pre_keys:
                    assert (await c.upload_pre_keys(pre_keys)).WhichOneof("body") == "ack"
        return c

    yield make
    for c in clients:
        await c.close()
