// Worker thread of the inflate pool: reads its batch's file range itself (so no large buffer is
// cloned between threads), inflates every grain synchronously and transfers the result back.
// An I/O failure is reported as a message; the pool turns it into an SbmError.

import { parentPort } from 'node:worker_threads';
import { type InflateBatch, runBatch } from './grain-inflater.js';

parentPort?.on('message', (request: { readonly id: number; readonly batch: InflateBatch }) => {
  try {
    const result = runBatch(request.batch);
    parentPort?.postMessage({ id: request.id, data: result.data, failure: result.failure }, [result.data.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort?.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});

// Tells the pool this worker has loaded: until then the pool inflates on the calling thread.
parentPort?.postMessage({ id: 0, ready: true });
