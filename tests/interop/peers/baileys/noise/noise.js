// Oracle adapter around Baileys' WA Noise handshake (npm baileys 6.17.16, MIT), JSON lines in and
// out (the peers protocol of tests/interop/README.md). It drives, unmodified:
//   lib/Utils/noise-handler.js (makeNoiseHandler), lib/Utils/crypto.js (Curve, hkdf, AES-GCM),
//   lib/Defaults (NOISE_MODE, NOISE_WA_HEADER, WA_CERT_DETAILS), lib/WABinary (node codec) and
//   WAProto (HandshakeMessage, ClientPayload, CertChain; protobufjs from the lock file here).
// Only libsignal / @hapi/boom / three Defaults inputs are replaced (vectors/adapters/baileys/shims.js
// says why; it is copied next to this file).
//
// Client ops follow lib/Socket/socket.js validateConnection() step by step: client_start,
// client_receive (serverHello -> processHandshake -> clientFinish -> finishInit; later: transport
// frames -> nodes), client_send (node -> encrypted frame).
// Server ops build a responder from the same primitives (authenticate, mixIntoKey, encrypt,
// decrypt, finishInit, Curve.sharedKey): Baileys has no server. Two things are adapter code:
// 3-byte framing of the server's frames (encodeFrame would prepend the client's header) and the
// server's transport direction (finishInit gives the client's key order; the split keys are
// observed through crypto.hkdf and used with crypto.aesEncryptGCM / aesDecryptGCM).
'use strict';
const path = require('path');
const readline = require('readline');
const shims = require('./shims.js');

const root = process.env.BAILEYS_DIR || path.join(__dirname, 'package');
shims.install(root);

const { proto } = require(path.join(root, 'WAProto'));
const Defaults = require(path.join(root, 'lib', 'Defaults'));
const cryptoUtils = require(path.join(root, 'lib', 'Utils', 'crypto.js'));
const { makeNoiseHandler } = require(path.join(root, 'lib', 'Utils', 'noise-handler.js'));
const { encodeBinaryNode } = require(path.join(root, 'lib', 'WABinary', 'encode.js'));
const { decodeBinaryNode } = require(path.join(root, 'lib', 'WABinary', 'decode.js'));

// Observe the last HKDF output (the server needs the split keys, see the header comment).
let lastHkdf = null;
const realHkdf = cryptoUtils.hkdf;
cryptoUtils.hkdf = async (...args) => { lastHkdf = await realHkdf(...args); return lastHkdf; };

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => Buffer.from(s, 'hex');
const keyPair = (privHex) => ({ private: unhex(privHex), public: shims.publicFromPrivate(unhex(privHex)) });
const frame = (data) => Buffer.concat([Buffer.from([data.length >> 16, (data.length >> 8) & 255, data.length & 255]), data]);
const iv = (n) => { const b = Buffer.alloc(12); b.writeUInt32BE(n, 8); return b; };
const objOpts = { longs: String, enums: String, bytes: String, defaults: false };

function fromJson(n) {
  let content;
  if (n.content === null || n.content === undefined) content = undefined;
  else if (Array.isArray(n.content)) content = n.content.map(fromJson);
  else if ('bytes' in n.content) content = Buffer.from(n.content.bytes, 'hex');
  else content = n.content.str;
  return { tag: n.tag, attrs: n.attrs || {}, content };
}

function toJson(n) {
  let content = null;
  if (Array.isArray(n.content)) content = n.content.map(toJson);
  else if (Buffer.isBuffer(n.content) || n.content instanceof Uint8Array) content = { bytes: hex(n.content) };
  else if (typeof n.content === 'string') content = { str: n.content };
  return { tag: n.tag, attrs: n.attrs, content };
}

function splitFrames(state, data) {
  state.inBytes = Buffer.concat([state.inBytes, data]);
  const out = [];
  while (state.inBytes.length >= 3) {
    const n = (state.inBytes[0] << 16) | state.inBytes.readUInt16BE(1);
    if (state.inBytes.length < 3 + n) break;
    out.push(state.inBytes.subarray(3, 3 + n));
    state.inBytes = state.inBytes.subarray(3 + n);
  }
  return out;
}

let client = null;
let server = null;

