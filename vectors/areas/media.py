"""Media (attachment) encryption, WhatsApp style: 0-byte, 1-byte, 16-byte-aligned and 1 MiB
files for each media type label; tampered MAC / ciphertext and wrong hashes."""
from __future__ import annotations

import hashlib
from typing import Any

from reference_impl.media.crypto import MediaType, derive_media_keys, encrypt_media
from reference_impl.signal.rng import DeterministicRng

from .._check import Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, expand_generator, h, unh

FILE = "media_test.json"
TITLE = "MediaEncryption"
SEED = "interop-vectors/media/v1"
MIB = 1 << 20

NOTES = {
    "Ktv": Note("BASIC", "Encrypt and decrypt with a fixed mediaKey.",
                "A failure means attachments cannot be exchanged."),
    "EmptyFile": Note("EDGE_CASE", "A 0-byte file: the ciphertext is one block of PKCS#7 padding.",
                      "A failure breaks empty documents."),
    "BlockAligned": Note("EDGE_CASE", "A 16-byte-aligned plaintext: PKCS#7 adds a whole block.",
                         "A failure truncates or corrupts block-aligned files."),
    "LargeFile": Note("BASIC", "A 1 MiB plaintext described by a plaintextGenerator (README).",
                      "A failure breaks ordinary photos and voice notes."),
    "SharedLabel": Note("DEFINED", "Stickers use the image label 'WhatsApp Image Keys' "
                        "(meta-interop-facts §3); 'WhatsApp Sticker Pack Keys' is for packs only.",
                        "Using another label makes stickers undecryptable."),
    "ModifiedMac": Note("AUTH_BYPASS", "A byte of the 10-byte MAC is modified; fileEncSha256 is "
                        "recomputed over the modified blob so only the MAC check can catch it.",
                        "Accepting it means the MAC is not checked."),
    "ModifiedCiphertext": Note("AUTH_BYPASS", "A ciphertext byte is modified; fileEncSha256 is "
                               "recomputed so only the MAC check can catch it.",
                               "Accepting it lets the media host alter attachments."),
    "WrongFileEncSha256": Note("MISSING_STEP", "fileEncSha256 does not match the blob.",
                               "Accepting it means a wrong download is not detected before decryption."),
    "WrongFileSha256": Note("MISSING_STEP", "fileSha256 does not match the plaintext (blob, MAC and "
                            "fileEncSha256 are genuine).", "Accepting it means the plaintext hash "
                            "the sender committed to is not checked."),
    "WrongMediaType": Note("MODIFIED_PARAMETER", "The blob is decrypted with another type's label.",
                           "Accepting it means keys do not depend on the type."),
    "Truncated": Note("MODIFIED_PARAMETER", "The blob is shorter than one block plus the MAC, or its "
                      "ciphertext is not block-aligned (fileEncSha256 recomputed).",
                      "A crash here is a denial of service."),
}

TEST_PROPERTIES: dict[str, Any] = {
    "mediaType": {"enum": [t.value for t in MediaType]},
    "mediaKey": {"$ref": "#/$defs/hex32"},
    "plaintext": {"$ref": "#/$defs/hex"},
    "plaintextGenerator": {"type": "object", "required": ["kind", "seed", "length"], "properties": {
        "kind": {"const": "sha256-counter"}, "seed": {"$ref": "#/$defs/hex"},
        "length": {"type": "integer", "minimum": 0}}, "additionalProperties": False},
    "iv": {"$ref": "#/$defs/hex16"}, "cipherKey": {"$ref": "#/$defs/hex32"},
    "macKey": {"$ref": "#/$defs/hex32"}, "refKey": {"$ref": "#/$defs/hex32"},
    "blob": {"$ref": "#/$defs/hex"},
    "blobLength": {"type": "integer"},
    "fileSha256": {"$ref": "#/$defs/hex32"},
    "fileEncSha256": {"$ref": "#/$defs/hex32"},
    "fileLength": {"type": "integer"},
}
GROUP_PROPERTIES: dict[str, Any] = {}
REQUIRED = {"MediaEncrypt": ["mediaType", "mediaKey", "iv", "cipherKey", "macKey", "refKey",
                             "fileSha256", "fileEncSha256", "fileLength"],
            "MediaDecrypt": ["mediaType", "mediaKey", "blob", "fileSha256", "fileEncSha256"]}


