// Lets any number of I/O operations run together, while lifecycle operations (close, resize,
// snapshot) wait for in-flight I/O to drain and hold new I/O back until they finish.

import { Semaphore } from 'async-mutex';

const ALL = 1 << 30;

export class IoGate {
  private readonly semaphore = new Semaphore(ALL);

  /** Runs an I/O operation; many may run at once. */
  async io<T>(operation: () => Promise<T>): Promise<T> {
    return this.semaphore.runExclusive(operation, 1);
  }

  /** Runs `operation` once every in-flight I/O has finished; new I/O waits behind it. */
  async exclusive<T>(operation: () => Promise<T>): Promise<T> {
    return this.semaphore.runExclusive(operation, ALL);
  }
}
