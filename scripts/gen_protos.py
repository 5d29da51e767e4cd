#!/usr/bin/env python3
"""Regenerate every committed ``*_pb2.py`` / ``*_pb2.pyi`` from its ``.proto``.

Why a script: generated protobuf code is committed so that the kit installs without
a compiler, which is only safe if anyone can regenerate it byte for byte. The output
depends on the grpcio-tools version (it embeds the gencode version), so the version is
pinned here and checked.

Layout (each entry of ``TARGETS``):

* ``reference_impl/signal/proto/whisper.proto`` is compiled from inside its folder
  (``-I.``), which is how the committed ``whisper_pb2.py`` was made; its descriptor is
  registered as ``whisper.proto``.
* ``docs/spec/proto/{stanzas,content}.proto`` are the normative sources and the only
  copies in the tree. protoc names a descriptor after the file's path below the include
  root, so each is staged for the compile (in a temporary directory, never committed) at
  ``reference_impl/wire/<name>.proto``: the descriptors stay registered under the package
  path (``reference_impl/wire/stanzas.proto``) and cannot clash with some other library's
  ``content.proto`` in the default descriptor pool.
* ``docs/spec/proto/wa_handshake.proto`` (the `wa` binding's handshake subset) is staged the
  same way at ``reference_impl/wa/wa_handshake.proto``.

Usage: ``python scripts/gen_protos.py`` rewrites the files; ``--check`` regenerates into
a temporary directory and exits 1, listing the files, if anything committed differs.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRPCIO_TOOLS_VERSION = "1.85.1"


@dataclass(frozen=True)
class Target:
    """One .proto and how to compile it.

    ``source`` is the normative file; ``package_dir`` is where the generated code goes (and
    the path the descriptor is named after); ``include_root`` is the -I directory, relative
    to the tree root: "." for the tree root, or the package dir itself.
    """

    source: str
    package_dir: str
    include_root: str

    @property
    def name(self) -> str:
        return Path(self.source).name

    @property
    def stem(self) -> str:
        return Path(self.source).stem

    def outputs(self) -> list[str]:
        """Files this target owns in the tree, relative to the tree root."""
        return [f"{self.package_dir}/{self.stem}_pb2.py", f"{self.package_dir}/{self.stem}_pb2.pyi"]


TARGETS: tuple[Target, ...] = (
    Target("reference_impl/signal/proto/whisper.proto", "reference_impl/signal/proto",
           "reference_impl/signal/proto"),
    Target("docs/spec/proto/stanzas.proto", "reference_impl/wire", "."),
    Target("docs/spec/proto/content.proto", "reference_impl/wire", "."),
    Target("docs/spec/proto/wa_handshake.proto", "reference_impl/wa", "."),
)


def _require_grpc_tools() -> None:
    try:
        version = metadata.version("grpcio-tools")
    except metadata.PackageNotFoundError:
        sys.exit(f"grpcio-tools is not installed: pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}")
    if version != GRPCIO_TOOLS_VERSION:
        sys.exit(f"grpcio-tools {version} found, {GRPCIO_TOOLS_VERSION} required "
                 "(its output embeds the gencode version)")


def generate(src_root: Path, out_root: Path) -> list[str]:
    """Compile every target from the sources under ``src_root`` into ``out_root``.

    ``out_root`` may equal ``src_root`` (regenerate in place). Returns the relative
    paths of all files written.
    """
    written: list[str] = []
    for target in TARGETS:
        (out_root / target.package_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="gen_protos_stage_") as stage:
            if target.include_root == ".":
                # Stage the spec file where its descriptor name says it lives.
                rel = f"{target.package_dir}/{target.name}"
                staged = Path(stage) / rel
                staged.parent.mkdir(parents=True)
                shutil.copyfile(src_root / target.source, staged)
                include, out = Path(stage), out_root.resolve()
            else:
                include, rel = src_root / target.include_root, target.name
                out = (out_root / target.package_dir).resolve()
            cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={out}",
                   f"--pyi_out={out}", rel]
            result = subprocess.run(cmd, check=False, cwd=include, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"protoc failed for {target.source}:\n{result.stderr}")
        written.extend(target.outputs())
    return written


def check() -> list[str]:
    """Regenerate into a temporary tree; return committed files that differ or are missing."""
    with tempfile.TemporaryDirectory(prefix="gen_protos_") as tmp:
        tmp_root = Path(tmp)
        for target in TARGETS:  # sources only: the generated files must come from them
            dest = tmp_root / target.source
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / target.source, dest)
        stale = []
        for rel in generate(tmp_root, tmp_root):
            committed = ROOT / rel
            if not committed.is_file() or committed.read_bytes() != (tmp_root / rel).read_bytes():
                stale.append(rel)
        return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if any committed generated file is stale")
    args = parser.parse_args(argv)
    _require_grpc_tools()
    if args.check:
        stale = check()
        if stale:
            print("stale generated protobuf files (run scripts/gen_protos.py):", file=sys.stderr)
            for rel in stale:
                print(f"  {rel}", file=sys.stderr)
            return 1
        print("generated protobuf files are current")
        return 0
    for rel in generate(ROOT, ROOT):
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
