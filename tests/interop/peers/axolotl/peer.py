"""JSON-lines interop peer around PyPI python-axolotl 0.2.3 (Signal Protocol v3, legacy sender keys).

Run it with an interpreter that has ``python-axolotl==0.2.3`` and ``protobuf==3.20.3`` installed
(see ``tests/interop/peers_client.py``: ``ensure_axolotl_peer``); it must not run in the project's
own venv, whose protobuf is far too new for axolotl's generated ``_pb2`` modules.

One JSON request per stdin line -> one JSON response per stdout line. Every response has
``"ok": true|false``; failures carry ``"error"`` (a short class name) and ``"message"``. Binary
values are hex strings; public keys are the 33-byte 0x05-prefixed form. A request's ``"id"`` (if
any) is echoed back. The peer never exits on a bad request; it stops on ``{"op":"quit"}`` or end
of input. stdout carries responses only (``sys.stdout`` is pointed at stderr for everything else).

All records (sessions, pre-keys, sender keys) are stored serialised and deserialised on every
load, so a failed decryption never leaves a half-updated state behind.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

RESPONSES = sys.stdout
sys.stdout = sys.stderr  # anything the library prints must not corrupt the response stream
logging.basicConfig(stream=sys.stderr, level=logging.ERROR)

try:  # pragma: no cover - import problems are reported over the protocol, not as a crash
    from axolotl.duplicatemessagexception import DuplicateMessageException
    from axolotl.ecc.curve import Curve
    from axolotl.groups.groupcipher import GroupCipher
    from axolotl.groups.groupsessionbuilder import GroupSessionBuilder
    from axolotl.groups.senderkeyname import SenderKeyName
    from axolotl.groups.state.senderkeyrecord import SenderKeyRecord
    from axolotl.groups.state.senderkeystore import SenderKeyStore
    from axolotl.axolotladdress import AxolotlAddress
    from axolotl.identitykey import IdentityKey
    from axolotl.invalidkeyexception import InvalidKeyException
    from axolotl.invalidkeyidexception import InvalidKeyIdException
    from axolotl.invalidmessageexception import InvalidMessageException
    from axolotl.invalidversionexception import InvalidVersionException
    from axolotl.legacymessageexception import LegacyMessageException
    from axolotl.nosessionexception import NoSessionException
    from axolotl.protocol.prekeywhispermessage import PreKeyWhisperMessage
    from axolotl.protocol.senderkeydistributionmessage import SenderKeyDistributionMessage
    from axolotl.protocol.whispermessage import WhisperMessage
    from axolotl.sessionbuilder import SessionBuilder
    from axolotl.sessioncipher import SessionCipher
    from axolotl.state.axolotlstore import AxolotlStore
    from axolotl.state.prekeybundle import PreKeyBundle
    from axolotl.state.prekeyrecord import PreKeyRecord
    from axolotl.state.sessionrecord import SessionRecord
    from axolotl.state.signedprekeyrecord import SignedPreKeyRecord
    from axolotl.untrustedidentityexception import UntrustedIdentityException
    from axolotl.util.keyhelper import KeyHelper

    IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001
    IMPORT_ERROR = "%s: %s" % (type(exc).__name__, exc)

IMPL = "python-axolotl-0.2.3"
OPS = [
    "ops", "init", "identity", "bundle", "process_bundle", "encrypt", "decrypt",
    "group_create", "group_process", "group_encrypt", "group_decrypt", "quit",
]
DEFAULT_DEVICE_ID = 1


class PeerFailure(Exception):
    def __init__(self, error_class, message):
        super().__init__(message)
        self.error_class = error_class


def bad_request(message):
    return PeerFailure("BadRequest", message)


# ------------------------------------------------------------------ field helpers

def hex_field(obj, field):
    value = obj.get(field)
    if not isinstance(value, str):
        raise bad_request("field %s must be an even-length hex string" % field)
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise bad_request("field %s must be an even-length hex string" % field) from None


def int_field(obj, field, optional=False, nullable=False):
    value = obj.get(field)
    if value is None:
        if optional or (nullable and field in obj):
            return None
        raise bad_request("missing field %s" % field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request("field %s must be a non-negative integer" % field)
    return value


def str_field(obj, field):
    value = obj.get(field)
    if not isinstance(value, str) or not value:
        raise bad_request("field %s must be a non-empty string" % field)
    return value


def public_key_field(obj, field):
    raw = hex_field(obj, field)
    if len(raw) != 33 or raw[0] != 0x05:
        raise PeerFailure("InvalidKey", "%s must be a 33-byte 0x05-prefixed public key" % field)
    return Curve.decodePoint(bytearray(raw), 0)


# ------------------------------------------------------------------ storage

class SerialisedStore(AxolotlStore, SenderKeyStore):
    """Like axolotl's InMemoryAxolotlStore, but every record is kept serialised."""

    def __init__(self, identity_key_pair, registration_id):
        self.identity_key_pair = identity_key_pair
        self.registration_id = registration_id
        self.trusted = {}        # recipient name -> serialised identity key (trust on first use)
        self.pre_keys = {}       # id -> bytes
        self.signed_pre_keys = {}
        self.sessions = {}       # (name, device) -> bytes
        self.sender_keys = {}    # SenderKeyName.serialize() -> bytes

    # IdentityKeyStore
    def getIdentityKeyPair(self):
        return self.identity_key_pair

    def getLocalRegistrationId(self):
        return self.registration_id

    def saveIdentity(self, recipientId, identityKey):
        self.trusted[recipientId] = identityKey.serialize()

    def isTrustedIdentity(self, recipientId, identityKey):
        pinned = self.trusted.get(recipientId)
        return pinned is None or pinned == identityKey.serialize()

    # PreKeyStore
    def loadPreKey(self, preKeyId):
        if preKeyId not in self.pre_keys:
            raise InvalidKeyIdException("No such prekeyRecord! %s" % preKeyId)
        return PreKeyRecord(serialized=self.pre_keys[preKeyId])

    def storePreKey(self, preKeyId, preKeyRecord):
        self.pre_keys[preKeyId] = preKeyRecord.serialize()

    def containsPreKey(self, preKeyId):
        return preKeyId in self.pre_keys

    def removePreKey(self, preKeyId):
        self.pre_keys.pop(preKeyId, None)

    # SignedPreKeyStore
    def loadSignedPreKey(self, signedPreKeyId):
        if signedPreKeyId not in self.signed_pre_keys:
            raise InvalidKeyIdException("No such signedprekeyrecord! %s" % signedPreKeyId)
        return SignedPreKeyRecord(serialized=self.signed_pre_keys[signedPreKeyId])

    def loadSignedPreKeys(self):
        return [SignedPreKeyRecord(serialized=s) for s in self.signed_pre_keys.values()]

    def storeSignedPreKey(self, signedPreKeyId, signedPreKeyRecord):
        self.signed_pre_keys[signedPreKeyId] = signedPreKeyRecord.serialize()

    def containsSignedPreKey(self, signedPreKeyId):
        return signedPreKeyId in self.signed_pre_keys

    def removeSignedPreKey(self, signedPreKeyId):
        self.signed_pre_keys.pop(signedPreKeyId, None)

    # SessionStore
    def loadSession(self, recipientId, deviceId):
        raw = self.sessions.get((recipientId, deviceId))
        return SessionRecord(serialized=raw) if raw is not None else SessionRecord()

    def getSubDeviceSessions(self, recipientId):
        return [d for (n, d) in self.sessions if n == recipientId and d != DEFAULT_DEVICE_ID]

    def storeSession(self, recipientId, deviceId, sessionRecord):
        self.sessions[(recipientId, deviceId)] = sessionRecord.serialize()

    def containsSession(self, recipientId, deviceId):
        return (recipientId, deviceId) in self.sessions

    def deleteSession(self, recipientId, deviceId):
        self.sessions.pop((recipientId, deviceId), None)

    def deleteAllSessions(self, recipientId):
        for key in [k for k in self.sessions if k[0] == recipientId]:
            del self.sessions[key]

    # SenderKeyStore
    def storeSenderKey(self, senderKeyName, senderKeyRecord):
        self.sender_keys[senderKeyName.serialize()] = senderKeyRecord.serialize()

    def loadSenderKey(self, senderKeyName):
        raw = self.sender_keys.get(senderKeyName.serialize())
        return SenderKeyRecord(serialized=raw) if raw is not None else SenderKeyRecord()


