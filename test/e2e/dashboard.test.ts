// The dashboard in real Chromium (Debian's /usr/bin/chromium driven by
// playwright-core) against the real server: sign in, upload, watch points and
// an alert arrive live, acknowledge, open the detail view, edit a threshold,
// train a model and watch its curve. Screenshots of every view go to
// screenshots/ (git-ignored) for people to look at.
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../server/config.js';
import { silentLoggers } from '../../server/logger.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, trainTinyModel } from '../server-helpers.js';

const SHOTS = path.resolve('screenshots');
let server: RunningServer;
let browser: Browser;
let page: Page;
let cleanup: () => Promise<void>;
const consoleProblems: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function apiUpload(file: string, source = 'camera-1') {
  const form = new FormData();
  form.append('images', new Blob([await readFile(file)]), path.basename(file));
  form.append('source', source);
  const res = await fetch(`${server.url}/api/images`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: form });
  expect(res.status).toBe(201);
  return ((await res.json()) as { results: { image: { id: number; scores: { recon: number } } }[] }).results[0].image;
}

beforeAll(async () => {
  let dir: string;
  ({ dir, cleanup } = await tempDir('latentwatch-e2e-'));
  await trainTinyModel(path.join(dir, 'models', 'tiny'));
  server = await startServer(buildConfig({ port: '0', host: '127.0.0.1', dataDir: path.join(dir, 'data'), modelsDir: path.join(dir, 'models'), adminKey: ADMIN_KEY, backend: 'wasm', datasetsDir: 'fixtures' }), { log: silentLoggers() });
  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleProblems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleProblems.push(`page error: ${e.message}`));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await cleanup?.();
});

