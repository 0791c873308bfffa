import { describe, expect, it } from 'vitest';
import { MicroBatcher } from '../../server/services/micro-batcher.js';

describe('MicroBatcher', () => {
  it('groups items submitted together into one call, in order', async () => {
    const calls: number[][] = [];
    const b = new MicroBatcher<number, number>((xs) => {
      calls.push(xs);
      return xs.map((x) => x * 10);
    }, 64, 5);
    const out = await Promise.all([1, 2, 3, 4].map((x) => b.submit(x)));
    expect(out).toEqual([10, 20, 30, 40]);
    expect(calls).toEqual([[1, 2, 3, 4]]);
  });

  it('never exceeds the batch size and keeps going while a batch runs', async () => {
    const sizes: number[] = [];
    const b = new MicroBatcher<number, number>(async (xs) => {
      sizes.push(xs.length);
      await new Promise((r) => setTimeout(r, 5));
      return xs;
    }, 4, 1);
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(i)));
    expect(out).toEqual([...Array(10).keys()]);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4);
    expect(sizes.reduce((a, c) => a + c, 0)).toBe(10);
    expect(b.depth).toBe(0);
  });

  it('rejects every item of a failed batch and recovers for the next', async () => {
    let fail = true;
    const b = new MicroBatcher<number, number>((xs) => {
      if (fail) throw new Error('model exploded');
      return xs;
    }, 8, 1);
    await expect(Promise.all([b.submit(1), b.submit(2)])).rejects.toThrow('model exploded');
    fail = false;
    await expect(b.submit(3)).resolves.toBe(3);
  });

  it('never mixes keys in one batch (a model switch mid-queue), keeping order within each', async () => {
    const calls: string[][] = [];
    const b = new MicroBatcher<string, string>((xs) => {
      calls.push(xs);
      return xs.map((x) => x.toUpperCase());
    }, 3, 5, (x) => x[0]);
    const items = ['a1', 'b1', 'a2', 'a3', 'b2', 'a4'];
    const out = await Promise.all(items.map((x) => b.submit(x)));
    expect(out).toEqual(items.map((x) => x.toUpperCase()));
    for (const c of calls) expect(new Set(c.map((x) => x[0])).size).toBe(1);
    expect(calls).toEqual([['a1', 'a2', 'a3'], ['b1', 'b2'], ['a4']]);
    expect(b.depth).toBe(0);
  });
});
