import test from 'ava';
import {
  encodeReply,
  encodeRequest,
  errorFromWire,
  errorToWire,
  parseReply,
  parseReplyWarnings,
  parseRequest,
} from '../../../lib/control/control-protocol.js';
import { ERROR_CODES, SbmError, isSbmError } from '../../../lib/errors.js';

function controlError(line: string): SbmError {
  try {
    parseRequest(line);
  } catch (error) {
    if (isSbmError(error, 'SBM_CONTROL')) return error;
    throw error;
  }
  throw new Error(`accepted: ${line}`);
}

test('requests round-trip through encodeRequest and parseRequest', (t) => {
  const requests = [
    { id: 1, op: 'token' },
    { id: 2, op: 'snapshotList' },
    { id: 3, op: 'changedSince', since: 'sbm1:x', audit: 'full' },
    { id: 4, op: 'changedSince', since: '2026-01-31' },
    { id: 5, op: 'snapshotCreate', name: 'daily' },
    { id: 6, op: 'snapshotDelete', name: 'daily' },
    { id: 7, op: 'snapshotRevert', name: 'daily' },
    { id: 8, op: 'changedSince', since: 'sbm1:x', returnWarnings: true, strict: false },
  ] as const;
  for (const request of requests) {
    const line = encodeRequest(request);
    t.true(line.endsWith('\n'));
    t.deepEqual(parseRequest(line.slice(0, -1)), request);
  }
});

test('malformed requests are SBM_CONTROL errors that keep a readable id', (t) => {
  t.is(controlError('not json').data.id, null);
  t.is(controlError('[1,2]').data.id, null);
  t.is(controlError('{"op":"token"}').data.id, null);
  t.is(controlError('{"id":-1,"op":"token"}').data.id, null);
  t.is(controlError('{"id":1.5,"op":"token"}').data.id, null);
  t.regex(controlError('{"id":7,"op":"format"}').message, /^SBM_CONTROL: request 7: unknown op "format"/);
  t.is(controlError('{"id":7,"op":"format"}').data.id, 7);
  t.is(controlError('{"id":8,"op":"snapshotCreate","args":{}}').data.id, 8);
  t.is(controlError('{"id":9,"op":"snapshotCreate","args":{"name":42}}').data.id, 9);
  t.is(controlError('{"id":10,"op":"changedSince","args":{"since":"x","audit":"some"}}').data.id, 10);
  t.is(controlError('{"id":11,"op":"token","args":[]}').data.id, 11);
  t.regex(controlError('{"id":13,"op":"changedSince","args":{"since":"x","strict":"yes"}}').message, /strict must be true or false/);
  t.regex(controlError(`{"id":12,"op":"snapshotCreate","args":{"name":"${'a'.repeat(2000)}"}}`).message, /at most 1024/);
});

test('an SbmError crosses the wire with its code, detail, data and exit status', (t) => {
  const original = new SbmError('SBM_TOKEN_STALE', 'token predates a reset', { token: 'sbm1:x', epoch: 7n });
  const line = encodeReply({ id: 3, error: errorToWire(original) });
  const reply = parseReply(line.slice(0, -1));
  t.is(reply.id, 3);
  if (!('error' in reply)) return t.fail('no error in reply');
  const rebuilt = errorFromWire(reply.error);
  t.true(isSbmError(rebuilt, 'SBM_TOKEN_STALE'));
  t.is(rebuilt.message, original.message);
  t.is(rebuilt.exitCode, ERROR_CODES.SBM_TOKEN_STALE.exitCode);
  t.is(rebuilt.exitCode, 10);
  t.like(rebuilt.data, { token: 'sbm1:x', epoch: '7', remote: true });
});

test('non-sbm errors travel as SBM_INTERNAL; unknown codes come back as SBM_CONTROL', (t) => {
  t.like(errorToWire(new TypeError('x is undefined')), { code: 'SBM_INTERNAL', message: 'x is undefined' });
  const unknown = errorFromWire({ code: 'SBM_FROM_THE_FUTURE', message: 'new', data: {} });
  t.true(isSbmError(unknown, 'SBM_CONTROL'));
  t.regex(unknown.message, /SBM_FROM_THE_FUTURE/);
});

test('malformed replies are SBM_CONTROL errors', (t) => {
  for (const line of ['', 'nope', '{}', '{"id":"1","result":1}', '{"id":1}', '{"id":1,"error":{"code":1}}']) {
    t.throws(() => parseReply(line), { code: 'SBM_CONTROL' } as never, line);
  }
  t.deepEqual(parseReply('{"id":null,"result":null}'), { id: null, result: null });
});

test('reply warnings are checked before they reach the caller', (t) => {
  t.deepEqual(parseReplyWarnings(undefined), [], 'an older mount sends none');
  t.deepEqual(parseReplyWarnings([{ code: 'SBM_FOREIGN_CHANGE', message: 'm', data: { bands: [1] } }]), [
    { code: 'SBM_FOREIGN_CHANGE', message: 'm', data: { bands: [1] } },
  ]);
  for (const bad of [{}, 'x', [{ code: 1, message: 'm' }], [null]]) {
    t.throws(() => parseReplyWarnings(bad), { message: /malformed warnings/ });
  }
});

test('sync I/O requests round-trip, and their sizes and data are checked', (t) => {
  const requests = [
    { id: 1, op: 'geometry' },
    { id: 2, op: 'flush' },
    { id: 3, op: 'read', offset: 4096, length: 65536 },
    { id: 4, op: 'zero', offset: 0, length: 8 * 1024 * 1024 },
    { id: 5, op: 'write', offset: 512, data: Buffer.from('band bytes').toString('base64') },
    { id: 6, op: 'grow', sizeBytes: 1 << 30 },
  ] as const;
  for (const request of requests) t.deepEqual(parseRequest(encodeRequest(request).slice(0, -1)), request);
  t.regex(controlError('{"id":1,"op":"read","args":{"offset":0,"length":2097152}}').message, /read length over 1048576/);
  t.regex(controlError('{"id":2,"op":"read","args":{"offset":-1,"length":1}}').message, /offset must be a non-negative integer/);
  t.regex(controlError('{"id":3,"op":"write","args":{"offset":0,"data":"not base64!"}}').message, /data must be base64/);
  const tooLong = 'A'.repeat(Math.ceil((1024 * 1024) / 3) * 4 + 4);
  t.regex(controlError(`{"id":4,"op":"write","args":{"offset":0,"data":"${tooLong}"}}`).message, /at most 1048576 bytes/);
  t.regex(controlError('{"id":5,"op":"grow","args":{"sizeBytes":"big"}}').message, /sizeBytes must be a non-negative integer/);
});
