// Worker thread of the inflate pool: reads its batch's file range itself (so no large buffer is
// cloned between threads), inflates every grain synchronously and transfers the result back.
// An I/O failure is reported as a message; the pool turns it into an SbmError.

import { serveJobs } from '../../lib/worker-pool.js';
import { type InflateBatch, runBatch } from './grain-inflater.js';

serveJobs((batch: InflateBatch) => {
  const result = runBatch(batch);
  return { reply: { data: result.data, failure: result.failure }, transfer: [result.data.buffer as ArrayBuffer] };
});
