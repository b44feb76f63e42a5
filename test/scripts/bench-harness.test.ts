// The benchmark harness itself: interleaved rounds, extra rounds for short workloads, and a
// report row per variant. (The benchmarks' numbers are not tested: they go to BENCHMARKS.md.)

import test from 'ava';
import { EXTRA_ROUNDS_MAX, median, renderWorkload, runWorkload } from '../../scripts/bench/harness.js';

test('median of odd and even sample counts', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
});

test('a short workload runs EXTRA_ROUNDS_MAX interleaved rounds, timed to the millisecond', async (t) => {
  const order: string[] = [];
  const result = await runWorkload(
    {
      id: 'tiny',
      title: 'tiny',
      notes: '',
      subject: 'sleep',
      variants: [
        { label: 'sleep', command: ['sleep', '0.02'], before: async () => void order.push('sleep') },
        { label: 'true', command: ['true'], before: async () => void order.push('true') },
      ],
    },
    2,
    () => undefined,
  );
  const [slept, nothing] = result.results;
  t.is(slept?.samples.length, EXTRA_ROUNDS_MAX);
  t.is(nothing?.samples.length, EXTRA_ROUNDS_MAX);
  t.deepEqual(order.slice(0, 4), ['sleep', 'true', 'sleep', 'true'], 'variants alternate');
  t.true((slept?.secondsMin ?? 0) >= 0.02);
  t.true((slept?.secondsMedian ?? 0) > (nothing?.secondsMedian ?? Infinity));
  t.true((slept?.peakRssMiB ?? 0) > 0, 'peak RSS comes from GNU time');
  const section = renderWorkload(result);
  t.regex(section, new RegExp(`Runs per variant: ${EXTRA_ROUNDS_MAX}\\.`));
  t.regex(section, /\| sleep \| 0\.0\d\d \| /);
});

test('a failing command stops the workload with its output', async (t) => {
  await t.throwsAsync(
    runWorkload(
      { id: 'bad', title: 'bad', notes: '', subject: 'x', variants: [{ label: 'x', command: ['sh', '-c', 'echo oops >&2; exit 3'] }] },
      1,
      () => undefined,
    ),
    { message: /bad\/x failed \(exit 3\)[\s\S]*oops/ },
  );
});
