"""WA binary-XML codec throughput: ``reference_impl.wa`` against Baileys 6.17.16, one run.

    python benchmarks/wa_codec_bench.py [--rounds R] [--repeats N]

Both encode and decode the same node trees (every stanza kind of the channel, from
``vectors/areas/wa_binary_xml.py``, without the interop-JID one that Baileys cannot encode)
``R`` times per repeat, alternately, N repeats; the median of each figure is printed with the
ratio ours / Baileys. Baileys is the named baseline: its ``lib/WABinary`` run by node through
the oracle adapter's ``bench`` op (``tests/interop/peers/baileys/wabinary.js``), provisioned into
``.interop-peers/baileys`` on first use. MB/s counts encoded node bytes (no flag byte).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "interop"))

import baileys_client  # noqa: E402

from reference_impl.wa.binary_xml import decode, encode  # noqa: E402
from vectors.areas.wa_binary_xml import stanzas  # noqa: E402


def _to_baileys_json(n) -> dict:  # Baileys' node form: attrs as strings, JIDs in text form
    c = n.content
    if c is None:
        content = None
    elif isinstance(c, list):
        content = [_to_baileys_json(k) for k in c]
    elif isinstance(c, bytes):
        content = {"bytes": c.hex()}
    else:
        content = {"str": str(c)}
    return {"tag": n.tag, "attrs": {k: str(v) for k, v in n.attrs.items()}, "content": content}


def ours(nodes: list, rounds: int) -> dict:
    encoded = [encode(n) for n in nodes]
    t0 = time.perf_counter()
    for _ in range(rounds):
        for n in nodes:
            encode(n)
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(rounds):
        for b in encoded:
            decode(b)
    dec = time.perf_counter() - t0
    return {"encode_s": enc, "decode_s": dec, "bytes": sum(map(len, encoded))}


def figures(r: dict, n_nodes: int, rounds: int) -> dict:
    total = n_nodes * rounds
    mb = r["bytes"] * rounds / 1e6
    return {"encode nodes/s": total / r["encode_s"], "decode nodes/s": total / r["decode_s"],
            "encode MB/s": mb / r["encode_s"], "decode MB/s": mb / r["decode_s"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    nodes = [n for comment, n in stanzas() if "interop" not in comment]
    peer = baileys_client.baileys_peer(baileys_client.ensure_baileys(), timeout=600)
    try:
        assert peer.ops() and peer.impl
        js = [_to_baileys_json(n) for n in nodes]
        theirs_bytes = None
        runs: dict[str, list[dict]] = {"ours": [], "baileys": []}
        for _ in range(args.repeats):
            runs["ours"].append(figures(ours(nodes, args.rounds), len(nodes), args.rounds))
            r = peer.call("bench", nodes=js, rounds=args.rounds, check=True)
            theirs_bytes = r["bytes"]
            runs["baileys"].append(figures(r, len(nodes), args.rounds))
    finally:
        peer.close()
    ours_bytes = sum(len(encode(n)) for n in nodes)
    print(f"WA binary XML codec, {len(nodes)} stanza trees ({ours_bytes} bytes encoded; Baileys "
          f"{theirs_bytes}), {args.rounds} rounds x {args.repeats} repeats, median")
    print(f"baseline: {peer.impl} lib/WABinary on node {baileys_client.shutil.which('node')}")
    print(f"{'figure':<16} {'ours':>12} {'baileys':>12} {'ours/baileys':>13}")
    for key in runs["ours"][0]:
        a = statistics.median(r[key] for r in runs["ours"])
        b = statistics.median(r[key] for r in runs["baileys"])
        print(f"{key:<16} {a:>12.1f} {b:>12.1f} {a / b:>13.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
