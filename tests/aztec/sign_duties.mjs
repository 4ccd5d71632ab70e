// Sign duties through Aztec's own HA signer (@aztec/validator-ha-signer 4.1.2) against a PostgreSQL database,
// as an Aztec validator node does: its migrations, `createHASigner`, `signWithProtection` with a local
// secp256k1 signer over the 32-byte message hash.
// Usage: node sign_duties.mjs AZTEC_NODE_MODULES < request.json, where the request (on stdin: it holds a key
// and a database URL) is {databaseUrl, rollup, nodeId, attesterKey, duties: [{slot, dutyType, messageHash,
// blockNumber?, blockIndexWithinCheckpoint?, crash?}]}. A duty with `crash: true` exits the process inside
// the signing callback, after Aztec claimed the duty and before it recorded a signature: the row stays
// `signing`, as after a node crash. Prints one JSON line per duty: {slot, dutyType, signature | error}.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules] = process.argv.slice(2);
const require = createRequire(path.join(modules, '@aztec', 'validator-ha-signer', 'package.json'));
const load = async name => import(pathToFileURL(require.resolve(name)).href);

const { runMigrations } = await load('@aztec/validator-ha-signer/migrations');
const { createHASigner } = await load('@aztec/validator-ha-signer/factory');
const { EthAddress } = await load('@aztec/foundation/eth-address');
const { Buffer32 } = await load('@aztec/foundation/buffer');
const { Secp256k1Signer } = await load('@aztec/foundation/crypto/secp256k1-signer');

const request = JSON.parse(readFileSync(0, 'utf8'));
await runMigrations(request.databaseUrl);
const { signer } = await createHASigner({
  databaseUrl: request.databaseUrl,
  haSigningEnabled: true,
  l1Contracts: { rollupAddress: EthAddress.fromString(request.rollup) },
  nodeId: request.nodeId,
  pollingIntervalMs: 50,
  signingTimeoutMs: 2000,
});
await signer.start();
const key = new Secp256k1Signer(Buffer32.fromString(request.attesterKey));

for (const duty of request.duties) {
  const context = { slot: BigInt(duty.slot), blockNumber: BigInt(duty.blockNumber ?? duty.slot), dutyType: duty.dutyType };
  if (duty.dutyType === 'BLOCK_PROPOSAL') {
    context.blockIndexWithinCheckpoint = duty.blockIndexWithinCheckpoint ?? 0;
  }
  try {
    const signature = await signer.signWithProtection(key.address, Buffer32.fromString(duty.messageHash), context, async root => {
      if (duty.crash) {
        process.stdout.write(JSON.stringify({ slot: duty.slot, dutyType: duty.dutyType, crashed: true }) + '\n');
        process.exit(0);
      }
      return key.sign(root);
    });
    process.stdout.write(JSON.stringify({ slot: duty.slot, dutyType: duty.dutyType, signature: signature.toString() }) + '\n');
  } catch (error) {
    process.stdout.write(JSON.stringify({ slot: duty.slot, dutyType: duty.dutyType, error: error.name }) + '\n');
  }
}
await signer.stop();
process.exit(0);
