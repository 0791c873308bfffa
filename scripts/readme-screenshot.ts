// Regenerates docs/dashboard.png: the real server with the demo model, a rule,
// a stream of fixture images (a few anomalous), photographed in Chromium.
//   npm run build && node dist/scripts/readme-screenshot.js
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { buildConfig } from '../server/config.js';
import { silentLoggers } from '../server/logger.js';
import { startServer } from '../server/main.js';

const KEY = 'lw_screenshot_admin_key_0123';
const work = await mkdtemp(path.join(os.tmpdir(), 'latentwatch-shot-'));
const server = await startServer(buildConfig({ port: '0', host: '127.0.0.1', dataDir: work, modelsDir: 'models', adminKey: KEY }), { log: silentLoggers() });
const auth = { authorization: `Bearer ${KEY}` };
try {
  await fetch(`${server.url}/api/rules`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'local defect (recon)', channel: 'recon', threshold: { kind: 'rate', rate: 0.01 }, clearAfter: 3 }) });
  const normal = (await readdir('fixtures/normal')).slice(0, 40).map((f) => path.join('fixtures/normal', f));
  const anomalous = ['stain_03.png', 'crack_01.png', 'deformed_02.png'].map((f) => path.join('fixtures/anomalous', f));
  const stream = [...normal.slice(0, 14), anomalous[0], ...normal.slice(14, 26), anomalous[1], anomalous[2], ...normal.slice(26)];
  for (const file of stream) {
    const form = new FormData();
    form.append('images', new Blob([await readFile(file)]), path.basename(file));
    form.append('source', 'line-1');
    await fetch(`${server.url}/api/images`, { method: 'POST', headers: auth, body: form });
    await new Promise((r) => setTimeout(r, 150)); // spread over time, like a camera
  }
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(server.url);
  await page.fill('#signin-key', KEY);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#connection.conn-live');
  await page.waitForTimeout(300);
  await page.screenshot({ path: 'docs/dashboard.png' });
  await browser.close();
  console.log('wrote docs/dashboard.png');
} finally {
  await server.close();
  await rm(work, { recursive: true, force: true });
}
