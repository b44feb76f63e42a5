// Lets any number of I/O operations run together, while lifecycle operations (close, resize,
// snapshot) wait for in-flight I/O to drain and hold new I/O back until they finish. A waiting
// lifecycle operation goes first: I/O arriving after it queues behind it, so it cannot starve.
// (A weighted semaphore would do in theory; async-mutex's costs O(weight) per release.)

type Wake = () => void;

export class IoGate {
  private activeIo = 0;
  private exclusiveHeld = false;
  private readonly waitingIo: Wake[] = [];
  private readonly waitingExclusive: Wake[] = [];

  /** Runs an I/O operation; many may run at once. */
  io<T>(operation: () => Promise<T>): Promise<T> {
    if (this.exclusiveHeld || this.waitingExclusive.length > 0) return this.ioAfterWaiting(operation);
    // Uncontended (the common case): no extra promise or async frame per request.
    this.activeIo++;
    let running: Promise<T>;
    try {
      running = operation();
    } catch (error) {
      this.ioDone();
      return Promise.reject(error);
    }
    return running.then(
      (value) => {
        this.ioDone();
        return value;
      },
      (error: unknown) => {
        this.ioDone();
        throw error;
      },
    );
  }

  private async ioAfterWaiting<T>(operation: () => Promise<T>): Promise<T> {
    await new Promise<void>((resolve) => this.waitingIo.push(resolve)); // activeIo counted by wake()
    try {
      return await operation();
    } finally {
      this.ioDone();
    }
  }

  private ioDone(): void {
    this.activeIo--;
    this.wake();
  }

  /** Runs `operation` once every in-flight I/O has finished; new I/O waits behind it. */
  async exclusive<T>(operation: () => Promise<T>): Promise<T> {
    if (this.exclusiveHeld || this.activeIo > 0 || this.waitingExclusive.length > 0) {
      await new Promise<void>((resolve) => this.waitingExclusive.push(resolve)); // exclusiveHeld set by wake()
    } else {
      this.exclusiveHeld = true;
    }
    try {
      return await operation();
    } finally {
      this.exclusiveHeld = false;
      this.wake();
    }
  }

  /** Hands the gate on; state is updated here, before the waiter resumes, so no caller slips in between. */
  private wake(): void {
    if (this.exclusiveHeld) return;
    const nextExclusive = this.waitingExclusive[0];
    if (nextExclusive !== undefined) {
      if (this.activeIo > 0) return;
      this.waitingExclusive.shift();
      this.exclusiveHeld = true;
      nextExclusive();
      return;
    }
    for (let wakeIo = this.waitingIo.shift(); wakeIo !== undefined; wakeIo = this.waitingIo.shift()) {
      this.activeIo++;
      wakeIo();
    }
  }
}
