// Worker thread of the band hasher (band-hasher.ts): hashes a band in shared memory, which the
// calling thread does not change until the digest is back.

import { createHash } from 'node:crypto';
import { serveJobs } from '../worker-pool.js';

serveJobs((data: Uint8Array) => ({ reply: { sha256: createHash('sha256').update(data).digest('hex') } }));
