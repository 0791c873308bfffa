// The configured bootstrap admin key must be long enough not to be guessed.
import { describe, expect, it } from 'vitest';
import { buildConfig, loadConfig, MIN_ADMIN_KEY_LENGTH } from '../../server/config.js';
import { AppError } from '../../server/domain/errors.js';

describe('LATENTWATCH_ADMIN_KEY', () => {
  it(`needs at least ${MIN_ADMIN_KEY_LENGTH} characters without spaces`, () => {
    expect(MIN_ADMIN_KEY_LENGTH).toBe(24);
    for (const bad of ['short', 'x'.repeat(MIN_ADMIN_KEY_LENGTH - 1), `${'x'.repeat(20)} ${'y'.repeat(20)}`]) {
      let err: unknown;
      try {
        loadConfig({ LATENTWATCH_ADMIN_KEY: bad });
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('invalid_option');
      expect((err as AppError).message).toMatch(/LATENTWATCH_ADMIN_KEY must be at least 24 characters/);
      expect((err as AppError).message).not.toContain(bad.trim());
    }
  });

  it('accepts a long enough key, and none (one is generated on first start)', () => {
    expect(buildConfig({ adminKey: 'x'.repeat(MIN_ADMIN_KEY_LENGTH) }).adminKey).toBe('x'.repeat(MIN_ADMIN_KEY_LENGTH));
    expect(loadConfig({}).adminKey).toBeUndefined();
    expect(loadConfig({ LATENTWATCH_ADMIN_KEY: '   ' }).adminKey).toBeUndefined();
  });
});
