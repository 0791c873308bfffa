// Cross-site request forgery: a page on another origin (the same host on
// another port is the same *site*, so SameSite=Strict does not help) must not
// act with the dashboard's session cookie. Requests signed in by the cookie
// that change something must carry the server's own Origin (or one listed in
// LATENTWATCH_ALLOWED_ORIGINS); bearer keys are not affected.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipart, testServer, type TestServer } from '../server-helpers.js';

const HOST = 'monitor.test:8080';
const OWN = `http://${HOST}`;
const OTHER_PORT = 'http://monitor.test:9999';

let s: TestServer;
let cookie: string;
beforeAll(async () => {
  s = await testServer({ env: { allowedOrigins: 'https://ops.example.com' } });
  const res = await s.request('POST', '/api/session', { key: null, json: { key: s.keys.admin }, headers: { host: HOST } });
  expect(res.status).toBe(201);
  cookie = String(res.headers['set-cookie']).split(';')[0];
}, 120_000);
afterAll(() => s.close());

/** A request from a browser signed in to the dashboard. */
function fromBrowser(method: string, url: string, headers: Record<string, string>, json?: unknown) {
  return s.request(method, url, { key: null, json, headers: { host: HOST, cookie, ...headers } });
}

describe('cookie-authenticated requests that change something', () => {
  it('are refused from another origin on the same host (switch model, acknowledge, upload, revoke)', async () => {
    const before = (await s.request('GET', '/api/models')).json;
    const attempts: [string, string, unknown?][] = [
      ['POST', '/api/models/tiny-model/activate'],
      ['POST', '/api/alerts/1/ack'],
      ['POST', '/api/rules', { name: 'x', channel: 'recon', threshold: { kind: 'absolute', value: 1 } }],
      ['DELETE', '/api/keys/2'],
      ['PUT', '/api/rules/1', { name: 'x' }],
    ];
    for (const [method, url, json] of attempts) {
      const res = await fromBrowser(method, url, { origin: OTHER_PORT }, json);
      expect(res.status, `${method} ${url}`).toBe(403);
      expect(res.json.error).toEqual({ code: 'forbidden', message: expect.stringMatching(/Origin/) });
    }
    const { body, headers } = multipart([{ name: 'images', filename: 'a.png', content: Buffer.from('x'), type: 'image/png' }]);
    const upload = await s.request('POST', '/api/images', { key: null, body, headers: { ...headers, host: HOST, cookie, origin: OTHER_PORT } });
    expect(upload.status).toBe(403);
    expect((await s.request('GET', '/api/models')).json).toEqual(before);
    expect((await s.request('GET', '/api/keys')).json.keys.every((k: { revoked_at: unknown }) => k.revoked_at === null)).toBe(true);
  });

  it('are refused without Origin, or with Origin: null, unless the browser says Sec-Fetch-Site: same-origin', async () => {
    const none = await fromBrowser('POST', '/api/alerts/999/ack', {});
    expect(none.status).toBe(403);
    expect(none.json.error.message).toMatch(/no Origin/);
    expect((await fromBrowser('POST', '/api/alerts/999/ack', { origin: 'null' })).status).toBe(403);
    expect((await fromBrowser('POST', '/api/alerts/999/ack', { 'sec-fetch-site': 'same-site' })).status).toBe(403);
    expect((await fromBrowser('POST', '/api/alerts/999/ack', { 'sec-fetch-site': 'same-origin' })).status).toBe(404);
  });

  it('go on from the server own origin and from LATENTWATCH_ALLOWED_ORIGINS', async () => {
    expect((await fromBrowser('POST', '/api/alerts/999/ack', { origin: OWN })).status).toBe(404);
    expect((await fromBrowser('POST', '/api/alerts/999/ack', { origin: 'https://ops.example.com' })).status).toBe(404);
    // The default port may be written or not.
    const t = await s.request('POST', '/api/alerts/999/ack', { key: null, headers: { host: 'monitor.test', cookie, origin: 'http://monitor.test:80' } });
    expect(t.status).toBe(404);
    // Scheme and port count: https on the same host, or the same host on another port, is another origin.
    expect((await fromBrowser('POST', '/api/alerts/999/ack', { origin: `https://${HOST}` })).status).toBe(403);
  });

  it('reads are not checked, and bearer keys are not affected (a browser cannot forge them)', async () => {
    expect((await fromBrowser('GET', '/api/images', { origin: OTHER_PORT })).status).toBe(200);
    const res = await s.request('POST', '/api/alerts/999/ack', { headers: { host: HOST, origin: OTHER_PORT } });
    expect(res.status).toBe(404);
  });

  it('honour X-Forwarded-Proto and X-Forwarded-Host only when the proxy is trusted', async () => {
    const proxied = { host: '127.0.0.1:8080', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'monitor.example.com', origin: 'https://monitor.example.com' };
    for (const [env, expected] of [[{ trustProxy: '1' }, 404], [{}, 403]] as const) {
      const t = await testServer({ model: false, env });
      try {
        const signIn = await t.request('POST', '/api/session', { key: null, json: { key: t.keys.admin }, headers: proxied });
        expect(signIn.status).toBe(expected === 404 ? 201 : 403);
        const c = String((await t.request('POST', '/api/session', { key: null, json: { key: t.keys.admin } })).headers['set-cookie']).split(';')[0];
        expect((await t.request('POST', '/api/alerts/999/ack', { key: null, headers: { ...proxied, cookie: c } })).status, JSON.stringify(env)).toBe(expected);
      } finally {
        await t.close();
      }
    }
  });
});

describe('sign-in (login CSRF)', () => {
  it('refuses another origin, and accepts the own origin or none (curl, scripts)', async () => {
    const cross = await s.request('POST', '/api/session', { key: null, json: { key: s.keys.viewer }, headers: { host: HOST, origin: OTHER_PORT } });
    expect(cross.status).toBe(403);
    expect(cross.headers['set-cookie']).toBeUndefined();
    expect((await s.request('POST', '/api/session', { key: null, json: { key: s.keys.viewer }, headers: { host: HOST, origin: OWN } })).status).toBe(201);
    expect((await s.request('POST', '/api/session', { key: null, json: { key: s.keys.viewer }, headers: { host: HOST } })).status).toBe(201);
  });

  it('sign-out from another origin is refused too', async () => {
    const res = await fromBrowser('DELETE', '/api/session', { origin: OTHER_PORT });
    expect(res.status).toBe(403);
    expect((await fromBrowser('GET', '/api/session', {})).json).toMatchObject({ signedIn: true });
  });
});
