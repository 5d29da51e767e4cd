"""Allure output (``--alluredir``, through ``allure-pytest``): requirement IDs as labels, links
to the spec section, and the check's wire evidence as an attachment.

Only active when allure-pytest is installed and ``--alluredir`` was given; the kit's own
reports never depend on it.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

SPEC_URL = "docs/spec/interop-profile.md"


def enabled(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "allure_report_dir", None))


def label_check(item: pytest.Item, requirements: list[Any]) -> None:
    """Called at setup: labels and links go on the running test's Allure result."""
    import allure

    for r in requirements:
        allure.dynamic.label("requirement", r.id)
        allure.dynamic.tag(r.id)
        allure.dynamic.feature(r.area)
        allure.dynamic.story(f"{r.id} {r.title}")
        allure.dynamic.link(f"{SPEC_URL}#{r.id.lower()}", name=f"spec {r.id} (§{r.section})")
        # Behaviors view groups by epic: one epic per milestone, named with the gatekeeper's test.
        allure.dynamic.epic(_milestone_titles().get(r.milestone, r.milestone))
        allure.dynamic.label("milestone", r.milestone)
        allure.dynamic.label("provenance", r.provenance)
    if requirements:
        allure.dynamic.severity("critical" if any(r.level == "MUST" for r in requirements) else "normal")
        allure.dynamic.description("\n\n".join(f"**{r.id} ({r.level})** {r.text}" for r in requirements))


def _milestone_titles() -> dict[str, str]:
    from .catalog import load_milestones

    return {m.id: f"{m.id} {m.name} — test: {m.test}" for m in load_milestones()}


def write_milestone_verdicts(config: pytest.Config, report: dict[str, Any]) -> None:
    """Per-milestone verdicts into the Allure results' ``environment.properties`` (shown on
    the Allure overview page), so the milestone status is visible without our own reports."""
    from pathlib import Path

    out = Path(config.option.allure_report_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"profile={report['profile']['name']} {report['profile']['version']}",
             f"selection.provenance={','.join(report['selection']['provenance'])}"]
    for m in report["milestones"]:
        text = f"{m['verdict']} ({m['requirements']} requirements): {m['test']}"
        lines.append(f"milestone.{m['id']}={text}".replace("\n", " "))
    (out / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")


def attach_evidence(entries: list[dict[str, Any]], verdict: str) -> None:
    """Called while the check runs its teardown: the redacted wire log as an attachment, and
    one step per exchange kind so the Allure timeline shows what was exchanged."""
    import allure

    allure.attach(json.dumps(entries, indent=1, sort_keys=True), name=f"wire evidence ({verdict})",
                  attachment_type=allure.attachment_type.JSON)
    kinds: dict[str, int] = {}
    for e in entries:
        kinds[e.get("kind", "?")] = kinds.get(e.get("kind", "?"), 0) + 1
    for kind, n in sorted(kinds.items()):
        with allure.step(f"{kind}: {n} exchange(s)"):
            pass
