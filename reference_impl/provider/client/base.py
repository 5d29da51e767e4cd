"""What every concern of a provider client shares: the user's persisted state and Signal
store, the chat channel, events, and the tasks it runs.

Everything the client knows is persisted (SQLite, through :class:`Storage`) before it is
acknowledged to the gatekeeper, so a restarted process continues every conversation without
losing or duplicating a message. Every network wait has a timeout.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from typing import Any

from reference_impl.signal import ProtocolStore
from reference_impl.wire import stanzas_pb2 as pb

from .channel import Channel
from .clock import ClientClock
from .context import ClientContext, default_state
from .errors import ClientError, ConnectionLost

__all__ = ["ClientBase"]

log = logging.getLogger("reference_impl.provider.client")


class ClientBase:
    """State and helpers shared by the concern mixins; the handlers a channel calls back
    (``on_stanza``, ``channel_lost``, ``handle_un_enlisted``) are the mixins' own."""

    def __init__(self, ctx: ClientContext, handle: str, user_visible_id: str,
                 state: dict[str, Any], store_json: str | None) -> None:
        self.ctx = ctx
        self.faults = ctx.faults
        self.handle = handle
        self.user_visible_id = user_visible_id
        self.state = {**default_state(), **state}
        self.store = ProtocolStore.from_json(store_json) if store_json else ProtocolStore.generate()
        #: The clock the client's time windows read (back-off, signed pre-key retention, pings).
        self.clock = ClientClock(self.state["clock_offset_s"])
        self._tasks: set[asyncio.Task] = set()
        #: Set by :meth:`stop`: no reconnection, no new loop.
        self.stopped = False
        self.channel = Channel(
            handle=handle, faults=ctx.faults, timeout=ctx.config.network_timeout,
            spawn=self.spawn, on_stanza=self.on_stanza, on_lost=self.channel_lost,
            on_un_enlisted=lambda: self.spawn(self.handle_un_enlisted()))

    # handlers the concern mixins provide
    async def on_stanza(self, st: pb.Stanza) -> None:
        raise NotImplementedError

    def channel_lost(self, was_ready: bool) -> None:
        raise NotImplementedError

    async def handle_un_enlisted(self) -> None:
        raise NotImplementedError

    @property
    def login(self) -> str:
        return self.state["login"]

    @property
    def connected(self) -> bool:
        return self.channel.ready.is_set()

    def save(self) -> None:
        self.ctx.storage.save_user(self.handle, self.state, self.store.to_json())

    def advance_clock(self, seconds: float) -> float:
        """Let ``seconds`` pass on this client's clock (harness ``POST /users/{user}/clock``);
        returns the clock's total offset from wall time."""
        self.state["clock_offset_s"] = self.clock.advance(seconds)
        self.save()
        return self.state["clock_offset_s"]

    def event(self, type_: str, **fields: Any) -> dict:
        body = {"type": type_, **{k: v for k, v in fields.items() if v is not None}}
        ev = self.ctx.storage.add_event(self.handle, body)
        log.info(json.dumps({"event": "client_event", "user": self.handle, **body}))
        return ev

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, (ConnectionLost, ClientError, asyncio.TimeoutError)):
                log.error("client %s task failed", self.handle, exc_info=exc)

    async def cancel_tasks(self) -> None:
        """Cancel every task this client started and wait for them to end."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
