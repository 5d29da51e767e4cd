"""The three Signal workloads, written once per implementation with the same shape.

Run as a script by any interpreter: ``python _signal_workloads.py IMPL SECONDS`` prints one
JSON line of operations per second. ``IMPL`` is ``reference`` (this kit) or ``axolotl``
(python-axolotl 0.2.3, run from its own virtual environment). Both get the same inputs:
100-byte and 10 KiB plaintexts, fresh sessions per setup, established sessions for round
trips (one message each way, so each receiver takes a DH ratchet step), one sender per group.
"""
from __future__ import annotations

import json
import sys
import time

SIZES = {"100B": 100, "10KiB": 10 * 1024}


def _rate(fn, seconds: float) -> float:
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def reference(seconds: float) -> dict:
    from reference_impl.signal import Party

    out = {}

    def setup():
        a, b = Party("alice"), Party("bob")
        a.process_bundle("bob", b.bundle())
        m = a.encrypt("bob", b"x" * 100)
        b.decrypt("alice", m.type, m.body)

    out["setup"] = _rate(setup, seconds)
    a, b = Party("alice"), Party("bob")
    a.process_bundle("bob", b.bundle())
    m = a.encrypt("bob", b"x")
    b.decrypt("alice", m.type, m.body)
    for label, size in SIZES.items():
        pt = b"x" * size

        def round_trip():
            r = b.encrypt("alice", pt)
            a.decrypt("bob", r.type, r.body)
            m = a.encrypt("bob", pt)
            b.decrypt("alice", m.type, m.body)

        out[f"round_trip_{label}"] = _rate(round_trip, seconds)
    b.process_group_distribution("g", "alice", a.group_distribution("g"))
    for label, size in SIZES.items():
        pt = b"x" * size
        out[f"group_{label}"] = _rate(lambda: b.group_decrypt("g", "alice", a.group_encrypt("g", pt)), seconds)
    return out


def axolotl(seconds: float) -> dict:
    from axolotl.groups.groupcipher import GroupCipher
    from axolotl.groups.groupsessionbuilder import GroupSessionBuilder
    from axolotl.groups.senderkeyname import SenderKeyName
    from axolotl.axolotladdress import AxolotlAddress
    from axolotl.protocol.prekeywhispermessage import PreKeyWhisperMessage
    from axolotl.protocol.senderkeydistributionmessage import SenderKeyDistributionMessage
    from axolotl.protocol.whispermessage import WhisperMessage
    from axolotl.sessionbuilder import SessionBuilder
    from axolotl.sessioncipher import SessionCipher
    from axolotl.state.prekeybundle import PreKeyBundle
    from axolotl.tests.inmemoryaxolotlstore import InMemoryAxolotlStore
    from axolotl.tests.groups.inmemorysenderkeystore import InMemorySenderKeyStore
    from axolotl.util.keyhelper import KeyHelper

    def party():
        return InMemoryAxolotlStore()  # generates its own identity, as Party does

    def bundle(store, pre_key_id):
        pk = KeyHelper.generatePreKeys(pre_key_id, 1)[0]
        store.storePreKey(pk.getId(), pk)
        spk = KeyHelper.generateSignedPreKey(store.getIdentityKeyPair(), 1)
        store.storeSignedPreKey(1, spk)
        return PreKeyBundle(store.getLocalRegistrationId(), 1, pk.getId(), pk.getKeyPair().getPublicKey(),
                            1, spk.getKeyPair().getPublicKey(), spk.getSignature(),
                            store.getIdentityKeyPair().getPublicKey())

    out = {}

    def new_pair():
        a, b = party(), party()
        SessionBuilder(a, a, a, a, "bob", 1).processPreKeyBundle(bundle(b, 1))
        ca, cb = SessionCipher(a, a, a, a, "bob", 1), SessionCipher(b, b, b, b, "alice", 1)
        return ca, cb

    def setup():
        ca, cb = new_pair()
        m = ca.encrypt(b"x" * 100)
        cb.decryptPkmsg(PreKeyWhisperMessage(serialized=m.serialize()))

    out["setup"] = _rate(setup, seconds)
    ca, cb = new_pair()
    cb.decryptPkmsg(PreKeyWhisperMessage(serialized=ca.encrypt(b"x").serialize()))
    for label, size in SIZES.items():
        pt = b"x" * size

        def round_trip():
            r = cb.encrypt(pt)
            ca.decryptMsg(WhisperMessage(serialized=r.serialize()))
            m = ca.encrypt(pt)
            cb.decryptMsg(WhisperMessage(serialized=m.serialize()))

        out[f"round_trip_{label}"] = _rate(round_trip, seconds)
    sa, sb = InMemorySenderKeyStore(), InMemorySenderKeyStore()
    name = SenderKeyName("g", AxolotlAddress("alice", 1))
    skdm = GroupSessionBuilder(sa).create(name)
    # Over the wire, as the receiver would get it (the in-memory object holds bytearrays).
    GroupSessionBuilder(sb).process(name, SenderKeyDistributionMessage(serialized=bytes(skdm.serialize())))
    ga, gb = GroupCipher(sa, name), GroupCipher(sb, name)
    for label, size in SIZES.items():
        pt = b"x" * size
        out[f"group_{label}"] = _rate(lambda: gb.decrypt(ga.encrypt(pt)), seconds)
    return out


if __name__ == "__main__":
    impl, secs = sys.argv[1], float(sys.argv[2])
    print(json.dumps({"reference": reference, "axolotl": axolotl}[impl](secs)))