describe('the dashboard', () => {
  it('refuses a wrong key and signs in with a right one, showing the role', async () => {
    await page.goto(server.url);
    await page.waitForSelector('#signin:not([hidden])');
    await shot('01-signin');
    await page.fill('#signin-key', 'lw_wrong');
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#signin-error:has-text("unknown or revoked")');
    await shot('02-signin-error');
    consoleProblems.length = 0; // the refused sign-in is an expected 401
    await page.fill('#signin-key', ADMIN_KEY);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#app:not([hidden])');
    await expect(page.textContent('#who')).resolves.toMatch(/admin/);
    await page.waitForSelector('#connection.conn-live');
    await expect(page.textContent('#model-name')).resolves.toBe('model tiny-model');
    await shot('03-live-empty');
  });

  it('creates a rule in the Rules view', async () => {
    await page.click('#tabs a[data-view=rules]');
    await page.waitForSelector('#rule-form');
    await shot('04-rules-empty');
    const normal = await apiUpload('fixtures/normal/normal_0200.png', 'calibration-check');
    const bad = await apiUpload('fixtures/anomalous/wrong_part_00.png', 'calibration-check');
    const alsoBad = await apiUpload('fixtures/anomalous/wrong_part_02.png', 'calibration-check');
    const leastBad = Math.min(bad.scores.recon, alsoBad.scores.recon);
    expect(leastBad).toBeGreaterThan(normal.scores.recon);
    await page.fill('#rule-form input[name=name]', 'recon high');
    await page.selectOption('#rule-form select[name=channel]', 'recon');
    await page.selectOption('#rule-form select[name=kind]', 'absolute');
    // Between the normal image and the less anomalous of the two: both breach, the normal one does not.
    await page.fill('#rule-form input[name=value]', String((normal.scores.recon + leastBad) / 2));
    await page.click('#rule-preview-button');
    await page.waitForSelector('#rule-preview:has-text("would have breached 2 times")');
    await page.click('#rule-save');
    await page.waitForSelector('#rules-table tr[data-rule-id] >> text=recon high');
    await shot('05-rules');
  });

  it('shows an uploaded image and one sent by a camera arriving live, and fires an alert for the anomalous one', async () => {
    await page.click('#tabs a[data-view=images]');
    await page.setInputFiles('#upload-input', ['fixtures/normal/normal_0201.png']);
    await page.waitForSelector('#upload-results >> text=normal_0201.png');
    const before = Number(await page.getAttribute('#view-live', 'data-points'));
    const bad = await apiUpload('fixtures/anomalous/wrong_part_02.png'); // arrives over the WebSocket
    await page.waitForSelector(`#gallery [data-image-id="${bad.id}"]`);
    await shot('06-images');
    // The CSV download carries the session: every stored result, the camera's one included.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
    const csv = await readFile((await download.path())!, 'utf8');
    expect(csv.split('\r\n')[0]).toMatch(/^id,received_at,source,original_name/);
    expect(csv).toContain('wrong_part_02.png');
    expect(csv).toContain('normal_0201.png');
    await page.click('#tabs a[data-view=live]');
    await page.waitForFunction((n) => Number(document.getElementById('view-live')!.dataset.points) >= n + 1, before);
    await page.waitForSelector('#alert-feed li[data-state=firing]');
    await page.waitForSelector('#alert-banner:not([hidden])');
    await expect(page.textContent('#alert-banner')).resolves.toMatch(/1 alert firing/);
    await shot('07-live-alert');
  });

  it('acknowledges the alert', async () => {
    await page.click('#alert-feed li[data-state=firing] button.ack');
    await page.waitForSelector('#alert-feed li[data-state=firing] >> text=acknowledged');
    await page.waitForSelector('#alert-banner', { state: 'hidden' });
  });

  it('opens the detail view with original, reconstruction, heatmap and scores', async () => {
    await page.click('#tabs a[data-view=images]');
    await page.click('#gallery .thumb >> nth=0');
    await page.waitForSelector('#image-detail[open] #detail-scores');
    for (const alt of ['original', 'reconstruction', 'error heatmap']) {
      const loaded = await page.$eval(`#image-detail img[alt^="${alt}"]`, (img) => new Promise<boolean>((resolve) => {
        const el = img as HTMLImageElement;
        if (el.complete) resolve(el.naturalWidth > 0);
        else { el.onload = () => resolve(el.naturalWidth > 0); el.onerror = () => resolve(false); }
      }));
      expect(loaded, alt).toBe(true);
    }
    await expect(page.textContent('#detail-scores')).resolves.toMatch(/KL divergence.*reconstruction \(worst region\).*negative ELBO.*combined/s);
    expect(await page.isVisible('#heatmap-legend')).toBe(true);
    await expect(page.textContent('#heatmap-legend')).resolves.toMatch(/alert threshold/);
    await shot('08-detail');
    await page.click('#image-detail button:has-text("Close")');
  });

  it('edits the rule threshold', async () => {
    await page.click('#tabs a[data-view=rules]');
    await page.click('#rules-table tr[data-rule-id] button.edit');
    await page.selectOption('#rule-form select[name=kind]', 'rate');
    await page.fill('#rule-form input[name=value]', '5');
    await page.click('#rule-save');
    await page.waitForSelector('#rules-table >> text=5% false alarms');
  });

  it('shows the distribution of recent scores against calibration', async () => {
    await page.click('#tabs a[data-view=distribution]');
    await page.waitForSelector('#distribution-note:has-text("images scored with model tiny-model")');
    await shot('09-distribution');
  });

  it('starts a short training run and watches its loss curve advance', async () => {
    await page.click('#tabs a[data-view=models]');
    await page.waitForSelector('#model-versions tr[data-model-id="tiny-model"]');
    const files = (await readdir('fixtures/normal')).slice(0, 40).map((f) => path.join('fixtures/normal', f));
    await page.setInputFiles('#train-files', files);
    await page.selectOption('#train-size', '28');
    await page.fill('#train-epochs', '4');
    await page.fill('#train-latent', '4');
    // Record every change of the curve's epoch count as it is drawn.
    await page.evaluate(() => {
      const canvas = document.getElementById('loss-chart')!;
      const seen: string[] = [];
      (window as unknown as { epochsSeen: string[] }).epochsSeen = seen;
      new MutationObserver(() => seen.push(canvas.dataset.epochs ?? '')).observe(canvas, { attributes: true, attributeFilter: ['data-epochs'] });
    });
    await page.click('#train-start');
    await page.waitForSelector('#job-status:has-text("succeeded")', { timeout: 120_000 });
    const seen = await page.evaluate(() => (window as unknown as { epochsSeen: string[] }).epochsSeen.map(Number));
    expect(seen[seen.length - 1]).toBe(4);
    expect(new Set(seen.filter((n) => n > 0)).size).toBeGreaterThanOrEqual(3); // drawn epoch by epoch, not all at the end
    await page.waitForSelector('#model-versions tr[data-model-id^="m"] button.activate');
    await shot('10-models');
  });

  it('recalibrates a model on recent stored images, and lists the new version with its lineage', async () => {
    for (const f of (await readdir('fixtures/normal')).sort().slice(320, 375)) await apiUpload(path.join('fixtures/normal', f), 'camera-2');
    await page.click('#tabs a[data-view=models]');
    await page.click('#model-versions tr[data-model-id="tiny-model"] button.recalibrate');
    await page.waitForSelector('#toast:has-text("recalibration job")');
    const row = await page.waitForSelector('#model-versions tr:has(.lineage:has-text("recalibrated from tiny-model"))', { timeout: 60_000 });
    expect(await row.getAttribute('data-model-id')).toMatch(/^m\d+-/);
  });

  it('is usable on a narrow screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const view of ['live', 'images', 'rules', 'models']) {
      await page.click(`#tabs a[data-view=${view}]`);
      await page.waitForTimeout(100);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow, view).toBeLessThanOrEqual(1);
      await shot(`11-narrow-${view}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('shows the connection dropping, reconnects and catches up on what it missed', async () => {
    await page.click('#tabs a[data-view=images]');
    server.ws.dropClients();
    const missed = await apiUpload('fixtures/normal/normal_0202.png'); // sent while the page is disconnected
    await page.waitForSelector('#connection.conn-offline, #connection.conn-connecting');
    await page.waitForSelector('#connection.conn-live', { timeout: 15_000 });
    await page.waitForSelector(`#gallery [data-image-id="${missed.id}"]`);
  });

  it('lets an admin create an operator key, and hides what an operator may not do', async () => {
    await page.click('#tabs a[data-view=admin]');
    await page.waitForSelector('#audit-log >> text=rule.update');
    await page.fill('#key-name', 'line operator');
    await page.selectOption('#key-role', 'operator');
    await page.click('#key-form button[type=submit]');
    const key = await page.inputValue('#key-secret');
    expect(key).toMatch(/^lw_/);
    await page.waitForSelector('#keys-table >> text=line operator');
    await shot('12-admin');

    await page.click('#signout');
    await page.waitForSelector('#signin:not([hidden])');
    await page.fill('#signin-key', key);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#app:not([hidden])');
    await expect(page.textContent('#who')).resolves.toMatch(/line operator · operator/);
    expect(await page.isHidden('#tabs a[data-view=admin]')).toBe(true);
    await page.click('#tabs a[data-view=models]');
    await page.waitForSelector('#model-versions tr[data-model-id]');
    expect(await page.isHidden('#train-form')).toBe(true);
    expect(await page.$$('#model-versions button.activate')).toHaveLength(0);
    await page.click('#tabs a[data-view=images]');
    await page.waitForSelector('#dropzone', { state: 'visible' }); // operators may upload
    await shot('13-operator-models');
  });

  it('returns to sign-in with a message when the signed-in key is revoked', async () => {
    const admin = { authorization: `Bearer ${ADMIN_KEY}` };
    const { keys } = (await (await fetch(`${server.url}/api/keys`, { headers: admin })).json()) as { keys: { id: number; name: string }[] };
    const operator = keys.find((k) => k.name === 'line operator')!;
    expect((await fetch(`${server.url}/api/keys/${operator.id}`, { method: 'DELETE', headers: admin })).status).toBe(204);
    await page.waitForSelector('#signin:not([hidden])');
    await expect(page.textContent('#signin-error')).resolves.toMatch(/revoked/);
    expect(await page.isHidden('#app')).toBe(true);
  });

  it('logged no console errors or warnings', () => {
    expect(consoleProblems).toEqual([]);
  });
});
