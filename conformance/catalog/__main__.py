"""``python -m conformance.catalog [--write]``: regenerate or check requirements.yaml.

Why: the spec is edited by hand and the YAML must follow it exactly; regenerating is safer
than editing both. Without ``--write`` it exits 1 when the YAML is out of date.
"""
from __future__ import annotations

import argparse
import sys

from conformance.catalog import (
    CATALOG_PATH,
    SPEC_PATH,
    dump_catalog,
    parse_spec,
    parse_spec_milestones,
    spec_profile_version,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.catalog", description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite requirements.yaml")
    args = parser.parse_args(argv)
    text = dump_catalog(list(parse_spec(SPEC_PATH).values()), spec_profile_version(SPEC_PATH),
                        parse_spec_milestones(SPEC_PATH))
    if args.write:
        CATALOG_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {CATALOG_PATH}")
        return 0
    current = CATALOG_PATH.read_text(encoding="utf-8") if CATALOG_PATH.exists() else ""
    if current != text:
        print(f"{CATALOG_PATH} is out of date: run python -m conformance.catalog --write",
              file=sys.stderr)
        return 1
    print("requirements.yaml matches the spec")
    return 0


if __name__ == "__main__":
    sys.exit(main())
