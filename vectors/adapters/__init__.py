"""Adapters: how the checker reaches an implementation.

:class:`InProcessAdapter` calls :func:`vectors.adapters.reference.handle` directly (the
default). :class:`SubprocessAdapter` starts any command that speaks the JSON-lines protocol
(README "Adapter protocol") and sends it one request per line.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import threading
from typing import Any

__all__ = ["Adapter", "AdapterError", "InProcessAdapter", "SubprocessAdapter"]


class AdapterError(RuntimeError):
    """The adapter broke the protocol (crashed, answered garbage, timed out)."""


class Adapter:
    name = "adapter"

    def __init__(self) -> None:
        self._info: dict[str, Any] | None = None

    def request(self, req: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def call(self, op: str, **params: Any) -> dict[str, Any]:
        resp = self.request({"op": op, **params})
        if not isinstance(resp, dict) or not isinstance(resp.get("ok"), bool):
            raise AdapterError(f"{self.name}: response to {op} lacks a boolean 'ok': {resp!r}")
        return resp

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            resp = self.call("ops")
            if not resp["ok"] or not isinstance(resp.get("ops"), list):
                raise AdapterError(f"{self.name}: bad answer to 'ops': {resp!r}")
            self._info = resp
        return self._info

    def supports(self, op: str) -> bool:
        return op in self.info["ops"]

    def capability(self, name: str, default: Any = None) -> Any:
        return self.info.get("capabilities", {}).get(name, default)

    def known_deviation(self, flags: list[str]) -> str | None:
        """The adapter's own declaration that it cannot consume vectors with one of ``flags``."""
        dev = self.info.get("known_deviations", {})
        for f in flags:
            if f in dev:
                return f"{f}: {dev[f]}"
        return None

    def close(self) -> None:
        pass


class InProcessAdapter(Adapter):
    name = "reference (in-process)"

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        from .reference import handle

        return json.loads(json.dumps(handle(json.loads(json.dumps(req)))))


class SubprocessAdapter(Adapter):
    def __init__(self, command: str, *, cwd: str | None = None, timeout: float = 120.0) -> None:
        super().__init__()
        self.name = command
        self.timeout = timeout
        self._proc = subprocess.Popen(
            shlex.split(command), cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        self._next = 0

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin and self._proc.stdout
        self._next += 1
        req = {**req, "id": self._next}
        try:
            self._proc.stdin.write(json.dumps(req) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError as exc:
            raise AdapterError(f"{self.name}: adapter exited (code {self._proc.poll()})") from exc
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._proc.stdout.readline()))
        reader.start()
        reader.join(self.timeout)
        if reader.is_alive():
            self._proc.kill()
            raise AdapterError(f"{self.name}: no answer to {req['op']} within {self.timeout}s")
        if not line or not line[0]:
            raise AdapterError(f"{self.name}: adapter exited (code {self._proc.poll()})")
        try:
            resp = json.loads(line[0])
        except json.JSONDecodeError as exc:
            raise AdapterError(f"{self.name}: not JSON: {line[0][:200]!r}") from exc
        if resp.get("id") != self._next:
            raise AdapterError(f"{self.name}: answer id {resp.get('id')} != request id {self._next}")
        resp.pop("id", None)
        return resp

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
