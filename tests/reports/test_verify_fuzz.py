"""Fuzzing ``verify`` and ``compare`` with mutated bundles: every mutation gets a documented
exit code and no traceback (deterministic seeds; in-process for speed, a few subprocesses)."""
from __future__ import annotations

import contextlib
import io
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conformance.evidence import verify as V
from conformance.evidence.compare import run as compare_run, add_arguments as compare_args
from conformance.reporting import write_all

from .test_evidence_bundle import make_results

DOCUMENTED = {0, 2, 3, 4, 5, 6}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pristine")
    write_all(make_results(), out)
    return out


def _mutations(data: bytes, seed: int):
    rnd = random.Random(seed)
    for i in range(1000):
        kind = i % 4
        b = bytearray(data)
        if kind == 0:       # single byte flip anywhere
            pos = rnd.randrange(len(b))
            b[pos] ^= rnd.randrange(1, 256)
        elif kind == 1:     # truncation
            b = b[:rnd.randrange(len(b))]
        elif kind == 2:     # burst of flips
            for _ in range(rnd.randrange(2, 9)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        else:               # duplicated slice (repeated local entries / headers)
            a = rnd.randrange(len(b))
            z = min(len(b), a + rnd.randrange(1, 400))
            b[a:a] = b[a:z]
        yield i, bytes(b)


def test_a_thousand_mutations_get_documented_codes_and_no_traceback(pristine: Path, tmp_path: Path):
    data = (pristine / "evidence.zip").read_bytes()
    for name in ("evidence.zip.sig", "evidence.pub.pem"):
        (tmp_path / name).write_bytes((pristine / name).read_bytes())
    target = tmp_path / "evidence.zip"
    pub = str(tmp_path / "evidence.pub.pem")
    codes: dict[int, int] = {}
    for i, mutated in _mutations(data, seed=13):
        target.write_bytes(mutated)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = V.main([str(target), "--public-key", pub])
        assert code in DOCUMENTED, (i, code, out.getvalue())
        assert "Traceback" not in out.getvalue() + err.getvalue()
        assert len(out.getvalue().strip().splitlines()) == 1, (i, out.getvalue())
        codes[code] = codes.get(code, 0) + 1
    assert sum(codes.values()) == 1000
    assert codes.get(V.EXIT_OK, 0) < 1000  # the mutations were noticed, not waved through


def test_compare_survives_the_same_mutations(pristine: Path, tmp_path: Path):
    import argparse
    p = argparse.ArgumentParser()
    compare_args(p)
    data = (pristine / "evidence.zip").read_bytes()
    target = tmp_path / "b.zip"
    for i, mutated in _mutations(data, seed=7):
        if i >= 300:
            break
        target.write_bytes(mutated)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = compare_run(p.parse_args([str(pristine / "report.json"), str(target)]))
        assert code in (0, 1, 2), i


@pytest.mark.parametrize("content", [b"[]", b"[1,2]", b'"x"', b'{"requirements": 3}',
                                     b'{"requirements": [{"id": 1}]}', b"\xff\xfe", b"{"])
def test_wrong_json_types_are_one_line_exit_2(tmp_path: Path, pristine: Path, content: bytes):
    bad = tmp_path / "report.json"
    bad.write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "compare", str(bad),
                          str(pristine / "report.json")], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_zip_bomb_is_refused_without_inflating(tmp_path: Path, pristine: Path):
    bomb = tmp_path / "evidence.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("report.json", "w", force_zip64=True) as fh:
            chunk = b"\0" * (1 << 20)
            for _ in range(100):  # 100 MiB of zeros, ~100 KiB compressed
                fh.write(chunk)
    for name in ("evidence.zip.sig", "evidence.pub.pem"):
        (tmp_path / name).write_bytes((pristine / name).read_bytes())
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert V.main([str(bomb)]) == V.EXIT_USAGE
    assert "limit" in out.getvalue()
    r = subprocess.run([sys.executable, "-m", "conformance.cli", "compare", str(bomb),
                        str(pristine / "report.json")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_manifest_that_is_a_list_and_report_that_is_not_an_object(tmp_path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from conformance.evidence import bundle as B

    key = Ed25519PrivateKey.generate()
    for manifest, report in ((b"[]", b"{}"),
                             (None, b"[1]")):
        d = tmp_path / str(len(list(tmp_path.iterdir())))
        d.mkdir()
        files = {"report.json": report}
        if manifest is None:
            manifest = json.dumps({"files": {"report.json": __import__("hashlib").sha256(report).hexdigest()},
                                   "signer_fingerprint": B.fingerprint(key)}).encode()
        (d / "evidence.zip").write_bytes(B._zip_bytes(files, manifest))
        (d / "evidence.zip.sig").write_text(key.sign(manifest).hex())
        (d / "evidence.pub.pem").write_bytes(B.bundle_files({}, {"kit": 0, "vectors_version": 0, "profile": 0,
                                                                 "declaration_sha256": 0, "target": 0,
                                                                 "result": 0}, key)["evidence.pub.pem"])
        with contextlib.redirect_stdout(io.StringIO()):
            assert V.main([str(d / "evidence.zip"), "--fingerprint", B.fingerprint(key)]) == V.EXIT_USAGE


def test_a_few_real_subprocess_mutations(pristine: Path, tmp_path: Path):
    data = (pristine / "evidence.zip").read_bytes()
    for name in ("evidence.zip.sig", "evidence.pub.pem"):
        (tmp_path / name).write_bytes((pristine / name).read_bytes())
    for i, mutated in _mutations(data, seed=99):
        if i >= 4:
            break
        (tmp_path / "evidence.zip").write_bytes(mutated)
        r = subprocess.run([sys.executable, "-m", "conformance.cli", "verify", str(tmp_path / "evidence.zip")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode in DOCUMENTED and "Traceback" not in r.stderr + r.stdout
