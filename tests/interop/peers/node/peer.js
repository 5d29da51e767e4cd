'use strict';
// JSON-lines interop peer around npm `libsignal` 6.0.0 (pure-JS Signal Protocol v3).
//
// One JSON request per stdin line -> one JSON response per stdout line. Every response has
// "ok": true|false; failures carry "error" (a short class name) and "message". Binary values
// are lowercase hex strings; public keys are the 33-byte 0x05-prefixed form. A request's "id"
// (if any) is echoed back. The peer never exits on a bad request; it stops on {"op":"quit"} or
// end of input. stdout carries responses only: library logging goes to stderr.
//
// Storage keeps every session record SERIALISED (JSON) and hands out a fresh deserialised copy
// on every load: npm libsignal advances the ratchet before it checks the MAC, so a store that
// returned live objects would let a forged message corrupt the session.

const util = require('util');
const readline = require('readline');

// Route everything the library logs (console.info/log go to stdout by default) to stderr.
for (const level of ['log', 'info', 'debug', 'warn', 'error', 'trace']) {
    console[level] = (...args) => process.stderr.write(util.format(...args) + '\n');
}

const libsignal = require('libsignal');
const { keyhelper, ProtocolAddress, SessionBuilder, SessionCipher, SessionRecord } = libsignal;

const IMPL = 'npm-libsignal-' + require('libsignal/package.json').version;
const OPS = ['ops', 'init', 'identity', 'bundle', 'process_bundle', 'encrypt', 'decrypt', 'quit'];
const DEFAULT_DEVICE_ID = 1;

class PeerFailure extends Error {
    constructor(errorClass, message) {
        super(message);
        this.errorClass = errorClass;
    }
}

function badRequest(message) {
    return new PeerFailure('BadRequest', message);
}

// ---------------------------------------------------------------- hex / field helpers

function hexToBuf(value, field) {
    if (typeof value !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(value)) {
        throw badRequest(`field ${field} must be an even-length hex string`);
    }
    return Buffer.from(value, 'hex');
}

function bufToHex(value) {
    if (typeof value === 'string') {  // older releases return binary strings
        return Buffer.from(value, 'binary').toString('hex');
    }
    return Buffer.from(value).toString('hex');
}

function intField(req, field, { optional = false, nullable = false } = {}) {
    const v = req[field];
    if (v === undefined || (v === null && nullable)) {
        if (optional || nullable) return null;
        throw badRequest(`missing field ${field}`);
    }
    if (!Number.isSafeInteger(v) || v < 0) {
        throw badRequest(`field ${field} must be a non-negative integer`);
    }
    return v;
}

function strField(req, field) {
    const v = req[field];
    if (typeof v !== 'string' || v.length === 0) {
        throw badRequest(`field ${field} must be a non-empty string`);
    }
    return v;
}

function publicKeyField(obj, field) {
    const b = hexToBuf(obj[field], field);
    if (b.length !== 33 || b[0] !== 0x05) {
        throw new PeerFailure('InvalidKey', `${field} must be a 33-byte 0x05-prefixed public key`);
    }
    return b;
}

// ---------------------------------------------------------------- storage

class MapStorage {
    constructor(identity, registrationId) {
        this.identity = identity;              // {pubKey, privKey}
        this.registrationId = registrationId;
        this.sessions = new Map();             // "name.device" -> JSON string
        this.preKeys = new Map();              // id -> {pubKey, privKey}
        this.signedPreKeys = new Map();        // id -> {pubKey, privKey}
        this.trusted = new Map();              // name -> identity key hex (trust on first use)
    }

    static nameOf(id) {
        // The library passes the bare name on the outgoing path and "name.device" on the
        // incoming path (session_builder.js); names cannot contain '.', so strip the suffix.
        return String(id).replace(/\.\d+$/, '');
    }

    async getOurIdentity() {
        return { pubKey: Buffer.from(this.identity.pubKey), privKey: Buffer.from(this.identity.privKey) };
    }

    async getOurRegistrationId() {
        return this.registrationId;
    }

    async isTrustedIdentity(id, identityKey) {
        const pinned = this.trusted.get(MapStorage.nameOf(id));
        return pinned === undefined || pinned === bufToHex(identityKey);
    }

    pinIdentity(name, identityKey) {
        name = MapStorage.nameOf(name);
        if (!this.trusted.has(name)) {
            this.trusted.set(name, bufToHex(identityKey));
        }
    }

    async loadSession(fqAddr) {
        const serialised = this.sessions.get(fqAddr);
        return serialised === undefined ? undefined : SessionRecord.deserialize(JSON.parse(serialised));
    }

