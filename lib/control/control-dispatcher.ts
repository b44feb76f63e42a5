// Server-side request handling, sans-IO: a request in, a reply out. Requests from all
// connections run one at a time (they drain the bundle's I/O anyway). A backup snapshot
// (sbm-backup-*) created through a connection is held by it: another connection cannot delete it
// (SBM_LOCKED, which a backup's stale cleanup skips), and it is deleted when its connection goes
// away without deleting it (a killed `sbm backup`).

import { BACKUP_SNAPSHOT_PREFIX } from '../backup/bundle-backup-source.js';
import { SbmError } from '../errors.js';
import { type SbmWarning, strictWarningError } from '../warnings.js';
import type { BundleOperations } from './bundle-operations.js';
import { type ControlReply, type ControlRequest, errorToWire, parseRequest } from './control-protocol.js';

export class ControlDispatcher {
  #queue: Promise<unknown> = Promise.resolve();
  /** snapshot name -> id of the connection whose backup holds it */
  #held = new Map<string, number>();

  constructor(private readonly operations: BundleOperations) {}

  /** Runs one request line for connection `connectionId`; never throws. */
  async handleLine(connectionId: number, line: string): Promise<ControlReply> {
    let request: ControlRequest;
    try {
      request = parseRequest(line);
    } catch (error) {
      const id = error instanceof SbmError && typeof error.data.id === 'number' ? error.data.id : null;
      return { id, error: errorToWire(error) };
    }
    try {
      return { id: request.id, result: await this.#serialized(() => this.#run(connectionId, request)) };
    } catch (error) {
      return { id: request.id, error: errorToWire(error) };
    }
  }

  /** Deletes the backup snapshots a closed connection still held; failures go to `onError`. */
  async release(connectionId: number, onError: (error: unknown) => void): Promise<void> {
    const names = [...this.#held].filter(([, holder]) => holder === connectionId).map(([name]) => name);
    for (const name of names) {
      this.#held.delete(name);
      await this.#serialized(() => this.operations.snapshotDelete(name)).catch(onError);
    }
  }

  async #run(connectionId: number, request: ControlRequest): Promise<unknown> {
    switch (request.op) {
      case 'token':
        return { token: await this.operations.token() };
      case 'changedSince': {
        // The caller's warnings (edits found behind sbm's back) go back to the caller, not to the
        // mount's output, when it asks (every client since the field exists does).
        if (request.returnWarnings !== true) return this.operations.changedBandsSince(request.since, request.audit);
        const warnings: SbmWarning[] = [];
        const sink = (warning: SbmWarning): void => {
          if (request.strict === true) throw strictWarningError(warning);
          warnings.push(warning);
        };
        return { ...(await this.operations.changedBandsSince(request.since, request.audit, sink)), warnings };
      }
      case 'snapshotList':
        return { snapshots: await this.operations.snapshotList() };
      case 'snapshotCreate': {
        const info = await this.operations.snapshotCreate(request.name);
        if (request.name.startsWith(BACKUP_SNAPSHOT_PREFIX)) this.#held.set(request.name, connectionId);
        return info;
      }
      case 'snapshotDelete': {
        const holder = this.#held.get(request.name);
        if (holder !== undefined && holder !== connectionId) {
          throw new SbmError('SBM_LOCKED', `snapshot "${request.name}" is held by a backup running through this mount`, {
            name: request.name,
          });
        }
        await this.operations.snapshotDelete(request.name);
        this.#held.delete(request.name);
        return { deleted: request.name };
      }
      case 'snapshotRevert':
        return this.operations.snapshotRevert(request.name);
      case 'geometry':
        return this.operations.geometry();
      case 'read':
        return { data: (await this.operations.read(request.offset, request.length)).toString('base64') };
      case 'write':
        await this.operations.write(request.offset, Buffer.from(request.data, 'base64'));
        return {};
      case 'zero':
        await this.operations.zero(request.offset, request.length);
        return {};
      case 'flush':
        await this.operations.flush();
        return {};
      case 'grow':
        await this.operations.grow(request.sizeBytes);
        return {};
    }
  }

  #serialized<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(operation, operation);
    this.#queue = result.catch(() => undefined); // the caller gets the error; the queue goes on
    return result;
  }
}
