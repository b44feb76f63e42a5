// Client end of the mount control channel: one connection, one request in flight at a time.
// Paths in replies are the mount's; they are rebuilt from this process's bundle path (the mount
// may have been started from another working directory).

import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { BackupSource } from '../backup/create-backup.js';
import { bundlePaths } from '../bundle/bundle-paths.js';
import { SbmError } from '../errors.js';
import { SNAPSHOTS_DIR, SNAPSHOT_SUFFIX, type SnapshotInfo } from '../snapshots/snapshot-manager.js';
import type { ChangedBandsResult } from '../session/bundle-session.js';
import type { AuditMode, ChangeReport } from '../tracking/tracker-types.js';
import type { BundleOperations } from './bundle-operations.js';
import { CONNECT_TIMEOUT_MS, MAX_REPLY_BYTES } from './constants.js';
import { type ControlRequest, encodeRequest, errorFromWire, parseReply, parseReplyWarnings } from './control-protocol.js';
import type { WarningSink } from '../warnings.js';
import { LineFramer } from './line-framer.js';
import { remoteBackupSource } from './remote-backup-source.js';

/** Where warnings the mount raises for this client go, and whether they fail the request. */
export interface RemoteWarnings {
  readonly onWarning: WarningSink;
  /** The caller's --strict: the mount then fails a request at its first warning, as a local run would. */
  readonly strict: boolean;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface Pending {
  readonly id: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export class ControlClient implements BundleOperations {
  readonly remote = true;
  #socket: Socket;
  #framer = new LineFramer(MAX_REPLY_BYTES);
  #pending: Pending | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #nextId = 1;
  #closed: Error | undefined;

  private constructor(
    readonly path: string,
    socket: Socket,
    private readonly warnings: RemoteWarnings,
  ) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) =>
      this.#fail(
        new SbmError('SBM_CONTROL', `control connection to the mount of ${path} failed: ${error.message}`, { path }, { cause: error }),
      ),
    );
    socket.on('close', () => this.#fail(new SbmError('SBM_CONTROL', `the mount of ${path} closed the control connection`, { path })));
  }

  /** Connects to `socketPath`; rejects with the socket error (ENOENT, ECONNREFUSED, timeout). */
  static async connect(
    bundlePath: string,
    socketPath: string,
    warnings: RemoteWarnings,
    timeoutMs = CONNECT_TIMEOUT_MS,
  ): Promise<ControlClient> {
    // Loaded here, not at the top: only a bundle served by `sbm mount` needs it, and every
    // `sbm token` / `changed-bands` would otherwise pay for loading `net` at start-up.
    const { createConnection } = await import('node:net');
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path: socketPath });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new SbmError('SBM_CONTROL', `control socket ${socketPath} did not accept within ${timeoutMs} ms`, { socketPath }));
      }, timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ControlClient(bundlePath, socket, warnings));
      });
    });
  }

  async token(): Promise<string> {
    const result = (await this.call({ op: 'token' })) as { token: string };
    return result.token;
  }

  async changedBandsSince(since: string, audit?: AuditMode, onWarning: WarningSink = this.warnings.onWarning): Promise<ChangedBandsResult> {
    const request = {
      op: 'changedSince',
      since,
      ...(audit === undefined ? {} : { audit }),
      returnWarnings: true,
      strict: this.warnings.strict,
    } as const;
    const { warnings, ...result } = (await this.call(request)) as ChangedBandsResult & { warnings?: unknown };
    for (const warning of parseReplyWarnings(warnings)) onWarning(warning);
    const report: ChangeReport = {
      ...result.report,
      bands: result.report.bands.map((band) => ({ ...band, path: join(this.path, band.relativePath) })),
    };
    return { ...result, report };
  }

  async snapshotCreate(name: string): Promise<SnapshotInfo> {
    return this.#localise((await this.call({ op: 'snapshotCreate', name })) as SnapshotInfo);
  }

  async snapshotList(): Promise<SnapshotInfo[]> {
    const result = (await this.call({ op: 'snapshotList' })) as { snapshots: SnapshotInfo[] };
    return result.snapshots.map((info) => this.#localise(info));
  }

  async snapshotDelete(name: string): Promise<void> {
    await this.call({ op: 'snapshotDelete', name });
  }

  snapshotRevert(name: string): Promise<{ bandsChanged: number }> {
    return this.call({ op: 'snapshotRevert', name }) as Promise<{ bandsChanged: number }>;
  }

  backupSource(): BackupSource {
    return remoteBackupSource(this, this.path);
  }

  geometry(): Promise<{ sizeBytes: number; bandSizeBytes: number }> {
    return this.call({ op: 'geometry' }) as Promise<{ sizeBytes: number; bandSizeBytes: number }>;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const result = (await this.call({ op: 'read', offset, length })) as { data: string };
    const data = Buffer.from(result.data, 'base64');
    if (data.length !== length) throw new SbmError('SBM_CONTROL', `the mount of ${this.path} answered a read with ${data.length} bytes`);
    return data;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    await this.call({ op: 'write', offset, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') });
  }

  async zero(offset: number, length: number): Promise<void> {
    await this.call({ op: 'zero', offset, length });
  }

  async flush(): Promise<void> {
    await this.call({ op: 'flush' });
  }

  async grow(sizeBytes: number): Promise<void> {
    await this.call({ op: 'grow', sizeBytes });
  }

  /** Sends one request and waits for its reply; requests from one client run in order. */
  call(request: DistributiveOmit<ControlRequest, 'id'>): Promise<unknown> {
    const run = async (): Promise<unknown> => {
      if (this.#closed !== undefined) throw this.#closed;
      const id = this.#nextId++;
      return new Promise((resolve, reject) => {
        this.#pending = { id, resolve, reject };
        this.#socket.write(encodeRequest({ ...request, id } as ControlRequest));
      });
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined); // the caller gets the error; the queue goes on
    return result;
  }

  async close(): Promise<void> {
    if (this.#closed === undefined) this.#closed = new SbmError('SBM_CLOSED', `control connection to the mount of ${this.path} is closed`);
    if (this.#socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.#socket.once('close', () => resolve());
      this.#socket.end();
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #localise(info: SnapshotInfo): SnapshotInfo {
    return { ...info, path: join(bundlePaths(this.path).sbm, SNAPSHOTS_DIR, `${info.name}${SNAPSHOT_SUFFIX}`) };
  }

  #onData(chunk: Buffer): void {
    const { lines, overflow } = this.#framer.push(chunk);
    try {
      for (const line of lines) this.#settle(line);
    } catch (error) {
      this.#fail(error as Error);
      return;
    }
    if (overflow)
      this.#fail(new SbmError('SBM_CONTROL', `reply from the mount of ${this.path} exceeds ${MAX_REPLY_BYTES} bytes`, { path: this.path }));
  }

  #settle(line: string): void {
    const reply = parseReply(line);
    const pending = this.#pending;
    if (pending === undefined || (reply.id !== null && reply.id !== pending.id)) {
      throw new SbmError('SBM_CONTROL', `unexpected reply ${String(reply.id)} from the mount of ${this.path}`, { path: this.path });
    }
    this.#pending = undefined;
    if ('error' in reply) pending.reject(errorFromWire(reply.error));
    else pending.resolve(reply.result);
  }

  #fail(error: Error): void {
    this.#closed ??= error;
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(error);
    if (!this.#socket.destroyed) this.#socket.destroy();
  }
}