    async storeSession(fqAddr, record) {
        this.sessions.set(fqAddr, JSON.stringify(record.serialize()));
    }

    async loadPreKey(id) {
        const kp = this.preKeys.get(id);
        return kp && { pubKey: Buffer.from(kp.pubKey), privKey: Buffer.from(kp.privKey) };
    }

    async removePreKey(id) {
        this.preKeys.delete(id);
    }

    async loadSignedPreKey(id) {
        const kp = this.signedPreKeys.get(id);
        return kp && { pubKey: Buffer.from(kp.pubKey), privKey: Buffer.from(kp.privKey) };
    }
}

// ---------------------------------------------------------------- cipher with precise errors

class PeerSessionCipher extends SessionCipher {
    // The library version tries every session, logs each failure to the console and throws a
    // generic "No matching sessions found" SessionError, hiding whether the cause was a
    // duplicate or a bad MAC. This override keeps the cause. It also restores a session that
    // a failed attempt mutated (the ratchet is stepped before the MAC check) so that a later
    // success with another session does not store the damage.
    async decryptWithSessions(data, sessions) {
        if (!sessions.length) {
            throw new libsignal.SessionError('No sessions available');
        }
        const errors = [];
        for (const session of sessions) {
            const snapshot = session.serialize();
            try {
                const plaintext = await this.doDecryptWhisperMessage(data, session);
                session.indexInfo.used = Date.now();
                return { session, plaintext };
            } catch (e) {
                const restored = session.constructor.deserialize(snapshot);
                delete session.pendingPreKey;
                Object.assign(session, restored);
                errors.push(e);
            }
        }
        throw errors.find((e) => e instanceof libsignal.MessageCounterError) || errors[0];
    }
}

// ---------------------------------------------------------------- peer state and ops

let storage = null;
let localName = null;

function requireInit() {
    if (!storage) {
        throw badRequest('peer not initialised: send {"op":"init"} first');
    }
    return storage;
}

function addressOf(req) {
    const name = strField(req, 'peer');
    if (name.includes('.')) {
        throw badRequest('peer names must not contain "."');
    }
    const device = req.device_id === undefined ? DEFAULT_DEVICE_ID : intField(req, 'device_id');
    return new ProtocolAddress(name, device);
}

function errorClassOf(e, fallback) {
    if (e instanceof PeerFailure) return e.errorClass;
    if (e instanceof libsignal.UntrustedIdentityKeyError) return 'UntrustedIdentity';
    if (e instanceof libsignal.MessageCounterError) return 'DuplicateMessage';
    if (e instanceof libsignal.PreKeyError) return 'InvalidKeyId';
    const m = String((e && e.message) || e);
    if (/bad mac/i.test(m)) return 'InvalidMac';
    if (/no session|no open session|no sessions/i.test(m)) return 'NoSession';
    if (/incompatible version/i.test(m)) return 'InvalidVersion';
    if (/signature/i.test(m)) return 'InvalidSignature';
    if (/public key|private key/i.test(m)) return 'InvalidKey';
    return fallback;
}

