"""The LOAD-* rules on hand-made figures: what each threshold means, and that nothing passes
without traffic (no vacuous PASS), SHOULD violations warn, unmeasurable memory is NOT_TESTED."""
from __future__ import annotations

from typing import Any

from conformance.catalog import load_catalog
from conformance.load.judge import Measured, judge, sustained_rate
from conformance.load.settings import DEFAULTS
from conformance.profile import Declaration, load_profile
from conformance.load.settings import load_settings
from conformance.verdicts import Verdict

LEVELS = {r.id: r.level for r in load_catalog() if r.area == "load"}


def _row(n: int, fails: int = 0, p50: float = 2, p95: float = 5, p99: float = 9, rps: float = 10,
         size: float = 0) -> dict[str, Any]:
    return {"Request Count": n, "Failure Count": fails, "50%": p50, "95%": p95, "99%": p99,
            "Requests/s": rps, "Average Content Size": size}


def _good() -> dict[str, dict[str, Any]]:
    return {"push enlisted": _row(400, rps=45), "push unknown": _row(100, rps=12),
            "push wake-probe": _row(12, p50=80, p95=150, p99=150, rps=1),
            "media h1 full": _row(30, p50=20), "media h1 range": _row(10),
            "media h2 full": _row(30, p50=30), "media h2 range": _row(10),
            "media fetch-once h1": _row(12), "jwks": _row(10),
            "conversation g2p send": _row(20), "conversation p2g send": _row(20)}


def _obs(**over: Any) -> dict[str, Any]:
    obs = {"wakes": [{"login": f"l{i}", "woken": True, "after_s": 0.3} for i in range(12)],
           "signatures": 24, "token_subjects": 24, "harness": True, "blobs": 3,
           "conversation": {"sent": 40, "sent_g2p": 20, "sent_p2g": 20, "lost": 0,
                            "duplicates": 0, "out_of_order": 0, "missing_receipts": 0,
                            "problems": []},
           "memory_measured": True, "memory": [[0, 100 << 20], [1, 101 << 20], [2, 100 << 20]]}
    obs.update(over)
    return obs


def _verdicts(stats=None, obs=None, failures=(), settings=None) -> dict[str, Verdict]:
    m = Measured(stats if stats is not None else _good(), list(failures), [],
                 obs if obs is not None else _obs(), 20.0)
    return {c.requirements[0]: c.verdict for c in judge(settings or DEFAULTS, m, LEVELS)}


def test_clean_figures_pass_every_requirement() -> None:
    assert set(_verdicts().values()) == {Verdict.PASS}
    assert set(_verdicts()) == set(LEVELS)


def test_no_traffic_passes_nothing() -> None:
    v = _verdicts(stats={}, obs=_obs(wakes=[], memory=[], conversation={}))
    assert Verdict.PASS not in v.values(), v


def test_thresholds_fail_their_requirement_only() -> None:
    slow = _good() | {"push enlisted": _row(400, p50=310, p95=320, p99=330, rps=45)}
    v = _verdicts(stats=slow)
    assert v["LOAD-002"] is Verdict.FAIL and v["LOAD-001"] is Verdict.PASS
    lossy = _obs(wakes=[{"login": "a", "woken": True, "after_s": 0.2},
                        {"login": "b", "woken": False, "after_s": None}])
    assert _verdicts(obs=lossy)["LOAD-003"] is Verdict.FAIL
    grown = _obs(memory=[[0, 100 << 20], [1, 300 << 20], [2, 290 << 20]])
    assert _verdicts(obs=grown)["LOAD-007"] is Verdict.FAIL


def test_lost_duplicated_or_unreceipted_messages_fail_the_conversation() -> None:
    for key in ("lost", "duplicates", "out_of_order", "missing_receipts"):
        conv = _obs()["conversation"] | {key: 1, "problems": ["g2p g0: ..."]}
        assert _verdicts(obs=_obs(conversation=conv))["LOAD-008"] is Verdict.FAIL, key


def test_a_wrong_media_body_fails_integrity() -> None:
    stats = _good() | {"media h2 full": _row(30, fails=1)}
    failures = [{"Name": "media h2 full", "Error": "body does not match fileEncSha256",
                 "Occurrences": 1}]
    v = _verdicts(stats=stats, failures=failures)
    assert v["LOAD-004"] is Verdict.FAIL and v["LOAD-005"] is Verdict.FAIL


