// Tiny stand-ins for the modules Baileys' noise handler pulls in but does not use for the
// handshake, so that lib/Utils/noise-handler.js, lib/Utils/crypto.js and lib/Defaults/index.js
// load unmodified (npm baileys 6.17.16, MIT):
// - `libsignal` is a git-only dependency (WhiskeySockets/libsignal-node); crypto.js calls only
//   curve.generateKeyPair / calculateAgreement on the handshake path, done here with node's own
//   X25519. Signing is not on that path and throws.
// - `@hapi/boom` only builds error objects.
// - Defaults/index.js needs `../Utils` (Browsers), `../Utils/logger` and `../Signal/libsignal`
//   only to fill DEFAULT_CONNECTION_CONFIG, which the handshake never reads.
// None of this is Baileys code; the handshake logic under test all comes from the tarball.
// Used by the vectors adapter (adapter.js here) and the interop oracle
// (tests/interop/peers/baileys/noise/noise.js); `install(root)` puts the stand-ins in place.
'use strict';
const crypto = require('crypto');
const Module = require('module');
const path = require('path');

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

function privateKeyObject(raw) {
  if (raw.length !== 32) throw new Error('private key must be 32 bytes');
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_X25519, Buffer.from(raw)]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(raw) {
  let k = Buffer.from(raw);
  if (k.length === 33 && k[0] === 5) k = k.subarray(1);  // libsignal's 0x05 || u form
  if (k.length !== 32) throw new Error('invalid public key length ' + raw.length);
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_X25519, k]), format: 'der', type: 'spki' });
}

function publicFromPrivate(raw) {
  return crypto.createPublicKey(privateKeyObject(raw)).export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length);
}

const libsignal = {
  curve: {
    generateKeyPair() {
      const { privateKey } = crypto.generateKeyPairSync('x25519');
      const priv = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_X25519.length);
      return { privKey: Buffer.from(priv), pubKey: Buffer.concat([Buffer.from([5]), publicFromPrivate(priv)]) };
    },
    calculateAgreement(publicKey, privateKey) {
      return crypto.diffieHellman({ privateKey: privateKeyObject(privateKey), publicKey: publicKeyObject(publicKey) });
    },
    calculateSignature() { throw new Error('libsignal shim: signing is not on the handshake path'); },
    verifySignature() { throw new Error('libsignal shim: verifying is not on the handshake path'); },
  },
};

class Boom extends Error {
  constructor(message, options = {}) {
    super(message);
    this.isBoom = true;
    this.output = { statusCode: options.statusCode || 500 };
    this.data = options.data;
  }
}

const logger = { child() { return logger; }, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

const forDefaults = {
  '../Utils': { Browsers: { ubuntu: (b) => ['Ubuntu', b, '22.04'] } },
  '../Utils/logger': { __esModule: true, default: logger },
  '../Signal/libsignal': { makeLibSignalRepository: () => { throw new Error('not in the shim'); } },
};

// Route `libsignal`, `@hapi/boom` and the three Defaults inputs to the stand-ins above, for
// modules loaded from the extracted tarball at `root` (the directory holding lib/ and WAProto/).
function install(root) {
  const defaultsDir = path.join(root, 'lib', 'Defaults') + path.sep;
  const origLoad = Module._load;
  Module._load = function (request, parent, isMain) {
    if (request === 'libsignal') return libsignal;
    if (request === '@hapi/boom') return { Boom };
    if (parent && parent.filename && parent.filename.startsWith(defaultsDir) && request in forDefaults) {
      return forDefaults[request];
    }
    return origLoad.apply(this, arguments);
  };
}

module.exports = {
  install,
  libsignal,
  boom: { Boom },
  publicFromPrivate,
  forDefaults,
  logger,
};