const handlers = {
    async ops() {
        return { ops: OPS, impl: IMPL };
    },

    async init(req) {
        const name = strField(req, 'name');
        let registrationId = intField(req, 'registration_id', { optional: true });
        if (registrationId === null) {
            registrationId = keyhelper.generateRegistrationId();
        }
        storage = new MapStorage(keyhelper.generateIdentityKeyPair(), registrationId);
        localName = name;
        return { name, registration_id: registrationId, identity_key: bufToHex(storage.identity.pubKey) };
    },

    async identity() {
        const st = requireInit();
        return { name: localName, registration_id: st.registrationId, identity_key: bufToHex(st.identity.pubKey) };
    },

    async bundle(req) {
        const st = requireInit();
        const signedPreKeyId = intField(req, 'signed_pre_key_id');
        const preKeyId = intField(req, 'pre_key_id', { nullable: true });
        const spk = keyhelper.generateSignedPreKey(st.identity, signedPreKeyId);
        st.signedPreKeys.set(signedPreKeyId, spk.keyPair);
        const out = {
            registration_id: st.registrationId,
            identity_key: bufToHex(st.identity.pubKey),
            signed_pre_key_id: signedPreKeyId,
            signed_pre_key: bufToHex(spk.keyPair.pubKey),
            signed_pre_key_signature: bufToHex(spk.signature),
            pre_key_id: null,
            pre_key: null,
        };
        if (preKeyId !== null) {
            const pk = keyhelper.generatePreKey(preKeyId);
            st.preKeys.set(preKeyId, pk.keyPair);
            out.pre_key_id = preKeyId;
            out.pre_key = bufToHex(pk.keyPair.pubKey);
        }
        return out;
    },

    async process_bundle(req) {
        const st = requireInit();
        const addr = addressOf(req);
        const b = req.bundle;
        if (!b || typeof b !== 'object') {
            throw badRequest('missing object field bundle');
        }
        const device = {
            registrationId: intField(b, 'registration_id'),
            identityKey: publicKeyField(b, 'identity_key'),
            signedPreKey: {
                keyId: intField(b, 'signed_pre_key_id'),
                publicKey: publicKeyField(b, 'signed_pre_key'),
                signature: hexToBuf(b.signed_pre_key_signature, 'signed_pre_key_signature'),
            },
        };
        const preKeyId = intField(b, 'pre_key_id', { nullable: true });
        if (preKeyId !== null && b.pre_key !== null && b.pre_key !== undefined) {
            device.preKey = { keyId: preKeyId, publicKey: publicKeyField(b, 'pre_key') };
        }
        await new SessionBuilder(st, addr).initOutgoing(device);
        st.pinIdentity(addr.id, device.identityKey);
        return {};
    },

    async encrypt(req) {
        const st = requireInit();
        const addr = addressOf(req);
        const plaintext = hexToBuf(req.plaintext, 'plaintext');
        const res = await new PeerSessionCipher(st, addr).encrypt(plaintext);
        let type;
        if (res.type === 3) type = 'pkmsg';
        else if (res.type === 1) type = 'msg';
        else throw new PeerFailure('Internal', `unexpected ciphertext type ${res.type}`);
        return { type, body: bufToHex(res.body) };
    },

    async decrypt(req) {
        const st = requireInit();
        const addr = addressOf(req);
        const body = hexToBuf(req.body, 'body');
        if (body.length === 0) {
            throw new PeerFailure('InvalidMessage', 'empty message body');
        }
        const cipher = new PeerSessionCipher(st, addr);
        let plaintext;
        if (req.type === 'pkmsg') {
            plaintext = await cipher.decryptPreKeyWhisperMessage(body);
        } else if (req.type === 'msg') {
            plaintext = await cipher.decryptWhisperMessage(body);
        } else {
            throw badRequest('field type must be "pkmsg" or "msg"');
        }
        const record = await st.loadSession(addr.toString());
        const open = record && record.getOpenSession();
        if (open) {
            st.pinIdentity(addr.id, open.indexInfo.remoteIdentityKey);
        }
        return { plaintext: bufToHex(plaintext) };
    },
};

const GROUP_OPS = new Set(['group_create', 'group_process', 'group_encrypt', 'group_decrypt']);

async function handle(line) {
    let req;
    try {
        req = JSON.parse(line);
    } catch (e) {
        return { ok: false, error: 'BadRequest', message: 'request is not valid JSON: ' + e.message };
    }
    if (!req || typeof req !== 'object' || Array.isArray(req)) {
        return { ok: false, error: 'BadRequest', message: 'request must be a JSON object' };
    }
    const echo = req.id !== undefined ? { id: req.id } : {};
    const op = req.op;
    if (op === 'quit') {
        return Object.assign({ ok: true, quit: true }, echo);
    }
    const handler = typeof op === 'string' && Object.prototype.hasOwnProperty.call(handlers, op)
        ? handlers[op] : null;
    if (!handler) {
        const why = GROUP_OPS.has(op)
            ? `${IMPL} has no sender-key (group) support`
            : `unknown op ${JSON.stringify(op)}`;
        return Object.assign({ ok: false, error: 'Unsupported', message: why }, echo);
    }
    try {
        const result = await handler(req);
        return Object.assign({ ok: true }, echo, result);
    } catch (e) {
        const fallback = (op === 'decrypt') ? 'InvalidMessage' : 'Internal';
        const error = errorClassOf(e, fallback);
        if (error === 'Internal') {
            process.stderr.write(`[peer] ${op} failed: ${(e && e.stack) || e}\n`);
        }
        return Object.assign({ ok: false, error, message: String((e && e.message) || e) }, echo);
    }
}

process.on('uncaughtException', (e) => {
    process.stderr.write(`[peer] uncaught exception: ${(e && e.stack) || e}\n`);
});
process.on('unhandledRejection', (e) => {
    process.stderr.write(`[peer] unhandled rejection: ${(e && e.stack) || e}\n`);
});

async function main() {
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
    for await (const raw of rl) {
        const line = raw.trim();
        if (!line) continue;
        let response;
        try {
            response = await handle(line);
        } catch (e) {
            response = { ok: false, error: 'Internal', message: String((e && e.message) || e) };
        }
        process.stdout.write(JSON.stringify(response) + '\n');
        if (response.quit === true) break;
    }
    process.exit(0);
}

main();
