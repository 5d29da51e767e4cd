"""The committed generated protobuf code matches its .proto sources.

Why: generated ``*_pb2.py`` files are committed; a .proto edit without regeneration would
silently ship stale wire formats. grpcio-tools is a test dependency, so this never skips.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protos_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        check=False, capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_spec_protos_are_the_only_copies() -> None:
    # The generated code comes straight from docs/spec/proto; a second copy could drift.
    for name in ("stanzas.proto", "content.proto"):
        assert (ROOT / "docs" / "spec" / "proto" / name).is_file(), name
    assert sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "reference_impl").rglob("*.proto")) \
        == ["reference_impl/signal/proto/whisper.proto"]


def test_generated_modules_import_as_package_and_round_trip() -> None:
    from reference_impl.wire import content_pb2, stanzas_pb2

    stanza = stanzas_pb2.Stanza(
        id="m1",
        message=stanzas_pb2.Message(
            recipient="g:1", sender="1-2@interop", type=stanzas_pb2.ENC_TYPE_PKMSG,
            ciphertext=b"\x33abc", timestamp_ms=1,
        ),
    )
    parsed = stanzas_pb2.Stanza.FromString(stanza.SerializeToString())
    assert parsed.WhichOneof("body") == "message" and parsed.message.ciphertext == b"\x33abc"

    err = stanzas_pb2.Stanza(id="m1", error=stanzas_pb2.Error(
        code=stanzas_pb2.ERROR_CODE_RATE_LIMITED, retry_after_ms=1500))
    assert stanzas_pb2.Stanza.FromString(err.SerializeToString()).error.retry_after_ms == 1500

    content = content_pb2.Message(extended_text=content_pb2.ExtendedTextMessage(
        text="hi", context_info=content_pb2.ContextInfo(quoted_message_id="x", quoted_sender="g:1")))
    assert content_pb2.Message.FromString(content.SerializeToString()).WhichOneof("content") == \
        "extended_text"
    # Descriptors are registered under the package path, so they cannot clash with another
    # library's "content.proto" in the default pool.
    assert content_pb2.DESCRIPTOR.name == "reference_impl/wire/content.proto"


def test_error_codes_cover_the_profile() -> None:
    from reference_impl.wire import stanzas_pb2

    names = {n.removeprefix("ERROR_CODE_").lower() for n in stanzas_pb2.ErrorCode.keys()}  # noqa: SIM118
    assert names >= {"not_opted_in", "rate_limited", "un_enlisted", "bad_token", "protocol_version",
                     "malformed", "too_large", "unknown_user", "blocked", "internal"}
