"""Generated protobuf code for the interop profile's chat-channel stanzas and E2E content.

Why it is committed: the kit must install without a protobuf compiler. The normative
sources are ``docs/spec/proto/{stanzas,content}.proto`` (the only copies);
``scripts/gen_protos.py`` compiles them straight from there (``--check`` in the tests keeps
the generated modules current). Do not edit ``*_pb2.py`` / ``*_pb2.pyi`` by hand.
"""
from __future__ import annotations

from reference_impl.wire import content_pb2, stanzas_pb2

__all__ = ["content_pb2", "stanzas_pb2"]
