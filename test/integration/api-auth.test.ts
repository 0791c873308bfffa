// No one acts without the right key: the whole route x role matrix, keys,
// sessions (cookie), revocation, the failed-sign-in limit and the bootstrap key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext } from '../../server/context.js';
import { AppError } from '../../server/domain/errors.js';
import { createLoggers, silentLoggers, type LogSink } from '../../server/logger.js';
import { spawnServer } from '../server-process.js';
import { ADMIN_KEY, testServer, type TestServer } from '../server-helpers.js';

/** A clock the test moves by hand (sessions, the sign-in limit and key touches read it). */
function manualClock(start = Date.UTC(2030, 0, 1)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

let s: TestServer;
const clock = manualClock();
beforeAll(async () => {
  s = await testServer({ overrides: { clock } });
}, 120_000);
afterAll(() => s.close());

type Role = 'viewer' | 'operator' | 'admin';
// [method, path, least role, JSON body]. Bodies are deliberately invalid or ids
// unknown where a success would change state: only 401/403 matter here.
const ROUTES: [string, string, Role | null, unknown?][] = [
  ['GET', '/api/health', null],
  ['GET', '/api/images', 'viewer'],
  ['GET', '/api/images/999', 'viewer'],
  ['GET', '/api/images/999/heatmap', 'viewer'],
  ['POST', '/api/images', 'operator'],
  ['GET', '/api/models', 'viewer'],
  ['GET', '/api/models/nope', 'viewer'],
  ['POST', '/api/models/train', 'admin', { directory: 'normal', epochs: 0 }],
  ['POST', '/api/models/nope/activate', 'admin'],
  ['GET', '/api/jobs', 'viewer'],
  ['GET', '/api/jobs/999', 'viewer'],
  ['POST', '/api/jobs/999/cancel', 'admin'],
  ['GET', '/api/rules', 'viewer'],
  ['GET', '/api/rules/999', 'viewer'],
  ['POST', '/api/rules', 'operator', { name: 'x' }],
  ['POST', '/api/rules/preview', 'viewer', { name: 'x' }],
  ['PUT', '/api/rules/999', 'operator', { name: 'x' }],
  ['DELETE', '/api/rules/999', 'operator'],
  ['GET', '/api/alerts', 'viewer'],
  ['GET', '/api/alerts/999', 'viewer'],
  ['POST', '/api/alerts/999/ack', 'operator'],
  ['GET', '/api/silences', 'viewer'],
  ['POST', '/api/silences', 'operator', { minutes: 0 }],
  ['DELETE', '/api/silences/999', 'operator'],
  ['GET', '/api/keys', 'admin'],
  ['POST', '/api/keys', 'admin', { name: 'x', role: 'superuser' }],
  ['DELETE', '/api/keys/999', 'admin'],
  ['GET', '/api/audit', 'admin'],
  ['GET', '/api/stats', 'viewer'],
  ['GET', '/api/sources', 'viewer'],
  ['GET', '/metrics', 'viewer'],
];
const RANK = { viewer: 0, operator: 1, admin: 2 };

describe('route x role matrix', () => {
  for (const [method, path, least, body] of ROUTES) {
    it(`${method} ${path} needs ${least ?? 'no key'}`, async () => {
      const callers: (Role | 'anonymous' | 'wrong key')[] = ['anonymous', 'wrong key', 'viewer', 'operator', 'admin'];
      for (const who of callers) {
        const key = who === 'anonymous' ? null : who === 'wrong key' ? 'lw_not_a_real_key' : s.keys[who];
        const res = await s.request(method, path, { key, json: body });
        // A minute on after each wrong key, so that the failed-key limit never trips here.
        if (who === 'wrong key') clock.advance(61_000);
        if (least === null) {
          expect(res.status, `${who}`).toBe(200);
        } else if (who === 'anonymous' || who === 'wrong key') {
          expect(res.status, `${who}`).toBe(401);
          expect(res.json.error.code).toBe('unauthorized');
        } else if (RANK[who] < RANK[least]) {
          expect(res.status, `${who}`).toBe(403);
          expect(res.json.error.message).toMatch(new RegExp(`needs the ${least} role`));
        } else {
          expect([401, 403], `${who} got ${res.status}`).not.toContain(res.status);
        }
      }
    });
  }

  it('health tells no secrets', async () => {
    const res = await s.request('GET', '/api/health', { key: null });
    const text = JSON.stringify(res.json);
    expect(text).not.toContain(s.keys.admin);
    expect(text).not.toMatch(/dataDir|\/tmp\//);
    expect(Object.keys(res.json).sort()).toEqual(['activeModel', 'backend', 'checks', 'database', 'queues', 'status']);
  });
});

describe('API keys', () => {
  it('creates a key shown once, stores only its hash, and revokes it', async () => {
    const created = await s.request('POST', '/api/keys', { json: { name: 'line camera', role: 'operator' } });
    expect(created.status).toBe(201);
    expect(created.json.key).toMatch(/^lw_/);
    expect(created.json).toMatchObject({ name: 'line camera', role: 'operator', prefix: created.json.key.slice(0, 10) });
    const list = await s.request('GET', '/api/keys');
    expect(JSON.stringify(list.json)).not.toContain(created.json.key);
    const row = s.ctx.db.prepare('SELECT key_hash FROM api_keys WHERE id = ?').get(created.json.id) as { key_hash: string };
    expect(row.key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect((await s.request('GET', '/api/images', { key: created.json.key })).status).toBe(200);
    expect((await s.request('DELETE', `/api/keys/${created.json.id}`)).status).toBe(204);
    expect((await s.request('GET', '/api/images', { key: created.json.key })).status).toBe(401);
  });

  it('rejects malformed Authorization headers', async () => {
    for (const h of ['Basic abc', 'Bearer', `Bearer ${s.keys.admin} extra`, 'bearer']) {
      const res = await s.request('GET', '/api/images', { key: null, headers: { authorization: h } });
      expect(res.status, h).toBe(401);
    }
    clock.advance(61_000);
  });
});

describe('dashboard sessions', () => {
  it('signs in with a key, gets an HttpOnly SameSite cookie, and signs out', async () => {
    const bad = await s.request('POST', '/api/session', { key: null, json: { key: 'lw_wrong' } });
    expect(bad.status).toBe(401);
    clock.advance(61_000);
    const res = await s.request('POST', '/api/session', { key: null, json: { key: s.keys.viewer } });
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ name: 'test viewer', role: 'viewer' });
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^lw_session=[\w-]+; HttpOnly; SameSite=Strict; Path=\//);
    const session = cookie.split(';')[0];
    const me = await s.request('GET', '/api/session', { key: null, headers: { cookie: session } });
    expect(me.json).toEqual({ signedIn: true, name: 'test viewer', role: 'viewer', via: 'session' });
    expect((await s.request('GET', '/api/session', { key: null })).json).toEqual({ signedIn: false });
    expect((await s.request('GET', '/api/images', { key: null, headers: { cookie: session } })).status).toBe(200);
    expect((await s.request('GET', '/api/keys', { key: null, headers: { cookie: session } })).status).toBe(403);
    // Signing out changes something, so the browser's Origin must be the server's own (see csrf.test.ts).
    expect((await s.request('DELETE', '/api/session', { key: null, headers: { cookie: session, host: 'monitor.test', origin: 'http://monitor.test' } })).status).toBe(204);
    expect((await s.request('GET', '/api/images', { key: null, headers: { cookie: session } })).status).toBe(401);
    expect((await s.request('GET', '/api/images', { key: null, headers: { cookie: 'lw_session=%E0%A4%A' } })).status).toBe(401);
  });
});

describe('the session cookie behind a TLS proxy', () => {
  async function cookieFor(env: Record<string, string>): Promise<string> {
    const t = await testServer({ model: false, env });
    try {
      const res = await t.request('POST', '/api/session', { key: null, json: { key: t.keys.viewer }, headers: { 'x-forwarded-proto': 'https' } });
      expect(res.status).toBe(201);
      return String(res.headers['set-cookie']);
    } finally {
      await t.close();
    }
  }

  it('is Secure when the proxy is trusted and says https, and not when the proxy is not trusted', async () => {
    expect(await cookieFor({ trustProxy: '1' })).toMatch(/; Secure$/);
    expect(await cookieFor({})).not.toMatch(/Secure/);
  });
});

describe('the last admin key', () => {
  it('cannot be revoked (409), so that someone can always manage keys', async () => {
    const t = await testServer({ model: false });
    try {
      const [bootstrap] = (await t.request('GET', '/api/keys')).json.keys.filter((k: any) => k.role === 'admin');
      const refused = await t.request('DELETE', `/api/keys/${bootstrap.id}`);
      expect(refused.status).toBe(409);
      expect(refused.json.error).toEqual({ code: 'conflict', message: expect.stringMatching(/last active admin key.*create another admin key first/) });
      expect((await t.request('GET', '/api/images')).status).toBe(200);

      // With a second admin key, either may go, but not both.
      const second = await t.request('POST', '/api/keys', { json: { name: 'second admin', role: 'admin' } });
      expect(second.status).toBe(201);
      expect((await t.request('DELETE', `/api/keys/${bootstrap.id}`, { key: second.json.key })).status).toBe(204);
      expect((await t.request('DELETE', `/api/keys/${second.json.id}`, { key: second.json.key })).status).toBe(409);
      // Revoking operators and viewers is unaffected.
      const operator = (await t.request('GET', '/api/keys', { key: second.json.key })).json.keys.find((k: any) => k.role === 'operator');
      expect((await t.request('DELETE', `/api/keys/${operator.id}`, { key: second.json.key })).status).toBe(204);
    } finally {
      await t.close();
    }
  });

  it('a revoked LATENTWATCH_ADMIN_KEY stops start-up with a clear message, not a UNIQUE constraint stack', async () => {
    const t = await testServer({ model: false });
    const second = await t.request('POST', '/api/keys', { json: { name: 'second admin', role: 'admin' } });
    const [bootstrap] = (await t.request('GET', '/api/keys')).json.keys.filter((k: any) => k.name.includes('LATENTWATCH_ADMIN_KEY'));
    expect((await t.request('DELETE', `/api/keys/${bootstrap.id}`, { key: second.json.key })).status).toBe(204);
    await t.ctx.close();
    try {
      const err = await createContext(t.config, { log: silentLoggers() }).then(
        async (ctx) => (await ctx.close(), undefined),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).message).toMatch(/LATENTWATCH_ADMIN_KEY.*revoked/);

      // The real process prints that message, without a stack trace, and exits.
      const started = spawnServer({ LATENTWATCH_DATA_DIR: t.config.dataDir, LATENTWATCH_MODELS_DIR: t.config.modelsDir, LATENTWATCH_ADMIN_KEY: ADMIN_KEY }, 30_000);
      const failure = await started.then(
        (p) => (p.child.kill('SIGKILL'), 'it started'),
        (e: Error) => e.message,
      );
      expect(failure).toMatch(/exited before it was healthy/);
      expect(failure).toMatch(/latentwatch: LATENTWATCH_ADMIN_KEY .*revoked/);
      expect(failure).not.toMatch(/UNIQUE|\n\s+at /);
    } finally {
      await t.close().catch(() => {});
    }
  });
});

