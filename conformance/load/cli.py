"""``conformance load``: G's traffic towards a provider on Locust, judged as LOAD-* verdicts.

With no arguments: a short run (< 2 min on 2 cores) against the embedded reference provider,
reports in ``reports/load/``. ``--target``/``--harness`` for a real provider; ``--workers N``
for a local master with N worker processes; ``--expect-workers N`` for a master that waits for
workers from other machines, which join with ``--worker --master-host HOST`` (docs/load.md).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "timespan"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="provider server base URL (default: the embedded reference provider)")
    parser.add_argument("--harness", help="provider client harness URL (wake-ups and media uploads need it)")
    parser.add_argument("--profile", default="load", help="load profile name or YAML path (default: load)")
    parser.add_argument("--declaration", help="provider declaration YAML (its `capacity` section sets rates)")
    parser.add_argument("--duration", "--run-time", dest="duration", type=timespan, metavar="TIME",
                        help="how long the load runs, in seconds or Locust's --run-time form "
                             "(90, 90s, 10m, 1h30m; default: the profile's duration_s; soak: 10m)")
    parser.add_argument("--report-dir", default="reports/load", help="where reports go (default: reports/load)")
    parser.add_argument("--workers", type=int, default=0,
                        help="run a local Locust master with this many worker processes")
    parser.add_argument("--expect-workers", type=int, default=0,
                        help="run a Locust master that waits for this many workers from other machines")
    parser.add_argument("--master-bind-host", default="127.0.0.1",
                        help="address the Locust master listens on (0.0.0.0 for remote workers)")
    parser.add_argument("--master-port", type=int, default=0, help="Locust master port (default: any free one; 5557 is Locust's)")
    parser.add_argument("--worker", action="store_true",
                        help="join a distributed run as one Locust worker (with --master-host)")
    parser.add_argument("--master-host", help="the Locust master to join (with --worker)")
    parser.add_argument("--scene-listen", default="127.0.0.1:0",
                        help="host:port of the scene's control API (remote workers must reach it)")
    parser.add_argument("--scene-url", help="URL remote workers use for the scene's control API")
    parser.add_argument("--reference-fault", action="append", default=[], metavar="NAME",
                        help="start the embedded reference provider with this named fault (repeatable)")
    parser.add_argument("--insecure", action="store_true", help="accept any TLS certificate of --target")
    parser.add_argument("--gatekeeper-listen", default="127.0.0.1:0", help="host:port the gatekeeper simulator binds")
    parser.add_argument("--gatekeeper-url", help="public URL of the simulator, for a provider not on this machine")
    parser.add_argument("--signing-key", help="Ed25519 private key (PEM) that signs the evidence bundle")
    parser.add_argument("--quiet", action="store_true", help="no Locust progress on the terminal")


_TIMESPAN = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


def timespan(text: str) -> float:
    """Seconds from ``600``, ``90s``, ``10m`` or ``1h30m`` (Locust's ``--run-time`` form, parsed
    here: the runner never imports Locust, whose import monkey-patches the interpreter)."""
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        m = _TIMESPAN.fullmatch(text)
        if not text or m is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 600, 90s, 10m, 1h30m)") from None
        h, mi, se = m.groups()
        seconds = int(h or 0) * 3600 + int(mi or 0) * 60 + float(se or 0)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the load must run for more than 0 s")
    return seconds


def run(args: argparse.Namespace) -> int:
    from .runner import LoadRun, run_load, summary_lines, worker_main

    if args.worker:
        if not args.master_host:
            print("--worker needs --master-host", file=sys.stderr)
            return 2
        return worker_main(args.master_host, args.master_port or 5557)
    if args.reference_fault and args.target:
        print("--reference-fault applies to the embedded reference provider; drop --target",
              file=sys.stderr)
        return 2
    if args.workers and args.expect_workers:
        print("use --workers (local) or --expect-workers (remote), not both", file=sys.stderr)
        return 2
    from reference_impl.provider.faults import FAULTS

    unknown = sorted(set(args.reference_fault) - FAULTS.keys())
    if unknown:
        print(f"unknown fault(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    from conformance.profile import ProfileError

    try:
        load = LoadRun(profile=args.profile, declaration=args.declaration, target=args.target,
                       harness=args.harness, faults=tuple(args.reference_fault),
                       duration_s=args.duration, workers=args.workers,
                       expect_workers=args.expect_workers, master_bind_host=args.master_bind_host,
                       master_port=args.master_port, scene_listen=args.scene_listen,
                       scene_url=args.scene_url, insecure=args.insecure,
                       gatekeeper_listen=args.gatekeeper_listen, gatekeeper_url=args.gatekeeper_url,
                       report_dir=Path(args.report_dir), signing_key=args.signing_key,
                       quiet=args.quiet)
    except ProfileError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    results, paths = run_load(load)
    for line in summary_lines(results):
        print(line)
    print("reports: " + ", ".join(str(p) for p in paths.values()))
    return 0 if results.overall() == "PASS" else 1
