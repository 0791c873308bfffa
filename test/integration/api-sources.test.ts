// GET /api/sources: every camera that sent images, its totals and open alert
// instances, from real uploads scored by a real (small) model.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipart, testServer, type TestServer } from '../server-helpers.js';

let s: TestServer;
const NORMAL = 'fixtures/normal/normal_0300.png';
const BAD = 'fixtures/anomalous/wrong_part_01.png';

async function upload(file: string, source: string) {
  const m = multipart([{ name: 'images', filename: file.split('/').pop(), content: await readFile(file) }, { name: 'source', content: source }]);
  const res = await s.request('POST', '/api/images', { body: m.body, headers: m.headers, key: s.keys.operator });
  expect(res.status).toBe(201);
  return res.json.results[0];
}

beforeAll(async () => {
  s = await testServer();
}, 120_000);
afterAll(() => s.close());

describe('GET /api/sources', () => {
  it('needs a key and lists nothing before the first image', async () => {
    expect((await s.request('GET', '/api/sources', { key: null })).status).toBe(401);
    const res = await s.request('GET', '/api/sources', { key: s.keys.viewer });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ sources: [] });
  });

  it('counts images and anomalies per source, with the first and last stored image', async () => {
    const a = [await upload(NORMAL, 'line1-cam'), await upload(BAD, 'line1-cam'), await upload(NORMAL, 'line1-cam')];
    const b = [await upload(BAD, 'line 2 / cam é')];
    const res = await s.request('GET', '/api/sources', { key: s.keys.viewer });
    expect(res.status).toBe(200);
    const expected = (name: string, list: any[]) => {
      const anomalies = list.filter((r) => r.image.anomaly).length;
      return {
        source: name, images: list.length, anomalies, anomalyRate: anomalies / list.length,
        firstSeen: list[0].image.receivedAt, lastSeen: list.at(-1).image.receivedAt, openAlerts: [],
      };
    };
    expect(res.json.sources).toEqual([expected('line 2 / cam é', b), expected('line1-cam', a)]);
    expect(b[0].image.anomaly).toBe(true); // a wrong part is flagged even by the small model
  });

  it('lists the open alert instances of each source', async () => {
    const normalRecon = (await upload(NORMAL, 'line1-cam')).image.scores.recon;
    const badRecon = (await upload(BAD, 'line1-cam')).image.scores.recon;
    const rule = await s.request('POST', '/api/rules', { key: s.keys.operator, json: { name: 'every camera', channel: 'recon', threshold: { kind: 'absolute', value: (normalRecon + badRecon) / 2 } } });
    const fired = (await upload(BAD, 'line3-cam')).alerts[0];
    expect(fired).toMatchObject({ transition: { to: 'firing' }, alert: { source: 'line3-cam' } });
    await upload(NORMAL, 'line1-cam');
    const sources = (await s.request('GET', '/api/sources', { key: s.keys.viewer })).json.sources;
    const line3 = sources.find((x: any) => x.source === 'line3-cam');
    expect(line3.openAlerts).toEqual([{ id: fired.alert.id, ruleId: rule.json.id, ruleName: 'every camera', state: 'firing', startedAt: fired.alert.startedAt, acknowledged: false }]);
    expect(sources.find((x: any) => x.source === 'line1-cam').openAlerts).toEqual([]);

    await s.request('POST', `/api/alerts/${fired.alert.id}/ack`, { key: s.keys.operator });
    const acked = (await s.request('GET', '/api/sources')).json.sources.find((x: any) => x.source === 'line3-cam');
    expect(acked.openAlerts[0].acknowledged).toBe(true);
    await upload(NORMAL, 'line3-cam'); // resolves
    expect((await s.request('GET', '/api/sources')).json.sources.find((x: any) => x.source === 'line3-cam').openAlerts).toEqual([]);
  });
});
