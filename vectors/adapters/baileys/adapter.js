// Vectors adapter around Baileys 6.17.16 (npm `baileys`, MIT) for the `wa` areas: binary XML
// (`wa_binary_decode`, `wa_binary_encode`, `wa_payload_decode`) and the WA Noise handshake
// (`wa_handshake`). JSON lines in and out, the protocol of vectors/README.md.
//
//   node adapter.js <extracted tarball>/package     (python -m vectors.adapters.npm_peers prints it)
//
// It loads, unmodified, from the sha512-pinned tarball: lib/WABinary (encodeBinaryNode,
// decodeDecompressedBinaryNode, decompressingIfRequired, jidEncode/jidDecode),
// lib/Utils/noise-handler.js (makeNoiseHandler), lib/Utils/crypto.js (Curve, hkdf, AES-GCM, sha256),
// lib/Defaults and WAProto (HandshakeMessage, CertChain). shims.js replaces only the git-only
// libsignal (node's X25519), @hapi/boom and three unused Defaults inputs. No Baileys code is copied.
//
// Adapter code, not Baileys (say so when a result surprises you):
// - the vectors' node JSON <-> Baileys nodes. Baileys has no JID type: a decoded string that its
//   own jidDecode parses is reported as a JID, and a JID is handed to its encoder as jidEncode text;
// - the dictionary of the request becomes the `opts` Baileys' codec takes (TOKEN_MAP indexed from
//   the lists the way constants.js indexes its own);
// - the initiator is Baileys' client, driven as lib/Socket/socket.js validateConnection() does;
//   what processHandshake decrypts (server static, certificate chain) is observed through
//   crypto.aesDecryptGCM, the handshake hash through crypto.sha256 (its last value before
//   finishInit), transport plaintexts through aesDecryptGCM inside decodeFrame;
// - Baileys has no server: the responder is built from its primitives (makeNoiseHandler seeded with
//   the client's ephemeral, authenticate, mixIntoKey, encrypt, decrypt, finishInit, Curve.sharedKey),
//   with the checks any XX responder makes (connection header, a lone clientHello with a 32-byte
//   ephemeral, a clientFinish) and the transport keys observed from crypto.hkdf.
// Where Baileys itself differs from the vectors, `known_deviations` says so (see vectors/README.md).
'use strict';
const path = require('path');
const readline = require('readline');
const shims = require('./shims.js');

const root = path.resolve(process.argv[2] || path.join(__dirname, 'package'));
shims.install(root);
const lib = path.join(root, 'lib');
const TAGS = require(path.join(lib, 'WABinary', 'constants.js')).TAGS;
const { encodeBinaryNode } = require(path.join(lib, 'WABinary', 'encode.js'));
const { decodeDecompressedBinaryNode, decompressingIfRequired } = require(path.join(lib, 'WABinary', 'decode.js'));
const { jidDecode, jidEncode } = require(path.join(lib, 'WABinary', 'jid-utils.js'));
const { proto } = require(path.join(root, 'WAProto'));
const cryptoUtils = require(path.join(lib, 'Utils', 'crypto.js'));
const { makeNoiseHandler } = require(path.join(lib, 'Utils', 'noise-handler.js'));
const VERSION = require(path.join(root, 'package.json')).version;

// ------------------------------------------------------------------ observation (see header)
const seen = { decrypted: [], sha: null, hkdf: null };
const realDecrypt = cryptoUtils.aesDecryptGCM;
cryptoUtils.aesDecryptGCM = (...args) => { const r = realDecrypt(...args); seen.decrypted.push(Buffer.from(r)); return r; };
const realSha = cryptoUtils.sha256;
cryptoUtils.sha256 = (...args) => { seen.sha = realSha(...args); return seen.sha; };
const realHkdf = cryptoUtils.hkdf;
cryptoUtils.hkdf = async (...args) => { seen.hkdf = await realHkdf(...args); return seen.hkdf; };

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => Buffer.from(s, 'hex');