# ------------------------------------------------------------------ peer

class Peer:
    def __init__(self):
        self.store = None
        self.name = None
        self.group_senders = {}  # group -> sender name used by group_create

    def require_init(self):
        if self.store is None:
            raise bad_request('peer not initialised: send {"op":"init"} first')
        return self.store

    @staticmethod
    def address(req):
        name = str_field(req, "peer")
        device = DEFAULT_DEVICE_ID if req.get("device_id") is None else int_field(req, "device_id")
        return name, device

    def cipher(self, name, device):
        st = self.store
        return SessionCipher(st, st, st, st, name, device)

    # ops --------------------------------------------------------------
    def op_ops(self, req):
        return {"ops": OPS, "impl": IMPL}

    def op_init(self, req):
        name = str_field(req, "name")
        registration_id = int_field(req, "registration_id", optional=True)
        if registration_id is None:
            registration_id = KeyHelper.generateRegistrationId()
        self.store = SerialisedStore(KeyHelper.generateIdentityKeyPair(), registration_id)
        self.name = name
        self.group_senders = {}
        return {
            "name": name,
            "registration_id": registration_id,
            "identity_key": self.store.identity_key_pair.getPublicKey().serialize().hex(),
        }

    def op_identity(self, req):
        st = self.require_init()
        return {
            "name": self.name,
            "registration_id": st.registration_id,
            "identity_key": st.identity_key_pair.getPublicKey().serialize().hex(),
        }

    def op_bundle(self, req):
        st = self.require_init()
        signed_pre_key_id = int_field(req, "signed_pre_key_id")
        pre_key_id = int_field(req, "pre_key_id", nullable=True)
        spk = KeyHelper.generateSignedPreKey(st.identity_key_pair, signed_pre_key_id)
        st.storeSignedPreKey(signed_pre_key_id, spk)
        out = {
            "registration_id": st.registration_id,
            "identity_key": st.identity_key_pair.getPublicKey().serialize().hex(),
            "signed_pre_key_id": signed_pre_key_id,
            "signed_pre_key": spk.getKeyPair().getPublicKey().serialize().hex(),
            "signed_pre_key_signature": bytes(spk.getSignature()).hex(),
            "pre_key_id": None,
            "pre_key": None,
        }
        if pre_key_id is not None:
            record = PreKeyRecord(pre_key_id, Curve.generateKeyPair())
            st.storePreKey(pre_key_id, record)
            out["pre_key_id"] = pre_key_id
            out["pre_key"] = record.getKeyPair().getPublicKey().serialize().hex()
        return out

    def op_process_bundle(self, req):
        st = self.require_init()
        name, device = self.address(req)
        b = req.get("bundle")
        if not isinstance(b, dict):
            raise bad_request("missing object field bundle")
        identity = IdentityKey(public_key_field(b, "identity_key"))
        pre_key_id = int_field(b, "pre_key_id", nullable=True)
        pre_key = None
        if pre_key_id is not None and b.get("pre_key") is not None:
            pre_key = public_key_field(b, "pre_key")
        else:
            pre_key_id = None
        bundle = PreKeyBundle(
            int_field(b, "registration_id"), device, pre_key_id, pre_key,
            int_field(b, "signed_pre_key_id"), public_key_field(b, "signed_pre_key"),
            hex_field(b, "signed_pre_key_signature"), identity,
        )
        SessionBuilder(st, st, st, st, name, device).processPreKeyBundle(bundle)
        # axolotl 0.2.3 does not save the identity here (libsignal-java does); pin it ourselves.
        if st.isTrustedIdentity(name, identity):
            st.saveIdentity(name, identity)
        return {}

    def op_encrypt(self, req):
        st = self.require_init()
        name, device = self.address(req)
        plaintext = hex_field(req, "plaintext")
        if not st.containsSession(name, device):
            raise NoSessionException("No session for: %s, %s" % (name, device))
        msg = self.cipher(name, device).encrypt(plaintext)
        if isinstance(msg, PreKeyWhisperMessage):
            kind = "pkmsg"
        elif isinstance(msg, WhisperMessage):
            kind = "msg"
        else:  # pragma: no cover
            raise PeerFailure("Internal", "unexpected ciphertext class %s" % type(msg).__name__)
        return {"type": kind, "body": bytes(msg.serialize()).hex()}

    def op_decrypt(self, req):
        self.require_init()
        name, device = self.address(req)
        body = hex_field(req, "body")
        kind = req.get("type")
        if not body:
            raise PeerFailure("InvalidMessage", "empty message body")
        if kind not in ("pkmsg", "msg"):
            raise bad_request('field type must be "pkmsg" or "msg"')
        cipher = self.cipher(name, device)
        # SessionBuilder.process() saves the sender's identity key BEFORE the MAC is checked, so
        # a forged PreKey message would pin a bogus identity and lock the real sender out with
        # UntrustedIdentity. Keep the peer transactional: undo the pin if decryption fails.
        trusted_before = dict(self.store.trusted)
        try:
            if kind == "pkmsg":
                plaintext = cipher.decryptPkmsg(PreKeyWhisperMessage(serialized=body))
            else:
                plaintext = cipher.decryptMsg(WhisperMessage(serialized=body))
        except BaseException:
            self.store.trusted = trusted_before
            raise
        return {"plaintext": bytes(plaintext).hex()}

    def sender_key_name(self, group, sender):
        return SenderKeyName(group, AxolotlAddress(sender, DEFAULT_DEVICE_ID))

    def op_group_create(self, req):
        st = self.require_init()
        group = str_field(req, "group")
        sender = self.name if req.get("sender") is None else str_field(req, "sender")
        skdm = GroupSessionBuilder(st).create(self.sender_key_name(group, sender))
        self.group_senders[group] = sender
        return {"skdm": bytes(skdm.serialize()).hex()}

    def op_group_process(self, req):
        st = self.require_init()
        group = str_field(req, "group")
        sender = str_field(req, "sender")
        skdm = SenderKeyDistributionMessage(serialized=hex_field(req, "skdm"))
        GroupSessionBuilder(st).process(self.sender_key_name(group, sender), skdm)
        return {}

    def op_group_encrypt(self, req):
        st = self.require_init()
        group = str_field(req, "group")
        if req.get("sender") is not None:
            sender = str_field(req, "sender")
        else:
            sender = self.group_senders.get(group, self.name)
        name = self.sender_key_name(group, sender)
        if st.loadSenderKey(name).isEmpty():
            raise NoSessionException("no sender key for %s: send group_create first" % name.serialize())
        body = GroupCipher(st, name).encrypt(hex_field(req, "plaintext"))
        return {"body": bytes(body).hex()}

    def op_group_decrypt(self, req):
        st = self.require_init()
        group = str_field(req, "group")
        sender = str_field(req, "sender")
        body = hex_field(req, "body")
        plaintext = GroupCipher(st, self.sender_key_name(group, sender)).decrypt(body)
        return {"plaintext": bytes(plaintext).hex()}


