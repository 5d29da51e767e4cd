"""Verdicts per requirement (DESIGN §5) and how check outcomes turn into them.

A *check* is one pytest test in the bundled suite, marked with the requirement IDs it
enforces. Its outcome maps to a verdict; a requirement's verdict is the worst of its checks'.
Checks signal the two non-binary outcomes with :func:`not_tested` / :func:`not_applicable`,
and a provider-caused failure with a plain ``assert`` or :func:`fail` (anything else that
escapes a check is the kit's own ERROR).
"""
from __future__ import annotations

import enum
from typing import NoReturn

import pytest

__all__ = ["Verdict", "worst", "not_tested", "not_applicable", "fail", "CheckFailed",
           "NOT_TESTED_PREFIX", "NOT_APPLICABLE_PREFIX"]

NOT_TESTED_PREFIX = "NOT_TESTED: "
NOT_APPLICABLE_PREFIX = "NOT_APPLICABLE: "


class Verdict(str, enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"            # a MUST was violated
    WARN = "WARN"            # a SHOULD was violated (does not fail the run)
    NOT_APPLICABLE = "NOT_APPLICABLE"  # declared unsupported and allowed by the profile
    NOT_TESTED = "NOT_TESTED"          # no harness, or a precondition missing
    ERROR = "ERROR"          # the kit or the network broke

    @property
    def fails_run(self) -> bool:
        return self in (Verdict.FAIL, Verdict.ERROR)


_SEVERITY = [Verdict.PASS, Verdict.NOT_APPLICABLE, Verdict.NOT_TESTED, Verdict.WARN,
             Verdict.FAIL, Verdict.ERROR]


def worst(verdicts: list[Verdict]) -> Verdict:
    """ERROR > FAIL > WARN > NOT_TESTED > NOT_APPLICABLE > PASS; no checks at all is NOT_TESTED."""
    if not verdicts:
        return Verdict.NOT_TESTED
    return max(verdicts, key=_SEVERITY.index)


class CheckFailed(AssertionError):
    """The provider violated the requirement; the message says expected vs observed."""


def fail(expected: str, observed: str, requirement_text: str = "") -> NoReturn:
    msg = f"expected: {expected}\nobserved: {observed}"
    if requirement_text:
        msg += f"\nrequirement: {requirement_text}"
    # ``from None``: a check calls this inside ``except`` blocks, and the exception it caught
    # (a JSON parse error, say) carries the provider's raw bytes as an argument, which pytest
    # would print in the chained traceback and so republish a provider's secrets (issue 13).
    raise CheckFailed(msg) from None


def not_tested(reason: str) -> NoReturn:
    pytest.skip(NOT_TESTED_PREFIX + reason)


def not_applicable(reason: str) -> NoReturn:
    pytest.skip(NOT_APPLICABLE_PREFIX + reason)
