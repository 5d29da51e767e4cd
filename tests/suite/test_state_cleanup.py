"""No secret left behind (issue 13 §5): a run's temporary state — the embedded provider's
Signal identities, sessions, SQLite, JWT and TLS keys — is private while it exists and gone
after the run unless ``--keep-state``; ``--data-dir`` storage is private at umask 022."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reference_impl.provider.storage import Storage

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(tmp: Path) -> list[Path]:
    return sorted(p for p in tmp.iterdir() if p.name.startswith(("refprov-", "conformance-")))


def _run(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "pytest", "--conformance", "--req", "ID-001", "-q",
           "-p", "no:cacheprovider", "--report-dir", str(tmp / "reports"), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep-state"])
def test_run_state_is_removed_unless_kept(tmp_path: Path, keep: bool):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _run(tmp, *(["--keep-state"] if keep else []))
    assert proc.returncode == 0, proc.stdout[-2000:]
    left = _leftovers(tmp)
    if not keep:
        assert left == [], f"state left behind: {[p.name for p in left]}"
        return
    refprov = [p for p in left if p.name.startswith("refprov-")]
    assert refprov, f"--keep-state kept nothing: {[p.name for p in left]}"
    for d in refprov:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        db = d / "provider.sqlite3"
        assert db.exists() and stat.S_IMODE(db.stat().st_mode) == 0o600


def test_data_dir_storage_is_private_at_umask_022(tmp_path: Path):
    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        store = Storage(data)
        try:
            for d in (data, data / "media", data / "media-tmp"):
                assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
            assert stat.S_IMODE((data / "provider.sqlite3").stat().st_mode) == 0o600
        finally:
            store.close()
    finally:
        os.umask(old)
