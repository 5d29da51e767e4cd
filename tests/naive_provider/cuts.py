"""The corners the naive provider cuts, in one place: what it does instead, and the verdict the
conformance suite must give each requirement it breaks (FAIL for a MUST, WARN for a SHOULD).

``docs/naive-provider.md`` mirrors this table; ``test_naive_against_suite.py`` checks both the
doc and the suite's report against it. Every core requirement not listed here must PASS.
"""
from __future__ import annotations

#: requirement ID -> (expected verdict, what the naive provider does instead)
CUTS: dict[str, tuple[str, str]] = {
    "ID-008": ("WARN", "user JWTs live 7 days (no refresh logic to write)"),
    "CHN-011": ("FAIL", ("after a lost connection it retries every 0.2 s, no growing back-off, "
                         "and gives up after 20 attempts")),
    "CHN-019": ("WARN", "POST /push is verified and answered 200, then ignored: nothing wakes the client"),
    "E2E-008": ("WARN", "the padding length is always 4 (valid, but not random)"),
    "E2E-017": ("FAIL", ("no retry receipts: a message it cannot decrypt is only reported as "
                         "decryption_failed")),
    "E2E-018": ("FAIL", "ignores retry receipts from G users (acknowledges them, resends nothing)"),
    "E2E-020": ("FAIL", "uploads 100 one-time pre-keys after enlistment, ignores low_pre_keys"),
    "E2E-021": ("FAIL", "rotating the signed pre-key deletes the previous one at once"),
    "E2E-023": ("FAIL", ("read receipts name the ids in the order the harness lists them, own messages "
                         "included, and a received read receipt marks every named id of the user's, "
                         "whatever the conversation")),
    "CON-003": ("WARN", "sends every reachability ping its user asks for, no 24 h suppression"),
    "CON-010": ("FAIL", "after rate_limited it resends the message at once, ignoring retry_after_ms"),
}

#: E2E-008: the fixed padding length (1..15 keeps E2E-007 satisfied).
FIXED_PADDING = 4
#: ID-008: token lifetime in seconds.
TOKEN_LIFETIME_S = 7 * 24 * 3600
#: CHN-011: fixed reconnect delay and attempt cap.
RECONNECT_DELAY_S = 0.2
RECONNECT_ATTEMPTS = 20
