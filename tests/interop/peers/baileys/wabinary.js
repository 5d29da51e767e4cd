// Oracle adapter around Baileys' binary-XML codec (npm baileys, MIT). Loads only
// lib/WABinary/{constants,encode,decode,jid-utils}.js, which need nothing but node's own util
// and zlib. JSON lines in, JSON lines out (the peers protocol of tests/interop/README.md).
// Node JSON: {"tag": str, "attrs": {str: str}, "content": null | {"bytes": hex} | {"str": s} | [node]}
'use strict';
const path = require('path');
const readline = require('readline');
const lib = path.join(process.env.BAILEYS_DIR || path.join(__dirname, 'package'), 'lib', 'WABinary');
const constants = require(path.join(lib, 'constants.js'));
const { encodeBinaryNode } = require(path.join(lib, 'encode.js'));
const { decodeBinaryNode, decodeDecompressedBinaryNode } = require(path.join(lib, 'decode.js'));

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
  else if (Buffer.isBuffer(n.content) || n.content instanceof Uint8Array) content = { bytes: Buffer.from(n.content).toString('hex') };
  else if (typeof n.content === 'string') content = { str: n.content };
  return { tag: n.tag, attrs: n.attrs, content };
}

async function handle(req) {
  switch (req.op) {
    case 'ops': return { ops: ['encode', 'decode', 'decode_payload', 'bench', 'quit'], impl: 'baileys-' + require(path.join(lib, '..', '..', 'package.json')).version };
    case 'encode': return { hex: encodeBinaryNode(fromJson(req.node)).toString('hex') };  // flag byte 0 + node
    case 'decode': {
      const buf = Buffer.from(req.hex, 'hex');
      const ref = { index: 0 };
      const node = decodeDecompressedBinaryNode(buf, constants, ref);
      return { node: toJson(node), consumed: ref.index };
    }
    case 'decode_payload': return { node: toJson(await decodeBinaryNode(Buffer.from(req.hex, 'hex'))) };
    case 'bench': {  // encode+decode every node `rounds` times; report wall time
      const nodes = req.nodes.map(fromJson);
      const encoded = nodes.map(n => encodeBinaryNode(n).subarray(1));
      let t0 = process.hrtime.bigint();
      for (let r = 0; r < req.rounds; r++) for (const n of nodes) encodeBinaryNode(n);
      const enc = Number(process.hrtime.bigint() - t0) / 1e9;
      t0 = process.hrtime.bigint();
      for (let r = 0; r < req.rounds; r++) for (const b of encoded) decodeDecompressedBinaryNode(b, constants, { index: 0 });
      const dec = Number(process.hrtime.bigint() - t0) / 1e9;
      return { encode_s: enc, decode_s: dec, bytes: encoded.reduce((a, b) => a + b.length, 0) };
    }
    case 'quit': return { quit: true };
    default: return { ok: false, error: 'Unsupported', message: 'unknown op ' + req.op };
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  let req = {};
  let res;
  try {
    req = JSON.parse(line);
    res = { ok: true, ...(await handle(req)) };
  } catch (e) {
    res = { ok: false, error: 'InvalidMessage', message: String(e && e.message || e) };
  }
  if (req.id !== undefined) res.id = req.id;
  process.stdout.write(JSON.stringify(res) + '\n');
  if (req.op === 'quit') process.exit(0);
});
