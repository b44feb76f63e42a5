// The sans-IO server against hand-built client bytes: the golden exchange of
// reference/nbd-protocol.md §3.3, every-byte-split feeding, and each hostile handshake or request.

import test from 'ava';
import fc from 'fast-check';

import * as C from '../../../lib/nbd/constants.js';
import type { NbdExport } from '../../../lib/nbd/nbd-export.js';
import { runRequest } from '../../../lib/nbd/nbd-request-runner.js';
import { type NbdAction, NbdServerProtocol } from '../../../lib/nbd/nbd-server-protocol.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { CLIENT_FLAGS, goData, hex, metaData, option, parseOptionReplies, parseReply, request, str32, u32 } from './nbd-frames.js';

const MIB = 1024 * 1024;
const RW: NbdExport = { name: 'disk', sizeBytes: MIB, readOnly: false, multiConn: true };
const RO: NbdExport = { ...RW, readOnly: true };

function feed(target: NbdExport, bytes: Buffer, splits: number[] = [bytes.length]): { actions: NbdAction[]; protocol: NbdServerProtocol } {
  const protocol = new NbdServerProtocol(target);
  const actions: NbdAction[] = [];
  let at = 0;
  for (const size of splits) {
    protocol.receive(bytes.subarray(at, at + size));
    at += size;
    actions.push(...protocol.drain());
  }
  if (at < bytes.length) {
    protocol.receive(bytes.subarray(at));
    actions.push(...protocol.drain());
  }
  return { actions, protocol };
}

function sent(actions: NbdAction[]): Buffer {
  return Buffer.concat(actions.flatMap((action) => (action.kind === 'send' ? [action.data] : [])));
}

function kinds(actions: NbdAction[]): string[] {
  return actions.map((action) => action.kind);
}

/** Handshake to transmission with structured replies and base:allocation selected. */
const STRUCTURED_GO = Buffer.concat([
  CLIENT_FLAGS,
  option(C.NBD_OPT_STRUCTURED_REPLY),
  option(C.NBD_OPT_SET_META_CONTEXT, metaData('', ['base:allocation'])),
  option(C.NBD_OPT_GO, goData('', [C.NBD_INFO_BLOCK_SIZE])),
]);
const SIMPLE_GO = Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_GO, goData('disk'))]);

test('greeting is NBDMAGIC, IHAVEOPT and FIXED_NEWSTYLE|NO_ZEROES', (t) => {
  t.is(new NbdServerProtocol(RW).greeting().toString('hex'), '4e42444d41474943' + '49484156454f5054' + '0003');
});

test('golden exchange (nbdinfo --map) matches the reference bytes', async (t) => {
  const { actions } = feed(RW, STRUCTURED_GO);
  const expected = hex(`
    0003e889045565a9 00000008 00000001 00000000
    0003e889045565a9 0000000a 00000004 00000013 00000001 ${Buffer.from('base:allocation').toString('hex')}
    0003e889045565a9 0000000a 00000001 00000000
    0003e889045565a9 00000007 00000003 0000000c 0000 0000000000100000 0ded
    0003e889045565a9 00000007 00000003 0000000e 0003 00000001 00001000 02000000
    0003e889045565a9 00000007 00000001 00000000`);
  t.is(sent(actions).toString('hex'), expected.toString('hex'));
  t.deepEqual(kinds(actions).slice(-1), ['transmission']);

  const protocol = feed(RW, STRUCTURED_GO).protocol;
  protocol.receive(request(C.NBD_CMD_BLOCK_STATUS, 0, 1n, 0, MIB));
  const [action] = protocol.drain();
  if (action?.kind !== 'request') return t.fail('expected a request');
  const reply = await runRequest(new MemoryDevice(MIB), action.request);
  t.is(reply.toString('hex'), '668e33ef' + '0001' + '0005' + '0000000000000001' + '0000000c' + '00000001' + '00100000' + '00000003');
  protocol.receive(request(C.NBD_CMD_DISC, 0, 2n, 0, 0));
  t.like(protocol.drain()[0], { kind: 'close', graceful: true });
});

