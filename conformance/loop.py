"""A private asyncio loop on a background thread, so synchronous checks can drive the
gatekeeper simulator and an embedded provider (both asyncio) without an async pytest plugin.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")

_log = logging.getLogger("conformance.loop")

#: Errors a peer causes by how it closes a connection (a TLS close_notify followed by data, a
#: reset, a broken pipe). hypercorn meets them while closing a connection and, having no one to
#: raise them to, hands them to the loop, whose default handler prints a traceback on stderr in
#: the middle of a run. They say nothing the checks do not already judge from the traffic.
_PEER_CLOSE_ERRORS = (ssl.SSLError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _quiet_peer_close(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Loop exception handler: a peer's unclean close is logged at DEBUG, anything else goes to
    asyncio's default handler (printed, as before)."""
    exc = context.get("exception")
    if isinstance(exc, _PEER_CLOSE_ERRORS):
        _log.debug("peer closed uncleanly: %s: %s (%s)", type(exc).__name__, exc,
                   context.get("message", ""))
        return
    loop.default_exception_handler(context)


class LoopThread:
    def __init__(self, name: str = "conformance-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_quiet_peer_close)
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
