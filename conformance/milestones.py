"""Per-milestone roll-up: the gatekeeper onboards milestone by milestone (spec §1.1), so every
report also says which of the six milestones pass, in the gatekeeper's own test wording.

Kept apart from the writers: each of them (JSON, HTML, JUnit, Allure) renders the same
roll-up, computed once from the per-requirement verdicts.
"""
from __future__ import annotations

from typing import Any

from .catalog import MILESTONE_IDS, load_milestones
from .verdicts import Verdict, worst

__all__ = ["milestone_rollup"]


def milestone_rollup(requirements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per milestone, in order, from report-shaped requirement entries (``id``,
    ``milestone``, ``verdict``).

    A milestone's verdict is the worst verdict of its requirements, NOT_APPLICABLE ones and
    NOT_TESTED SHOULD/MAY ones aside (only such: NOT_APPLICABLE if any is, else NOT_TESTED); a milestone none of whose requirements
    is in the run is NOT_TESTED with ``requirements: 0``, never a PASS.
    """
    by_milestone: dict[str, list[dict[str, Any]]] = {m: [] for m in MILESTONE_IDS}
    for r in requirements:
        if r.get("milestone") in by_milestone:
            by_milestone[r["milestone"]].append(r)
    out = []
    for m in load_milestones():
        reqs = by_milestone[m.id]
        verdicts = [Verdict(r["verdict"]) for r in reqs]
        # As for the run's result: NOT_APPLICABLE never counts, and NOT_TESTED only on a MUST
        # (an untested MAY such as CHN-009 does not hold a milestone back).
        applicable = [Verdict(r["verdict"]) for r in reqs
                      if r["verdict"] != "NOT_APPLICABLE"
                      and not (r["verdict"] == "NOT_TESTED" and r.get("level", "MUST") != "MUST")]
        if not verdicts:
            verdict = Verdict.NOT_TESTED
        elif not applicable:
            verdict = (Verdict.NOT_APPLICABLE if Verdict.NOT_APPLICABLE in verdicts
                       else Verdict.NOT_TESTED)
        else:
            verdict = worst(applicable)
        out.append({
            "id": m.id,
            "name": m.name,
            "test": m.test,
            "verdict": verdict.value,
            "requirements": len(reqs),
            "by_verdict": {v.value: verdicts.count(v) for v in Verdict},
            "failing": [r["id"] for r in reqs if r["verdict"] in ("FAIL", "ERROR")],
        })
    return out
