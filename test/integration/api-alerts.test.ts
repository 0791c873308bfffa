// Rules, alerts, acknowledgement and silences through the API, with real
// uploads driving the alert engine.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipart, testServer, type TestServer } from '../server-helpers.js';

let s: TestServer;
let normalRecon: number;
let anomalousRecon: number;

async function upload(file: string, source = 'line-1') {
  const m = multipart([{ name: 'images', filename: file.split('/').pop(), content: await readFile(file) }, { name: 'source', content: source }]);
  const res = await s.request('POST', '/api/images', { body: m.body, headers: m.headers, key: s.keys.operator });
  expect(res.status).toBe(201);
  return res.json.results[0];
}
const NORMAL = 'fixtures/normal/normal_0300.png';
const BAD = 'fixtures/anomalous/wrong_part_01.png';

beforeAll(async () => {
  s = await testServer();
  normalRecon = (await upload(NORMAL)).image.scores.recon;
  anomalousRecon = (await upload(BAD)).image.scores.recon;
  expect(anomalousRecon).toBeGreaterThan(normalRecon);
}, 120_000);
afterAll(() => s.close());

describe('alert rules', () => {
  let ruleId: number;

  it('creates a rule and refuses invalid ones with a clear 400', async () => {
    const mid = (normalRecon + anomalousRecon) / 2;
    const res = await s.request('POST', '/api/rules', { key: s.keys.operator, json: { name: 'recon high', channel: 'recon', threshold: { kind: 'absolute', value: mid }, clearAfter: 2 } });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ name: 'recon high', channel: 'recon', source: null, pendingK: 1, pendingN: 1, clearAfter: 2, enabled: true, state: 'normal' });
    ruleId = res.json.id;
    const cases: [unknown, RegExp][] = [
      [{ name: 'x', channel: 'loudness', threshold: { kind: 'absolute', value: 1 } }, /channel must be one of/],
      [{ name: 'x', channel: 'kl', threshold: { kind: 'rate', rate: 2 } }, /threshold\.rate must be at most 0\.5/],
      [{ name: 'x', channel: 'kl', threshold: { kind: 'absolute' } }, /threshold\.value must be a number/],
      [{ name: 'x', channel: 'kl', threshold: { kind: 'absolute', value: 1 }, pendingK: 3, pendingN: 2 }, /pendingK \(3\) cannot exceed pendingN \(2\)/],
      [{ name: 'x', channel: 'kl', threshold: { kind: 'absolute', value: 1 }, webhookUrl: 'file:///etc/passwd' }, /webhookUrl must be an absolute http\(s\) URL/],
      [{ channel: 'kl', threshold: { kind: 'absolute', value: 1 } }, /name is required/],
      [[1, 2, 3], /JSON object/],
    ];
    for (const [body, message] of cases) {
      const bad = await s.request('POST', '/api/rules', { json: body });
      expect(bad.status).toBe(400);
      expect(bad.json.error.message).toMatch(message);
    }
    const malformed = await s.request('POST', '/api/rules', { body: '{"name": "x",', headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.code).toBe('bad_request');
    expect((await s.request('GET', '/api/rules')).json.rules).toHaveLength(1);
  });

  it('fires on an anomalous image, records the transition, and resolves after clean images', async () => {
    const hit = await upload(BAD);
    expect(hit.alerts).toHaveLength(1);
    expect(hit.alerts[0]).toMatchObject({ transition: { from: 'normal', to: 'firing' }, notified: true, imageId: hit.image.id });
    const alertId = hit.alerts[0].alert.id;
    const firing = await s.request('GET', '/api/alerts?state=firing', { key: s.keys.viewer });
    expect(firing.json.alerts.map((a: any) => a.id)).toContain(alertId);
    expect((await upload(BAD)).alerts).toEqual([]); // still firing: no new notification
    expect((await upload(NORMAL)).alerts).toEqual([]); // 1 clean of 2
    const resolved = await upload(NORMAL);
    expect(resolved.alerts[0]).toMatchObject({ transition: { from: 'firing', to: 'resolved' } });
    const detail = await s.request('GET', `/api/alerts/${alertId}`);
    expect(detail.json.state).toBe('resolved');
    expect(detail.json.transitions.map((t: any) => `${t.from_state}->${t.to_state}`)).toEqual(['normal->firing', 'firing->resolved']);
  });

  it('only watches its source', async () => {
    const other = await s.request('POST', '/api/rules', { json: { name: 'cam-b only', channel: 'recon', source: 'cam-b', threshold: { kind: 'absolute', value: 0 } } });
    expect((await upload(NORMAL, 'line-1')).alerts.filter((a: any) => a.rule.id === other.json.id)).toEqual([]);
    expect((await upload(NORMAL, 'cam-b')).alerts.filter((a: any) => a.rule.id === other.json.id)).toHaveLength(1);
    expect((await s.request('DELETE', `/api/rules/${other.json.id}`)).status).toBe(204);
    expect((await s.request('GET', `/api/rules/${other.json.id}`)).status).toBe(404);
  });

  it('acknowledges an alert once, by an operator', async () => {
    const hit = await upload(BAD);
    const id = hit.alerts[0].alert.id;
    expect((await s.request('POST', `/api/alerts/${id}/ack`, { key: s.keys.viewer })).status).toBe(403);
    const ack = await s.request('POST', `/api/alerts/${id}/ack`, { key: s.keys.operator });
    expect(ack.status).toBe(200);
    expect(ack.json.acknowledged).toMatchObject({ by: expect.any(Number), at: expect.any(Number) });
    const again = await s.request('POST', `/api/alerts/${id}/ack`, { key: s.keys.admin });
    expect(again.json.acknowledged.at).toBe(ack.json.acknowledged.at);
    expect((await s.request('POST', '/api/alerts/99999/ack')).status).toBe(404);
    // back to normal for the next tests
    await upload(NORMAL);
    await upload(NORMAL);
  });

  it('keeps evaluating but does not notify during a silence', async () => {
    const sil = await s.request('POST', '/api/silences', { key: s.keys.operator, json: { ruleId, minutes: 30, reason: 'maintenance' } });
    expect(sil.status).toBe(201);
    const hit = await upload(BAD);
    expect(hit.alerts[0]).toMatchObject({ transition: { to: 'firing' }, notified: false });
    expect((await s.request('GET', '/api/silences')).json.silences).toHaveLength(1);
    expect((await s.request('DELETE', `/api/silences/${sil.json.id}`)).status).toBe(204);
    expect((await s.request('POST', '/api/silences', { json: { ruleId, minutes: 0 } })).status).toBe(400);
    expect((await s.request('POST', '/api/silences', { json: { ruleId: 424242, minutes: 5 } })).status).toBe(404);
    await upload(NORMAL);
    await upload(NORMAL);
  });

  it('updates a threshold, keeping an audit trail', async () => {
    const res = await s.request('PUT', `/api/rules/${ruleId}`, { key: s.keys.operator, json: { threshold: { kind: 'rate', rate: 0.05 } } });
    expect(res.status).toBe(200);
    expect(res.json.threshold).toEqual({ kind: 'rate', rate: 0.05 });
    expect(res.json.name).toBe('recon high');
    const log = await s.request('GET', '/api/audit');
    const actions = log.json.entries.map((e: any) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['rule.create', 'rule.update', 'rule.delete', 'alert.ack', 'silence.create']));
    expect(log.json.entries.find((e: any) => e.action === 'rule.update').detail.after.threshold).toEqual({ kind: 'rate', rate: 0.05 });
  });

  it('previews how many of the last images a rule would have fired on', async () => {
    const res = await s.request('POST', '/api/rules/preview', { key: s.keys.viewer, json: { name: 'p', channel: 'recon', threshold: { kind: 'absolute', value: (normalRecon + anomalousRecon) / 2 }, last: 100 } });
    expect(res.status).toBe(200);
    expect(res.json.images).toBeGreaterThan(5);
    expect(res.json.breaches).toBeGreaterThanOrEqual(4);
    expect(res.json.firings).toBeGreaterThanOrEqual(3);
    const none = await s.request('POST', '/api/rules/preview', { json: { name: 'p', channel: 'recon', threshold: { kind: 'absolute', value: 1e9 } } });
    expect(none.json).toMatchObject({ breaches: 0, firings: 0, finalState: 'normal' });
  });
});

