"""The load generator's ceiling beside h2load, and the reference provider's sustained capacity.

    python benchmarks/load_bench.py [--seconds 10] [--connections 16] [--skip-provider]

1. **Generator ceiling**: a trivial loopback HTTP/1.1 server (its own process) answers
   ``POST /push`` with 200 and an empty body and ``GET /blob`` with a 1 MiB body. Against it,
   in the same run: one Locust worker process (the kit's FastHttpUser push and media shapes,
   no pacing, every media body hashed) and ``h2load --h1`` (Debian ``nghttp2-client``, C, the
   named baseline) with the same connection count. Printed: requests/s and MB/s of each and
   the kit/h2load ratio.
2. **Reference provider capacity**: ``conformance load`` against the embedded reference
   provider (TLS) with unpaced users; printed: sustained push/s, media MB/s and conversation
   messages/s with p50/p99 (message latency: the send, not end-to-end delivery).

On a shared 2-core machine the generator, the server and h2load compete for the same cores:
read the ratio, not the absolute figures.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOB = 1024 * 1024


# -- the trivial server: asyncio streams, keep-alive, no framework (the point is to cost as
#    little as possible per request, so the generators are what is measured) ------------------
async def _serve(port_file: str) -> None:
    blob_head = (f"HTTP/1.1 200 OK\r\nContent-Length: {BLOB}\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode()
    blob = b"\0" * BLOB
    push = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if m:
                    await reader.readexactly(int(m.group(1)))
                if head.startswith(b"GET /blob"):
                    writer.write(blob_head)
                    writer.write(blob)
                else:
                    writer.write(push)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


def _start_server(tmp: Path) -> tuple[subprocess.Popen, int]:
    port_file = tmp / "port"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, int(port_file.read_text())
        time.sleep(0.05)  # waiting for a child process to bind: no event to wait on
    proc.kill()
    raise SystemExit("trivial server did not start")


def _locust(user: str, port: int, seconds: int, users: int, tmp: Path) -> dict:
    prefix = tmp / f"locust-{user}"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "benchmarks" / "_load_bench_locustfile.py"),
                    user, "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
                    "--host", f"http://127.0.0.1:{port}", "--csv", str(prefix), "--only-summary",
                    "--exit-code-on-error", "0", "--stop-timeout", "2"],
                   capture_output=True, text=True, timeout=seconds + 60, check=True)
    with open(f"{prefix}_stats.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    rps = float(row["Requests/s"])
    return {"rps": rps, "mbps": rps * float(row["Average Content Size"]) / 1e6,
            "p99_ms": float(row["99%"]), "failures": int(row["Failure Count"])}


def _h2load(path: str, port: int, seconds: int, conns: int, tmp: Path) -> dict | None:
    if not shutil.which("h2load"):
        return None
    cmd = ["h2load", "--h1", "-D", str(seconds), "-c", str(conns), "-t", "1"]
    if path == "/push":
        body = tmp / "push.json"
        body.write_text(json.dumps({"to": "+15550000000"}))
        cmd += ["-d", str(body), "-H", "content-type: application/json",
                "-H", "authorization: Bearer " + "x" * 330]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    m = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s, ([\d.]+)(\w+)/s", out)
    if not m:
        return {"rps": 0.0, "mbps": 0.0, "error": out[-300:]}
    scale = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}.get(m.group(3), 1.0)
    ok = re.search(r"requests: .*?(\d+) succeeded", out)
    return {"rps": float(m.group(1)), "mbps": float(m.group(2)) * scale,
            "succeeded": int(ok.group(1)) if ok else None}


def _provider(seconds: int, tmp: Path) -> dict:
    profile = tmp / "bench-load.yaml"
    profile.write_text(f"""name: bench-load
