"""``python -m tests.naive_provider [--host H] [--port P] [--harness-port P]``: start the naive
provider and print one JSON line with its target and harness URLs (and CA path); Ctrl-C stops."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal

from .provider import NaiveProvider


async def main(host: str, port: int, harness_port: int) -> None:
    p = await NaiveProvider().start(host=host, port=port, harness_port=harness_port)
    print(json.dumps({"target": p.target_url, "harness": p.harness_url,
                      "ca_certificate": str(p.ca_certificate)}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await p.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m tests.naive_provider")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--harness-port", type=int, default=0)
    a = ap.parse_args()
    asyncio.run(main(a.host, a.port, a.harness_port))
