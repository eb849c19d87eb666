// Compiles src/Capacity.sol with the solc package pinned in tools/package-lock.json and prints
// the artifact JSON ({contractName, compiler, abi, bytecode, deployedBytecode}) on stdout.
// Deterministic: no metadata hash, no CBOR trailer, sorted keys by construction.
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const source = fs.readFileSync(path.join(__dirname, 'src', 'Capacity.sol'), 'utf8');
const input = {
  language: 'Solidity',
  sources: { 'Capacity.sol': { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    viaIR: true, // the via-IR pipeline: the legacy one exceeds the 24,576-byte code limit
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { 'Capacity.sol': { Capacity: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const problems = (output.errors || []).filter((e) => e.severity === 'error' || e.severity === 'warning');
for (const e of problems) process.stderr.write(e.formattedMessage + '\n');
if (problems.length > 0) process.exit(1);
const c = output.contracts['Capacity.sol'].Capacity;
const artifact = {
  contractName: 'Capacity',
  compiler: solc.version(),
  abi: c.abi,
  bytecode: '0x' + c.evm.bytecode.object,
  deployedBytecode: '0x' + c.evm.deployedBytecode.object,
};
process.stdout.write(JSON.stringify(artifact, null, 2) + '\n');