profile_version: "1.0.0"
extends: load
include: {{profiles: [load]}}
parameters:
  load:
    duration_s: {seconds}
    ramp_s: 1
    push: {{users: 16, rate_per_user: 1000, enlisted_users: 4, unknown_share: 0.2, wake_probes: 0}}
    media: {{users: 4, rate_per_user: 1000, blob_sizes: [1048576], range_share: 0, http2_share: 0.5}}
    jwks: {{users: 1, interval_s: 1}}
    conversation: {{users: 4, rate_per_user: 1000}}
""")
    out = tmp / "provider-report"
    subprocess.run([sys.executable, "-m", "conformance.cli", "load", "--quiet", "--profile", str(profile),
                    "--report-dir", str(out)], capture_output=True, text=True, timeout=seconds + 300)
    import io
    import zipfile

    z = zipfile.ZipFile(io.BytesIO((out / "evidence.zip").read_bytes()))
    rows = list(csv.DictReader(io.StringIO(z.read("load/locust_stats.csv").decode())))

    def agg(prefix: str) -> dict:
        sel = [r for r in rows if r["Name"].startswith(prefix) and "fetch-once" not in r["Name"]]
        rps = sum(float(r["Requests/s"]) for r in sel)
        timed = [r for r in sel if not r["Name"].endswith("(ramp)")]  # as the judge: steady load
        return {"rps": rps, "mbps": sum(float(r["Requests/s"]) * float(r["Average Content Size"]) for r in sel) / 1e6,
                "p50_ms": max((float(r["50%"]) for r in timed), default=0.0),
                "p99_ms": max((float(r["99%"]) for r in timed), default=0.0),
                "failures": sum(int(r["Failure Count"]) for r in sel)}
    return {"push": agg("push "), "media": agg("media "), "conversation": agg("conversation ")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--skip-provider", action="store_true")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return 0
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        server, port = _start_server(tmp)
        try:
            print(f"generator ceiling vs h2load (trivial loopback server, {args.connections} "
                  f"connections, {args.seconds} s each, 1 generator process)")
            if not shutil.which("h2load"):
                print("  h2load NOT FOUND: no baseline, no ratio (Debian: apt-get install "
                      "nghttp2-client); the kit's own figures follow")
            print(f"{'':18}{'kit (Locust)':>16}{'h2load --h1':>16}{'kit / h2load':>14}")
            for label, user, path, unit in (("push req/s", "PushBench", "/push", "rps"),
                                            ("media MB/s", "MediaBench", "/blob", "mbps")):
                kit = _locust(user, port, args.seconds, args.connections, tmp)
                ref = _h2load(path, port, args.seconds, args.connections, tmp)
                ratio = f"{kit[unit] / ref[unit]:.2f}" if ref and ref[unit] else "n/a"
                theirs = "absent" if ref is None else f"{ref[unit]:.1f}"
                print(f"{label:18}{kit[unit]:>16.1f}{theirs:>16}{ratio:>14}")
                if ref is not None and ref.get("error"):
                    print(f"  h2load gave no figures: {ref['error'].strip()[-200:]}")
        finally:
            server.terminate()
            server.wait(10)
        if not args.skip_provider:
            cap = _provider(max(args.seconds, 15), tmp)
            print(f"\nreference provider (embedded, TLS, unpaced users, {max(args.seconds, 15)} s)")
            p, m = cap["push"], cap["media"]
            print(f"  push   {p['rps']:8.1f} req/s  p50 {p['p50_ms']:.0f} ms  p99 {p['p99_ms']:.0f} ms"
                  f"  failures {p['failures']}")
            print(f"  media  {m['mbps']:8.1f} MB/s   ({m['rps']:.1f} req/s of 1 MiB, HTTP/1.1 + HTTP/2)"
                  f"  p99 {m['p99_ms']:.0f} ms  failures {m['failures']}")
            c = cap["conversation"]
            print(f"  msgs   {c['rps']:8.1f} msg/s  p50 {c['p50_ms']:.0f} ms  p99 {c['p99_ms']:.0f} ms"
                  f"  failures {c['failures']}  (G users <-> provider users, both ways)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
