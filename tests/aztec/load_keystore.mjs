// Load keystores the way an Aztec node does, with Aztec's own packages, and print what it would run as JSON:
// per validator the attester address, the BLS public key (decrypted with Aztec's BN254 keystore code when it
// is a {path, password} file), the publisher addresses, the fee recipient and the coinbase.
// Usage (the Aztec packages' node_modules on NODE_PATH is not enough for ESM: run with the cache as cwd's
// ancestor or pass the module directory): node load_keystore.mjs AZTEC_NODE_MODULES KEYSTORE_PATH
// Relative paths inside keystores resolve against the working directory, exactly as in Aztec's node.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, keystorePath] = process.argv.slice(2);
const require = createRequire(path.join(modules, 'noop.js'));
const load = async name => import(pathToFileURL(require.resolve(name)).href);

const { loadKeystores, mergeKeystores, KeystoreManager } = await load('@aztec/node-keystore');
const { decryptBn254Keystore } = await load('@aztec/foundation/crypto/bls/bn254_keystore');
const { computeBn254G1PublicKeyCompressed } = await load('@aztec/foundation/crypto/bn254');

function blsOf(attester) {
  if (attester && typeof attester === 'object' && 'eth' in attester && attester.bls !== undefined) {
    return typeof attester.bls === 'string' ? attester.bls : decryptBn254Keystore(attester.bls.path, attester.bls.password);
  }
  return undefined;
}

try {
  const manager = new KeystoreManager(mergeKeystores(loadKeystores(keystorePath)));
  await manager.validateSigners();
  const validators = [];
  for (let i = 0; i < manager.getValidatorCount(); i++) {
    const validator = manager.getValidator(i);
    const attesters = manager.createAttesterSigners(i).map(s => s.address.toString());
    const attesterConfigs = Array.isArray(validator.attester) ? validator.attester : [validator.attester];
    const bls = [];
    for (const config of attesterConfigs) {
      const secret = blsOf(config);
      bls.push(secret === undefined ? null : await computeBn254G1PublicKeyCompressed(secret));
    }
    validators.push({
      attesters,
      bls,
      publishers: manager.createPublisherSigners(i).map(s => s.address.toString()),
      feeRecipient: manager.getFeeRecipient(i).toString(),
      coinbase: manager.getCoinbaseAddress(i, manager.createAttesterSigners(i)[0].address).toString(),
    });
  }
  process.stdout.write(JSON.stringify({ ok: true, validators }) + '\n');
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error?.message ?? error) }) + '\n');
  process.exit(1);
}
process.exit(0); // bb.js keeps workers alive
