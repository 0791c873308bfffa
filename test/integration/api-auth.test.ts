// No one acts without the right key: the whole route x role matrix, keys,
// sessions (cookie) and revocation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServer, type TestServer } from '../server-helpers.js';

let s: TestServer;
beforeAll(async () => {
  s = await testServer();
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
];
const RANK = { viewer: 0, operator: 1, admin: 2 };

describe('route x role matrix', () => {
  for (const [method, path, least, body] of ROUTES) {
    it(`${method} ${path} needs ${least ?? 'no key'}`, async () => {
      const callers: (Role | 'anonymous' | 'wrong key')[] = ['anonymous', 'wrong key', 'viewer', 'operator', 'admin'];
      for (const who of callers) {
        const key = who === 'anonymous' ? null : who === 'wrong key' ? 'lw_not_a_real_key' : s.keys[who];
        const res = await s.request(method, path, { key, json: body });
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
    expect(Object.keys(res.json).sort()).toEqual(['activeModel', 'backend', 'database', 'queues', 'status']);
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
  });
});

describe('dashboard sessions', () => {
  it('signs in with a key, gets an HttpOnly SameSite cookie, and signs out', async () => {
    const bad = await s.request('POST', '/api/session', { key: null, json: { key: 'lw_wrong' } });
    expect(bad.status).toBe(401);
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
    expect((await s.request('DELETE', '/api/session', { key: null, headers: { cookie: session } })).status).toBe(204);
    expect((await s.request('GET', '/api/images', { key: null, headers: { cookie: session } })).status).toBe(401);
    expect((await s.request('GET', '/api/images', { key: null, headers: { cookie: 'lw_session=%E0%A4%A' } })).status).toBe(401);
  });
});