const SESSION = Buffer.concat([
  STRUCTURED_GO,
  request(C.NBD_CMD_WRITE, C.NBD_CMD_FLAG_FUA, 7n, 4096, 5, Buffer.from('hello')),
  request(C.NBD_CMD_READ, 0, 8n, 4096, 5),
  request(C.NBD_CMD_READ, 0, 9n, MIB, 1),
  request(C.NBD_CMD_FLUSH, 0, 10n, 0, 0),
  request(C.NBD_CMD_DISC, 0, 11n, 0, 0),
]);

function describe(actions: NbdAction[]): unknown[] {
  return actions.map((action) => {
    if (action.kind === 'send') return { send: action.data.toString('hex') };
    if (action.kind === 'request')
      return { kind: 'request', ...action.request, cookie: String(action.request.cookie), data: action.request.data?.toString('hex') };
    return action;
  });
}

test('feeding one byte at a time gives exactly the actions of one big chunk', (t) => {
  const whole = describe(feed(RW, SESSION).actions);
  const bytewise = describe(
    feed(
      RW,
      SESSION,
      Array.from({ length: SESSION.length }, () => 1),
    ).actions,
  );
  t.deepEqual(bytewise, whole);
  t.is(
    whole.filter((action) => (action as { kind?: string }).kind === 'request').length,
    3,
    'WRITE, READ and FLUSH run; the out-of-range READ is answered directly',
  );
});

test('every split point of a session gives the same actions (property, random chunkings)', (t) => {
  const whole = describe(feed(RW, SESSION).actions);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 200 }), (splits) => {
      t.deepEqual(describe(feed(RW, SESSION, splits).actions), whole);
    }),
    { numRuns: 200 },
  );
});

test('mangled byte streams never throw and never emit a request before the handshake ends', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(SESSION.length - 1), (noise, cut) => {
      const stream = Buffer.concat([SESSION.subarray(0, cut), noise]);
      const { actions } = feed(RW, stream, [7, 13, 1, 64]);
      const firstRequest = actions.findIndex((action) => action.kind === 'request');
      const transmission = actions.findIndex((action) => action.kind === 'transmission');
      if (firstRequest !== -1) t.true(transmission !== -1 && transmission < firstRequest);
    }),
    { numRuns: 300 },
  );
});

function replies(bytes: Buffer) {
  return parseOptionReplies(bytes).map((reply) => ({ option: reply.option, type: reply.type, length: reply.data.length }));
}

test('unknown options and STARTTLS get ERR_UNSUP and the handshake carries on', (t) => {
  const { actions } = feed(
    RW,
    Buffer.concat([
      CLIENT_FLAGS,
      option(99, Buffer.from('xyz')),
      option(C.NBD_OPT_STARTTLS),
      option(C.NBD_OPT_EXTENDED_HEADERS),
      option(C.NBD_OPT_GO, goData('')),
    ]),
  );
  const list = replies(sent(actions));
  t.deepEqual(list.slice(0, 3), [
    { option: 99, type: C.NBD_REP_ERR_UNSUP, length: 0 },
    { option: C.NBD_OPT_STARTTLS, type: C.NBD_REP_ERR_UNSUP, length: 0 },
    { option: C.NBD_OPT_EXTENDED_HEADERS, type: C.NBD_REP_ERR_UNSUP, length: 0 },
  ]);
  t.is(list.at(-1)?.type, C.NBD_REP_ACK);
  t.is(actions.at(-1)?.kind, 'transmission');
});

