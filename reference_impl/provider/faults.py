"""Named, switchable faults: realistic bugs a provider could ship.

Each fault names the requirement IDs whose tests must catch it. With no fault on, the
reference provider is conformant; a fault changes only the behaviour it names. The table in
``docs/reference-provider.md`` is generated from :data:`FAULTS` (``render_table``) and a test
keeps the two equal.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Fault", "FAULTS", "Faults", "UnknownFaultError", "render_table"]


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    description: str
    requirements: tuple[str, ...]
    area: str
    #: The chat binding the fault lives in: "wa" or "open" (it cannot exist on the other one,
    #: the description says why), "" = any. The self-check runs it with ``--wire`` (a
    #: binding-neutral channel fault over both bindings, tests/selfcheck).
    wire: str = ""


def _f(name: str, area: str, requirements: str, description: str, wire: str = "") -> Fault:
    return Fault(name, description, tuple(requirements.split()), area, wire)


_ALL = [
    # -- identity (JWKS and user tokens) ----------------------------------------------------
    _f("jwks_private_params", "identity", "ID-004",
       "The JWK Set also publishes the private scalar `d` of each signing key."),
    _f("jwks_duplicate_kid", "identity", "ID-002 ID-005",
       "Key rotation publishes the next key under the current key's `kid`."),
    _f("token_unpublished_kid", "identity", "ID-005",
       "User tokens are signed with a staged key that the JWK Set does not publish yet."),
    _f("token_wrong_audience", "identity", "ID-007",
       "User tokens name the provider's own issuer as `aud` instead of the gatekeeper's audience."),
    _f("token_clock_behind", "identity", "ID-007",
       "User tokens are stamped from a clock two hours behind, so they are expired when issued."),
    _f("token_oversized", "identity", "ID-006",
       "User tokens embed the user's profile blob and grow past 4096 bytes."),
    _f("token_sub_internal_id", "identity", "ID-007",
       "User tokens carry the provider's internal user handle as `sub`, not the user-visible id."),
    # identity, issue 13 (every MUST proved by a fault)
    _f("jwks_text_plain", "identity", "ID-001",
       "The JWK Set is a static file served as `Content-Type: text/plain`."),
    _f("jwks_no_use", "identity", "ID-003",
       "JWK Set entries omit `use` (optional in RFC 7517, required by the profile)."),
    # -- push --------------------------------------------------------------------------------
    _f("push_accept_unsigned", "push", "CHN-016",
       "Push skips signature verification: `alg: none` and forged tokens are accepted."),
    _f("push_accept_expired", "push", "CHN-017",
       "Push skips the `exp`, `iat` and `nbf` checks of the gatekeeper's token."),
    _f("push_ignore_audience", "push", "CHN-017",
       "Push does not check that the token's `aud` names the provider."),
    _f("push_no_jwks_refresh", "push", "CHN-016",
       "Push never refetches the gatekeeper's JWK Set, so a newly published key is refused."),
    _f("push_response_body", "push", "CHN-015 CHN-018",
       "Push answers 200 with a JSON body instead of an empty one."),
    _f("push_500_on_malformed", "push", "CHN-018",
       "A push body that is not a JSON object with a string `to` crashes the handler (500)."),
    # -- media hosting -----------------------------------------------------------------------
    _f("media_guessable_reference", "media-server", "MED-012",
       "Storage references are sequential numbers."),
    _f("media_no_content_length", "media-server", "MED-010",
       "Media is streamed without a `Content-Length` header."),
    _f("media_wrong_content_type", "media-server", "MED-010",
       "Media is served with a sniffed `Content-Type: image/jpeg`."),
    _f("media_range_off_by_one", "media-server", "MED-011",
       "A 206 answer carries one byte more than the range it announces."),
    _f("media_no_size_limit", "media-server", "MED-013",
       "Uploads above the declared maximum blob size are stored."),
    _f("media_delete_any_user", "media-server", "MED-014",
       "Any authenticated user may delete any blob."),
    _f("media_upload_without_auth", "media-server", "MED-008",
       "Uploads are stored without checking the user JWT."),
    # media hosting, issue 13 (every MUST proved by a fault)
    _f("media_sniffed_gzip", "media-server", "MED-018",
       "A blob that starts with the gzip magic bytes is served with `Content-Encoding: gzip`."),
    # -- transport ---------------------------------------------------------------------------
    _f("http2_off", "transport", "TRN-004",
       "ALPN offers only `http/1.1`: HTTP/2 is switched off."),
    _f("tls_cbc_ciphers", "transport", "TRN-003",
       "TLS 1.2 also offers CBC and static-RSA cipher suites."),
    # transport, issue 13 (every MUST proved by a fault)
    _f("tls_legacy_versions", "transport", "TRN-001 TRN-003",
       "A legacy OpenSSL profile: TLS 1.0 and 1.1 are accepted, with the CBC suites they need."),
    _f("chat_no_hostname_check", "transport", "TRN-006",
       "The chat-channel TLS connection checks G's chain but not its host name."),
    _f("cleartext_on_tls_port", "transport", "TRN-005",
       "The server port also speaks plain HTTP (TLS and cleartext told apart by the first byte): "
       "JWKS, push and media are served without TLS too."),
    # -- enlistment --------------------------------------------------------------------------
    _f("enlist_signature_by_authkey", "enlistment", "ENL-004",
       "The enlistment `e_skey_sig` is made with the Noise authkey instead of the identity key."),
    _f("spk_signature_raw_key", "e2e", "E2E-021",
       "Rotated signed pre-keys are signed over the raw 32-byte key instead of `0x05 ‖ key`."),
    _f("spk_window_from_creation", "e2e", "E2E-021",
       "Previous signed pre-keys are kept 7 days from their creation, not from their "
       "replacement: a key older than that is deleted the moment it is rotated out."),
    _f("enlist_fail_as_success", "enlistment", "ENL-007",
       "An HTTP 200 enlistment answer is taken as success even when `status` is `fail`."),
    _f("enlist_extra_field", "enlistment", "ENL-009",
       "The enlistment form carries an extra `device_name` field."),
    # enlistment, issue 13 (every MUST proved by a fault)
    _f("enlist_padded_base64", "enlistment", "ENL-002",
       "The binary enlistment fields are base64url *with* `=` padding."),
    _f("authkey_is_identity_key", "enlistment", "ENL-003",
       "The Noise authkey is the user's Signal identity key pair (one key for two jobs)."),
    _f("enlist_version_major_minor", "enlistment", "ENL-010",
       "The enlistment form still carries the optional `version` field of profile 1.0.0, as `1.0` "
       "(major.minor) instead of `1.0.0`."),
    _f("login_local_part", "enlistment", "ENL-006",
       "G's `login` is stored without its `@domain` part and used that way."),
    _f("regid_regenerated_on_rotation", "enlistment", "ENL-008",
       "Rotating the signed pre-key also draws a new Signal registration id."),
    # -- chat channel ------------------------------------------------------------------------
    _f("no_gatekeeper_key_check", "channel", "CHN-003",
       "The client accepts any gatekeeper Noise static key in handshake message 2 (wa: the "
       "certificate chain's signatures are verified, but its leaf key is never compared with "
       "that static key)."),
    _f("no_ack_for_receipts", "channel", "CHN-007",
       "Receipt stanzas from the gatekeeper are processed but never acknowledged."),
    _f("no_pong", "channel", "CHN-008",
       "The client ignores the gatekeeper's `ping` stanzas."),
    _f("stanza_id_reuse", "channel", "CHN-006",
       "Request ids come from a counter that restarts at 1 on every connection."),
    # channel, issue 13 (every MUST proved by a fault)
    _f("ws_no_subprotocol", "channel", "CHN-001",
       "The WebSocket upgrade offers no subprotocol (`interop.v1` is never named)."),
    _f("handshake_sdk_version", "channel", "CHN-004",
       "The handshake payload announces the SDK's version `1.0.3` instead of the protocol's `1.0.0`."),
    _f("fragment_large_stanzas", "channel", "CHN-005",
       "Stanzas over 16 KiB are cut into several transport messages, like TLS records. Open "
       "binding only: a wa frame carries a whole node by construction (the 3-byte length), and a "
       "cut node would break the wa node rules (CHN-032/CHN-033) instead.", "open"),
    _f("push_opens_second_connection", "channel", "CHN-010",
       "A push for a user who is online opens a second connection beside the live one."),
    _f("reconnect_at_once", "channel", "CHN-011",
       "A lost connection is reopened at once; the back-off starts only after a failed attempt."),
    _f("noise_ephemeral_reused", "channel", "CHN-002",
       "The Noise ephemeral key pair is generated once when the client starts and reused in the "
       "handshake of every connection."),
    _f("backoff_capped_at_30s", "channel", "CHN-011",
       "The reconnection back-off stops growing at 30 s instead of reaching 60 s."),
    _f("mailbox_prepended", "channel", "CHN-012",
       "Messages from the offline mailbox are each inserted at the top of the conversation."),
    _f("close_on_unknown_stanza", "channel", "CHN-013",
       "A stanza with an unknown `body` is taken as a protocol violation: the client disconnects."),
    _f("handshake_token_cached", "channel", "CHN-014",
       "The handshake JWT is cached and presented again, even after G refused it with `bad_token`."),
    # -- end-to-end encryption ---------------------------------------------------------------
    _f("version_byte_0x34", "e2e", "E2E-001",
       "Signal messages carry version byte 0x34 (with a MAC over that byte)."),
    _f("mac_identity_order_swapped", "e2e", "E2E-001 E2E-002",
       "The SignalMessage MAC covers receiver ‖ sender identity instead of sender ‖ receiver."),
    _f("no_bundle_signature_check", "e2e", "E2E-002",
       "X3DH runs on a bundle whose signed pre-key signature does not verify."),
    _f("no_padding", "e2e", "E2E-007",
       "Content is encrypted without the 1-15 byte padding."),
    _f("lenient_unpadding", "e2e", "E2E-009",
       "A last plaintext byte of 0 or above 15 is read as 'no padding' instead of a failure."),
    _f("accept_replayed_message", "e2e", "E2E-006",
       "A replayed ciphertext is surfaced again from the client's decryption cache."),
    _f("reply_context_legacy_tag", "e2e", "E2E-012",
       "A reply's `context_info` goes on tag 2 as in profile 1.0.0, which WhatsApp's "
       "ExtendedTextMessage reads as `matchedText`: the quote is lost."),
    _f("reaction_key_inverted", "e2e", "E2E-013",
       "A sent reaction's key has `from_me` read from the recipient's side (set for the "
       "recipient's message), so WhatsApp clients attach it to the wrong message."),
    _f("revoke_by_anyone", "e2e", "E2E-014",
       "A revoke hides whichever message its key names, even one its sender did not write."),
    _f("no_delivery_receipt", "e2e", "E2E-015 E2E-011",
       "No delivery receipt is sent after decrypting a message (unsupported content included)."),
    _f("unsupported_content_drops_session", "e2e", "E2E-011",
       "A content member from a newer profile version is acknowledged and receipted, then "
       "its session is deleted as if it were corrupt."),
    _f("receipts_not_surfaced", "e2e", "E2E-016 E2E-023",
       "Delivery and read receipts update nothing the user can see."),
    _f("no_retry_receipt", "e2e", "E2E-017",
       "A message that fails to decrypt is dropped without a retry receipt."),
    _f("ignore_retry_receipt", "e2e", "E2E-018",
       "Retry receipts for sent messages are acknowledged but not answered with a resend."),
    _f("silent_identity_change", "e2e", "E2E-019",
       "A peer's new identity key is trusted without a security notification."),
    _f("identity_notice_after_message", "e2e", "E2E-019",
       "The security notice for a new identity key is shown after the message that carried it."),
    _f("reuse_one_time_prekeys", "e2e", "E2E-020",
       "Every one-time pre-key batch restarts at id 1, reusing ids."),
    _f("no_prekey_replenish", "e2e", "E2E-020",
       "The `low_pre_keys` notification is ignored."),
    # e2e, issue 13 (every MUST proved by a fault)
    _f("one_time_prekey_kept", "e2e", "E2E-003",
       "One-time pre-keys are kept after their first use, so a second session on one opens."),
    _f("skip_window_1000", "e2e", "E2E-005",
       "Pairwise decryption skips at most 1000 message keys (the profile allows 2000)."),
    _f("bad_mac_drops_session", "e2e", "E2E-004",
       "A SignalMessage whose MAC does not verify is taken as a broken session: the session is "
       "deleted, so the sender's next message on it cannot be decrypted."),
    _f("text_as_extended_text", "e2e", "E2E-010",
       "Plain text is sent as `extended_text` without `context_info` (one code path for text and "
       "replies) instead of `conversation`."),
    _f("reply_quote_dropped", "e2e", "E2E-012",
       "A received reply is surfaced as plain text; its quoted message id and sender are dropped."),
    _f("reaction_arrival_order", "e2e", "E2E-013",
       "The reaction received last wins, whatever its `sender_timestamp_ms`."),
    # -- media (client) ----------------------------------------------------------------------
    _f("media_key_reuse", "media-client", "MED-001",
       "One media key per user is derived once and reused for every attachment."),
    _f("plaintext_media_upload", "media-client", "MED-003",
       "The client uploads the plaintext file instead of the encrypted blob."),
    _f("wrong_file_enc_sha256", "media-client", "MED-002",
       "`file_enc_sha256` is computed over the ciphertext without the 10-byte MAC."),
    _f("accept_tampered_media", "media-client", "MED-006",
       "Downloaded media is decrypted and surfaced without checking `file_enc_sha256` and the MAC."),
    _f("voice_note_as_audio", "media-client", "MED-015 MED-016",
       "Voice notes lose `ptt`: sent as plain audio and surfaced as plain audio."),
    _f("video_sent_as_document", "media-client", "MED-004",
       "The client has no video pipeline: a video the user sends goes out as a `document` message."),
    # -- consent, integrity and safety -------------------------------------------------------
    _f("send_without_consent", "consent", "CON-001",
       "After a reachability ping the client sends content without waiting for consent."),
    _f("ping_window_minutes", "consent", "CON-003",
       "The 24 h reachability-ping window is counted in minutes: a second ping goes out 24 "
       "minutes after the first."),
    _f("retry_after_not_opted_in", "consent", "CON-002",
       "A message refused with `not_opted_in` is resent automatically."),
    _f("ignore_consent_revocation", "consent", "CON-004",
       "`consent_revoked` is acknowledged but queued and new messages are still sent."),
    _f("ignore_blocklist", "consent", "CON-007 CON-013",
       "Messages from blocked users are surfaced (and get delivery receipts)."),
    _f("no_deletion_on_opt_out", "consent", "CON-008",
       "Opting out only disconnects; no deletion request is sent."),
    # consent, issue 13 (every MUST proved by a fault)
    _f("block_sent_on_reconnect_only", "consent", "CON-005",
       "A block or unblock made while connected is sent to G only at the next reconnection."),
    _f("blocklist_answer_not_applied", "consent", "CON-006",
       "G's `blocklist_get` answer is read but its users are not treated as blocked."),
    _f("no_backoff", "consent", "CON-010",
       "A stanza refused with `rate_limited` is resent at once."),
    _f("no_reenlistment", "consent", "CON-011",
       "After `un_enlisted` the client reconnects with its old login instead of enlisting again."),
    # -- profile 1.1.0 contradictions (issue 12) ----------------------------------------------
    _f("delivery_receipt_to_blocked", "consent", "CON-013",
       "Delivery receipts go out when a message is decrypted, before the blocklist is consulted: "
       "a blocked sender's messages are hidden but still get delivery receipts."),
    _f("media_get_requires_bearer", "media-server", "MED-018 MED-003",
       "The media GET/HEAD route sits behind the same bearer check as the upload route: a fetch "
       "without an `Authorization` header (as G's media proxy sends it) gets 401, so G cannot "
       "fetch what the client sends either."),
    _f("media_surface_no_document_caption", "media-client", "MED-017",
       "Received documents are surfaced without their caption (only images and videos keep one)."),
    _f("push_eddsa_unsupported", "push", "CHN-020",
       "The push verifier's algorithm table lacks EdDSA although the declaration lists it: "
       "RS256 and ES256 push tokens verify, EdDSA ones get 401."),
    # -- groups ------------------------------------------------------------------------------
    _f("group_fanout_pairwise", "groups", "GRP-002",
       "Group messages are sent as one pairwise message per participant (same id) instead of one `skmsg`."),
    _f("group_no_signature_check", "groups", "GRP-003",
       "Group messages are decrypted without verifying the sender's XEdDSA signature."),
    _f("group_no_rekey_on_removal", "groups", "GRP-005",
       "A `group_membership` removal updates the participants but keeps the old sender key."),
    _f("group_no_retry_receipt", "groups", "GRP-006",
       "A group message without a usable sender key is dropped without a retry receipt."),
    _f("group_receipt_without_group_id", "groups", "GRP-008",
       "Delivery and read receipts for group messages are sent without the `group_id`."),
    # groups, issue 13 (every MUST proved by a fault)
    _f("group_skip_window_1000", "groups", "GRP-004",
       "Group decryption skips at most 1000 chain iterations (the profile allows 2000)."),
    _f("group_removal_before_first_send_ignored", "groups", "GRP-001",
       "A removal that arrives before the client has a sender key in the group is dropped (there is "
       "no key to rotate), so the removed member still gets the first sender key."),
    _f("group_retry_resent_as_skmsg", "groups", "GRP-007",
       "A retry receipt for a group message is answered like a first send: the message goes to the "
       "whole group again as one `skmsg`, without the requester getting the sender key first."),
    # -- load (judged by `conformance load`, tests/load; not by the pytest suite) -------------
    _f("push_global_lock", "load", "LOAD-001 LOAD-002",
       "The push handler serialises on one global lock, holding it for 50 ms of work per push."),
    _f("push_wake_queue_drops", "load", "LOAD-003",
       "Wake-ups go through a queue of 2 served by one worker at 4/s; pushes past it are "
       "answered 200 and dropped."),
    _f("media_whole_blob_in_memory", "load", "LOAD-007",
       "Media answers read the whole blob into memory, and keep the last 64 read, instead of "
       "streaming from storage."),
    # -- h14: reaction revokes and typing indicators (issue 12) ------------------------------
    _f("reaction_revoke_ignored", "e2e", "E2E-013",
       "A received reaction with an empty emoji (a v1.0.3 reaction revoke) is dropped, so the "
       "sender's earlier reaction stays on the message."),
    _f("reaction_revoke_as_protocol_revoke", "e2e", "E2E-013",
       "Removing a reaction is sent as a `protocol` REVOKE whose key names the reacted-to message "
       "instead of a `reaction` with an empty emoji."),
    # missing required features of issue 12 (typing, aggregated read receipts, account deletion)
    _f("typing_every_keystroke", "e2e", "E2E-024",
       "Every keystroke the user makes sends another `composing` chatstate: no coalescing of "
       "repeats within 10 s."),
    _f("typing_ignores_blocklist", "e2e", "E2E-024",
       "Typing indicators skip the local blocklist, so a blocked user still sees the user typing."),
    _f("typing_from_blocked_surfaced", "e2e", "E2E-025",
       "Received typing indicators are surfaced without the blocklist check that messages get."),
    _f("read_receipt_per_message", "e2e", "E2E-023",
       "Reading several messages sends one `read` receipt per message id (the pre-v1.0.3 "
       "behaviour) instead of one receipt for the sender."),
    _f("read_receipt_first_id_only", "e2e", "E2E-016 E2E-023",
       "Of a received read receipt naming several ids, only the first is applied (WhatsApp's "
       "`id` attribute, not its `<list>` of further ids)."),
    _f("account_deletion_as_opt_out", "consent", "CON-014",
       "Deleting the account reuses the opt-out path: the deletion request says `opt_out` and the "
       "user's conversations stay on the device."),
    # -- h21: the wa binding (issue 14); judged with --wire wa -------------------------------
    _f("wa_wrong_header", "channel", "CHN-030",
       "wa: the connection header carries protocol version 5 (`WA 05 02`), an older WA header.",
       "wa"),
    _f("wa_frame_length_of_plaintext", "channel", "CHN-031",
       "wa: transport frames carry the plaintext's length, forgetting the 16-byte GCM tag.", "wa"),
    _f("wa_compressed_flag_lie", "channel", "CHN-032",
       "wa: every stanza's flag byte says zlib-deflated (2) although the node is not compressed.",
       "wa"),
    _f("wa_token_outside_dictionary", "channel", "CHN-033",
       "wa: nodes are written with a newer token table, so `text` goes out as token 240, which "
       "dictionary version 2 does not have.", "wa"),
    _f("wa_jid_without_integrator", "channel", "CHN-034",
       "wa: provider users' JIDs are written as plain `user@interop` pairs (JID_PAIR) instead of "
       "the interop JID with device and integrator.", "wa"),
    _f("wa_payload_without_token", "channel", "CHN-035",
       "wa: the ClientPayload's `interopData` lacks the user's JWT (`token`).", "wa"),
]

FAULTS: dict[str, Fault] = {f.name: f for f in _ALL}


class UnknownFaultError(ValueError):
    pass


class Faults:
    """The set of faults switched on for one provider instance."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        names = frozenset(names)
        unknown = sorted(names - FAULTS.keys())
        if unknown:
            raise UnknownFaultError(f"unknown fault(s): {', '.join(unknown)}")
        self.names = names

    def on(self, name: str) -> bool:
        if name not in FAULTS:  # a typo in the provider must not silently mean "off"
            raise UnknownFaultError(name)
        return name in self.names

    def __bool__(self) -> bool:
        return bool(self.names)

    def __repr__(self) -> str:
        return f"Faults({sorted(self.names)!r})"


def render_table() -> str:
    """The Markdown table of ``docs/reference-provider.md``."""
    lines = ["| fault | area | requirements | description |", "|---|---|---|---|"]
    for f in _ALL:
        lines.append(f"| `{f.name}` | {f.area} | {', '.join(f.requirements)} | {f.description} |")
    return "\n".join(lines) + "\n"
