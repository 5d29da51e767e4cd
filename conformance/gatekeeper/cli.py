"""``conformance serve-gatekeeper``: run the simulator alone, e.g. for a remote provider.

Prints one JSON line (the URLs and the GatekeeperConfig) once it accepts connections and stops
cleanly on SIGINT / SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1",
                        help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--public-url", default=None,
                        help="base URL providers use to reach this gatekeeper, if not the bound one")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS/WSS with a freshly generated CA (printed as ca_certificates)")
    parser.add_argument("--wire", choices=("open", "wa"), default="open",
                        help="chat-channel binding of the chat endpoint (spec §5.3; default: open)")


async def _serve(args: argparse.Namespace) -> int:
    from .core import Gatekeeper
    from .settings import Settings

    gk = Gatekeeper(Settings(wire=args.wire))
    await gk.start(listen=args.listen, port=args.port, tls=args.tls, public_url=args.public_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    print(json.dumps({"url": gk.url, "public_url": gk.public_url,
                      "gatekeeper": gk.config_for_provider()}), flush=True)
    try:
        await stop.wait()
    finally:
        await gk.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_serve(args))
    except OSError as exc:
        print(f"serve-gatekeeper: {exc}", file=sys.stderr)
        return 2