class Rejected extends Error {
  constructor(name, message, extra = {}) { super(message); this.name = name; this.extra = extra; }
}

// ------------------------------------------------------------------ binary XML

const dictCache = new Map();
function dictionary(d) {  // the request's token lists as the `opts` of Baileys' codec
  const key = JSON.stringify(d);
  if (!dictCache.has(key)) {
    const TOKEN_MAP = {};
    d.single.forEach((tok, index) => { TOKEN_MAP[tok] = { index }; });
    d.double.forEach((table, dict) => table.forEach((tok, index) => { TOKEN_MAP[tok] = { dict, index }; }));
    dictCache.set(key, { TAGS, SINGLE_BYTE_TOKENS: d.single, DOUBLE_BYTE_TOKENS: d.double, TOKEN_MAP });
  }
  return dictCache.get(key);
}

function stringToJson(s) {  // Baileys' strings: its own jidDecode decides what is an address
  const j = jidDecode(s);
  if (!j) return s;
  const out = { user: j.user, server: j.server };
  if (j.device !== undefined) out.device = j.device;
  return out;
}

function nodeToJson(n) {
  let content = null;
  if (Array.isArray(n.content)) content = n.content.map(nodeToJson);
  else if (Buffer.isBuffer(n.content) || n.content instanceof Uint8Array) content = { bytes: hex(n.content) };
  else if (typeof n.content === 'string') {
    const v = stringToJson(n.content);
    content = typeof v === 'string' ? { str: v } : { jid: v };
  }
  return { tag: n.tag, attrs: Object.entries(n.attrs).map(([k, v]) => [k, stringToJson(v)]), content };
}

function jidText(j) {
  if (j.integrator !== undefined) {
    throw new Rejected('NotRepresentable', `Baileys ${VERSION} has no interop JID (token 245): ${JSON.stringify(j)}`);
  }
  return jidEncode(j.user, j.server, j.device);
}

function nodeFromJson(n) {
  const attrs = {};
  for (const [k, v] of n.attrs) attrs[k] = typeof v === 'string' ? v : jidText(v);
  let content;
  if (n.content === null) content = undefined;
  else if (Array.isArray(n.content)) content = n.content.map(nodeFromJson);
  else if ('bytes' in n.content) content = unhex(n.content.bytes);
  else if ('jid' in n.content) content = jidText(n.content.jid);
  else content = n.content.str;
  return { tag: n.tag, attrs, content };
}

function decodeNode(buf, opts) {
  // decodeDecompressedBinaryNode reads one node and leaves any bytes after it unread, as Baileys'
  // socket does; the adapter reports what it returns.
  return nodeToJson(decodeDecompressedBinaryNode(buf, opts, { index: 0 }));
}

// ------------------------------------------------------------------ handshake

function keyPair(privHex) {
  const priv = unhex(privHex);
  return { private: priv, public: shims.publicFromPrivate(priv) };
}

function frame(data) {  // the 3-byte framing of the server's frames (encodeFrame is the client's)
  return Buffer.concat([Buffer.from([data.length >> 16, (data.length >> 8) & 255, data.length & 255]), data]);
}

function unframe(wire) {  // a responder reads exactly one frame per message
  if (wire.length < 3 || wire.length !== 3 + ((wire[0] << 16) | wire.readUInt16BE(1))) {
    throw new Rejected('BadFrame', `frame of ${wire.length} bytes does not match its length prefix`);
  }
  return wire.subarray(3);
}

function iv(n) { const b = Buffer.alloc(12); b.writeUInt32BE(n, 8); return b; }

