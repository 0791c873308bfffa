// The failed-authentication limiter: a fixed window per address, and a bound
// on how many addresses it remembers.
import { describe, expect, it } from 'vitest';
import { FailureLimiter } from '../../server/services/rate-limit.js';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('FailureLimiter', () => {
  it('lets 10 failures through in a minute, then asks for a wait until the minute is over', () => {
    const c = clock();
    const l = new FailureLimiter({ now: c.now });
    for (let i = 0; i < 10; i++) {
      expect(l.retryAfterMs('a'), `failure ${i}`).toBe(0);
      l.fail('a');
      c.advance(1000);
    }
    expect(l.retryAfterMs('a')).toBe(50_000);
    expect(l.retryAfterMs('b')).toBe(0);
    c.advance(49_999);
    expect(l.retryAfterMs('a')).toBe(1);
    c.advance(1);
    expect(l.retryAfterMs('a')).toBe(0);
    l.fail('a');
    expect(l.retryAfterMs('a')).toBe(0);
  });

  it('honours its options', () => {
    const c = clock();
    const l = new FailureLimiter({ now: c.now, maxFailures: 2, windowMs: 1000 });
    l.fail('a');
    expect(l.retryAfterMs('a')).toBe(0);
    l.fail('a');
    expect(l.retryAfterMs('a')).toBe(1000);
  });

  it('remembers at most maxAddresses, forgetting expired ones first, then the oldest', () => {
    const c = clock();
    const l = new FailureLimiter({ now: c.now, maxFailures: 1, windowMs: 1000, maxAddresses: 3 });
    l.fail('old');
    c.advance(2000); // 'old' has expired
    l.fail('a');
    l.fail('b');
    l.fail('c');
    expect(l.size).toBe(3);
    expect(['a', 'b', 'c'].map((x) => l.retryAfterMs(x) > 0)).toEqual([true, true, true]);
    for (let i = 0; i < 10_000; i++) l.fail(`spray-${i}`);
    expect(l.size).toBe(3);
    expect(l.retryAfterMs('spray-9999')).toBeGreaterThan(0);
  });
});
