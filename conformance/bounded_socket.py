"""A total wall-clock deadline for the kit's raw-socket probes (TLS handshakes, cleartext HTTP).

A socket timeout bounds one operation, not an exchange: a peer that sends one byte just inside
the timeout keeps a ``recv`` loop, or an SSL handshake (several reads inside one call), alive
indefinitely. :class:`SocketDeadline` shrinks every per-operation timeout to what is left of the
budget and arms a watchdog that shuts the socket down when the budget is spent, so even an
operation the kit cannot split (``SSLSocket.do_handshake``) ends by then (issue 13 §1).
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DeadlineExceeded", "SocketDeadline"]


class DeadlineExceeded(TimeoutError):
    """The exchange's total budget ran out; ``progress`` says how far it got."""

    def __init__(self, seconds: float, progress: str) -> None:
        super().__init__(f"total deadline of {seconds:g} s reached ({progress})")
        self.seconds = seconds
        self.progress = progress


class SocketDeadline:
    """One exchange's budget: ``connect`` then ``watch`` the socket for every later step."""

    def __init__(self, seconds: float, *, op_timeout: float | None = None) -> None:
        self.seconds = seconds
        self.op_timeout = op_timeout if op_timeout is not None else seconds
        self._end = time.monotonic() + seconds
        self._fired = threading.Event()

    @property
    def expired(self) -> bool:
        """True once the budget is spent or the watchdog shut the socket."""
        return self._fired.is_set() or time.monotonic() >= self._end

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def timeout(self) -> float:
        """The timeout for the next single operation: the area timeout, never past the deadline."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(self.seconds, "before the next operation")
        return min(self.op_timeout, left)

    def connect(self, host: str, port: int) -> socket.socket:
        return socket.create_connection((host, port), timeout=self.timeout())

    @contextmanager
    def watch(self, sock: socket.socket) -> Iterator[None]:
        """Shut ``sock`` down when the budget is spent, whatever call is blocked on it."""
        def fire() -> None:
            self._fired.set()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: nothing left to stop

        timer = threading.Timer(self.remaining(), fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
