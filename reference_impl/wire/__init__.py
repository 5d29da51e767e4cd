"""Generated protobuf code for the interop profile's chat-channel stanzas and E2E content.

Why it is committed: the kit must install without a protobuf compiler. The normative
sources are ``docs/spec/proto/{stanzas,content}.proto``; copies sit next to the generated
modules, and ``scripts/gen_protos.py`` regenerates everything (``--check`` in the tests
keeps them current). Do not edit ``*_pb2.py`` / ``*_pb2.pyi`` by hand.
"""
from __future__ import annotations

from reference_impl.wire import content_pb2, stanzas_pb2

__all__ = ["content_pb2", "stanzas_pb2"]
