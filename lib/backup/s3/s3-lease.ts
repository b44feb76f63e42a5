// The repository's lease: one object, PREFIX/lease.json, listing who uses the repository, changed
// only by compare-and-swap (a conditional PUT: If-None-Match to create it, If-Match on the entity
// tag read to replace it), so two runs never both believe they changed it.
//
//   backup, restore, mount   shared: any number at once (several disks may back up into one
//                            prefix; a restore or mount reads chunks a thin must not collect)
//   thin                     exclusive: waits until no other run holds the lease, and they wait
//                            for it
//
// Why thin needs it: a backup skips uploading a chunk that the previous manifest (or a HEAD)
// shows is stored. If thin collected that chunk in the meantime, the new manifest would name a
// missing chunk. With the lease, thin collects only while no backup runs, and a backup trusts
// only what it saw while holding its share.
//
// Each holder has an expiry (its clock + TTL) that it renews every TTL/3; a holder killed with
// SIGKILL stops renewing, and its entry is ignored and dropped once expired. A holder that finds
// its own entry gone (it stalled past the TTL and a thin may have run) fails before it writes a
// manifest (check()). Clocks of the machines sharing a repository must roughly agree.

import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { SbmError } from '../../errors.js';
import { randomTag } from '../../fs/temp-name.js';
import type { S3Repository } from './s3-repository.js';

export type LeaseKind = 'backup' | 'restore' | 'mount' | 'thin';

interface LeaseHolder {
  readonly id: string;
  readonly kind: LeaseKind;
  readonly host: string;
  readonly pid: number;
  readonly since: string;
  readonly expiresAt: string;
}

const LEASE_KIND = 'sbm-s3-lease';
const DEFAULT_TTL_SECONDS = 120;
const DEFAULT_WAIT_SECONDS = 600;

export interface LeaseOptions {
  /** Seconds an entry stays valid without renewal (default SBM_S3_LEASE_SECONDS, else 120). */
  readonly ttlSeconds?: number;
  /** Seconds to wait for a conflicting holder before SBM_LOCKED (default 600). */
  readonly waitSeconds?: number;
  /** Told once when the run has to wait for another holder. */
  readonly onWait?: (holder: string) => void;
}

export interface Lease {
  /** Renews the entry now and fails (SBM_LOCKED) if it was lost: call before a commit. */
  check(): Promise<void>;
  /** Removes the entry (idempotent); a failure leaves it to expire. */
  release(): Promise<void>;
}

export async function acquireLease(repository: S3Repository, kind: LeaseKind, options: LeaseOptions = {}): Promise<Lease> {
  const ttlMs = 1000 * (options.ttlSeconds ?? leaseSecondsFromEnvironment());
  const deadline = Date.now() + 1000 * (options.waitSeconds ?? DEFAULT_WAIT_SECONDS);
  const id = randomTag(16);
  const entry = (): LeaseHolder => ({
    id,
    kind,
    host: hostname(),
    pid: process.pid,
    since: new Date().toISOString(),
    expiresAt: new Date(Date.now() + ttlMs).toISOString(),
  });
  let told = false;
  for (let attempt = 0; ; attempt++) {
    const { holders, etag } = await readLease(repository);
    const blocker = kind === 'thin' ? holders[0] : holders.find((holder) => holder.kind === 'thin');
    if (blocker !== undefined) {
      const who = `${blocker.kind} run ${blocker.id} of pid ${blocker.pid} on ${blocker.host} (until ${blocker.expiresAt} unless renewed)`;
      if (Date.now() > deadline) {
        throw new SbmError('SBM_LOCKED', `${repository.store.describe(repository.leaseKey)} is held by a ${who}`, { holder: blocker });
      }
      if (!told) options.onWait?.(who);
      told = true;
      await sleep(Math.min(2000, 250 * 2 ** Math.min(attempt, 3)));
      continue;
    }
    if (await swap(repository, etag, [...holders, entry()])) break;
    await sleep(50 + Math.random() * 200); // another run changed it between our read and write
  }
  let lost: SbmError | undefined;
  let released = false;
  let chain: Promise<void> = Promise.resolve();
  const renew = () => {
    chain = chain.then(async () => {
      if (released || lost !== undefined) return;
      const ok = await update(repository, (holders) => {
        const mine = holders.find((holder) => holder.id === id);
        if (mine === undefined) return undefined;
        return holders.map((holder) => (holder.id === id ? { ...holder, expiresAt: entry().expiresAt } : holder));
      });
      if (!ok) {
        lost = new SbmError(
          'SBM_LOCKED',
          `lost the lease on ${repository.store.describe(repository.leaseKey)} (this run stalled past its ${ttlMs / 1000} s expiry); ` +
            'nothing was committed',
        );
      }
    });
    return chain;
  };
  const timer = setInterval(() => void renew().catch(() => undefined), ttlMs / 3);
  timer.unref();
  return {
    async check() {
      await renew();
      if (lost !== undefined) throw lost;
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await chain.catch(() => undefined);
      // Best effort: an entry left behind only delays a thin until it expires.
      await update(repository, (holders) => holders.filter((holder) => holder.id !== id)).catch(() => undefined);
    },
  };
}

/** Live holders (expired ones dropped) and the entity tag of the version read. */
async function readLease(repository: S3Repository): Promise<{ holders: LeaseHolder[]; etag: string | undefined }> {
  const found = await repository.store.get(repository.leaseKey);
  if (found === undefined) return { holders: [], etag: undefined };
  let holders: LeaseHolder[] = [];
  try {
    // An encrypted repository's lease is sealed; one that does not open names nobody either.
    const body = repository.openDocument(repository.leaseKey, found.body)?.toString('utf8') ?? '';
    const parsed = JSON.parse(body) as { kind?: unknown; holders?: unknown };
    if (parsed.kind === LEASE_KIND && Array.isArray(parsed.holders)) holders = parsed.holders as LeaseHolder[];
  } catch {
    // a damaged lease names nobody: it is replaced by the next compare-and-swap
  }
  const now = Date.now();
  return { holders: holders.filter((holder) => typeof holder?.id === 'string' && Date.parse(holder.expiresAt) > now), etag: found.etag };
}

async function swap(repository: S3Repository, etag: string | undefined, holders: LeaseHolder[]): Promise<boolean> {
  const body = repository.sealDocument(repository.leaseKey, Buffer.from(`${JSON.stringify({ kind: LEASE_KIND, holders }, null, 1)}\n`));
  const condition = etag === undefined ? ({ ifNoneMatch: true } as const) : { ifMatch: etag };
  return (await repository.store.putIf(repository.leaseKey, body, condition)) !== undefined;
}

/** Compare-and-swap loop; `change` returning undefined means "give up" (false). */
async function update(repository: S3Repository, change: (holders: LeaseHolder[]) => LeaseHolder[] | undefined): Promise<boolean> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const { holders, etag } = await readLease(repository);
    const next = change(holders);
    if (next === undefined) return false;
    if (await swap(repository, etag, next)) return true;
    await sleep(50 + Math.random() * 200);
  }
  throw new SbmError('SBM_S3_FAILED', `could not update ${repository.store.describe(repository.leaseKey)}: it kept changing`);
}

function leaseSecondsFromEnvironment(): number {
  const text = process.env.SBM_S3_LEASE_SECONDS;
  if (text === undefined || text === '') return DEFAULT_TTL_SECONDS;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds < 1)
    throw new SbmError('SBM_USAGE', `SBM_S3_LEASE_SECONDS must be a number of seconds >= 1, not "${text}"`);
  return seconds;
}
