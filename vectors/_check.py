"""Verdict helpers shared by the area modules' ``check`` functions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "Unsupported", "is_rejection", "unsupported_in", "verdict"]

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class Outcome:
    status: str  # passed | failed | skipped
    detail: str = ""


class Unsupported(Exception):
    """The adapter does not implement an op this vector needs."""


def unsupported_in(resp: dict[str, Any]) -> None:
    if not resp["ok"] and resp.get("error") == "unsupported":
        raise Unsupported(resp.get("message", "unsupported"))


def is_rejection(resp: dict[str, Any]) -> bool:
    """An answer that rejects the input (not a protocol error of the adapter itself)."""
    return not resp["ok"] and resp.get("error") not in ("unsupported", "bad_request", "internal")


def verdict(result: str, accepted: bool, mismatch: str | None, resp: dict[str, Any]) -> Outcome:
    """``accepted``: the implementation took the input; ``mismatch``: why its output differs
    from the expected one (``None`` when it matches or nothing is expected)."""
    if not accepted and not is_rejection(resp):
        return Outcome(FAILED, f"adapter error {resp.get('error')}: {resp.get('message', '')}")
    if result == "valid":
        if not accepted:
            return Outcome(FAILED, f"rejected a valid input: {resp.get('error')}: "
                                   f"{resp.get('message', '')}")
        if mismatch:
            return Outcome(FAILED, mismatch)
        return Outcome(PASSED)
    if result == "invalid":
        if accepted:
            return Outcome(FAILED, "accepted an invalid input" + (f" ({mismatch})" if mismatch else ""))
        return Outcome(PASSED, f"rejected: {resp.get('error')}")
    return Outcome(PASSED, "accepted" if accepted else f"rejected: {resp.get('error')}")