async function initiator(req, out) {
  const noiseKey = keyPair(req.static_private);
  const ephemeral = keyPair(req.ephemeral_private);
  const noise = makeNoiseHandler({ keyPair: ephemeral, NOISE_HEADER: unhex(req.header), logger: shims.logger });
  let finished = false;
  return async (i, m) => {
    if (m.direction === 'c2s') {
      if (i === 0) return noise.encodeFrame(proto.HandshakeMessage.encode({ clientHello: { ephemeral: ephemeral.public } }).finish());
      if (i === 2) {
        const payloadEnc = noise.encrypt(unhex(m.payload));
        const wire = noise.encodeFrame(proto.HandshakeMessage.encode({ clientFinish: { static: out.keyEnc, payload: payloadEnc } }).finish());
        out.handshake_hash = hex(seen.sha);
        await noise.finishInit();  // socket.js does not await it; see docs/wa-binding.md item 10
        finished = true;
        return wire;
      }
      return noise.encodeFrame(unhex(m.payload));
    }
    const frames = [];
    seen.decrypted = [];
    await noise.decodeFrame(unhex(m.wire), (f) => frames.push(f));
    if (frames.length !== 1) throw new Rejected('Incomplete', `${frames.length} complete frames`);
    if (!finished) {
      const keyEnc = await noise.processHandshake(proto.HandshakeMessage.decode(frames[0]), noiseKey);
      out.keyEnc = keyEnc;
      out.server_static = hex(seen.decrypted[0]);
      return { payload: seen.decrypted[1] };
    }
    return { payload: seen.decrypted[0] };  // the flag byte + node decodeFrame decrypted
  };
}

async function responder(req, out) {
  const header = unhex(req.header);
  const s = keyPair(req.static_private);
  const e = keyPair(req.ephemeral_private);
  const certChain = unhex(req.messages[1].payload);
  const st = { noise: null, c2s: null, s2c: null, send: 0, recv: 0 };
  return async (i, m) => {
    if (m.direction === 's2c') {
      if (i === 1) return st.hello;
      return frame(cryptoUtils.aesEncryptGCM(unhex(m.payload), st.s2c, iv(st.send++), Buffer.alloc(0)));
    }
    let data = unhex(m.wire);
    if (i === 0) {
      if (!data.subarray(0, 4).equals(header)) throw new Rejected('BadHeader', `connection header ${hex(data.subarray(0, 4))}`);
      const hs = proto.HandshakeMessage.decode(unframe(data.subarray(4)));
      const hello = hs.clientHello;
      if (!hello || hs.serverHello || hs.clientFinish || (hello.static && hello.static.length) || (hello.payload && hello.payload.length)
          || !hello.ephemeral || hello.ephemeral.length !== 32) {
        throw new Rejected('UnexpectedMessage', 'message 0 is not a lone clientHello{ephemeral}');
      }
      // The handler hashes the header, then the key given as "public": for a responder that is the
      // client's ephemeral, exactly the responder's transcript order.
      st.noise = makeNoiseHandler({ keyPair: { private: e.private, public: hello.ephemeral }, NOISE_HEADER: header, logger: shims.logger });
      st.ce = hello.ephemeral;
      st.noise.authenticate(e.public);
      await st.noise.mixIntoKey(cryptoUtils.Curve.sharedKey(e.private, st.ce));
      const staticEnc = st.noise.encrypt(s.public);
      await st.noise.mixIntoKey(cryptoUtils.Curve.sharedKey(s.private, st.ce));
      const certEnc = st.noise.encrypt(certChain);
      st.hello = frame(proto.HandshakeMessage.encode({ serverHello: { ephemeral: e.public, static: staticEnc, payload: certEnc } }).finish());
      return { payload: Buffer.alloc(0) };
    }
    data = unframe(data);
    if (i === 2) {
      const hs = proto.HandshakeMessage.decode(data);
      const fin = hs.clientFinish;
      if (!fin || hs.clientHello || hs.serverHello) throw new Rejected('UnexpectedMessage', 'message 2 is not a clientFinish');
      const clientStatic = st.noise.decrypt(fin.static);
      await st.noise.mixIntoKey(cryptoUtils.Curve.sharedKey(e.private, clientStatic));
      const payload = st.noise.decrypt(fin.payload);
      out.handshake_hash = hex(seen.sha);
      await st.noise.finishInit();
      st.c2s = seen.hkdf.subarray(0, 32);
      st.s2c = seen.hkdf.subarray(32);
      out.client_static = hex(clientStatic);
      return { payload };
    }
    return { payload: cryptoUtils.aesDecryptGCM(data, st.c2s, iv(st.recv++), Buffer.alloc(0)) };
  };
}

