"""Message-plaintext padding: N in 1..15 bytes of value N (not PKCS#7)."""
from __future__ import annotations

from typing import Any

from reference_impl.signal.padding import pad_with

from .._check import Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h

FILE = "padding_test.json"
TITLE = "MessagePadding"

NOTES = {
    "Ktv": Note("BASIC", "N bytes of value N, N in 1..15, appended to the serialized message.",
                "A failure means padded messages from WhatsApp-style senders are rejected or corrupted."),
    "ZeroPadding": Note("EDGE_CASE", "The last byte is 0: no padding length.",
                        "Accepting it means unpadded input is silently taken."),
    "PadTooLong": Note("EDGE_CASE", "The last byte is 16 or more (PKCS#7 allows 16; this scheme does not), "
                       "or longer than the data.", "Accepting it strips message bytes."),
    "InconsistentPadding": Note("MODIFIED_PARAMETER", "The last byte says N but the N bytes are not all N.",
                                "Accepting it strips message bytes (a length oracle)."),
    "Empty": Note("EDGE_CASE", "Empty input: no padding byte present.", "A crash here is a denial of service."),
}
TEST_PROPERTIES: dict[str, Any] = {"plaintext": {"$ref": "#/$defs/hex"}, "padded": {"$ref": "#/$defs/hex"},
                                   "n": {"type": "integer", "minimum": 1, "maximum": 15}}
GROUP_PROPERTIES: dict[str, Any] = {}
REQUIRED = {"Unpad": ["padded"]}


def build() -> VectorFile:
    vf = VectorFile(TITLE, "padding_test_schema.json",
                    ["Plaintext padding of the interop profile (meta-interop-facts §8.5 item 19): the sender "
                     "appends N bytes each equal to N, N in 1..15; the receiver removes it strictly."],
                    dict(NOTES))
    t = vf.group("Unpad", op="padding_unpad")
    msg = bytes.fromhex("0a0568656c6c6f")  # protobuf {1: "hello"}
    for n in range(1, 16):
        vf.add(t, f"N = {n}", "valid", ["Ktv"], plaintext=h(msg), padded=h(pad_with(msg, n)), n=n)
    vf.add(t, "N = 15, message of 0 bytes", "valid", ["Ktv"], plaintext="", padded=h(pad_with(b"", 15)), n=15)
    vf.add(t, "message ending in 0x02 with N = 1", "valid", ["Ktv"], plaintext=h(msg + b"\x02"),
           padded=h(pad_with(msg + b"\x02", 1)), n=1)
    vf.add(t, "last byte 0", "invalid", ["ZeroPadding"], padded=h(msg + b"\x00"))
    vf.add(t, "single byte 0", "invalid", ["ZeroPadding"], padded="00")
    vf.add(t, "N = 16, all bytes 16 (valid PKCS#7, not valid here)", "invalid", ["PadTooLong"],
           padded=h(msg + b"\x10" * 16))
    vf.add(t, "last byte 0xff", "invalid", ["PadTooLong"], padded=h(msg + b"\xff"))
    vf.add(t, "N = 9 but only 8 bytes", "invalid", ["PadTooLong"], padded=h(b"\x09" * 8))
    vf.add(t, "N = 3, bytes 02 03 03", "invalid", ["InconsistentPadding"], padded=h(msg + b"\x02\x03\x03"))
    vf.add(t, "N = 5, first padding byte 0x00", "invalid", ["InconsistentPadding"], padded=h(msg + b"\x00" + b"\x05" * 4))
    vf.add(t, "N = 15, one middle byte 0x0e", "invalid", ["InconsistentPadding"],
           padded=h(msg + b"\x0f" * 7 + b"\x0e" + b"\x0f" * 7))
    vf.add(t, "empty input", "invalid", ["Empty"], padded="")
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    resp = adapter.call("padding_unpad", data=test["padded"])
    unsupported_in(resp)
    mismatch = None
    if resp["ok"] and "plaintext" in test and resp.get("plaintext") != test["plaintext"]:
        mismatch = f"plaintext {resp.get('plaintext')} != {test['plaintext']}"
    if mismatch is None and test["result"] == "valid" and adapter.supports("padding_pad"):
        p = adapter.call("padding_pad", plaintext=test["plaintext"], n=test["n"])
        if p["ok"] and p.get("data") != test["padded"]:
            mismatch = f"pad(plaintext, {test['n']}) = {p.get('data')} != {test['padded']}"
    return verdict(test["result"], resp["ok"], mismatch, resp)
