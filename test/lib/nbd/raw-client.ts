// A raw-socket NBD test client: sends bytes exactly as given and reads replies byte-exactly, so
// hostile and malformed exchanges can be tested against the real server.

import { type Socket, connect } from 'node:net';
import * as C from '../../../lib/nbd/constants.js';
import { CLIENT_FLAGS, goData, option, parseReply } from './nbd-frames.js';

export class RawClient {
  private buffered = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  readonly closed: Promise<void>;
  ended = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.waiter?.();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.waiter?.();
        resolve();
      }),
    );
  }

  static connect(target: { socketPath?: string; port?: number; host?: string }): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = target.socketPath !== undefined ? connect(target.socketPath) : connect(target.port ?? 0, target.host ?? '127.0.0.1');
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Exactly `count` bytes; rejects if the server closes first or after `timeoutMs`. */
  async read(count: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered.length < count) {
      if (this.ended) throw new Error(`server closed after ${this.buffered.length} of ${count} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${count} bytes (have ${this.buffered.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    const out = this.buffered.subarray(0, count);
    this.buffered = this.buffered.subarray(count);
    return out;
  }

  /** Reads one option reply frame. */
  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const header = await this.read(20);
    const data = await this.read(header.readUInt32BE(16));
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data };
  }

  /** Greeting + client flags + GO (optionally structured replies first) up to the final ACK. */
  async handshake(structured = false, name = ''): Promise<{ sizeBytes: bigint; flags: number }> {
    await this.read(18);
    this.send(CLIENT_FLAGS);
    if (structured) {
      this.send(option(C.NBD_OPT_STRUCTURED_REPLY));
      await this.optionReply();
    }
    this.send(option(C.NBD_OPT_GO, goData(name)));
    let info = { sizeBytes: 0n, flags: 0 };
    for (;;) {
      const reply = await this.optionReply();
      if (reply.type === C.NBD_REP_INFO && reply.data.readUInt16BE(0) === C.NBD_INFO_EXPORT) {
        info = { sizeBytes: reply.data.readBigUInt64BE(2), flags: reply.data.readUInt16BE(10) };
      } else if (reply.type === C.NBD_REP_ACK) {
        return info;
      } else if (reply.type !== C.NBD_REP_INFO) {
        throw new Error(`GO failed with 0x${reply.type.toString(16)}`);
      }
    }
  }

  /** One simple reply (+ `readLength` data bytes when it succeeded). */
  async simpleReply(readLength = 0): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const header = await this.read(16);
    const { reply } = parseReply(header);
    if (reply.kind !== 'simple') throw new Error('expected a simple reply');
    const data = reply.error === 0 && readLength > 0 ? await this.read(readLength) : Buffer.alloc(0);
    return { error: reply.error, cookie: reply.cookie, data };
  }

  async chunk(): Promise<{ flags: number; type: number; cookie: bigint; payload: Buffer }> {
    const header = await this.read(20);
    const payload = await this.read(header.readUInt32BE(16));
    return { flags: header.readUInt16BE(4), type: header.readUInt16BE(6), cookie: header.readBigUInt64BE(8), payload };
  }

  destroy(): void {
    this.socket.destroy();
  }
}
