"""``conformance serve-reference``: run the reference provider (server, clients, harness).

When ready it prints one JSON line ``{"target_url": ..., "harness_url": ..., ...}`` on stdout
and serves until SIGINT or SIGTERM, then shuts down cleanly.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from .faults import FAULTS

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of the provider server")
    parser.add_argument("--port", type=int, default=0, help="port of the provider server (0: any)")
    parser.add_argument("--harness-host", default="127.0.0.1", help="address of the harness API")
    parser.add_argument("--harness-port", type=int, default=0, help="port of the harness API")
    parser.add_argument("--tls", action="store_true",
                        help="serve the provider server over TLS with a generated certificate")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME",
                        help="switch a named fault on (repeatable; see --list-faults)")
    parser.add_argument("--list-faults", action="store_true", help="list the faults and exit")
    parser.add_argument("--data-dir", default=None, help="state directory (default: a new temp dir)")
    parser.add_argument("--log-level", default="WARNING", help="log level (JSON lines on stderr)")


def _list_faults() -> int:
    width = max(len(n) for n in FAULTS)
    for f in FAULTS.values():
        print(f"{f.name:<{width}}  {','.join(f.requirements):<16}  {f.description}")
    return 0


async def _main(args: argparse.Namespace) -> int:
    from .process import ReferenceProvider

    provider = ReferenceProvider()
    await provider.start(host=args.host, port=args.port, harness_port=args.harness_port,
                         tls=args.tls, faults=tuple(args.fault), data_dir=args.data_dir,
                         harness_host=args.harness_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"target_url": provider.target_url, "harness_url": provider.harness_url,
                      "ca_certificate": str(provider.ca_certificate) if provider.ca_certificate else None,
                      "data_dir": str(provider.data_dir), "faults": sorted(args.fault)}), flush=True)
    await stop.wait()
    await provider.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_faults:
        return _list_faults()
    unknown = sorted(set(args.fault) - FAULTS.keys())
    if unknown:
        print(f"unknown fault(s): {', '.join(unknown)} (see --list-faults)", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(message)s")
    return asyncio.run(_main(args))
