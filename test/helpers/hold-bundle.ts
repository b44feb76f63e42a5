// Child process for locking tests: opens a bundle (read-write unless argv[3] === 'ro'), prints
// "ready", and holds it until stdin closes.

import { SparseBundle } from '../../lib/engine/sparse-bundle.js';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: hold-bundle.ts <bundle> [ro]');
const bundle = await SparseBundle.open(path, { readOnly: process.argv[3] === 'ro' });
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  void bundle.close().then(() => process.exit(0));
});
