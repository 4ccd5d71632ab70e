// Write a keystore the way Aztec's tooling does, with Aztec's own packages: fresh random keys, the ETH ones as
// JSON V3 files (@ethersproject/wallet, which @aztec/node-keystore decrypts them with), the BLS one as Aztec's BN254 keystore
// (createBn254Keystore), referenced as {path, password}. Prints nothing secret, only where it wrote.
// Usage: node write_keystore.mjs AZTEC_NODE_MODULES OUT_DIR PATH_STYLE   (PATH_STYLE: absolute | relative)
// With `relative`, the keystore names its key files relative to OUT_DIR, for a node started from OUT_DIR.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, outDir, style] = process.argv.slice(2);
const require = createRequire(path.join(modules, '@aztec', 'node-keystore', 'package.json'));
const load = async name => import(pathToFileURL(require.resolve(name)).href);

const { Wallet } = await load('@ethersproject/wallet');
const { createBn254Keystore } = await load('@aztec/foundation/crypto/bls/bn254_keystore');
const { computeBn254G1PublicKeyCompressed } = await load('@aztec/foundation/crypto/bn254');
const { randomBytes } = await import('node:crypto');

const password = 'aztec-written';
const keysDir = path.join(outDir, 'keys');
mkdirSync(keysDir, { recursive: true, mode: 0o700 });
const named = file => (style === 'relative' ? path.join('keys', file) : path.join(keysDir, file));

async function ethFile(name) {
  const wallet = Wallet.createRandom();
  const json = await wallet.encrypt(password, { scrypt: { N: 1024 } }); // light KDF: a test key
  writeFileSync(path.join(keysDir, name), json, { mode: 0o600 });
  return { path: named(name), password };
}

const r = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;
const blsSecret = '0x' + ((BigInt('0x' + randomBytes(32).toString('hex')) % (r - 1n)) + 1n).toString(16).padStart(64, '0');
const blsPublic = await computeBn254G1PublicKeyCompressed(blsSecret);
const bls = createBn254Keystore(password, blsSecret, blsPublic, 'm/12381/3600/0/0/0');
writeFileSync(path.join(keysDir, 'bls.json'), JSON.stringify(bls, null, 2), { mode: 0o600 });

const keystore = {
  schemaVersion: 1,
  validators: [
    {
      attester: { eth: await ethFile('attester.json'), bls: { path: named('bls.json'), password } },
      publisher: [await ethFile('publisher-1.json'), await ethFile('publisher-2.json')],
      feeRecipient: '0x' + randomBytes(31).toString('hex').padStart(64, '0'),
    },
  ],
};
const keystorePath = path.join(outDir, 'keystore.json');
writeFileSync(keystorePath, JSON.stringify(keystore, null, 2), { mode: 0o600 });
process.stdout.write(JSON.stringify({ keystore: keystorePath }) + '\n');
process.exit(0); // bb.js keeps workers alive