def _flip(data: bytes, i: int) -> bytes:
    b = bytearray(data)
    b[i] ^= 1
    return bytes(b)


def build() -> VectorFile:
    vf = VectorFile(
        TITLE, "media_test_schema.json",
        ["Attachments: HKDF-SHA256(mediaKey, salt none, info = type label, 112) -> iv[0:16], "
         "cipherKey[16:48], macKey[48:80], refKey[80:112]; blob = AES-256-CBC/PKCS#7(cipherKey, iv, "
         "plaintext) || HMAC-SHA256(macKey, iv || ciphertext)[:10]; fileSha256 = SHA-256(plaintext), "
         "fileEncSha256 = SHA-256(blob). Labels: image and sticker 'WhatsApp Image Keys', video "
         "'WhatsApp Video Keys', audio 'WhatsApp Audio Keys', document 'WhatsApp Document Keys'.",
         "Large plaintexts are given by a plaintextGenerator instead of hex; the blob of those tests "
         "is given by blobLength and fileEncSha256 only."],
        dict(NOTES),
    )
    rng = DeterministicRng(SEED)
    enc_tests = vf.group("MediaEncrypt", op="media_encrypt")
    small: dict[str, Any] = {}
    for mt in MediaType:
        for size in (0, 1, 16, 48, MIB):
            key = rng(32)
            gen = None
            if size >= 1024:
                gen = {"kind": "sha256-counter", "seed": h(hashlib.sha256(f"{SEED}/{mt.value}/{size}".encode()).digest()),
                       "length": size}
                pt = expand_generator(gen)
            else:
                pt = rng(size)
            e = encrypt_media(pt, mt, key)
            k = derive_media_keys(key, mt)
            flags = ["Ktv"] + (["EmptyFile"] if size == 0 else []) + (["BlockAligned"] if size and size % 16 == 0 else []) \
                + (["LargeFile"] if gen else []) + (["SharedLabel"] if mt is MediaType.STICKER else [])
            extra: dict[str, Any] = ({"plaintextGenerator": gen, "blobLength": len(e.blob)} if gen
                                     else {"plaintext": h(pt), "blob": h(e.blob)})
            vf.add(enc_tests, f"{mt.value}, {size} bytes", "valid", flags, mediaType=mt.value, mediaKey=h(key),
                   iv=h(k.iv), cipherKey=h(k.cipher_key), macKey=h(k.mac_key), refKey=h(k.ref_key),
                   fileSha256=h(e.file_sha256), fileEncSha256=h(e.file_enc_sha256), fileLength=len(pt), **extra)
            if size == 48:
                small[mt.value] = (key, pt, e)

    dec = vf.group("MediaDecrypt", op="media_decrypt")
    key, pt, e = small["image"]
    base = {"mediaType": "image", "mediaKey": h(key), "fileSha256": h(e.file_sha256)}
    sha = lambda b: h(hashlib.sha256(b).digest())
    vf.add(dec, "image, 48 bytes, genuine", "valid", ["Ktv"], blob=h(e.blob), fileEncSha256=h(e.file_enc_sha256),
           plaintext=h(pt), **base)
    for i in (1, 10):
        b = _flip(e.blob, len(e.blob) - i)
        vf.add(dec, f"MAC byte {10 - i} modified", "invalid", ["ModifiedMac"], blob=h(b), fileEncSha256=sha(b), **base)
    for i in (0, 20, len(e.blob) - 11):
        b = _flip(e.blob, i)
        vf.add(dec, f"ciphertext byte {i} modified", "invalid", ["ModifiedCiphertext"], blob=h(b),
               fileEncSha256=sha(b), **base)
    vf.add(dec, "fileEncSha256 of another blob", "invalid", ["WrongFileEncSha256"], blob=h(e.blob),
           fileEncSha256=h(small["video"][2].file_enc_sha256), **base)
    vf.add(dec, "fileEncSha256 with one bit flipped", "invalid", ["WrongFileEncSha256"], blob=h(e.blob),
           fileEncSha256=h(_flip(e.file_enc_sha256, 31)), **base)
    vf.add(dec, "fileSha256 with one bit flipped", "invalid", ["WrongFileSha256"], blob=h(e.blob),
           fileEncSha256=h(e.file_enc_sha256), **{**base, "fileSha256": h(_flip(e.file_sha256, 0))})
    vf.add(dec, "fileSha256 of the empty string", "invalid", ["WrongFileSha256"], blob=h(e.blob),
           fileEncSha256=h(e.file_enc_sha256), **{**base, "fileSha256": sha(b"")})
    for other in ("video", "document"):
        vf.add(dec, f"image blob decrypted as {other}", "invalid", ["WrongMediaType"], blob=h(e.blob),
               fileEncSha256=h(e.file_enc_sha256), **{**base, "mediaType": other})
    vf.add(dec, "image blob decrypted as sticker (same label)", "valid", ["SharedLabel"], blob=h(e.blob),
           fileEncSha256=h(e.file_enc_sha256), plaintext=h(pt), **{**base, "mediaType": "sticker"})
    for name, b in (("MAC only", e.blob[-10:]), ("one byte short of a block + MAC", e.blob[:15] + e.blob[-10:]),
                    ("empty", b""), ("ciphertext not block-aligned", e.blob[:-11] + e.blob[-10:])):
        vf.add(dec, f"blob {name}", "invalid", ["Truncated"], blob=h(b), fileEncSha256=sha(b), **base)
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    if group["type"] == "MediaDecrypt":
        resp = adapter.call("media_decrypt", media_type=test["mediaType"], media_key=test["mediaKey"],
                            blob=test["blob"], file_sha256=test["fileSha256"],
                            file_enc_sha256=test["fileEncSha256"], return_plaintext=True)
        unsupported_in(resp)
        mismatch = None
        if resp["ok"] and "plaintext" in test and resp.get("plaintext") != test["plaintext"]:
            mismatch = f"plaintext {resp.get('plaintext')} != {test['plaintext']}"
        return verdict(test["result"], resp["ok"], mismatch, resp)
    # MediaEncrypt: derive keys, encrypt, then decrypt what was produced.
    problems: list[str] = []
    if adapter.supports("media_derive_keys"):
        k = adapter.call("media_derive_keys", media_type=test["mediaType"], media_key=test["mediaKey"])
        unsupported_in(k)
        if not k["ok"]:
            return verdict("valid", False, None, k)
        for ours, theirs in (("iv", "iv"), ("cipher_key", "cipherKey"), ("mac_key", "macKey"), ("ref_key", "refKey")):
            if k.get(ours) != test[theirs]:
                problems.append(f"{ours} {k.get(ours)} != {test[theirs]}")
    pt = unh(test["plaintext"]) if "plaintext" in test else expand_generator(test["plaintextGenerator"])
    if hashlib.sha256(pt).hexdigest() != test["fileSha256"]:
        problems.append("the plaintext generator does not reproduce fileSha256 (checker bug)")
    resp = adapter.call("media_encrypt", media_type=test["mediaType"], media_key=test["mediaKey"], plaintext=pt.hex())
    unsupported_in(resp)
    if not resp["ok"]:
        return verdict("valid", False, None, resp)
    for ours, theirs in (("file_sha256", "fileSha256"), ("file_enc_sha256", "fileEncSha256")):
        if resp.get(ours) != test[theirs]:
            problems.append(f"{ours} {resp.get(ours)} != {test[theirs]}")
    if "blob" in test and resp.get("blob") != test["blob"]:
        problems.append("blob differs")
    if adapter.supports("media_decrypt"):
        d = adapter.call("media_decrypt", media_type=test["mediaType"], media_key=test["mediaKey"],
                         blob=resp["blob"], file_sha256=test["fileSha256"], file_enc_sha256=test["fileEncSha256"])
        if not d["ok"]:
            problems.append(f"cannot decrypt its own blob: {d.get('error')}: {d.get('message')}")
        elif d.get("plaintext_sha256", test["fileSha256"]) != test["fileSha256"]:
            problems.append("decrypted plaintext hash differs")
    return verdict(test["result"], True, "; ".join(problems) or None, resp)