test('bad client flags, bad option magic and too many options drop the client', (t) => {
  t.like(feed(RW, hex('00000007')).actions[0], { kind: 'close', graceful: false });
  t.like(feed(RW, Buffer.concat([CLIENT_FLAGS, hex('0000000000000000 00000003 00000000')])).actions[0], { kind: 'close', graceful: false });
  const many = Buffer.concat([CLIENT_FLAGS, ...Array.from({ length: C.SBM_MAX_OPTIONS + 1 }, () => option(C.NBD_OPT_LIST))]);
  const { actions } = feed(RW, many);
  t.is(actions.filter((action) => action.kind === 'send').length, C.SBM_MAX_OPTIONS * 2);
  t.like(actions.at(-1), { kind: 'close', graceful: false });
});

test('option data over 64 KiB is skipped with ERR_TOO_BIG; over 4 MiB drops the client before reading it', (t) => {
  const big = Buffer.alloc(100 * 1024);
  const { actions } = feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_LIST, big), option(C.NBD_OPT_LIST)]), [4, 16, 1000, 50_000]);
  t.deepEqual(
    replies(sent(actions)).map((reply) => reply.type),
    [C.NBD_REP_ERR_TOO_BIG, C.NBD_REP_SERVER, C.NBD_REP_ACK],
  );
  const huge = feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_GO, Buffer.alloc(0), 0xffffffff)]));
  t.like(huge.actions[0], { kind: 'close', graceful: false });
  t.true(huge.protocol.closed);
});

test('INFO/GO validate every length and the export name', (t) => {
  const bad = [
    Buffer.alloc(5), // shorter than namelen + count
    Buffer.concat([u32(100), Buffer.from('ab'), hex('0000')]), // namelen overruns
    Buffer.concat([str32(''), hex('0002 0003')]), // count says 2, one given
  ];
  for (const data of bad) {
    const list = replies(sent(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_INFO, data)])).actions));
    t.deepEqual(list, [{ option: C.NBD_OPT_INFO, type: C.NBD_REP_ERR_INVALID, length: 0 }]);
  }
  const unknown = replies(sent(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_GO, goData('other'))])).actions));
  t.deepEqual(unknown, [{ option: C.NBD_OPT_GO, type: C.NBD_REP_ERR_UNKNOWN, length: 0 }]);
  const info = parseOptionReplies(
    sent(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_INFO, goData('disk', [C.NBD_INFO_NAME, 77]))])).actions),
  );
  t.deepEqual(
    info.map((reply) => reply.type),
    [C.NBD_REP_INFO, C.NBD_REP_INFO, C.NBD_REP_ACK],
  );
  t.deepEqual(
    info.slice(0, 2).map((reply) => reply.data.readUInt16BE(0)),
    [C.NBD_INFO_EXPORT, C.NBD_INFO_NAME],
  );
  t.is(info[1]?.data.subarray(2).toString(), 'disk');
});

test('meta contexts: SET needs structured replies, unknown namespaces are skipped, LIST answers id 0', (t) => {
  const noSr = replies(
    sent(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_SET_META_CONTEXT, metaData('', ['base:allocation']))])).actions),
  );
  t.deepEqual(
    noSr.map((reply) => reply.type),
    [C.NBD_REP_ERR_INVALID],
  );
  const qemu = parseOptionReplies(
    sent(
      feed(
        RW,
        Buffer.concat([
          CLIENT_FLAGS,
          option(C.NBD_OPT_STRUCTURED_REPLY),
          option(C.NBD_OPT_SET_META_CONTEXT, metaData('', ['qemu:dirty-bitmap:x', 'base:allocation'])),
        ]),
      ).actions,
    ),
  );
  t.deepEqual(
    qemu.slice(1).map((reply) => reply.type),
    [C.NBD_REP_META_CONTEXT, C.NBD_REP_ACK],
  );
  t.is(qemu[1]?.data.readUInt32BE(0), C.SBM_BASE_ALLOCATION_ID);
  const list = parseOptionReplies(
    sent(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_LIST_META_CONTEXT, metaData('', []))])).actions),
  );
  t.is(list[0]?.data.readUInt32BE(0), 0);
  t.is(list[0]?.data.subarray(4).toString(), 'base:allocation');
  const overrun = Buffer.concat([str32(''), u32(1), u32(50), Buffer.from('base:allocation')]);
  const bad = replies(
    sent(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_STRUCTURED_REPLY), option(C.NBD_OPT_SET_META_CONTEXT, overrun)])).actions),
  );
  t.is(bad[1]?.type, C.NBD_REP_ERR_INVALID);
});

