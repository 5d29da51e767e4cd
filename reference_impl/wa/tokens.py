"""Token dictionaries for the binary-XML codec, with their provenance.

``SINGLE_BYTE_TOKENS`` / ``DOUBLE_BYTE_TOKENS`` come from Baileys 6.17.16 (MIT; data only, see
``_baileys_tokens.py``). Baileys sends dictionary version 2 in the connection header
(``Defaults/index.js`` ``DICT_VERSION``). The public framework example (S2 §2.1) encodes
``message`` as 19 and ``to`` as 17, which this list does not (11 and 14): the interop server's
dictionary is not public, so the codec takes the dictionary as a parameter.
"""

from __future__ import annotations

from reference_impl.wa._baileys_tokens import DOUBLE_BYTE_TOKENS, SINGLE_BYTE_TOKENS

DICTIONARY_NAME = "baileys-6.17.16"
DICTIONARY_VERSION = 2

#: Only the three tokens the framework's example reveals (S2 §2.1: 3, 17, 19); every other string
#: is written raw, so the example can be completed and round-tripped without guessing tokens.
FRAMEWORK_EXAMPLE_SINGLE: tuple[str, ...] = tuple(
    {3: "s.whatsapp.net", 17: "to", 19: "message"}.get(i, "") for i in range(236))

__all__ = ["SINGLE_BYTE_TOKENS", "DOUBLE_BYTE_TOKENS", "DICTIONARY_NAME", "DICTIONARY_VERSION",
           "FRAMEWORK_EXAMPLE_SINGLE"]