describe('rule changes close the open alert', () => {
  const mid = () => (normalRecon + anomalousRecon) / 2;
  async function createRule(json: Record<string, unknown>) {
    const res = await s.request('POST', '/api/rules', { key: s.keys.operator, json: { name: 'closer', channel: 'recon', threshold: { kind: 'absolute', value: mid() }, ...json } });
    expect(res.status).toBe(201);
    return res.json.id as number;
  }
  /** The alert this upload changed for `ruleId`, if any. */
  async function alertFor(ruleId: number, file: string, source: string) {
    return (await upload(file, source)).alerts.find((a: any) => a.rule.id === ruleId);
  }
  const alertState = async (id: number) => (await s.request('GET', `/api/alerts/${id}`)).json;
  const firingIds = async () => (await s.request('GET', '/api/alerts?state=firing')).json.alerts.map((a: any) => a.id);

  it('deleting a firing rule resolves its alert, with a transition row and a broadcast event', async () => {
    const ruleId = await createRule({ source: 'cam-del' });
    const hit = await alertFor(ruleId, BAD, 'cam-del');
    expect(hit).toMatchObject({ transition: { from: 'normal', to: 'firing' } });
    const alertId = hit.alert.id;
    const seen: any[] = [];
    const off = s.ctx.bus.subscribe((e) => seen.push(e));
    try {
      expect((await s.request('DELETE', `/api/rules/${ruleId}`, { key: s.keys.operator })).status).toBe(204);
    } finally {
      off();
    }
    const after = await alertState(alertId);
    expect(after.state).toBe('resolved');
    expect(after.transitions.map((t: any) => `${t.from_state}->${t.to_state}`)).toEqual(['normal->firing', 'firing->resolved']);
    expect(await firingIds()).not.toContain(alertId);
    const event = seen.find((e) => e.type === 'alert.changed' && e.payload.alert.id === alertId);
    expect(event?.payload).toMatchObject({ alert: { state: 'resolved' }, transition: { from: 'firing', to: 'resolved' }, rule: { id: ruleId } });
    expect(event.payload.message).toMatch(/deleted/);
    // Recorded too, so a dashboard that reconnects replays it.
    expect(s.ctx.bus.replay(event.id - 1, 1)[0]).toMatchObject({ id: event.id, type: 'alert.changed' });
  });

  it('re-targeting (source, channel, window) or disabling a rule closes its alert; a threshold edit does not', async () => {
    const ruleId = await createRule({ source: 'cam-a' });
    const put = (json: Record<string, unknown>) => s.request('PUT', `/api/rules/${ruleId}`, { key: s.keys.operator, json });

    const first = (await alertFor(ruleId, BAD, 'cam-a')).alert.id;
    expect((await put({ threshold: { kind: 'absolute', value: mid() * 1.0001 } })).json.state).toBe('firing');
    expect((await alertState(first)).state).toBe('firing');
    const moved = await put({ source: 'cam-b' });
    expect(moved.json).toMatchObject({ source: 'cam-b', state: 'normal' });
    expect((await alertState(first)).state).toBe('resolved');

    const second = (await alertFor(ruleId, BAD, 'cam-b')).alert.id;
    expect((await put({ channel: 'elbo' })).json.state).toBe('normal');
    expect((await alertState(second)).state).toBe('resolved');

    expect((await put({ channel: 'recon' })).status).toBe(200);
    const third = (await alertFor(ruleId, BAD, 'cam-b')).alert.id;
    expect((await put({ enabled: false })).json).toMatchObject({ enabled: false, state: 'normal' });
    const closed = await alertState(third);
    expect(closed.state).toBe('resolved');
    expect(closed.transitions.at(-1)).toMatchObject({ from_state: 'firing', to_state: 'resolved' });
    expect(await firingIds()).not.toContain(third);

    // A pending episode goes back to normal when the window changes.
    expect((await put({ enabled: true, pendingK: 2, pendingN: 3 })).status).toBe(200);
    const pending = await alertFor(ruleId, BAD, 'cam-b');
    expect(pending).toMatchObject({ transition: { from: 'normal', to: 'pending' } });
    expect((await put({ pendingN: 4 })).json.state).toBe('normal');
    expect((await alertState(pending.alert.id)).state).toBe('normal');
    expect((await s.request('DELETE', `/api/rules/${ruleId}`)).status).toBe(204);
  });
});

