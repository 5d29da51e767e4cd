// Oracle adapter around Baileys' WhatsApp content code (npm baileys 6.17.16, MIT): the generated
// protobufjs module WAProto/index.js (what Baileys encodes and decodes `proto.Message` with), the
// schema WAProto/WAProto.proto it was generated from, and three helpers from lib/Utils:
// writeRandomPadMax16 / unpadRandomMax16 (generics.js) and getMediaKeys / hkdfInfoKey
// (messages-media.js, with hkdf from crypto.js and MEDIA_HKDF_KEY_MAPPING from lib/Defaults).
//
// Why a loader hook: those lib/Utils and lib/Defaults files also hold unrelated functions whose
// modules (axios, pino, Baileys' git-only libsignal fork, the whole lib/Utils index) cannot be
// installed here and are never reached by the functions this adapter calls. Requests for exactly
// those modules, coming from inside the Baileys package, get an inert placeholder; every module on
// the path of the functions under test (protobufjs, @hapi/boom, node's crypto, WAProto, Defaults,
// crypto.js, generics.js) is the real one. A placeholder touched on that path would throw or
// produce values the Python side rejects, never a silent pass.
//
// JSON lines in, JSON lines out (the peers protocol of tests/interop/README.md); binary values as
// base64, 64-bit integers as decimal strings, enums as numbers.
'use strict';
const path = require('path');
const Module = require('module');
const readline = require('readline');

const pkg = path.resolve(process.env.BAILEYS_DIR || path.join(__dirname, 'package'));
const PLACEHOLDER_REQUESTS = new Set([
  'axios', 'libsignal', '../Signal/libsignal', '../Utils', '../Utils/logger', '../Types',
]);

function inert() {
  const target = function () {};
  const proxy = new Proxy(target, {
    get: (_t, prop) => (prop === Symbol.toPrimitive ? () => '' : prop === '__esModule' ? false : proxy),
    apply: () => proxy,
    construct: () => proxy,
  });
  return proxy;
}

const originalLoad = Module._load;
Module._load = function (request, parent, isMain) {
  if (PLACEHOLDER_REQUESTS.has(request) && parent && parent.filename
      && parent.filename.startsWith(pkg + path.sep)) {
    return inert();
  }
  return originalLoad.call(this, request, parent, isMain);
};

const protobuf = require('protobufjs');
const { proto } = require(path.join(pkg, 'WAProto', 'index.js'));
const generics = require(path.join(pkg, 'lib', 'Utils', 'generics.js'));
const media = require(path.join(pkg, 'lib', 'Utils', 'messages-media.js'));
const schemaRoot = protobuf.loadSync(path.join(pkg, 'WAProto', 'WAProto.proto'));
const version = require(path.join(pkg, 'package.json')).version;
const protobufjsVersion = require('protobufjs/package.json').version;

// "Message.ImageMessage" -> proto.Message.ImageMessage (the generated static class).
function staticType(name) {
  let t = proto;
  for (const part of String(name).split('.')) {
    t = t && Object.prototype.hasOwnProperty.call(t, part) ? t[part] : undefined;
  }
  if (typeof t !== 'function' || typeof t.decode !== 'function') throw new Error('no message type proto.' + name);
  return t;
}

// Field table of one type as WAProto.proto declares it (the generated code has no reflection).
function describe(name) {
  const t = schemaRoot.lookup('proto.' + name);
  if (t instanceof protobuf.Enum) return { kind: 'enum', name: t.fullName.slice(1), values: t.values };
  if (!(t instanceof protobuf.Type)) throw new Error('no type proto.' + name);
  const fields = Object.values(t.fields).map((f) => {
    f.resolve();
    const r = f.resolvedType;
    return {
      name: f.name, id: f.id, type: f.type, repeated: f.repeated,
      kind: r instanceof protobuf.Enum ? 'enum' : r instanceof protobuf.Type ? 'message' : 'scalar',
      type_name: r ? r.fullName.replace(/^\.proto\./, '') : null,
    };
  });
  return { kind: 'message', name: t.fullName.slice(1), fields };
}

const TO_OBJECT = { longs: String, bytes: String, defaults: false, arrays: false, oneofs: false };

async function handle(req) {
  switch (req.op) {
    case 'ops':
      return { ops: ['describe', 'encode', 'decode', 'pad', 'unpad', 'media_keys', 'quit'],
               impl: 'baileys-' + version, protobufjs: protobufjsVersion };
    case 'describe': return { types: req.types.map(describe) };
    case 'encode': {  // fromObject + encode, as Baileys' generateWAMessageContent/encodeWAMessage do
      const T = staticType(req.type);
      return { b64: Buffer.from(T.encode(T.fromObject(req.object)).finish()).toString('base64') };
    }
    case 'decode': {  // decode + toObject, as Baileys' decryptMessageNode reads a plaintext
      const T = staticType(req.type);
      return { object: T.toObject(T.decode(Buffer.from(req.b64, 'base64')), TO_OBJECT) };
    }
    case 'pad': return { b64: generics.writeRandomPadMax16(Buffer.from(req.b64, 'base64')).toString('base64') };
    case 'unpad':
      return { b64: Buffer.from(generics.unpadRandomMax16(Buffer.from(req.b64, 'base64'))).toString('base64') };
    case 'media_keys': {
      const keys = await media.getMediaKeys(Buffer.from(req.media_key, 'base64'), req.media_type);
      return { info: media.hkdfInfoKey(req.media_type), iv: Buffer.from(keys.iv).toString('base64'),
               cipher_key: Buffer.from(keys.cipherKey).toString('base64'),
               mac_key: Buffer.from(keys.macKey).toString('base64') };
    }
    case 'quit': return { quit: true };
    default: return { ok: false, error: 'Unsupported', message: 'unknown op ' + req.op };
  }
}

const rl = readline.createInterface({ input: process.stdin });
const queue = [];
let busy = false;
async function drain() {  // strictly in order, one response per request
  if (busy) return;
  busy = true;
  while (queue.length) {
    const line = queue.shift();
    let req = {};
    let res;
    try {
      req = JSON.parse(line);
      res = { ok: true, ...(await handle(req)) };
    } catch (e) {
      res = { ok: false, error: 'InvalidMessage', message: String((e && e.message) || e) };
    }
    if (req.id !== undefined) res.id = req.id;
    process.stdout.write(JSON.stringify(res) + '\n');
    if (req.op === 'quit') process.exit(0);
  }
  busy = false;
}
rl.on('line', (line) => { queue.push(line); drain(); });
