"""The kit's loop thread: a peer's unclean TLS/TCP close, which hypercorn hands to the loop
while closing a connection, is kept off stderr; any other unhandled error is still printed."""
from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator

import pytest

from conformance.loop import LoopThread


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread("test-loop")
    yield lt
    lt.close()


def _report(lt: LoopThread, exc: BaseException) -> None:
    async def go() -> None:
        lt.loop.call_exception_handler({"message": "Unhandled exception in client_connected_cb",
                                        "exception": exc})
    lt.run(go(), 5)


@pytest.mark.parametrize("exc", [
    ssl.SSLError(1, "[SSL: APPLICATION_DATA_AFTER_CLOSE_NOTIFY] application data after close notify"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
], ids=["tls-data-after-close-notify", "reset", "broken-pipe"])
def test_a_peers_unclean_close_is_logged_at_debug_only(loop_thread, caplog, exc) -> None:
    caplog.set_level(logging.DEBUG)
    _report(loop_thread, exc)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(r.name == "conformance.loop" and "peer closed uncleanly" in r.getMessage()
               for r in caplog.records)


def test_any_other_unhandled_error_is_still_reported(loop_thread, caplog) -> None:
    _report(loop_thread, ValueError("a bug in the kit"))
    errors = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert errors and "client_connected_cb" in errors[0].getMessage()
    assert errors[0].exc_info and errors[0].exc_info[0] is ValueError
