"""What a load run does and how it is judged: the ``load`` profile's ``parameters.load`` merged
with the declaration's ``capacity`` section (a provider that declares a rate is held to it).

Plain dicts in and out: the same settings travel to the scene process, to every Locust worker
(through the scene's ``/plan``) and to the judge.
"""
from __future__ import annotations

import copy
from typing import Any

from conformance.profile import Declaration, Profile

__all__ = ["load_settings", "DEFAULTS"]

#: Used where the profile says nothing (the bundled ``load`` profile spells all of them out).
DEFAULTS: dict[str, Any] = {
    "duration_s": 20,
    "ramp_s": 2,
    "push": {"users": 6, "rate_per_user": 10, "enlisted_users": 4, "unknown_share": 0.2,
             "wake_probes": 12},
    "media": {"users": 4, "rate_per_user": 3, "blob_sizes": [65536, 1048576, 4194304],
              "range_share": 0.3, "http2_share": 0.5, "verify_sample": 1.0},
    "jwks": {"users": 1, "interval_s": 1.0},
    "conversation": {"users": 2, "rate_per_user": 2},
    "thresholds": {
        "push": {"p50_ms": 100, "p95_ms": 300, "p99_ms": 600, "max_error_rate": 0.0,
                 "min_rate_share": 0.7},
        "media": {"p50_ms": 400, "p95_ms": 1500, "p99_ms": 3000, "max_error_rate": 0.0},
        "jwks": {"p99_ms": 600, "max_error_rate": 0.0},
        "wake_within_s": 15,
        "delivery_within_s": 15,
        "memory_peak_mib": 96,
        "memory_growth_mib": 48,
    },
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(profile: Profile, declaration: Declaration, *,
                  duration_s: float | None = None) -> dict[str, Any]:
    s = _merge(DEFAULTS, profile.parameters.get("load", {}))
    cap = declaration.data.get("capacity", {})
    # A declared sustained rate replaces the profile's: the users are kept, their rate scales.
    for scenario, key in (("push", "push_per_s"), ("media", "media_fetches_per_s")):
        if key in cap:
            users = max(1, int(s[scenario]["users"]))
            s[scenario]["rate_per_user"] = float(cap[key]) / users
    if "jwks_polls_per_s" in cap:
        s["jwks"]["interval_s"] = max(1, int(s["jwks"]["users"])) / float(cap["jwks_polls_per_s"])
    for scenario, limits in cap.get("latency_ms", {}).items():
        s["thresholds"].setdefault(scenario, {}).update(limits)
    if "memory_growth_mib" in cap:
        s["thresholds"]["memory_growth_mib"] = cap["memory_growth_mib"]
    if duration_s is not None:
        s["duration_s"] = duration_s
    return s