test('EXPORT_NAME: 124 zero bytes unless NO_ZEROES, unknown name drops, LIST and ABORT', (t) => {
  const zeros = sent(feed(RW, Buffer.concat([hex('00000001'), option(C.NBD_OPT_EXPORT_NAME, Buffer.from('disk'))])).actions);
  t.is(zeros.length, 134);
  t.is(zeros.subarray(0, 10).toString('hex'), '0000000000100000' + '0d6d');
  t.is(sent(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_EXPORT_NAME)])).actions).length, 10);
  t.like(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_EXPORT_NAME, Buffer.from('nope'))])).actions[0], {
    kind: 'close',
    graceful: false,
  });
  const list = parseOptionReplies(sent(feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_LIST)])).actions));
  t.deepEqual(
    list.map((reply) => reply.type),
    [C.NBD_REP_SERVER, C.NBD_REP_ACK],
  );
  t.is(list[0]?.data.toString('hex'), `00000004${Buffer.from('disk').toString('hex')}`);
  const abort = feed(RW, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_ABORT)])).actions;
  t.deepEqual(kinds(abort), ['send', 'close']);
  t.like(abort[1], { graceful: true });
});

test('read-only exports advertise READ_ONLY without write flags', (t) => {
  const info = parseOptionReplies(
    sent(feed(RO, Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_STRUCTURED_REPLY), option(C.NBD_OPT_GO, goData(''))])).actions),
  );
  t.is(info[1]?.data.readUInt16BE(10), 0x0587);
});

function transmit(target: NbdExport, handshake: Buffer, ...requests: Buffer[]) {
  const protocol = feed(target, handshake).protocol;
  protocol.receive(Buffer.concat(requests));
  return protocol.drain();
}

function simpleErrors(actions: NbdAction[]): Array<[string, number]> {
  return actions.flatMap((action) => {
    if (action.kind !== 'send') return [];
    const { reply } = parseReply(action.data);
    if (reply.kind === 'simple') return [[String(reply.cookie), reply.error] as [string, number]];
    return [[String(reply.cookie), reply.payload.readUInt32BE(0)] as [string, number]];
  });
}

test('out-of-range, wrong flags, unknown commands and oversize reads get per-request errors', (t) => {
  const actions = transmit(
    RW,
    SIMPLE_GO,
    request(C.NBD_CMD_READ, 0, 1n, MIB - 1, 2),
    request(C.NBD_CMD_WRITE, 0, 2n, MIB - 1, 2, Buffer.from('ab')),
    request(C.NBD_CMD_WRITE_ZEROES, 0, 3n, MIB, 1),
    request(C.NBD_CMD_TRIM, 0, 4n, 0xffffffffffffff00n, 0x200),
    request(C.NBD_CMD_FLUSH, 0, 5n, 0, 1),
    request(42, 0, 6n, 0, 0),
    request(C.NBD_CMD_READ, C.NBD_CMD_FLAG_REQ_ONE, 7n, 0, 1),
    request(C.NBD_CMD_READ, 0, 8n, 0, C.SBM_MAX_PAYLOAD_BYTES + 1),
    request(C.NBD_CMD_BLOCK_STATUS, 0, 9n, 0, 512),
    request(C.NBD_CMD_READ, C.NBD_CMD_FLAG_DF, 10n, 0, 1),
    request(C.NBD_CMD_READ, 0, 11n, 0, 4),
  );
  t.deepEqual(simpleErrors(actions), [
    ['1', C.NBD_EINVAL],
    ['2', C.NBD_ENOSPC],
    ['3', C.NBD_ENOSPC],
    ['4', C.NBD_EINVAL],
    ['5', C.NBD_EINVAL],
    ['6', C.NBD_EINVAL],
    ['7', C.NBD_EINVAL],
    ['8', C.NBD_EOVERFLOW],
    ['9', C.NBD_EINVAL],
    ['10', C.NBD_EINVAL],
  ]);
  // The rejected WRITE's payload was consumed: the last READ parsed cleanly.
  t.like(actions.at(-1), { kind: 'request', request: { cookie: 11n, offset: 0, length: 4 } });
});

