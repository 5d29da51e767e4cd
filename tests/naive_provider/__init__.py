"""A small, independent "naive" provider written from docs/spec alone (issue "Prove the kit",
§2): it conforms except for the corners listed in ``cuts.py`` / ``docs/naive-provider.md``."""
from .provider import NaiveProvider

__all__ = ["NaiveProvider"]