DECRYPT_OPS = {"decrypt", "group_decrypt", "group_process"}


def error_class_of(exc, op):
    if isinstance(exc, PeerFailure):
        return exc.error_class
    if isinstance(exc, UntrustedIdentityException):
        return "UntrustedIdentity"
    if isinstance(exc, DuplicateMessageException):
        return "DuplicateMessage"
    if isinstance(exc, NoSessionException):
        return "NoSession"
    if isinstance(exc, InvalidKeyIdException):
        return "InvalidKeyId"
    if isinstance(exc, (InvalidVersionException, LegacyMessageException)):
        return "InvalidVersion"
    text = str(exc).lower()
    if isinstance(exc, InvalidKeyException):
        return "InvalidSignature" if "signature" in text else "InvalidKey"
    if isinstance(exc, InvalidMessageException):
        if "bad mac" in text:
            return "InvalidMac"
        if "signature" in text:
            return "InvalidSignature"
        if "version" in text or "legacy" in text:
            return "InvalidVersion"
        if "no keys for" in text or "no key state" in text:
            return "NoSession"
        return "InvalidMessage"
    return "InvalidMessage" if op in DECRYPT_OPS else "Internal"


def handle(peer, line):
    try:
        req = json.loads(line)
    except ValueError as exc:
        return {"ok": False, "error": "BadRequest", "message": "request is not valid JSON: %s" % exc}
    if not isinstance(req, dict):
        return {"ok": False, "error": "BadRequest", "message": "request must be a JSON object"}
    echo = {"id": req["id"]} if "id" in req else {}
    op = req.get("op")
    if op == "quit":
        return dict(ok=True, quit=True, **echo)
    if IMPORT_ERROR is not None:
        return dict(ok=False, error="Internal", message="cannot import axolotl: " + IMPORT_ERROR, **echo)
    handler = getattr(peer, "op_%s" % op, None) if isinstance(op, str) and op in OPS else None
    if handler is None:
        return dict(ok=False, error="Unsupported", message="unknown op %s" % json.dumps(op), **echo)
    try:
        result = handler(req)
    except Exception as exc:  # noqa: BLE001 - the peer must answer, never crash
        error = error_class_of(exc, op)
        if error == "Internal":
            traceback.print_exc(file=sys.stderr)
        if isinstance(exc, UntrustedIdentityException):
            message = "untrusted identity key for %s: %s" % (
                exc.getName(), bytes(exc.getIdentityKey().serialize()).hex())
        else:
            message = str(exc) or type(exc).__name__
        return dict(ok=False, error=error, message=message, **echo)
    return dict(ok=True, **echo, **result)


def main():
    peer = Peer()
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        try:
            response = handle(peer, line)
        except Exception as exc:  # noqa: BLE001
            response = {"ok": False, "error": "Internal", "message": str(exc)}
        RESPONSES.write(json.dumps(response) + "\n")
        RESPONSES.flush()
        if response.get("quit"):
            break


if __name__ == "__main__":
    main()