test('structured replies carry READ errors as ERROR chunks', (t) => {
  const [action] = transmit(RW, STRUCTURED_GO, request(C.NBD_CMD_READ, 0, 5n, MIB, 1));
  if (action?.kind !== 'send') return t.fail();
  const { reply } = parseReply(action.data);
  t.like(reply, { kind: 'chunk', type: C.NBD_REPLY_TYPE_ERROR, flags: C.NBD_REPLY_FLAG_DONE, cookie: 5n });
});

test('read-only export: WRITE, TRIM and WRITE_ZEROES get EPERM, the WRITE payload is skipped', (t) => {
  const actions = transmit(
    RO,
    SIMPLE_GO,
    request(C.NBD_CMD_WRITE, 0, 1n, 0, 3, Buffer.from('abc')),
    request(C.NBD_CMD_TRIM, 0, 2n, 0, 512),
    request(C.NBD_CMD_WRITE_ZEROES, 0, 3n, 0, 512),
    request(C.NBD_CMD_FLUSH, 0, 4n, 0, 0),
  );
  t.deepEqual(simpleErrors(actions), [
    ['1', C.NBD_EPERM],
    ['2', C.NBD_EPERM],
    ['3', C.NBD_EPERM],
  ]);
  t.like(actions.at(-1), { kind: 'request', request: { cookie: 4n, type: C.NBD_CMD_FLUSH } });
});

test('oversize WRITE: payload up to 128 MiB is discarded then EINVAL; beyond, the client is dropped', (t) => {
  const protocol = feed({ ...RW, sizeBytes: 256 * MIB }, SIMPLE_GO).protocol;
  const length = C.SBM_MAX_PAYLOAD_BYTES + 4096;
  protocol.receive(request(C.NBD_CMD_WRITE, 0, 1n, 0, length));
  const actions = protocol.drain();
  for (let sent = 0; sent < length; sent += MIB) {
    protocol.receive(Buffer.alloc(Math.min(MIB, length - sent)));
    actions.push(...protocol.drain());
    t.is(protocol.bufferedBytes, 0, 'skipped bytes are not buffered');
  }
  protocol.receive(request(C.NBD_CMD_FLUSH, 0, 2n, 0, 0));
  actions.push(...protocol.drain());
  t.deepEqual(simpleErrors(actions), [['1', C.NBD_EINVAL]]);
  t.like(actions[1], { kind: 'request', request: { cookie: 2n } });
  const dropped = transmit(RW, SIMPLE_GO, request(C.NBD_CMD_WRITE, 0, 1n, 0, 0xffffffff));
  t.like(dropped[0], { kind: 'close', graceful: false });
});

test('bad request magic drops the client; DISC closes gracefully', (t) => {
  const bad = request(C.NBD_CMD_READ, 0, 1n, 0, 1);
  bad.writeUInt32BE(0x25609514, 0);
  t.like(transmit(RW, SIMPLE_GO, bad)[0], { kind: 'close', graceful: false });
  const disc = transmit(RW, SIMPLE_GO, request(C.NBD_CMD_DISC, 0, 1n, 0, 0), request(C.NBD_CMD_READ, 0, 2n, 0, 1));
  t.deepEqual(kinds(disc), ['close']);
});