describe('alert instances: a rule for every source keeps one state machine per source', () => {
  let ruleId: number;
  /** The change this upload made to the rule's instances, if any. */
  async function change(file: string, source: string) {
    return (await upload(file, source)).alerts.find((a: any) => a.rule.id === ruleId);
  }
  const alert = async (id: number) => (await s.request('GET', `/api/alerts/${id}`, { key: s.keys.viewer })).json;
  const firing = async (source: string) =>
    (await s.request('GET', `/api/alerts?state=firing&rule=${ruleId}&source=${source}`, { key: s.keys.viewer })).json.alerts.map((a: any) => a.id);
  let line2Alert: number;
  let line1Alert: number;

  beforeAll(async () => {
    const mid = (normalRecon + anomalousRecon) / 2;
    const res = await s.request('POST', '/api/rules', { key: s.keys.operator, json: { name: 'every camera', channel: 'recon', threshold: { kind: 'absolute', value: mid } } });
    expect(res.json.source).toBeNull();
    ruleId = res.json.id;
  });

  it("keeps one camera's alert firing while another camera sends clean images", async () => {
    const fired = await change(BAD, 'line2-cam');
    expect(fired).toMatchObject({ transition: { from: 'normal', to: 'firing' }, notified: true, alert: { source: 'line2-cam', ruleId }, rule: { id: ruleId, source: null } });
    expect(fired.message).toMatch(/^line2-cam: recon above .*firing$/);
    line2Alert = fired.alert.id;
    for (let i = 0; i < 3; i++) expect(await change(NORMAL, 'line1-cam')).toBeUndefined();
    expect((await alert(line2Alert)).state).toBe('firing');
    expect(await firing('line2-cam')).toEqual([line2Alert]);
    expect(await change(BAD, 'line2-cam')).toBeUndefined(); // still firing: nothing new
    const rule = (await s.request('GET', `/api/rules/${ruleId}`, { key: s.keys.viewer })).json;
    expect(rule.state).toBe('firing');
    expect(rule.instances).toEqual([{ source: 'line1-cam', state: 'normal' }, { source: 'line2-cam', state: 'firing' }]);
  });

  it('fires, acknowledges and resolves each source on its own', async () => {
    const fired = await change(BAD, 'line1-cam');
    expect(fired).toMatchObject({ transition: { to: 'firing' }, alert: { source: 'line1-cam' } });
    line1Alert = fired.alert.id;
    expect(line1Alert).not.toBe(line2Alert);

    const ack = await s.request('POST', `/api/alerts/${line1Alert}/ack`, { key: s.keys.operator });
    expect(ack.json).toMatchObject({ source: 'line1-cam', acknowledged: { at: expect.any(Number) } });
    expect((await alert(line2Alert)).acknowledged).toBeNull();

    const resolved = await change(NORMAL, 'line1-cam');
    expect(resolved).toMatchObject({ transition: { from: 'firing', to: 'resolved' }, alert: { id: line1Alert, source: 'line1-cam' } });
    expect((await alert(line2Alert)).state).toBe('firing');
    expect((await s.request('GET', `/api/rules/${ruleId}`)).json.instances).toEqual([{ source: 'line1-cam', state: 'resolved' }, { source: 'line2-cam', state: 'firing' }]);
  });

  it('silences one source of a rule: that instance still moves but does not notify, the others still notify', async () => {
    const sil = await s.request('POST', '/api/silences', { key: s.keys.operator, json: { ruleId, source: 'line2-cam', minutes: 30, reason: 'lens cleaning' } });
    expect(sil.status).toBe(201);
    expect(sil.json).toMatchObject({ ruleId, source: 'line2-cam' });
    expect((await s.request('GET', '/api/silences', { key: s.keys.viewer })).json.silences).toEqual([expect.objectContaining({ rule_id: ruleId, source: 'line2-cam' })]);

    const quiet = await change(NORMAL, 'line2-cam');
    expect(quiet).toMatchObject({ transition: { from: 'firing', to: 'resolved' }, notified: false, alert: { id: line2Alert } });
    expect((await change(BAD, 'line2-cam'))).toMatchObject({ transition: { to: 'firing' }, notified: false, alert: { source: 'line2-cam' } });
    expect((await change(BAD, 'line1-cam'))).toMatchObject({ transition: { to: 'firing' }, notified: true, alert: { source: 'line1-cam' } });
    expect((await s.request('DELETE', `/api/silences/${sil.json.id}`)).status).toBe(204);
  });

  it('refuses a silence for a source its rule never watches, and a malformed source', async () => {
    const only = await s.request('POST', '/api/rules', { key: s.keys.operator, json: { name: 'line9 only', channel: 'recon', source: 'line9-cam', threshold: { kind: 'absolute', value: 1e9 } } });
    const bad = await s.request('POST', '/api/silences', { key: s.keys.operator, json: { ruleId: only.json.id, source: 'line1-cam', minutes: 5 } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/watches only source "line9-cam"/);
    expect((await s.request('POST', '/api/silences', { json: { ruleId, source: 42, minutes: 5 } })).status).toBe(400);
    expect((await s.request('POST', '/api/silences', { json: { source: 'x'.repeat(101), minutes: 5 } })).status).toBe(400);
    expect((await s.request('DELETE', `/api/rules/${only.json.id}`)).status).toBe(204);
  });

  it('deleting the rule closes the open alert of every instance, naming each source', async () => {
    const open = [...(await firing('line1-cam')), ...(await firing('line2-cam'))];
    expect(open).toHaveLength(2);
    const seen: any[] = [];
    const off = s.ctx.bus.subscribe((e) => seen.push(e));
    try {
      expect((await s.request('DELETE', `/api/rules/${ruleId}`, { key: s.keys.operator })).status).toBe(204);
    } finally {
      off();
    }
    for (const id of open) expect((await alert(id)).state).toBe('resolved');
    const closed = seen.filter((e) => e.type === 'alert.changed').map((e) => e.payload);
    expect(closed.map((p) => p.alert.source).sort()).toEqual(['line1-cam', 'line2-cam']);
    for (const p of closed) expect(p.message).toMatch(new RegExp(`^${p.alert.source}: rule deleted: resolved$`));
  });

  it('filters alerts by source', async () => {
    const res = await s.request('GET', '/api/alerts?source=line1-cam&limit=500', { key: s.keys.viewer });
    expect(res.json.alerts.length).toBeGreaterThanOrEqual(2);
    expect(new Set(res.json.alerts.map((a: any) => a.source))).toEqual(new Set(['line1-cam']));
    expect((await s.request('GET', `/api/alerts?source=${'x'.repeat(101)}`)).status).toBe(400);
  });

  it('previews per source too: a clean image from one camera does not resolve the other in the preview', async () => {
    await upload(BAD, 'line2-cam');
    await upload(NORMAL, 'line1-cam');
    const res = await s.request('POST', '/api/rules/preview', { key: s.keys.viewer, json: { name: 'p', channel: 'recon', threshold: { kind: 'absolute', value: (normalRecon + anomalousRecon) / 2 }, last: 2 } });
    expect(res.json).toEqual({ images: 2, breaches: 1, firings: 1, finalState: 'firing' });
  });
});

describe('stats', () => {
  it('returns calibration and recent histograms per channel and counts per hour', async () => {
    const res = await s.request('GET', '/api/stats?hours=1&bins=10', { key: s.keys.viewer });
    expect(res.status).toBe(200);
    expect(res.json.activeModel).toBe('tiny-model');
    for (const ch of ['kl', 'recon', 'elbo']) {
      const h = res.json.channels[ch];
      expect(h.calibration).toHaveLength(10);
      expect(h.recent.reduce((a: number, b: number) => a + b, 0)).toBe(res.json.images);
      expect(h.calibration.reduce((a: number, b: number) => a + b, 0)).toBeGreaterThan(0);
    }
    expect(res.json.perHour.reduce((a: number, h: any) => a + h.images, 0)).toBe(res.json.images);
  });
});
