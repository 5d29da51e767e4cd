"""WhatsApp-style media encryption (reference_impl.media), per meta-interop-facts.md §3/§8.6."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.media import MediaType, decrypt_media, derive_media_keys, encrypt_media
from reference_impl.media.crypto import MAC_LENGTH, MIN_BLOB_LENGTH
from reference_impl.signal.crypto import aes_cbc_encrypt, hkdf_sha256, hmac_sha256, sha256
from reference_impl.signal.errors import InvalidMediaError, SignalError
from reference_impl.signal.rng import DeterministicRng

SIZES = {"0B": 0, "1B": 1, "16B": 16, "1MiB": 1 << 20}


def _plaintext(n: int) -> bytes:
    return DeterministicRng(f"media-plaintext-{n}")(n)


def _decrypt(e, media_type=MediaType.IMAGE, **override) -> bytes:
    args = dict(blob=e.blob, media_key=e.media_key, media_type=media_type,
                file_sha256=e.file_sha256, file_enc_sha256=e.file_enc_sha256)
    args.update(override)
    return decrypt_media(**args)


def _check(exc_info: pytest.ExceptionInfo, check: str) -> None:
    assert exc_info.value.check == check, (exc_info.value.check, str(exc_info.value))


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("media_type", list(MediaType), ids=lambda t: t.value)
def test_round_trip(media_type: MediaType, size: int) -> None:
    pt = _plaintext(size)
    e = encrypt_media(pt, media_type, rng=DeterministicRng(f"key-{media_type.value}-{size}"))
    # PKCS#7 always pads, so an aligned (or empty) file gains a whole block.
    assert len(e.blob) == (size // 16 + 1) * 16 + MAC_LENGTH
    assert len(e.media_key) == 32
    assert e.file_length == size
    assert e.file_sha256 == sha256(pt)
    assert e.file_enc_sha256 == sha256(e.blob)
    assert _decrypt(e, media_type) == pt


def test_scheme_matches_spec_step_by_step() -> None:
    """Recompute the blob from meta-interop-facts.md §3 steps 1-7 with the primitives."""
    key = bytes(range(32))
    pt = b"interop media"
    okm = hkdf_sha256(key, b"WhatsApp Document Keys", 112)  # salt none = 32 zero bytes
    iv, cipher_key, mac_key, ref_key = okm[:16], okm[16:48], okm[48:80], okm[80:]
    ct = aes_cbc_encrypt(cipher_key, iv, pt)
    blob = ct + hmac_sha256(mac_key, iv + ct)[:10]
    e = encrypt_media(pt, MediaType.DOCUMENT, media_key=key)
    assert e.blob == blob
    assert e.file_enc_sha256 == sha256(blob)
    keys = derive_media_keys(key, "document")
    assert (keys.iv, keys.cipher_key, keys.mac_key, keys.ref_key) == (
        iv, cipher_key, mac_key, ref_key)


def test_info_labels() -> None:
    assert MediaType.IMAGE.info == b"WhatsApp Image Keys"
    assert MediaType.VIDEO.info == b"WhatsApp Video Keys"
    assert MediaType.AUDIO.info == b"WhatsApp Audio Keys"
    assert MediaType.DOCUMENT.info == b"WhatsApp Document Keys"
    # meta-interop-facts.md §3: stickers use the image label.
    assert MediaType.STICKER.info == b"WhatsApp Image Keys"


def test_sticker_and_image_are_interchangeable() -> None:
    e = encrypt_media(b"sticker", MediaType.STICKER)
    assert _decrypt(e, MediaType.IMAGE) == b"sticker"


def test_media_type_accepts_string_value() -> None:
    e = encrypt_media(b"x", "audio")
    assert _decrypt(e, MediaType.AUDIO) == b"x"


def test_fresh_media_key_from_rng() -> None:
    a = encrypt_media(b"same", MediaType.IMAGE)
    b = encrypt_media(b"same", MediaType.IMAGE)
    assert a.media_key != b.media_key and a.blob != b.blob
    assert a.file_sha256 == b.file_sha256


# --- failures: each reports the check that caught it ------------------------------------

@pytest.fixture
def enc():
    return encrypt_media(_plaintext(100), MediaType.IMAGE, media_key=bytes(range(32)))


def test_tampered_mac_with_stale_hash_fails_enc_sha256(enc) -> None:
    blob = enc.blob[:-1] + bytes([enc.blob[-1] ^ 1])
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, blob=blob)
    _check(ei, "file_enc_sha256")


def test_tampered_mac_fails_mac(enc) -> None:
    blob = enc.blob[:-1] + bytes([enc.blob[-1] ^ 1])
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, blob=blob, file_enc_sha256=sha256(blob))
    _check(ei, "mac")


@pytest.mark.parametrize("pos", [0, 15, 16, 100, -MAC_LENGTH - 1])
def test_tampered_ciphertext_fails_mac(enc, pos: int) -> None:
    b = bytearray(enc.blob)
    b[pos] ^= 0x80
    blob = bytes(b)
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, blob=blob, file_enc_sha256=sha256(blob))
    _check(ei, "mac")


def test_wrong_file_sha256(enc) -> None:
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, file_sha256=sha256(b"something else"))
    _check(ei, "file_sha256")


def test_wrong_file_enc_sha256(enc) -> None:
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, file_enc_sha256=sha256(b"something else"))
    _check(ei, "file_enc_sha256")


@pytest.mark.parametrize("missing", [None, b"", b"\x00" * 31])
def test_missing_or_short_hashes_are_mismatches(enc, missing) -> None:
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, file_enc_sha256=missing)
    _check(ei, "file_enc_sha256")
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, file_sha256=missing)
    _check(ei, "file_sha256")


@pytest.mark.parametrize("wrong", [MediaType.VIDEO, MediaType.AUDIO, MediaType.DOCUMENT])
def test_wrong_media_type_label_fails_at_mac(enc, wrong: MediaType) -> None:
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, media_type=wrong)
    _check(ei, "mac")


def test_wrong_media_key_fails_at_mac(enc) -> None:
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, media_key=bytes(32))
    _check(ei, "mac")


@pytest.mark.parametrize("length", [0, 1, MAC_LENGTH, MIN_BLOB_LENGTH - 1])
def test_too_short_blob_fails_length(length: int) -> None:
    blob = bytes(length)
    with pytest.raises(InvalidMediaError) as ei:
        decrypt_media(blob, bytes(32), MediaType.IMAGE, sha256(b""), sha256(blob))
    _check(ei, "length")


@pytest.mark.parametrize("drop", [1, 15])
def test_misaligned_ciphertext_fails_length(enc, drop: int) -> None:
    ct = enc.blob[:-MAC_LENGTH][:-drop]
    blob = ct + enc.blob[-MAC_LENGTH:]
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, blob=blob, file_enc_sha256=sha256(blob))
    _check(ei, "length")


def test_bad_padding_under_valid_mac_fails_decrypt() -> None:
    """A sender that MACs a ciphertext whose PKCS#7 padding is broken: caught at decrypt."""
    key = bytes(range(32))
    keys = derive_media_keys(key, MediaType.IMAGE)
    # First block of the encryption of 16 bytes ending in 0x00: decrypts to a full block
    # whose last byte is 0, which is not valid PKCS#7.
    ct = aes_cbc_encrypt(keys.cipher_key, keys.iv, b"A" * 15 + b"\x00")[:16]
    blob = ct + hmac_sha256(keys.mac_key, keys.iv + ct)[:MAC_LENGTH]
    with pytest.raises(InvalidMediaError) as ei:
        decrypt_media(blob, key, MediaType.IMAGE, sha256(b"A" * 15), sha256(blob))
    _check(ei, "decrypt")


@pytest.mark.parametrize("bad_key", [b"", bytes(31), bytes(33)])
def test_bad_media_key_length(enc, bad_key: bytes) -> None:
    with pytest.raises(InvalidMediaError) as ei:
        _decrypt(enc, media_key=bad_key)
    _check(ei, "media_key")
    with pytest.raises(InvalidMediaError):
        encrypt_media(b"x", MediaType.IMAGE, media_key=bad_key)


def test_media_error_is_a_signal_error() -> None:
    assert issubclass(InvalidMediaError, SignalError)


@settings(max_examples=50, deadline=None)
@given(
    st.binary(max_size=300),
    st.sampled_from(list(MediaType)),
    st.binary(min_size=32, max_size=32),
)
def test_round_trip_property(pt: bytes, media_type: MediaType, key: bytes) -> None:
    e = encrypt_media(pt, media_type, media_key=key)
    assert _decrypt(e, media_type) == pt
