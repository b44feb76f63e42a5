// The server-wide in-flight budget: never above capacity, first come first served within each
// line, small requests not stuck behind a large one that cannot fit, waiters woken on release.

import test from 'ava';

import { type BudgetWaiter, InFlightBudget, SMALL_REQUEST_BYTES } from '../../../lib/nbd/in-flight-budget.js';

const MIB = 1024 * 1024;

/** A waiter that, when woken, tries to take `bytes` and leaves the queue once it has them. */
class Taker implements BudgetWaiter {
  got = false;
  constructor(
    private readonly budget: InFlightBudget,
    readonly bytes: number,
  ) {}

  try(): boolean {
    if (this.budget.tryTake(this.bytes, this)) {
      this.got = true;
      this.budget.leave(this);
      return true;
    }
    this.budget.wait(this, this.bytes);
    return false;
  }

  onBudget(): void {
    this.try();
  }
}

test('large requests wait in order and are let in as bytes come back', (t) => {
  const budget = new InFlightBudget(10 * MIB);
  const a = new Taker(budget, 6 * MIB);
  const b = new Taker(budget, 6 * MIB);
  const c = new Taker(budget, 3 * MIB);
  t.true(a.try());
  t.false(b.try());
  t.false(c.try(), 'a later large request does not overtake the first in line, even though it would fit');
  t.is(budget.waiting, 2);
  budget.release(6 * MIB);
  t.true(b.got && c.got, 'both let in, in order, once there is room');
  t.is(budget.usedBytes, 9 * MIB);
  t.is(budget.waiting, 0);
  t.true(budget.stats().peakInFlightBytes <= 10 * MIB);
});

test('a small request is not stuck behind a large one that cannot fit', (t) => {
  const budget = new InFlightBudget(10 * MIB);
  t.true(new Taker(budget, 8 * MIB).try());
  const large = new Taker(budget, 4 * MIB);
  t.false(large.try());
  const small = new Taker(budget, SMALL_REQUEST_BYTES);
  t.true(small.try(), 'fits in what is left and does not wait for the large one');
  t.false(new Taker(budget, 2 * MIB).try(), 'more than what is left waits');
  budget.release(8 * MIB);
  t.true(large.got);
});

test('a request larger than the whole budget runs alone rather than never', (t) => {
  const budget = new InFlightBudget(MIB);
  const huge = new Taker(budget, 4 * MIB);
  t.true(huge.try());
  t.false(new Taker(budget, 4096).try());
  budget.release(4 * MIB);
  t.is(budget.usedBytes, 4096);
});