async function waHandshake(req) {
  const out = {};
  const step = req.role === 'initiator' ? await initiator(req, out) : await responder(req, out);
  const mine = req.role === 'initiator' ? 'c2s' : 's2c';
  const outputs = [];
  for (const [i, m] of req.messages.entries()) {
    let r;
    try {
      r = await step(i, m);
    } catch (e) {
      throw new Rejected(e.name || 'Error', `message ${i}: ${e.message || e}`, { index: i });
    }
    outputs.push(hex(m.direction === mine ? r : r.payload));
  }
  delete out.keyEnc;
  return { outputs, ...out };
}

// ------------------------------------------------------------------ protocol

const INFO = {
  ops: ['wa_binary_decode', 'wa_binary_encode', 'wa_payload_decode', 'wa_handshake'],
  implementation: { name: 'baileys', version: VERSION },
  capabilities: {},
  // Each flag below fails only on the tcIds named (tests/vectors/test_baileys_adapter.py pins them);
  // W*/disagreement numbers refer to docs/wa-binding.md.
  known_deviations: {
    InteropJid: 'Baileys 6.17.16 has no INTEROP_JID (tag 245): its decoder throws "invalid string with tag: 245" (binary XML 14, 30, 34; disagreement 2)',
    TokenKinds: 'AD_JID device 0: Baileys\' jidEncode drops ":0", so the address decodes as a JID without device (binary XML 29; disagreement 5)',
    TrailingBytes: 'decodeDecompressedBinaryNode reads one node and ignores the bytes after it (binary XML 45; W9)',
    BadNode: 'Baileys keeps the last of two equal attribute keys, decodes invalid UTF-8 with U+FFFD and masks a BINARY_20 length to 20 bits (binary XML 56, 57, 58; W9)',
    BadPacked: 'Baileys reads NIBBLE_8 with the odd flag and no bytes as "" (binary XML 52; W9)',
    BadJid: 'Baileys maps every AD_JID domain byte other than 0 to "lid" (binary XML 54; disagreement 4)',
    CompressionLie: 'decompressingIfRequired inflates with zlib.inflate, which ignores bytes after the zlib stream (binary XML 67; W3)',
    WrongRoot: 'processHandshake checks the certificate chain under no root key (handshake 12; disagreement 7)',
    CertSignature: 'processHandshake verifies no certificate signature (handshake 16; disagreement 7)',
    CertMismatch: 'processHandshake checks only the intermediate\'s issuerSerial, not that the leaf certifies the server static (handshake 17; 18 is caught; disagreement 7)',
  },
};

const OPS = {
  wa_binary_decode: (req) => ({ node: decodeNode(unhex(req.data), dictionary(req.dictionary)) }),
  wa_binary_encode: (req) => ({ data: hex(encodeBinaryNode(nodeFromJson(req.node), dictionary(req.dictionary)).subarray(1)) }),
  wa_payload_decode: async (req) => ({ node: decodeNode(await decompressingIfRequired(unhex(req.data)), dictionary(req.dictionary)) }),
  wa_handshake: waHandshake,
};

async function handle(req) {
  if (req.op === 'ops') return { ok: true, ...INFO };
  const fn = OPS[req.op];
  if (!fn) return { ok: false, error: 'unsupported', message: `Baileys adapter: no op ${req.op}` };
  try {
    return { ok: true, ...(await fn(req)) };
  } catch (e) {
    return { ok: false, error: (e && e.name) || 'Error', message: String((e && e.message) || e), ...((e && e.extra) || {}) };
  }
}

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      process.stdout.write(JSON.stringify({ ok: false, error: 'bad_request', message: String(e.message) }) + '\n');
      return;
    }
    const res = await handle(req);
    if (req.id !== undefined) res.id = req.id;
    process.stdout.write(JSON.stringify(res) + '\n');
  });
});
