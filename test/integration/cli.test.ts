// The CLI contract (DESIGN.md §6), end to end: a real model trained on the
// fixtures by `latentwatch train`, evaluated and used to score by the CLI.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';

const CLI = path.resolve('dist/server/cli.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  lines: Record<string, any>[];
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LATENTWATCH_BACKEND: '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = args.includes('--json') ? stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
      resolve({ code: code ?? -1, stdout, stderr, lines });
    });
  });
}

let dir: string;
let cleanup: () => Promise<void>;
let model: string;
let train: Run;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  model = path.join(dir, 'models', 'fixtures-32');
  train = await cli(['train', '--data', 'fixtures/normal', '--out', model, '--size', '32', '--latent', '32', '--epochs', '40', '--json']);
}, 600_000);
afterAll(() => cleanup());

describe('latentwatch train', () => {
  it('streams JSON progress and ends with a summary naming the model directory', () => {
    expect(train.stderr).toBe('');
    expect(train.code).toBe(0);
    const [start, ...rest] = train.lines;
    expect(start).toMatchObject({ type: 'start', backend: 'wasm', images: 400 });
    expect(rest.some((l) => l.type === 'loading')).toBe(true);
    const epochs = rest.filter((l) => l.type === 'epoch');
    expect(epochs.length).toBeGreaterThan(5);
    expect(epochs[0]).toMatchObject({ epoch: 1, epochs: 40, loss: expect.any(Number), recon: expect.any(Number), kl: expect.any(Number), valLoss: expect.any(Number), imagesPerSecond: expect.any(Number), etaSeconds: expect.any(Number) });
    expect(rest.some((l) => l.type === 'step')).toBe(true);
    const done = rest[rest.length - 1];
    expect(done).toMatchObject({ type: 'done', model, id: 'fixtures-32', backend: 'wasm', images: 400, validation: 50, train: 350 });
    expect(Object.keys(done.thresholds)).toEqual(['kl', 'recon', 'elbo']);
  });

  it('writes model.json, weights.bin and a meta.json with curves and calibration', async () => {
    const meta = JSON.parse(await readFile(path.join(model, 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({ format: 'latentwatch-vae/1', input: { size: 32, channels: 1, resize: 'fill' }, backend: 'wasm' });
    expect(meta.calibration.n).toBe(50);
    expect(meta.calibration.channels.recon.scores).toHaveLength(50);
    expect(meta.training.epochs.length).toBeGreaterThan(5);
    await expect(readFile(path.join(model, 'weights.bin'))).resolves.toBeInstanceOf(Buffer);
  });

  it('refuses bad usage with exit code 2 and a message', async () => {
    const noData = await cli(['train', '--out', path.join(dir, 'x')]);
    expect(noData.code).toBe(2);
    expect(noData.stderr).toMatch(/--data is required/);
    const badSize = await cli(['train', '--data', 'fixtures/normal', '--out', path.join(dir, 'x'), '--size', '30']);
    expect(badSize.code).toBe(2);
    expect(badSize.stderr).toMatch(/--size must be an integer from 28 to 128 divisible by 4, got 30/);
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
    const flag = await cli(['score', '--model', model, '--bogus', 'x']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/bogus/);
  });
});

describe('latentwatch eval', () => {
  it('separates the anomalous fixtures from the normal ones (recon AUROC >= 0.9)', async () => {
    const run = await cli(['eval', '--model', model, '--normal', 'fixtures/normal', '--anomalous', 'fixtures/anomalous', '--json']);
    expect(run.code).toBe(0);
    expect(run.lines).toHaveLength(1);
    const [result] = run.lines;
    expect(result).toMatchObject({ normal: 400, anomalous: 80, backend: 'wasm' });
    for (const ch of ['kl', 'recon', 'elbo', 'combined']) {
      expect(result.auroc[ch]).toBeGreaterThanOrEqual(0);
      expect(result.auroc[ch]).toBeLessThanOrEqual(1);
    }
    expect(result.auroc.recon).toBeGreaterThanOrEqual(0.9);
  });

  it('prints a readable table without --json', async () => {
    const run = await cli(['eval', '--model', model, '--normal', 'fixtures/normal', '--anomalous', 'fixtures/anomalous']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/channel\s+AUROC/);
    expect(run.stdout).toMatch(/recon\s+0\.\d{4}/);
    expect(run.stdout).toMatch(/400 normal, 80 anomalous images/);
    expect(run.stderr).toMatch(/backend: wasm/);
  });
});

describe('latentwatch score', () => {
  it('prints one JSON object per image with scores, p-values and a verdict', async () => {
    const run = await cli(['score', '--model', model, 'fixtures/normal/normal_0000.png', 'fixtures/anomalous/deformed_00.png', '--json']);
    expect(run.code).toBe(0);
    expect(run.lines).toHaveLength(2);
    for (const line of run.lines) {
      expect(line).toMatchObject({
        file: expect.any(String), kl: expect.any(Number), recon: expect.any(Number), elbo: expect.any(Number),
        p: { kl: expect.any(Number), recon: expect.any(Number), elbo: expect.any(Number), combined: expect.any(Number) },
        anomaly: expect.any(Boolean), backend: 'wasm',
      });
    }
    const [normal, deformed] = run.lines;
    expect(normal.file).toBe('fixtures/normal/normal_0000.png');
    expect(deformed.recon).toBeGreaterThan(normal.recon);
    expect(deformed.anomaly).toBe(true);
  });

  it('scores a directory recursively, reports unreadable files by name and scores the rest', async () => {
    const mixed = path.join(dir, 'mixed');
    await mkdir(path.join(mixed, 'sub'), { recursive: true });
    await copyFile('fixtures/normal/normal_0001.png', path.join(mixed, 'a.png'));
    await copyFile('fixtures/anomalous/stain_00.png', path.join(mixed, 'sub', 'b.png'));
    await writeFile(path.join(mixed, 'sub', 'c.png'), (await readFile('fixtures/normal/normal_0002.png')).subarray(0, 200));
    await writeFile(path.join(mixed, 'sub', 'd.jpg'), '');
    await writeFile(path.join(mixed, 'notes.txt'), 'ignored: not an image extension');
    const run = await cli(['score', '--model', model, mixed, '--json']);
    expect(run.code).toBe(1);
    expect(run.lines.map((l) => path.relative(mixed, l.file))).toEqual(['a.png', 'sub/b.png', 'sub/c.png', 'sub/d.jpg']);
    expect(run.lines[0].kl).toEqual(expect.any(Number));
    expect(run.lines[1].kl).toEqual(expect.any(Number));
    expect(run.lines[2].error).toMatchObject({ code: 'corrupt_image', message: expect.stringContaining('c.png') });
    expect(run.lines[3].error).toMatchObject({ code: 'empty_file', message: expect.stringContaining('d.jpg') });
  });

  it('prints a table for people and names a missing model', async () => {
    const run = await cli(['score', '--model', model, 'fixtures/anomalous/wrong_part_00.png']);
    expect(run.stdout).toMatch(/file\s+kl\s+recon\s+elbo\s+p\s+verdict/);
    expect(run.stdout).toMatch(/wrong_part_00\.png.*ANOMALY/);
    const missing = await cli(['score', '--model', path.join(dir, 'nope'), 'fixtures/normal/normal_0000.png']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope: not a latentwatch model directory/);
  });

  it('honours LATENTWATCH_BACKEND and refuses an unknown one', async () => {
    const cpu = await cli(['score', '--model', model, 'fixtures/normal/normal_0000.png', '--json'], { LATENTWATCH_BACKEND: 'cpu' });
    expect(cpu.code).toBe(0);
    expect(cpu.lines[0].backend).toBe('cpu');
    const wasm = await cli(['score', '--model', model, 'fixtures/normal/normal_0000.png', '--json']);
    expect(cpu.lines[0].recon).toBeCloseTo(wasm.lines[0].recon, 5);
    const native = await cli(['score', '--model', model, 'fixtures/normal/normal_0000.png'], { LATENTWATCH_BACKEND: 'tensorflow' });
    expect(native.code).toBe(1);
    expect(native.stderr).toMatch(/the tensorflow backend could not be initialised .*@tensorflow\/tfjs-node.*unset LATENTWATCH_BACKEND/);
    expect(native.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const bad = await cli(['score', '--model', model, 'x.png'], { LATENTWATCH_BACKEND: 'quantum' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/LATENTWATCH_BACKEND must be one of tensorflow, wasm, cpu, got "quantum"/);
  });
});
