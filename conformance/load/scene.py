"""The scene of a load run, in its own process: G (the gatekeeper simulator), the provider (the
embedded reference provider, in a child process of its own, unless ``--target``), the users and
blobs the load needs, and a small control API for the Locust users.

Why a process of its own: Locust monkey-patches the interpreter with gevent, and the simulator
and the reference provider are asyncio servers (hypercorn). Measured here: both in one
interpreter stalls the asyncio loop thread behind gevent's patched ``threading`` and ``select``;
apart, each side runs at its own pace. The embedded provider runs apart from G too, so the
memory curve (LOAD-007) is the provider's alone: G keeps every conversation message in its
evidence log and inboxes (about 7 KiB each, traced), which a soak counted as the provider's.

Control API (plain HTTP on loopback by default, stdlib ``http.server`` — a handful of JSON
routes on a private port, which no web framework would make clearer):

- ``GET /plan``: target, CA, media blobs with their ``fileEncSha256``, push users, settings;
- ``GET /token?sub=ID``: a G-signed push token for ``sub``, signed once per token lifetime
  (renewed when 80 % of it has passed) and shared by every Locust process, as G would;
- ``GET /probe``: the next offline, wake-on-push user to push once (each handed out once);
- ``POST /mark?phase=start|end``: the load starts / ended (memory baseline, wake window);
- ``GET /observations``: wake-ups of the probed users (waited for, bounded), token signatures,
  the memory curve of the embedded provider's process;
- ``POST /stop``.

When ready it prints one JSON line ``{"scene_url": ...}`` on stdout.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conformance.bounded_http import BoundedHttp
from conformance.embedded import ProviderProcess, start_gatekeeper, stop_servers
from conformance.gatekeeper import Gatekeeper
from conformance.gatekeeper.media import storage_reference_of
from conformance.harness_client import HarnessClient
from conformance.loop import LoopThread

__all__ = ["Scene", "main"]

log = logging.getLogger("conformance.load.scene")

PROVIDER_ID = "provider-under-load"
#: Memory samples per second while the load runs (the curve in the report).
SAMPLE_HZ = 10


def _rss(pid: int) -> int:
    try:
        import psutil  # a Locust dependency, so always installed with the load extra
        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # noqa: BLE001 - no memory figure is reported as such, never faked
        return 0


class Scene:
    def __init__(self, settings: dict[str, Any], *, target: str | None, harness: str | None,
                 faults: tuple[str, ...] = (), insecure: bool = False,
                 gatekeeper_listen: str = "127.0.0.1:0", gatekeeper_url: str | None = None) -> None:
        self.settings = settings
        self.loop = LoopThread("load-scene")
        self.gk = Gatekeeper()
        #: The embedded reference provider, in a process of its own (its memory is LOAD-007's).
        self.provider: ProviderProcess | None = None
        self.faults = faults
        self._target, self._harness, self._insecure = target, harness, insecure
        self._gk_listen, self._gk_url = gatekeeper_listen, gatekeeper_url
        self.plan: dict[str, Any] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._tok_lock = threading.Lock()
        self.signatures = 0
        #: Locust processes that read the plan (by pid): the master and every worker.
        self.locust_processes: set[str] = set()
        self._probes: list[dict[str, str]] = []
        self._probed: list[dict[str, Any]] = []
        self._probe_lock = threading.Lock()
        self._mark = 0
        self._conv_g: list[Any] = []
        self._conv_p: list[dict[str, str]] = []
        self._conv_next = 0
        self._conv_seq: dict[tuple[str, int], int] = {}
        self._conv_sent: list[dict[str, Any]] = []
        self._harness_client: Any = None
        self.phases: dict[str, float] = {}
        self.memory: list[tuple[float, int]] = []
        self._sampling = threading.Event()
        self._t0 = time.monotonic()
        self.stopped = threading.Event()

    # -- set-up -----------------------------------------------------------------------------
    def start(self) -> None:
        start_gatekeeper(self.loop, self.gk, self._gk_listen, self._gk_url)
        target, harness, verify = self._target, self._harness, not self._insecure
        ca_pem = ""
        if not target:
            self.provider = ProviderProcess(self.faults)
            target, harness = self.provider.target_url, self.provider.harness_url
            ca_pem = Path(self.provider.ca_certificate).read_text()
            verify = self.provider.ca_certificate
        assert target is not None
        target = target.rstrip("/")
        self.http = BoundedHttp(verify=verify, timeout=30, deadline=60, max_body=1 << 20)
        provider = self.gk.register_provider(
            PROVIDER_ID, jwks_url=target + "/.well-known/oauth/openid/jwks",
            push_url=target + "/push", media_base=target + "/media", issuer=target,
            audience=target, ca_certificates=ca_pem or None)
        if self._insecure:
            provider.verify = False
        self.audience = provider.audience
        self.target = target
        self.harness_url = harness or ""
        self.plan = {"target": target, "ca_pem": ca_pem, "insecure": self._insecure,
                     "jwks_url": provider.jwks_url, "push_url": provider.push_url,
                     "media_base": provider.media_base, "settings": self.settings,
                     "harness": bool(harness), "embedded": self.provider is not None,
                     "faults": list(self.faults), "push": {}, "media": {"blobs": []}}
        if harness:
            h = HarnessClient(harness, self.http, None, timeout=60, deadline=120)
            h.reset(self.gk.config_for_provider())
            self._setup_users(h)
            self._setup_blobs(h)
        else:
            self.plan["push"] = {"enlisted": [], "unknown": self._unknown(8)}

    def _unknown(self, n: int) -> list[str]:
        return [f"nobody-{os.urandom(4).hex()}@unknown.test" for _ in range(n)]

    def _user(self, h: HarnessClient, *, online: bool) -> dict[str, str]:
        created = h.create_user(f"+1555{os.urandom(4).hex()}")
        login = h.enlist(created["user"])["login"]
        h.connect(created["user"])
        if not online:
            mark = self.gk.log.mark()
            h.disconnect(created["user"], wake_on_push=True)
            self.loop.run(self.gk.log.wait_for(kind="disconnected", login=login, since=mark,
                                               timeout=30), 35)
        return {"handle": created["user"], "sub": created["user_visible_id"], "login": login}

    def _setup_users(self, h: HarnessClient) -> None:
        p = self.settings["push"]
        enlisted = [self._user(h, online=True) for _ in range(int(p["enlisted_users"]))]
        self._probes = [self._user(h, online=False) for _ in range(int(p["wake_probes"]))]
        self.plan["push"] = {"enlisted": [u["sub"] for u in enlisted],
                             "unknown": self._unknown(8), "probes": len(self._probes)}
        c = self.settings.get("conversation", {})
        if int(c.get("users", 0)) and enlisted:
            self._conv_p = enlisted  # online provider users, partners of the G users
            self._conv_g = [self.loop.run(self.gk.create_user(f"load-conv-{i}"), 30)
                            for i in range(int(c["users"]))]
            self.plan["conversation"] = {"g_users": len(self._conv_g)}
            self._harness_client = h

    def _setup_blobs(self, h: HarnessClient) -> None:
        """Blobs the provider's own client encrypted and uploaded (through the harness), as
        G learns them: from the media message (direct path, ``fileEncSha256``, length)."""
        sender = self._user(h, online=True)
        g = self.loop.run(self.gk.create_user("load-media-peer"), 30)
        for size in self.settings["media"]["blob_sizes"]:
            mark = self.gk.log.mark()
            mid = h.send_media(sender["handle"], g.id, os.urandom(int(size)), "document",
                               "application/octet-stream", file_name="load.bin")
            self.loop.run(self.gk.log.wait_for(kind="user_message", user=g.id, id=mid,
                                               since=mark, timeout=60), 65)

            async def item(mid: str = mid) -> Any:
                return next(i for i in reversed(g.inbox) if i.message_id == mid)
            media = self.loop.run(item(), 10).content.document
            ref = storage_reference_of(media.direct_path)
            if ref is None:
                raise RuntimeError(f"the provider's media message has no usable direct_path "
                                   f"({media.direct_path[:80]!r})")
            self.plan["media"]["blobs"].append({
                "ref": ref, "file_length": int(media.file_length),
                "file_enc_sha256": bytes(media.file_enc_sha256).hex()})

    # -- control API ------------------------------------------------------------------------
    def token(self, sub: str) -> dict[str, Any]:
        life = self.gk.settings.push_token_lifetime_s
        with self._tok_lock:
            cached = self._tokens.get(sub)
            now = time.time()
            if cached is None or now > cached[1] - 0.2 * life:
                tok = self.gk.keys.push_token(issuer=self.gk.settings.issuer, audience=self.audience,
                                              now=self.gk.settings.clock(),
                                              lifetime_s=life)
                cached = (tok, now + life)
                self._tokens[sub] = cached
                self.signatures += 1
        return {"token": cached[0], "expires_in": int(cached[1] - time.time())}

    def probe(self) -> dict[str, Any]:
        with self._probe_lock:
            if not self._probes:
                return {"sub": None}
            u = self._probes.pop(0)

        async def note() -> dict[str, Any]:
            return self.gk.log.append("load_probe", u["login"])
        ev = self.loop.run(note(), 10)
        with self._probe_lock:
            self._probed.append({**u, "t": ev["t"]})
        return {"sub": u["sub"]}

    # -- conversation: G users <-> provider users through the chat channel -------------------
    def conv_slot(self) -> dict[str, Any]:
        with self._probe_lock:
            i = self._conv_next
            self._conv_next += 1
        return {"g": i if i < len(self._conv_g) else None}

    def conv_send(self, g_index: int, direction: str) -> dict[str, Any]:
        """One message of G user ``g_index``'s conversation, in ``direction`` (g2p / p2g)."""
        g = self._conv_g[g_index]
        p = self._conv_p[g_index % len(self._conv_p)]
        key = (direction, g_index)
        with self._probe_lock:
            seq = self._conv_seq.get(key, 0)
            self._conv_seq[key] = seq + 1
        text = f"load {direction} g{g_index} #{seq}"
        if direction == "g2p":
            async def send() -> str:
                return g.send_text(p["login"], text)
            mid = self.loop.run(send(), 30)
        else:
            mid = self._harness_client.send_text(p["handle"], g.id, text)
        with self._probe_lock:
            self._conv_sent.append({"dir": direction, "g": g_index, "seq": seq, "id": mid,
                                    "text": text})
        return {"id": mid, "seq": seq}

    def conversation(self, wait_s: float) -> dict[str, Any]:
        """Exactly once, per-sender order, delivery receipts: waited for (event-driven, bounded)
        on G's log, then read from both inboxes."""
        sent = list(self._conv_sent)
        if not sent:
            return {"sent": 0}
        g2p = {m["id"] for m in sent if m["dir"] == "g2p"}
        p2g = [m for m in sent if m["dir"] == "p2g"]

        def receipted() -> set[str]:
            ids: set[str] = set()
            for e in self.gk.log.events(kind="receipt"):
                d = e["detail"]
                if d.get("direction") == "from_provider" and "DELIVER" in str(d.get("receipt")).upper():
                    ids.update(d.get("message_ids", []))
            return ids

        def g_texts(i: int) -> list[str]:
            return [it.content.conversation for it in self._conv_g[i].inbox
                    if it.content.conversation.startswith(f"load p2g g{i} #")]

        def done(_: Any = None) -> bool:
            return g2p <= receipted() and all(
                len(g_texts(m["g"])) >= sum(1 for x in p2g if x["g"] == m["g"]) for m in p2g)

        async def wait() -> None:
            if not done():
                await self.gk.log.wait_for(lambda e: done(), timeout=wait_s, since=0)
        try:
            self.loop.run(wait(), wait_s + 5)
        except TimeoutError:
            pass

        async def snapshot() -> tuple[set[str], dict[int, list[str]]]:
            return receipted(), {i: g_texts(i) for i in range(len(self._conv_g))}
        got_receipts, g_inboxes = self.loop.run(snapshot(), 10)
        problems: list[str] = []
        counts = {"sent_g2p": len(g2p), "sent_p2g": len(p2g), "lost": 0, "duplicates": 0,
                  "out_of_order": 0, "missing_receipts": len(g2p - got_receipts)}
        for i, g in enumerate(self._conv_g):
            p = self._conv_p[i % len(self._conv_p)]
            mine = [m for m in sent if m["g"] == i]
            # G -> P: the provider user's inbox, this G user's messages
            texts = [it.get("text") for it in self._harness_client.inbox(p["handle"], g.id)
                     if str(it.get("text", "")).startswith(f"load g2p g{i} #")]
            for direction, seen in (("g2p", texts), ("p2g", g_inboxes[i])):
                want = [m["text"] for m in mine if m["dir"] == direction]
                lost = [t for t in want if t not in seen]
                dups = [t for t in set(seen) if seen.count(t) > 1]
                order = [t for t in seen if t in want]
                ooo = sum(1 for a, b in zip(order, order[1:])
                          if int(a.rsplit("#", 1)[1]) > int(b.rsplit("#", 1)[1]))
                counts["lost"] += len(lost)
                counts["duplicates"] += len(dups)
                counts["out_of_order"] += ooo
                if lost or dups or ooo:
                    problems.append(f"{direction} g{i}: {len(lost)} lost, {len(dups)} duplicated, "
                                    f"{ooo} out of order of {len(want)}")
        return {"sent": len(sent), **counts, "problems": problems[:10]}

    def mark(self, phase: str) -> None:
        self.phases[phase] = time.monotonic() - self._t0
        if phase == "start":
            self._mark = self.gk.log.mark()
            self.memory.clear()
            self._sampling.set()
            threading.Thread(target=self._sample, daemon=True, name="load-memory").start()
        elif phase == "end":
            self._sampling.clear()

    def _sample(self) -> None:
        if self.provider is None:
            return  # an external --target: its memory is not this machine's to sample
        while self._sampling.is_set():
            self.memory.append((round(time.monotonic() - self._t0, 2), _rss(self.provider.pid)))
            time.sleep(1 / SAMPLE_HZ)  # a sampling period, not a wait for an event

    def observations(self, wait_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        wakes = []
        for u in list(self._probed):
            left = max(0.1, deadline - time.monotonic())
            try:
                ev = self.loop.run(self.gk.log.wait_for(kind="connected", login=u["login"],
                                                        since=self._mark, timeout=left), left + 5)
                wakes.append({"login": u["login"], "woken": True,
                              "after_s": round(max(0.0, ev["t"] - u["t"]) / 1000, 3)})
            except TimeoutError:
                wakes.append({"login": u["login"], "woken": False, "after_s": None})
        conversation = self.conversation(wait_s)
        baseline = self.memory[0][1] if self.memory else 0
        return {"wakes": wakes, "probes_left": len(self._probes), "signatures": self.signatures,
                "harness": bool(self.harness_url), "blobs": len(self.plan["media"]["blobs"]),
                "locust_processes": len(self.locust_processes), "conversation": conversation,
                "token_subjects": len(self._tokens),
                "token_lifetime_s": self.gk.settings.push_token_lifetime_s,
                "phases": self.phases, "memory_measured": self.provider is not None and baseline > 0,
                "memory": [[t, rss] for t, rss in self.memory]}

    def close(self) -> None:
        try:
            stop_servers(self.loop, self.gk, None, http=getattr(self, "http", None), what="scene")
        finally:
            if self.provider is not None:
                self.provider.close()


def _handler(scene: Scene) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: Locust prints progress
            pass

        def _send(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> None:
            url = urlsplit(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, 1 << 16))
            try:
                if url.path == "/plan":
                    scene.locust_processes.add(q.get("pid", "?"))
                    self._send(200, scene.plan)
                elif url.path == "/token" and q.get("sub"):
                    self._send(200, scene.token(q["sub"]))
                elif url.path == "/conv-slot":
                    self._send(200, scene.conv_slot())
                elif url.path == "/conv-send" and q.get("g", "").isdigit() \
                        and q.get("dir") in ("g2p", "p2g") and int(q["g"]) < len(scene._conv_g):
                    self._send(200, scene.conv_send(int(q["g"]), q["dir"]))
                elif url.path == "/probe":
                    self._send(200, scene.probe())
                elif url.path == "/mark" and q.get("phase") in ("start", "end"):
                    scene.mark(q["phase"])
                    self._send(200, {"ok": True})
                elif url.path == "/observations":
                    self._send(200, scene.observations(float(q.get("wait_s", "10"))))
                elif url.path == "/stop":
                    self._send(200, {"ok": True})
                    scene.stopped.set()
                else:
                    self._send(404, {"error": f"no route {url.path}"})
            except Exception as exc:  # noqa: BLE001 - answer, never drop the connection
                log.exception("scene control error")
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

        do_GET = do_POST = _route

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.load.scene")
    ap.add_argument("--settings", required=True, help="JSON file with the load settings")
    ap.add_argument("--target")
    ap.add_argument("--harness")
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--insecure", action="store_true")
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port of the control API")
    ap.add_argument("--gatekeeper-listen", default="127.0.0.1:0")
    ap.add_argument("--gatekeeper-url")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    settings = json.loads(Path(args.settings).read_text("utf-8"))
    scene = Scene(settings, target=args.target, harness=args.harness, faults=tuple(args.fault),
                  insecure=args.insecure, gatekeeper_listen=args.gatekeeper_listen,
                  gatekeeper_url=args.gatekeeper_url)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: scene.stopped.set())
    try:
        scene.start()
    except Exception as exc:  # noqa: BLE001 - one clear line for the runner, not a traceback
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        scene.close()
        return 2
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port or 0)), _handler(scene))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="load-control").start()
    h, p = server.server_address[:2]
    print(json.dumps({"scene_url": f"http://{h}:{p}", "target": scene.target,
                      "harness": scene.harness_url}), flush=True)
    scene.stopped.wait()
    server.shutdown()
    scene.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