def test_jwks_is_a_should_and_memory_of_an_external_target_is_not_tested() -> None:
    v = _verdicts(stats=_good() | {"jwks": _row(10, fails=10)},
                  obs=_obs(memory_measured=False))
    assert v["LOAD-006"] is Verdict.WARN
    assert v["LOAD-007"] is Verdict.NOT_TESTED


def test_declared_capacity_sets_rates_and_latencies() -> None:
    decl = Declaration({"provider": {"name": "x"}, "profiles": ["load"],
                        "capacity": {"push_per_s": 120, "latency_ms": {"push": {"p99_ms": 50}}}},
                       "", "")
    s = load_settings(load_profile("load"), decl)
    assert s["push"]["users"] * s["push"]["rate_per_user"] == 120
    assert s["thresholds"]["push"]["p99_ms"] == 50


def _per_second(spawned: float, counts: list[int], start: int = 1000) -> dict[str, Any]:
    return {"spawned_at": spawned,
            "per_second": {"push enlisted": {str(start + i): c for i, c in enumerate(counts)}}}


def test_sustained_rate_is_judged_after_the_ramp() -> None:
    # A 6 s run whose whole-run average (38/s) counts the ramp: 60/s once every user runs.
    slow_start = _good() | {"push enlisted": _row(230, rps=38), "push unknown": _row(0, rps=0),
                            "push wake-probe": _row(0, rps=0)}
    ramp = _per_second(1001.4, [5, 20, 60, 61, 59, 25])
    m = Measured(slow_start, [], [], _obs(), 6.0, per_second=ramp)
    assert sustained_rate(m, ("push enlisted",)) == (60.0, "2 full seconds after all users had started")
    v = {c.requirements[0]: c.verdict for c in judge(DEFAULTS, m, LEVELS)}
    assert v["LOAD-001"] is Verdict.PASS
    # A provider that really holds only ~20/s fails on the same window.
    held = _per_second(1001.4, [5, 20, 20, 19, 21, 8])
    m = Measured(slow_start, [], [], _obs(), 6.0, per_second=held)
    assert {c.requirements[0]: c.verdict for c in judge(DEFAULTS, m, LEVELS)}["LOAD-001"] is Verdict.FAIL
    # Too short a run after the ramp: the whole-run average is judged, and said so.
    short = _per_second(1003.4, [5, 20, 60, 61, 59, 25])
    rate, window = sustained_rate(Measured(slow_start, [], [], _obs(), 6.0, per_second=short),
                                  ("push enlisted",))
    assert rate == 38 and "whole run" in window


def test_answers_of_the_ramp_are_checked_but_not_timed() -> None:
    # While users start the kit itself bursts (TLS handshakes, wake-probe reconnections):
    # of ~20 JWKS polls or ~100 pushes in a short run, the p99 would be that burst.
    slow_ramp = _good() | {"jwks (ramp)": _row(2, p50=570, p95=570, p99=570),
                           "push enlisted (ramp)": _row(40, p50=400, p95=900, p99=900)}
    v = _verdicts(stats=slow_ramp)
    assert v["LOAD-006"] is Verdict.PASS and v["LOAD-002"] is Verdict.PASS
    assert _verdicts(stats=_good() | {"jwks": _row(10, p99=700)})["LOAD-006"] is Verdict.WARN
    wrong_ramp = _good() | {"jwks (ramp)": _row(1, fails=1), "push unknown (ramp)": _row(5, fails=1)}
    failures = [{"Name": "jwks (ramp)", "Error": "status 500", "Occurrences": 1},
                {"Name": "push unknown (ramp)", "Error": "status 500", "Occurrences": 1}]
    v = _verdicts(stats=wrong_ramp, failures=failures)
    assert v["LOAD-006"] is Verdict.WARN and v["LOAD-001"] is Verdict.FAIL


def test_a_run_with_only_ramp_answers_is_timed_on_them() -> None:
    # Never a latency PASS for want of steady answers.
    only_ramp = {k: v for k, v in _good().items() if not k.startswith("push ")}
    only_ramp |= {"push enlisted (ramp)": _row(40, p50=400, p95=900, p99=900, rps=45)}
    assert _verdicts(stats=only_ramp)["LOAD-002"] is Verdict.FAIL
