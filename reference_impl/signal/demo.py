"""A short two-party conversation on the reference implementation, printed as hex.

``python -m reference_impl.signal.demo`` — a smoke run of X3DH, the Double Ratchet and
sender keys that needs nothing but the kit installed.
"""
from __future__ import annotations

import sys

from . import Party


def main() -> int:
    alice, bob = Party("alice"), Party("bob")
    alice.process_bundle("bob", bob.bundle())
    first = alice.encrypt("bob", b"hello bob")
    print(f"alice -> bob  {first.type:5} {len(first.body):4} B  {first.body[:24].hex()}…")
    print("bob reads:", bob.decrypt("alice", first.type, first.body).decode())
    reply = bob.encrypt("alice", b"hello alice")
    print(f"bob -> alice  {reply.type:5} {len(reply.body):4} B  {reply.body[:24].hex()}…")
    print("alice reads:", alice.decrypt("bob", reply.type, reply.body).decode())
    bob.process_group_distribution("g", "alice", alice.group_distribution("g"))
    group = alice.group_encrypt("g", b"hello group")
    print(f"alice -> g    skmsg {len(group):4} B  {group[:24].hex()}…")
    print("bob reads:", bob.group_decrypt("g", "alice", group).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
