"""A private asyncio loop on a background thread, so synchronous checks can drive the
gatekeeper simulator and an embedded provider (both asyncio) without an async pytest plugin.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "conformance-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait at most ``timeout`` seconds for it; on timeout the
        coroutine is cancelled and :class:`TimeoutError` says how long was waited."""
        fut = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop)
        try:
            return fut.result(timeout + 5)
        except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError since 3.11
            if str(exc):
                raise  # the awaited thing's own message says what was awaited: keep it
            raise TimeoutError(f"gave up after {timeout:g} s") from exc

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()
