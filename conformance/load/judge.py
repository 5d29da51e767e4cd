"""LOAD-* verdicts from what a run measured: Locust's merged stats (its CSV files, written by
the master from every worker's histograms) and the scene's observations (wake-ups, memory).

Pure functions over plain data, so the rules are unit-testable without running any load.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.results import CheckResult
from conformance.verdicts import Verdict

__all__ = ["Measured", "read_locust_csv", "read_per_second", "sustained_rate", "judge", "PUSH", "MEDIA", "JWKS", "RAMP"]

#: Request names the locustfile gives answers of the ramp (see ``locustfile.timed``): checked
#: and counted, never timed, so percentiles are of the steady load.
RAMP = " (ramp)"


def _with_ramp(names: tuple[str, ...]) -> tuple[str, ...]:
    return names + tuple(n + RAMP for n in names)


#: Latency is judged on G's steady push traffic; a wake-probe answer may include the wake-up.
PUSH_TIMED = ("push enlisted", "push unknown")
PUSH = _with_ramp(PUSH_TIMED) + ("push wake-probe",)
MEDIA = ("media h1 full", "media h1 range", "media h2 full", "media h2 range")
MEDIA_ALL = _with_ramp(MEDIA) + ("media fetch-once h1",)
JWKS_TIMED = ("jwks",)
JWKS = _with_ramp(JWKS_TIMED)
MIB = 1024 * 1024


@dataclass
class Measured:
    stats: dict[str, dict[str, Any]]
    failures: list[dict[str, Any]]
    history: list[dict[str, Any]]
    observations: dict[str, Any]
    elapsed_s: float
    files: dict[str, Path] = field(default_factory=dict)
    #: ``{"spawned_at": epoch s, "per_second": {name: {epoch second: requests}}}`` written by
    #: the locustfile (Locust's own per-second buckets); empty: only whole-run rates.
    per_second: dict[str, Any] = field(default_factory=dict)


def _num(v: str) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def read_locust_csv(prefix: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]],
                                          list[dict[str, Any]]]:
    """``{name: row}`` of ``_stats.csv``, the rows of ``_failures.csv`` and of
    ``_stats_history.csv`` (numbers parsed; "N/A" as None)."""
    def rows(suffix: str) -> list[dict[str, Any]]:
        path = Path(f"{prefix}{suffix}")
        if not path.exists():
            return []
        with path.open(newline="", encoding="utf-8") as fh:
            return [{k: (_num(v) if _num(v) is not None else v) for k, v in r.items()}
                    for r in csv.DictReader(fh)]
    stats = {r["Name"]: r for r in rows("_stats.csv")}
    return stats, rows("_failures.csv"), rows("_stats_history.csv")


def read_per_second(prefix: Path) -> dict[str, Any]:
    path = Path(f"{prefix}_per_second.json")
    try:
        return dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError):
        return {}


#: Full seconds after the ramp ended that are not judged: the last users' start-up.
SETTLE_S = 1
#: Fewer full seconds than this after the ramp: the whole-run average is judged instead.
MIN_STEADY_S = 2


def sustained_rate(m: Measured, names: tuple[str, ...]) -> tuple[float, str]:
    """Requests/s once every user runs: the mean over the full wall-clock seconds after the
    ramp (and ``SETTLE_S``), without the last, partial second. Why: the offered rate is only
    offered once every user has started; a whole-run average over a short run counts the ramp
    and each user's start-up as a shortfall of the provider, and more so the busier the
    machine. Too short a steady part: the whole-run average, said so."""
    whole = sum(m.stats[n]["Requests/s"] or 0 for n in names if n in m.stats)
    spawned = m.per_second.get("spawned_at")
    buckets: dict[int, int] = {}
    for n in names:
        for sec, count in m.per_second.get("per_second", {}).get(n, {}).items():
            buckets[int(sec)] = buckets.get(int(sec), 0) + int(count)
    if spawned and buckets:
        first, last = int(spawned) + 1 + SETTLE_S, max(buckets) - 1
        if last - first + 1 >= MIN_STEADY_S:
            secs = range(first, last + 1)
            return (sum(buckets.get(t, 0) for t in secs) / len(secs),
                    f"{len(secs)} full seconds after all users had started")
    return whole, "whole run, ramp included (too short a run after the ramp)"


def _count(m: Measured, names: tuple[str, ...], col: str) -> int:
    return int(sum(m.stats[n][col] or 0 for n in names if n in m.stats))


def _failures(m: Measured, names: tuple[str, ...], limit: int = 5) -> list[str]:
    out = [f"{int(f['Occurrences'])}× {f['Name']}: {f['Error']}" for f in m.failures
           if f.get("Name") in names]
    return out[:limit]


def _result(rid: str, verdict: Verdict, message: str, evidence: dict[str, Any],
            exchanges: int, level: str, elapsed: float) -> CheckResult:
    if verdict is Verdict.FAIL and level != "MUST":
        verdict = Verdict.WARN  # a violated SHOULD never fails the run
    return CheckResult(f"load::{rid}", (rid,), verdict, elapsed, message,
                       [{"kind": "load_figures", "detail": evidence}], exchanges)


def _percentiles(m: Measured, names: tuple[str, ...], limits: dict[str, Any]
                 ) -> tuple[list[str], dict[str, Any]]:
    if not any((m.stats.get(n) or {}).get("Request Count") for n in names):
        names = _with_ramp(names)  # nothing after the ramp: its answers, rather than none
    wrong, figures = [], {}
    for n in names:
        row = m.stats.get(n)
        if not row or not row["Request Count"]:
            continue
        fig = {p: row.get(col) for p, col in (("p50_ms", "50%"), ("p95_ms", "95%"), ("p99_ms", "99%"))}
        figures[n] = fig
        for p, value in fig.items():
            if p in limits and value is not None and value > limits[p]:
                wrong.append(f"{n}: {p[:3]} {value:.0f} ms > {limits[p]:g} ms")
    return wrong, figures


def judge(settings: dict[str, Any], m: Measured, levels: dict[str, str]) -> list[CheckResult]:
    th = settings["thresholds"]
    t = m.elapsed_s
    out: list[CheckResult] = []

    def add(rid: str, verdict: Verdict, message: str, evidence: dict[str, Any], n: int) -> None:
        out.append(_result(rid, verdict, message, evidence, n, levels.get(rid, "MUST"), t))

    # -- push --------------------------------------------------------------------------------
    ps, pt = settings["push"], th.get("push", {})
    offered = float(ps["users"]) * float(ps["rate_per_user"])
    reqs, fails = _count(m, PUSH, "Request Count"), _count(m, PUSH, "Failure Count")
    rate, window = sustained_rate(m, PUSH)
    ev = {"requests": reqs, "failures": fails, "offered_per_s": offered,
          "sustained_per_s": round(rate, 2), "sustained_over": window,
          "whole_run_per_s": round(sum(m.stats[n]["Requests/s"] or 0 for n in PUSH if n in m.stats), 2),
          "g_signatures": m.observations.get("signatures"),
          "signed_subjects": m.observations.get("token_subjects")}
    if not ps["users"]:
        add("LOAD-001", Verdict.NOT_TESTED, "the profile offers no push traffic", ev, 0)
        add("LOAD-002", Verdict.NOT_TESTED, "the profile offers no push traffic", ev, 0)
    elif not reqs:
        add("LOAD-001", Verdict.FAIL, "no push was answered during the load", ev, 0)
        add("LOAD-002", Verdict.FAIL, "no push was answered during the load", ev, 0)
    else:
        err = fails / reqs
        problems = []
        if err > float(pt.get("max_error_rate", 0.0)):
            problems.append(f"error rate {err:.2%} > {float(pt.get('max_error_rate', 0)):.2%} "
                            f"({fails} of {reqs}): " + "; ".join(_failures(m, PUSH)))
        share = float(pt.get("min_rate_share", 0.0))
        if rate < share * offered:
            problems.append(f"sustained {rate:.1f} pushes/s ({window}), below {share:.0%} of "
                            f"the offered {offered:g}/s")
        add("LOAD-001", Verdict.FAIL if problems else Verdict.PASS, "; ".join(problems), ev, reqs)
        wrong, figures = _percentiles(m, PUSH_TIMED, pt)
        if fails >= reqs:  # the latency of refusals and resets is no latency of an answer
            wrong.append("no push was answered as CHN-015/CHN-018 require")
        add("LOAD-002", Verdict.FAIL if wrong else Verdict.PASS,
            ("latency above the thresholds: " + "; ".join(wrong)) if wrong else "",
            {"percentiles": figures, "thresholds": pt}, reqs)

    # -- wake-ups ------------------------------------------------------------------------------
    wakes = m.observations.get("wakes", [])
    within = float(th.get("wake_within_s", 15))
    late = [w for w in wakes if not w["woken"] or w["after_s"] > within]
    ev = {"probed": len(wakes), "woken": sum(1 for w in wakes if w["woken"]),
          "slowest_s": max((w["after_s"] for w in wakes if w["woken"]), default=None),
          "probes_not_pushed": m.observations.get("probes_left", 0)}
    if not settings["push"].get("wake_probes") or not m.observations.get("harness", True):
        add("LOAD-003", Verdict.NOT_TESTED, "no offline wake-on-push users (needs --harness)", ev, 0)
    elif not wakes:
        add("LOAD-003", Verdict.FAIL, "no wake-probe push was sent during the load", ev, 0)
    else:
        msg = ""
        if late:
            msg = (f"{len(late)} of {len(wakes)} offline clients pushed once were not connected "
                   f"within {within:g} s (" + ", ".join(
                       "never" if not w["woken"] else f"{w['after_s']:.1f} s" for w in late[:5]) + ")")
        add("LOAD-003", Verdict.FAIL if late else Verdict.PASS, msg, ev, len(wakes))

    # -- media ---------------------------------------------------------------------------------
    ms, mt = settings["media"], th.get("media", {})
    reqs, fails = _count(m, MEDIA_ALL, "Request Count"), _count(m, MEDIA_ALL, "Failure Count")
    ev = {"requests": reqs, "failures": fails, "verify_sample": ms.get("verify_sample", 1.0),
          "per_kind": {n: int(m.stats[n]["Request Count"]) for n in MEDIA_ALL if n in m.stats},
          "bytes_per_s": round(sum((m.stats[n]["Requests/s"] or 0) * (m.stats[n]["Average Content Size"] or 0)
                                   for n in _with_ramp(MEDIA) if n in m.stats))}
    if not ms["users"]:
        add("LOAD-004", Verdict.NOT_TESTED, "the profile offers no media traffic", ev, 0)
        add("LOAD-005", Verdict.NOT_TESTED, "the profile offers no media traffic", ev, 0)
    elif not m.observations.get("blobs", 1):
        add("LOAD-004", Verdict.NOT_TESTED, "no blobs were uploaded (needs --harness)", ev, 0)
        add("LOAD-005", Verdict.NOT_TESTED, "no blobs were uploaded (needs --harness)", ev, 0)
    elif not reqs:
        add("LOAD-004", Verdict.FAIL, "no media fetch was answered during the load", ev, 0)
        add("LOAD-005", Verdict.FAIL, "no media fetch was answered during the load", ev, 0)
    else:
        missing = [n for n, share in (("media h2", ms.get("http2_share", 0.5)),
                                      ("media h1", 1 - ms.get("http2_share", 0.5)))
                   if share > 0 and not _count(m, tuple(x for x in MEDIA_ALL if x.startswith(n)),
                                               "Request Count")]
        problems = _failures(m, MEDIA_ALL)
        msg = ""
        if fails:
            msg = f"{fails} of {reqs} media answers wrong: " + "; ".join(problems)
        if missing:
            msg = (msg + "; " if msg else "") + "no answered fetch over " + ", ".join(missing)
        sample = float(ms.get("verify_sample", 1.0))
        note = "" if sample >= 1 else f" (bodies verified: a {sample:.0%} sample)"
        add("LOAD-004", Verdict.FAIL if msg else Verdict.PASS, msg + (note if msg else note.strip()),
            ev, reqs)
        wrong, figures = _percentiles(m, MEDIA, mt)
        if fails >= reqs:
            wrong.append("no media fetch was answered correctly")
        err = fails / reqs
        if err > float(mt.get("max_error_rate", 0.0)):
            wrong.append(f"error rate {err:.2%}")
        add("LOAD-005", Verdict.FAIL if wrong else Verdict.PASS,
            ("above the thresholds: " + "; ".join(wrong)) if wrong else "",
            {"percentiles": figures, "thresholds": mt}, reqs)

    # -- JWKS ----------------------------------------------------------------------------------
    jt = th.get("jwks", {})
    reqs, fails = _count(m, JWKS, "Request Count"), _count(m, JWKS, "Failure Count")
    if not settings["jwks"]["users"]:
        add("LOAD-006", Verdict.NOT_TESTED, "the profile offers no JWKS polling", {}, 0)
    elif not reqs:
        add("LOAD-006", Verdict.FAIL, "no JWKS poll was answered during the load", {}, 0)
    else:
        wrong, figures = _percentiles(m, JWKS_TIMED, jt)
        if fails >= reqs:
            wrong.append("no JWKS poll was answered correctly")
        elif fails / reqs > float(jt.get("max_error_rate", 0.0)):
            wrong.append(f"{fails} of {reqs} polls wrong: " + "; ".join(_failures(m, JWKS)))
        add("LOAD-006", Verdict.FAIL if wrong else Verdict.PASS, "; ".join(wrong),
            {"requests": reqs, "failures": fails, "percentiles": figures}, reqs)

    # -- conversation ----------------------------------------------------------------------------
    conv = m.observations.get("conversation", {})
    cs = settings.get("conversation", {"users": 0})
    names = ("conversation g2p send", "conversation p2g send")
    sends, send_fails = _count(m, names, "Request Count"), _count(m, names, "Failure Count")
    ev = {k: v for k, v in conv.items() if k != "problems"} | {"send_failures": send_fails}
    if not cs.get("users") or not m.observations.get("harness", True):
        add("LOAD-008", Verdict.NOT_TESTED, "no conversation traffic (needs --harness and "
            "conversation users)", ev, 0)
    elif not conv.get("sent"):
        add("LOAD-008", Verdict.FAIL, "no conversation message was sent during the load"
            + (f" ({send_fails} sends failed: " + "; ".join(_failures(m, names)) + ")" if send_fails else ""),
            ev, 0)
    else:
        wrong = []
        for key, what in (("lost", "lost"), ("duplicates", "duplicated"),
                          ("out_of_order", "out of per-sender order"),
                          ("missing_receipts", "without a delivery receipt")):
            if conv.get(key):
                wrong.append(f"{conv[key]} {what}")
        if send_fails:
            wrong.append(f"{send_fails} of {sends} sends refused: " + "; ".join(_failures(m, names)))
        msg = ""
        if wrong:
            msg = (f"of {conv.get('sent_g2p', 0)} G->provider and {conv.get('sent_p2g', 0)} "
                   f"provider->G messages: " + ", ".join(wrong) + "; " + "; ".join(conv.get("problems", [])))
        add("LOAD-008", Verdict.FAIL if wrong else Verdict.PASS, msg, ev, int(conv["sent"]))

    # -- memory --------------------------------------------------------------------------------
    mem = m.observations.get("memory", [])
    if not m.observations.get("memory_measured") or len(mem) < 2:
        add("LOAD-007", Verdict.NOT_TESTED,
            "the provider's server process is not this machine's (an external --target): its "
            "memory cannot be sampled by the kit", {}, 0)
    else:
        base = mem[0][1]
        peak = (max(r for _, r in mem) - base) / MIB
        end = (mem[-1][1] - base) / MIB
        lim_peak, lim_end = float(th.get("memory_peak_mib", 96)), float(th.get("memory_growth_mib", 48))
        wrong = []
        if peak > lim_peak:
            wrong.append(f"peak {peak:.1f} MiB above the start of the load > {lim_peak:g} MiB")
        if end > lim_end:
            wrong.append(f"ended {end:.1f} MiB above the start of the load > {lim_end:g} MiB")
        add("LOAD-007", Verdict.FAIL if wrong else Verdict.PASS, "; ".join(wrong),
            {"baseline_mib": round(base / MIB, 1), "peak_above_mib": round(peak, 1),
             "end_above_mib": round(end, 1), "samples": len(mem)}, len(mem))
    return out
