"""Locust users for ``benchmarks/load_bench.py``: the kit's push and media request shapes with
no pacing, against the trivial loopback server, to find the generator's own ceiling."""
from __future__ import annotations

import hashlib
import json

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

# A realistic bearer token length (an EdDSA JWT of G's claims is ~300 bytes); the trivial server
# does not verify it, the point is the generator's cost per request.
TOKEN = "eyJhbGciOiJFZERTQSJ9." + "x" * 220 + "." + "y" * 86
BODY = json.dumps({"to": "+15550000000"})


class PushBench(FastHttpUser):
    wait_time = constant(0)

    @task
    def push(self) -> None:
        with self.client.post("/push", data=BODY, catch_response=True, name="push",
                              headers={"Authorization": f"Bearer {TOKEN}",
                                       "Content-Type": "application/json"}) as r:
            r.success() if r.status_code == 200 and not r.content else r.failure(str(r.status_code))


class MediaBench(FastHttpUser):
    wait_time = constant(0)

    @task
    def media(self) -> None:
        with self.client.get("/blob", catch_response=True, name="media") as r:
            body = r.content or b""
            hashlib.sha256(body).digest()  # the kit hashes every media body (verify_sample 1.0)
            r.success() if r.status_code == 200 and body else r.failure(str(r.status_code))
