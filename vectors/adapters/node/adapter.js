#!/usr/bin/env node
// Vectors adapter around npm `libsignal` 6.0.0 (WhiskeySockets/libsignal-node), protocol v3.
//
// Speaks the JSON-lines adapter protocol of vectors/README.md on stdin/stdout. It calls the
// package's own code paths wherever the package has one:
//   xeddsa_sign / xeddsa_verify   libsignal/src/curve (curve25519-js underneath)
//   x3dh                          SessionBuilder.prototype.initSession, observing the master
//                                 secret it derives through libsignal/src/crypto.deriveSecrets
//   message_keys                  SessionCipher.prototype.fillMessageKeys + crypto.deriveSecrets
//   ratchet_decrypt_sequence      SessionBuilder / SessionCipher with an in-memory store
//   wire_decode (1:1 kinds)       libsignal/src/protobufs + the package's version rule and MAC
// and answers "unsupported" for the rest (sender keys, media, padding, Noise, JWT: the package
// has none of them).
//
// Adapter-side additions, all documented in vectors/README.md ("The npm libsignal adapter"):
//   * x3dh as initiator verifies the signed pre-key signature with curve.verifySignature,
//     because initOutgoing passes isInit=true and skips it (research §12 item 6);
//   * wire_decode checks field presence and key encodings itself: the generated protobuf code
//     has no required fields, the package only fails later, when it uses a missing value;
//   * sessions are kept serialised between calls, as research §12 item 9 requires.
'use strict';