describe('failed sign-ins and failed keys are limited per address', () => {
  it('allows 10 failures a minute, then answers 429 with Retry-After, even to a right key; a minute later it opens again', async () => {
    const c = manualClock();
    const t = await testServer({ model: false, overrides: { clock: c } });
    try {
      for (let i = 0; i < 10; i++) {
        const res = await t.request('POST', '/api/session', { key: null, json: { key: `lw_guess_${i}` } });
        expect(res.status, `attempt ${i}`).toBe(401);
        c.advance(1000);
      }
      const limited = await t.request('POST', '/api/session', { key: null, json: { key: t.keys.viewer } });
      expect(limited.status).toBe(429);
      expect(limited.json.error.code).toBe('too_many_requests');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      // Bearer keys from the same address are refused too: no oracle for guesses.
      const bearer = await t.request('GET', '/api/images', { key: t.keys.viewer });
      expect(bearer.status).toBe(429);
      expect(bearer.headers['retry-after']).toBeDefined();
      // Without trust proxy a client cannot pose as another address with X-Forwarded-For.
      const spoofed = await t.request('GET', '/api/images', { key: t.keys.viewer, headers: { 'x-forwarded-for': '203.0.113.9' } });
      expect(spoofed.status).toBe(429);
      // Unauthenticated reads are not limited.
      expect((await t.request('GET', '/api/health', { key: null })).status).toBe(200);

      c.advance(61_000);
      expect((await t.request('GET', '/api/images', { key: t.keys.viewer })).status).toBe(200);
      expect((await t.request('POST', '/api/session', { key: null, json: { key: t.keys.viewer } })).status).toBe(201);
    } finally {
      await t.close();
    }
  });

  it('counts failed bearer keys, per client address as trust proxy gives it', async () => {
    const c = manualClock();
    const t = await testServer({ model: false, env: { trustProxy: '1' }, overrides: { clock: c } });
    try {
      const from = (ip: string) => ({ 'x-forwarded-for': ip });
      for (let i = 0; i < 10; i++) expect((await t.request('GET', '/api/images', { key: `lw_guess_${i}`, headers: from('203.0.113.1') })).status).toBe(401);
      expect((await t.request('GET', '/api/images', { key: 'lw_guess_x', headers: from('203.0.113.1') })).status).toBe(429);
      expect((await t.request('GET', '/api/images', { key: t.keys.viewer, headers: from('203.0.113.2') })).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('last_used_at', () => {
  it('is written at most once a minute per key', async () => {
    const c = manualClock();
    const t = await testServer({ model: false, overrides: { clock: c } });
    try {
      const lastUsed = () => (t.ctx.db.prepare("SELECT last_used_at FROM api_keys WHERE name = 'test viewer'").get() as { last_used_at: number | null }).last_used_at;
      const first = c.now();
      expect((await t.request('GET', '/api/images', { key: t.keys.viewer })).status).toBe(200);
      expect(lastUsed()).toBe(first);
      c.advance(30_000);
      expect((await t.request('GET', '/api/images', { key: t.keys.viewer })).status).toBe(200);
      expect(lastUsed()).toBe(first);
      c.advance(31_000);
      expect((await t.request('GET', '/api/images', { key: t.keys.viewer })).status).toBe(200);
      expect(lastUsed()).toBe(first + 61_000);
    } finally {
      await t.close();
    }
  });

  it('a database that cannot be written does not fail reads: the touch is skipped with a warning', async () => {
    const c = manualClock();
    const records: { level: string; msg: string }[] = [];
    const sink: LogSink = (r) => records.push(r);
    const t = await testServer({ model: false, overrides: { clock: c, log: createLoggers(sink, 'warn') } });
    try {
      t.ctx.db.pragma('query_only = ON'); // every write now fails, as on a read-only or full disk
      const res = await t.request('GET', '/api/images', { key: t.keys.viewer });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      expect((await t.request('GET', '/api/keys')).status).toBe(200);
      expect(records.some((r) => r.level === 'warn' && /last_used_at/.test(r.msg))).toBe(true);
    } finally {
      t.ctx.db.pragma('query_only = OFF');
      await t.close();
    }
  });
});
