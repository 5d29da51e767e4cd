"""What a run found: check results, aggregated per requirement. Plain data, no pytest.

The plugin fills a :class:`RunResults`; the report writers read it. Everything here is
JSON-serialisable through :meth:`RunResults.to_report`, whose shape is the committed
``report.schema.json``.
"""
from __future__ import annotations

import platform
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .catalog import BASES, Requirement
from .milestones import milestone_rollup
from .verdicts import Verdict, worst

__all__ = ["CheckResult", "HARNESS_ATTESTED", "RunResults", "REPORT_FORMAT", "evidence_basis"]

REPORT_FORMAT = "1.0.0"
#: A check whose verdict rests in part on the provider harness' word alone (issue 13 §6): what
#: the client says it surfaced to or reported to its user, which no wire exchange shows.
HARNESS_ATTESTED = "harness-attested"


def evidence_basis(checks: list[CheckResult]) -> str | None:
    """A requirement's basis: ``wire`` when no check of it needs the harness' word,
    ``harness-attested`` when every check does, ``mixed`` otherwise (None: no check ran)."""
    bases = {c.basis for c in checks if not c.nodeid.startswith("declaration::")}
    if not bases:
        return None
    return bases.pop() if len(bases) == 1 else "mixed"


@dataclass
class CheckResult:
    nodeid: str
    requirements: tuple[str, ...]
    verdict: Verdict
    duration: float
    message: str = ""
    #: Redacted wire log of the check: small dicts (``t``, ``kind``, ``detail``...).
    evidence: list[dict[str, Any]] = field(default_factory=list)
    exchanges: int = 0
    #: ``wire`` or :data:`HARNESS_ATTESTED` (the check's ``harness_attested`` marker).
    basis: str = "wire"


@dataclass
class RunResults:
    kit_version: str
    profile_name: str
    profile_version: str
    profile_requirements: list[Requirement]
    target: str
    harness: str
    vectors_version: str
    declaration_digest: str
    certify: bool = False
    insecure: bool = False
    started: str = ""
    finished: str = ""
    not_applicable: frozenset[str] = frozenset()
    checks: list[CheckResult] = field(default_factory=list)
    #: Which part of the profile ran: the provenance classes (``--provenance``) and the
    #: requirement IDs (``--req``; empty = all); a partial selection never certifies.
    provenance: tuple[str, ...] = BASES
    only_requirements: tuple[str, ...] = ()
    #: The chat-channel binding the run used (``open`` or ``wa``, spec §5.3).
    wire: str = "open"

    def requirement_verdicts(self) -> dict[str, Verdict]:
        per: dict[str, list[Verdict]] = {r.id: [] for r in self.profile_requirements}
        for c in self.checks:
            for rid in c.requirements:
                if rid in per:
                    per[rid].append(c.verdict)
        return {rid: worst(v) for rid, v in per.items()}

    def overall(self) -> str:
        verdicts = self.requirement_verdicts()
        by_id = {r.id: r for r in self.profile_requirements}
        if any(v.fails_run for v in verdicts.values()):
            return "FAIL"
        if self.certify and any(v is Verdict.NOT_TESTED and by_id[r].level == "MUST"
                                for r, v in verdicts.items()):
            return "INCOMPLETE"
        return "PASS"

    def to_report(self, rerun_command: str = "pytest --target {target} --req {id}") -> dict[str, Any]:
        verdicts = self.requirement_verdicts()
        per_area: dict[str, Counter[str]] = {}
        reqs = []
        for r in self.profile_requirements:
            checks = [c for c in self.checks if r.id in c.requirements]
            v = verdicts[r.id]
            per_area.setdefault(r.area, Counter())[v.value] += 1
            failure = next((c.message for c in checks if c.verdict is v and c.message), "")
            reqs.append({
                "id": r.id,
                "level": r.level,
                "title": r.title,
                "text": r.text,
                "section": r.section,
                "role": r.role,
                "area": r.area,
                "verdict": v.value,
                "checks": [{"nodeid": c.nodeid, "verdict": c.verdict.value,
                            "duration": round(c.duration, 4), "exchanges": c.exchanges,
                            "basis": c.basis}
                           for c in checks],
                "duration": round(sum(c.duration for c in checks), 4),
                "message": failure,
                "evidence": [f"wire/{evidence_name(c.nodeid)}.jsonl" for c in checks if c.evidence],
                "rerun": rerun_command.format(target=self.target or "<embedded>", id=r.id),
                "provenance": {k: v for k, v in (("basis", r.provenance), ("source", r.source),
                                                 ("reason", r.reason)) if v},
                "milestone": r.milestone,
            })
            basis = evidence_basis(checks)
            if basis is not None:
                reqs[-1]["evidence_basis"] = basis
        summary = Counter(v.value for v in verdicts.values())
        return {
            "format": REPORT_FORMAT,
            "kit": {"name": "messaging-interop-conformance", "version": self.kit_version},
            "profile": {"name": self.profile_name, "version": self.profile_version},
            "vectors_version": self.vectors_version,
            "target": self.target or "embedded reference provider",
            "harness": self.harness,
            "wire": self.wire,
            "declaration_sha256": self.declaration_digest,
            "certify": self.certify,
            "insecure": self.insecure,
            "started": self.started,
            "finished": self.finished,
            "environment": {"python": sys.version.split()[0], "platform": platform.platform(terse=True)},
            "result": self.overall(),
            "selection": {"provenance": list(self.provenance),
                          "requirements": list(self.only_requirements),
                          "complete": set(self.provenance) == set(BASES) and not self.only_requirements},
            "milestones": milestone_rollup(reqs),
            "summary": {
                "requirements": len(self.profile_requirements),
                "checks": len(self.checks),
                "by_verdict": {v.value: summary.get(v.value, 0) for v in Verdict},
                "by_area": {a: {v.value: c.get(v.value, 0) for v in Verdict} for a, c in sorted(per_area.items())},
                "harness_attested": [r["id"] for r in reqs
                                     if r.get("evidence_basis") == HARNESS_ATTESTED],
            },
            "requirements": reqs,
        }


def evidence_name(nodeid: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in nodeid)[:150]