// Everything the package logs goes to stderr: stdout carries the protocol only.
for (const k of ['log', 'info', 'warn', 'error', 'debug']) {
  console[k] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

const readline = require('readline');
const curve = require('libsignal/src/curve');
const crypto = require('libsignal/src/crypto');
const protobufs = require('libsignal/src/protobufs');
const SessionBuilder = require('libsignal/src/session_builder');
const SessionCipher = require('libsignal/src/session_cipher');
const SessionRecord = require('libsignal/src/session_record');
const ProtocolAddress = require('libsignal/src/protocol_address');
const pkg = require('libsignal/package.json');

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => Buffer.from(s || '', 'hex');

class Rejected extends Error {
  constructor(error, message, extra) { super(message); this.error = error; this.extra = extra || {}; }
}

function keyPair(privHex) {
  const privKey = unhex(privHex);
  return { privKey, pubKey: curve.getPublicFromPrivateKey(privKey) };
}

// ---- scripted key generation: the key pairs a party "generates", in order -----------------
const realGenerateKeyPair = curve.generateKeyPair;
let keyQueue = null;
curve.generateKeyPair = function () {
  if (keyQueue === null) return realGenerateKeyPair();
  if (keyQueue.pos >= keyQueue.keys.length) {
    throw new Rejected('bad_request', 'ratchet_private_keys exhausted');
  }
  return keyPair(keyQueue.keys[keyQueue.pos++]);
};

// ---- observing the package's own KDF calls -------------------------------------------------
const realDeriveSecrets = crypto.deriveSecrets;
let kdfLog = null;
crypto.deriveSecrets = function (input, salt, info, chunks) {
  const out = realDeriveSecrets(input, salt, info, chunks);
  if (kdfLog) kdfLog.push({ info: info.toString(), out });
  return out;
};

function storage(identity, registrationId, preKeys, signedPreKeys) {
  const sessions = new Map();
  return {
    async getOurIdentity() { return identity; },
    async getOurRegistrationId() { return registrationId; },
    async isTrustedIdentity() { return true; },
    async loadPreKey(id) { return preKeys.get(id); },
    async removePreKey(id) { preKeys.delete(id); },
    async loadSignedPreKey(id) { return signedPreKeys.get(id); },
    // Serialised between calls, so a failed decryption cannot leave a mutated live session.
    async loadSession(id) {
      const s = sessions.get(id);
      return s === undefined ? undefined : SessionRecord.deserialize(JSON.parse(s));
    },
    async storeSession(id, record) { sessions.set(id, JSON.stringify(record.serialize())); },
  };
}

// ---- ops -----------------------------------------------------------------------------------
const ops = {};

ops.xeddsa_sign = (req) => ({ signature: hex(curve.calculateSignature(unhex(req.private_key), unhex(req.message))) });

ops.xeddsa_verify = (req) => {
  try {
    return { valid: Boolean(curve.verifySignature(unhex(req.public_key), unhex(req.message), unhex(req.signature))) };
  } catch (e) {
    return { valid: false, reason: String(e.message) };
  }
};

ops.x3dh = async (req) => {
  const builder = new SessionBuilder(null, null);
  let ourEph, ourSigned, theirEph, theirSigned, isInit;
  const identity = keyPair(req.identity_private);
  if (req.role === 'initiator') {
    // npm libsignal's initOutgoing does not verify this signature (isInit = true); we must.
    const ok = curve.verifySignature(unhex(req.their_identity_key), unhex(req.their_signed_pre_key),
                                     unhex(req.their_signed_pre_key_signature), false);
    if (!ok) throw new Rejected('InvalidSignature', 'signed pre-key signature does not verify');
    isInit = true;
    ourEph = keyPair(req.base_private);
    theirEph = req.their_one_time_pre_key ? unhex(req.their_one_time_pre_key) : undefined;
    theirSigned = unhex(req.their_signed_pre_key);
    keyQueue = { keys: [req.base_private], pos: 0 };  // the initial sending ratchet (not reported)
  } else if (req.role === 'responder') {
    isInit = false;
    ourEph = req.one_time_pre_key_private ? keyPair(req.one_time_pre_key_private) : undefined;
    ourSigned = keyPair(req.signed_pre_key_private);
    theirEph = unhex(req.their_base_key);
  } else {
    throw new Rejected('bad_request', `unknown role ${req.role}`);
  }
  builder.storage = { getOurIdentity: async () => identity };
  kdfLog = [];
  try {
    await builder.initSession(isInit, ourEph, ourSigned, unhex(req.their_identity_key), theirEph, theirSigned, 0);
    const master = kdfLog.find((e) => e.info === 'WhisperText');
    return { root_key: hex(master.out[0]), chain_key: hex(master.out[1]) };
  } finally {
    kdfLog = null;
    keyQueue = null;
  }
};

ops.message_keys = (req) => {
  const chain = { chainKey: { counter: -1, key: unhex(req.chain_key) }, messageKeys: {} };
  new SessionCipher(null, new ProtocolAddress('chain', 1)).fillMessageKeys(chain, 0);
  const keys = crypto.deriveSecrets(chain.messageKeys[0], Buffer.alloc(32), Buffer.from('WhisperMessageKeys'));
  return { cipher_key: hex(keys[0]), mac_key: hex(keys[1]), iv: hex(keys[2].slice(0, 16)),
           next_chain_key: hex(chain.chainKey.key) };
};

ops.ratchet_decrypt_sequence = async (req) => {
  const identity = keyPair(req.identity_private);
  const preKeys = new Map();
  const signedPreKeys = new Map();
  let keys = req.ratchet_private_keys || [];
  if (req.role === 'responder') {
    signedPreKeys.set(req.signed_pre_key_id, keyPair(req.signed_pre_key_private));
    if (req.one_time_pre_key_private) preKeys.set(req.one_time_pre_key_id, keyPair(req.one_time_pre_key_private));
  }
  const store = storage(identity, req.registration_id, preKeys, signedPreKeys);
  const addr = new ProtocolAddress('peer', 1);
  try {
    if (req.role === 'initiator') {
      keyQueue = { keys: [req.base_private, req.sending_ratchet_private, ...keys], pos: 0 };
      const device = {
        identityKey: unhex(req.their_identity_key), registrationId: req.their_registration_id,
        signedPreKey: { keyId: req.their_signed_pre_key_id, publicKey: unhex(req.their_signed_pre_key),
                        signature: unhex(req.their_signed_pre_key_signature) },
      };
      if (req.their_one_time_pre_key) {
        device.preKey = { keyId: req.their_one_time_pre_key_id, publicKey: unhex(req.their_one_time_pre_key) };
      }
      await new SessionBuilder(store, addr).initOutgoing(device);
    } else {
      keyQueue = { keys, pos: 0 };
    }
    const cipher = new SessionCipher(store, addr);
    const results = [];
    for (const m of req.messages) {
      const mark = keyQueue.pos;
      try {
        const body = unhex(m.body);
        const pt = m.type === 'pkmsg' ? await cipher.decryptPreKeyWhisperMessage(body)
                                      : await cipher.decryptWhisperMessage(body);
        results.push({ ok: true, plaintext: hex(pt) });
      } catch (e) {
        if (e instanceof Rejected && e.error === 'bad_request') throw e;
        keyQueue.pos = mark;  // keys drawn for a rejected message go back to the queue
        results.push({ ok: false, error: e.name || 'Error', message: String(e.message) });
      }
    }
    return { results };
  } finally {
    keyQueue = null;
  }
};

function checkKey(buf, what) {
  if (!buf || buf.length !== 33 || buf[0] !== 5) throw new Rejected('InvalidKey', `${what}: not a 33-byte 0x05 key`);
  return buf;
}

function checkVersion(byte, what) {
  // The package's rule (session_cipher.js): reject when the low nibble > 3 or the high nibble < 3.
  if (byte === undefined || (byte & 0xf) > 3 || (byte >> 4) < 3) {
    throw new Rejected('InvalidVersion', `${what}: incompatible version byte ${byte}`);
  }
}

function decodeSignalMessage(data, req) {
  checkVersion(data[0], 'WhisperMessage');
  if (data.length < 1 + 8 + 1) throw new Rejected('InvalidMessage', 'WhisperMessage too short');
  const proto = data.slice(1, -8);
  const mac = data.slice(-8);
  const m = protobufs.WhisperMessage.decode(proto);
  for (const f of ['ephemeralKey', 'counter', 'ciphertext']) {
    if (!Object.prototype.hasOwnProperty.call(m, f)) throw new Rejected('InvalidMessage', `missing ${f}`);
  }
  checkKey(Buffer.from(m.ephemeralKey), 'ratchet key');
  if (req.mac_key) {
    // MAC input exactly as doDecryptWhisperMessage builds it (note: a constant version byte 0x33).
    const macInput = Buffer.alloc(proto.byteLength + 33 * 2 + 1);
    macInput.set(unhex(req.sender_identity));
    macInput.set(unhex(req.receiver_identity), 33);
    macInput[33 * 2] = (3 << 4) | 3;
    macInput.set(proto, 33 * 2 + 1);
    crypto.verifyMAC(macInput, unhex(req.mac_key), mac, 8);
  }
  return { version: data[0], ratchet_key: hex(m.ephemeralKey), counter: m.counter,
           previous_counter: m.previousCounter || 0, ciphertext: hex(m.ciphertext), mac: hex(mac) };
}

ops.wire_decode = (req) => {
  const data = unhex(req.data);
  if (req.kind === 'signal_message') return { fields: decodeSignalMessage(data, req) };
  if (req.kind === 'prekey_signal_message') {
    checkVersion(data[0], 'PreKeyWhisperMessage');
    const p = protobufs.PreKeyWhisperMessage.decode(data.slice(1));
    for (const f of ['baseKey', 'identityKey', 'message', 'signedPreKeyId']) {
      if (!Object.prototype.hasOwnProperty.call(p, f)) throw new Rejected('InvalidMessage', `missing ${f}`);
    }
    checkKey(Buffer.from(p.baseKey), 'base key');
    checkKey(Buffer.from(p.identityKey), 'identity key');
    const inner = Buffer.from(p.message);
    decodeSignalMessage(inner, req);
    return { fields: {
      version: data[0], registration_id: p.registrationId || 0,
      pre_key_id: Object.prototype.hasOwnProperty.call(p, 'preKeyId') ? p.preKeyId : null,
      signed_pre_key_id: p.signedPreKeyId, base_key: hex(p.baseKey), identity_key: hex(p.identityKey),
      message: hex(inner),
    } };
  }
  throw new Rejected('unsupported', `npm libsignal has no ${req.kind} (no sender keys)`);
};

const INFO = {
  ok: true,
  ops: Object.keys(ops).sort(),
  implementation: { name: 'npm libsignal (WhiskeySockets/libsignal-node)', version: pkg.version },
  capabilities: { xeddsa_sign_uses_z: false },
  // Vectors with these flags fail with this package for documented reasons (vectors/README.md).
  known_deviations: {
    ScalarTooLarge: 'curve25519-js (TweetNaCl) does not reject s >= 2^253; it accepts s + k*L',
    NonCanonicalBaseKey: 'Node/OpenSSL X25519 masks bit 255 of a peer key; the package has no canonical check',
    Version4WithoutKyber: 'decryptPreKeyWhisperMessage only requires high nibble >= 3 and low nibble <= 3, so it takes 0x43',
  },
};

async function handle(req) {
  if (req.op === 'ops') return INFO;
  const fn = ops[req.op];
  if (!fn) return { ok: false, error: 'unsupported', message: `npm libsignal adapter: no op ${req.op}` };
  try {
    return { ok: true, ...(await fn(req)) };
  } catch (e) {
    if (e instanceof Rejected) return { ok: false, error: e.error, message: e.message, ...e.extra };
    return { ok: false, error: e.name || 'Error', message: String(e.message) };
  }
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let req;
    let resp;
    try {
      req = JSON.parse(line);
      resp = await handle(req);
    } catch (e) {
      resp = { ok: false, error: 'bad_request', message: String(e.message) };
    }
    if (req && req.id !== undefined) resp.id = req.id;
    process.stdout.write(JSON.stringify(resp) + '\n');
  });
});
