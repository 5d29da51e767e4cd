"""``conformance`` command: one entry point, one subcommand per tool.

Each subcommand lives beside the code it drives and exposes ``add_arguments(parser)`` and
``run(args) -> int``; this module only dispatches, importing lazily so that ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve-gatekeeper": ("conformance.gatekeeper.cli", "run the gatekeeper simulator alone"),
    "serve-reference": ("reference_impl.provider.cli", "run the reference provider (server, client, harness)"),
    "verify": ("conformance.evidence.verify", "verify a signed evidence bundle"),
    "compare": ("conformance.evidence.compare", "compare two reports by requirement"),
    "catalog": ("conformance.catalog.cli", "list requirements with provenance and milestone"),
    "load": ("conformance.load.cli", "load and soak on Locust: LOAD-* verdicts (docs/load.md)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                p.set_defaults(_missing=str(exc))
            else:
                raise
    args = parser.parse_args(argv)
    if getattr(args, "_missing", None):
        parser.error(f"{args.command} is not available in this build ({args._missing})")
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