const ops = {
  ops: async () => ({ ops: Object.keys(ops), impl: 'baileys-' + require(path.join(root, 'package.json')).version,
    noise_mode: Defaults.NOISE_MODE, header: hex(Defaults.NOISE_WA_HEADER), cert_serial: Defaults.WA_CERT_DETAILS.SERIAL }),

  client_start: async (req) => {
    const ephemeral = req.ephemeral_private ? keyPair(req.ephemeral_private) : cryptoUtils.Curve.generateKeyPair();
    const noise = makeNoiseHandler({ keyPair: ephemeral, NOISE_HEADER: Defaults.NOISE_WA_HEADER, logger: shims.logger });
    client = { noise, ephemeral, noiseKey: keyPair(req.noise_private), payload: req.payload, finished: false };
    const init = proto.HandshakeMessage.encode({ clientHello: { ephemeral: ephemeral.public } }).finish();
    return { hex: hex(noise.encodeFrame(init)) };
  },

  client_receive: async (req) => {
    const frames = [];
    await client.noise.decodeFrame(unhex(req.hex), (f) => frames.push(f));
    const res = { nodes: [] };
    for (const f of frames) {
      if (!client.finished) {
        const handshake = proto.HandshakeMessage.decode(f);
        const keyEnc = await client.noise.processHandshake(handshake, client.noiseKey);
        const node = proto.ClientPayload.fromObject(client.payload);
        const payloadEnc = client.noise.encrypt(proto.ClientPayload.encode(node).finish());
        res.send = hex(client.noise.encodeFrame(proto.HandshakeMessage.encode(
          { clientFinish: { static: keyEnc, payload: payloadEnc } }).finish()));
        // socket.js does not await finishInit (it is async: HKDF via WebCrypto); a frame sent
        // before it settles would go out under the handshake key, so the adapter awaits it.
        await client.noise.finishInit();
        client.finished = true;
      } else {
        res.nodes.push(toJson(f));
      }
    }
    return res;
  },

  client_send: async (req) => ({ hex: hex(client.noise.encodeFrame(encodeBinaryNode(fromJson(req.node)))) }),

  server_start: async (req) => {
    const data = unhex(req.hex);
    if (!data.subarray(0, 4).equals(Defaults.NOISE_WA_HEADER)) throw new Error('bad connection header ' + hex(data.subarray(0, 4)));
    const state = { inBytes: Buffer.alloc(0) };
    const [hello] = splitFrames(state, data.subarray(4));
    const clientEphemeral = proto.HandshakeMessage.decode(hello).clientHello.ephemeral;
    const e = keyPair(req.ephemeral_private);
    const s = keyPair(req.static_private);
    // The handler hashes its header, then the key it is given as "public": for a responder that
    // is the client's ephemeral, which is exactly the responder's transcript order.
    const noise = makeNoiseHandler({ keyPair: { private: e.private, public: clientEphemeral },
      NOISE_HEADER: Defaults.NOISE_WA_HEADER, logger: shims.logger });
    noise.authenticate(e.public);
    await noise.mixIntoKey(cryptoUtils.Curve.sharedKey(e.private, clientEphemeral));
    const staticEnc = noise.encrypt(s.public);
    await noise.mixIntoKey(cryptoUtils.Curve.sharedKey(s.private, clientEphemeral));
    const certEnc = noise.encrypt(unhex(req.cert_chain));
    server = { noise, e, state, finished: false, send: 0, recv: 0 };
    return { send: hex(frame(proto.HandshakeMessage.encode(
      { serverHello: { ephemeral: e.public, static: staticEnc, payload: certEnc } }).finish())) };
  },

  server_receive: async (req) => {
    const res = { nodes: [] };
    for (const f of splitFrames(server.state, unhex(req.hex))) {
      if (!server.finished) {
        const fin = proto.HandshakeMessage.decode(f).clientFinish;
        const clientStatic = server.noise.decrypt(fin.static);
        await server.noise.mixIntoKey(cryptoUtils.Curve.sharedKey(server.e.private, clientStatic));
        const payload = server.noise.decrypt(fin.payload);
        await server.noise.finishInit();
        server.c2s = lastHkdf.subarray(0, 32);
        server.s2c = lastHkdf.subarray(32);
        server.finished = true;
        res.client_static = hex(clientStatic);
        res.payload_hex = hex(payload);
        res.payload = proto.ClientPayload.toObject(proto.ClientPayload.decode(payload), objOpts);
      } else {
        const plain = cryptoUtils.aesDecryptGCM(f, server.c2s, iv(server.recv++), Buffer.alloc(0));
        res.nodes.push(toJson(await decodeBinaryNode(plain)));
      }
    }
    return res;
  },

  server_send: async (req) => {
    const plain = encodeBinaryNode(fromJson(req.node));
    return { hex: hex(frame(cryptoUtils.aesEncryptGCM(plain, server.s2c, iv(server.send++), Buffer.alloc(0)))) };
  },

  quit: async () => ({ quit: true }),
};

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    let req = {};
    let res;
    try {
      req = JSON.parse(line);
      const fn = ops[req.op];
      res = fn ? { ok: true, ...(await fn(req)) } : { ok: false, error: 'Unsupported', message: 'unknown op ' + req.op };
    } catch (e) {
      res = { ok: false, error: (e && e.constructor && e.constructor.name) || 'Error', message: String(e && e.message || e) };
    }
    if (req.id !== undefined) res.id = req.id;
    process.stdout.write(JSON.stringify(res) + '\n');
    if (req.op === 'quit') process.exit(0);
  });
});
