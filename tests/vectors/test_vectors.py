"""The published test vectors: format, reproducibility, and the checker with both adapters."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from vectors import check, generate
from vectors.adapters import InProcessAdapter, SubprocessAdapter
from vectors.areas import AREAS

VECTORS = Path(generate.__file__).resolve().parent
REPO = VECTORS.parent
FILES = [a.FILE for a in AREAS]


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.mark.parametrize("name", FILES)
def test_file_validates_against_its_schema(name: str) -> None:
    doc = _load(name)
    schema = _load(f"schema/{doc['schema']}")
    Draft202012Validator.check_schema(schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


@pytest.mark.parametrize("name", FILES)
def test_header_counts_flags_and_ids(name: str) -> None:
    doc = _load(name)
    tests = [t for g in doc["testGroups"] for t in g["tests"]]
    assert doc["numberOfTests"] == len(tests)
    ids = [t["tcId"] for t in tests]
    assert len(ids) == len(set(ids)), "tcIds must be unique"
    assert sorted(ids) == list(range(1, len(ids) + 1)), "tcIds are 1..n without gaps"
    used = {f for t in tests for f in t["flags"]}
    assert used == set(doc["notes"]), "every flag has a note and every note is used"
    for t in tests:
        if t["result"] != "valid":
            assert t["flags"], f"tcId {t['tcId']}: a non-valid vector must say why"
    assert {t["result"] for t in tests} >= {"valid", "invalid"}, "each area has valid and invalid cases"


def test_at_least_60_invalid_vectors_in_all() -> None:
    invalid = sum(t["result"] == "invalid" for n in FILES for g in _load(n)["testGroups"] for t in g["tests"])
    assert invalid >= 60, invalid


def test_files_are_small_and_never_depend_on_the_wall_clock() -> None:
    total = sum((VECTORS / n).stat().st_size for n in FILES)
    assert total < 3_000_000, total
    jwt = _load("jwt_test.json")
    assert all(isinstance(g["now"], int) for g in jwt["testGroups"])


def test_generator_reproduces_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vectors.generate", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    produced = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    committed = sorted([*FILES, *(f"schema/{p.name}" for p in (VECTORS / "schema").glob("*.json"))])
    assert produced == committed
    for rel in produced:
        assert (tmp_path / rel).read_bytes() == (VECTORS / rel).read_bytes(), f"{rel} differs: run python -m vectors.generate"


def test_generator_is_deterministic_in_process() -> None:
    assert generate.build_all() == generate.build_all()


def _assert_clean(results: list[check.AreaResult]) -> None:
    failures = [f for r in results for f in r.failures]
    assert not failures, "\n".join(failures[:20])


def test_checker_passes_with_the_reference_adapter_in_process() -> None:
    results = check.run(InProcessAdapter())
    _assert_clean(results)
    assert all(r.skipped == 0 for r in results), "the reference supports every op"
    assert sum(r.total for r in results) == sum(_load(n)["numberOfTests"] for n in FILES)


def test_checker_cli_with_the_reference_adapter_as_a_subprocess() -> None:
    cmd = f"{sys.executable} -m vectors.adapters.reference"
    proc = subprocess.run([sys.executable, "-m", "vectors.check", "--adapter", cmd, "--area", "xeddsa",
                           "--area", "padding"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed" in proc.stdout and "MessagePadding" in proc.stdout


def test_checker_reports_failures_and_exits_non_zero(tmp_path: Path) -> None:
    doc = _load("padding_test.json")
    doc["testGroups"][0]["tests"][0]["plaintext"] = "00"  # corrupt an expected value
    (tmp_path / "padding_test.json").write_text(json.dumps(doc))
    results = check.run(InProcessAdapter(), tmp_path, ["padding"])
    assert results[0].failed == 1 and "tcId 1" in results[0].failures[0]


def test_adapter_protocol_ops_and_unknown_op() -> None:
    adapter = SubprocessAdapter(f"{sys.executable} -m vectors.adapters.reference")
    try:
        assert adapter.supports("xeddsa_verify") and adapter.supports("jwt_verify")
        resp = adapter.call("no_such_op")
        assert resp == {"ok": False, "error": "unsupported", "message": "op 'no_such_op' not supported"}
    finally:
        adapter.close()


@pytest.fixture(scope="session")
def node_adapter_command() -> str:
    from vectors.adapters.node_env import NodeUnavailable, adapter_command

    try:
        return adapter_command()
    except NodeUnavailable as exc:
        reason = f"npm libsignal vectors adapter unavailable: {exc}"
        if in_ci():
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(reason)
    raise AssertionError("unreachable")


@pytest.mark.interop
def test_checker_passes_with_the_npm_libsignal_adapter(node_adapter_command: str) -> None:
    adapter = SubprocessAdapter(node_adapter_command)
    try:
        results = check.run(adapter)
        info = adapter.info
    finally:
        adapter.close()
    _assert_clean(results)
    by_area = {r.area: r for r in results}
    # What the package can consume must actually be consumed, not skipped.
    for area in ("XEdDSA", "X3DH", "DoubleRatchet", "SignalWire"):
        assert by_area[area].passed >= by_area[area].total - 2, (area, by_area[area].skips)
    assert info["implementation"]["version"] == "6.0.0"
    assert set(info["known_deviations"]) <= {n for f in FILES for n in _load(f)["notes"]}


def test_chat_channel_vector_matches_the_reference_channel_module() -> None:
    """The Noise vectors are generated with noiseprotocol directly; the product's own channel
    code (reference_impl.channel.noise) must produce the same bytes from the same keys."""
    from reference_impl.channel.noise import NoiseInitiator, NoiseResponder

    doc = _load("noise_xx_test.json")
    group = next(g for g in doc["testGroups"] if g.get("source") == "interop profile chat channel")
    msgs = [(bytes.fromhex(m["payload"]), bytes.fromhex(m["ciphertext"]))
            for m in group["tests"][0]["messages"]]
    ini = NoiseInitiator(bytes.fromhex(group["initiatorStatic"]),
                         ephemeral_private=bytes.fromhex(group["initiatorEphemeral"]))
    res = NoiseResponder(bytes.fromhex(group["responderStatic"]),
                         ephemeral_private=bytes.fromhex(group["responderEphemeral"]))
    assert ini.start() == msgs[0][1]
    assert res.respond(msgs[0][1]) == msgs[1][1]
    assert ini.finish(msgs[1][1], msgs[2][0]) == msgs[2][1]
    assert res.finish(msgs[2][1]) == msgs[2][0]
    assert ini.transport is not None and res.transport is not None
    # Transport messages keep the XX alternation: 3 is gatekeeper -> client, 4 client -> gatekeeper.
    assert res.transport.encrypt(msgs[3][0]) == msgs[3][1]
    assert ini.transport.decrypt(msgs[3][1]) == msgs[3][0]
    assert ini.transport.encrypt(msgs[4][0]) == msgs[4][1]
    assert res.transport.decrypt(msgs[4][1]) == msgs[4][0]
