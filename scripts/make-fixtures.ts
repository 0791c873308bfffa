// Generates the synthetic "industrial inspection" image set used to train and
// test the anomaly detector: 64x64 grayscale top-down camera views of a machined
// flange (a bright disc with a central bore and six bolt holes) on a dark
// conveyor belt. Normal images vary the way a real line does (position, rotation,
// lighting, sensor noise); each anomalous image adds exactly one defect.
// Everything is drawn from a seeded PRNG, so reruns give byte-identical PNGs.
//
// Usage: node dist/scripts/make-fixtures.js [outDir]   (default: fixtures)

import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '../server/ml/random.js';

const SIZE = 64;
const NORMAL_COUNT = 400;
const PER_ANOMALY = 10;
const ANOMALIES = [
  'scratch',
  'crack',
  'missing_hole',
  'extra_hole',
  'stain',
  'chipped_rim',
  'deformed',
  'wrong_part',
] as const;
type Anomaly = (typeof ANOMALIES)[number];

// Nominal part geometry, in pixels.
const RIM_RADIUS = 22;
const BORE_RADIUS = 6.5;
const HOLE_COUNT = 6;
const HOLE_PITCH = (2 * Math.PI) / HOLE_COUNT;
const HOLE_CIRCLE_RADIUS = 15;
const HOLE_RADIUS = 2.4;
const PLATE_HALF_WIDTH = 19;
const PLATE_CORNER_RADIUS = 3;

// Appearance, in [0, 1] intensity units.
const BELT_LEVEL = 0.24;
const METAL_LEVEL = 0.7;
const CHAMFER_WIDTH = 1.2;
const CHAMFER_SHADE = 0.12;
const SHADOW_OFFSET = 1.5;
const SHADOW_SPREAD = 3;
const SHADOW_DEPTH = 0.35;
const LIGHT_GRADIENT = 0.06;
const SENSOR_NOISE = 2 / 255;
const SUPERSAMPLE = 4;

type Rand = () => number;
interface Point {
  x: number;
  y: number;
}
interface Circle extends Point {
  r: number;
}

/** The part, in image coordinates; holes and bites are in the part's own frame. */
interface Part {
  center: Point;
  rotation: number;
  squash: { axis: number; factor: number } | null;
  outline: 'disc' | 'plate';
  bore: number;
  holes: Circle[];
  bites: Circle[];
}

/** A surface mark in the part frame: a thin polyline or a soft irregular blob. */
type Mark =
  | { kind: 'stroke'; points: Point[]; width: number; tone: number; strength: number }
  | { kind: 'blob'; center: Point; radius: number; phases: number[]; tone: number; strength: number };

interface Scene {
  part: Part;
  marks: Mark[];
  belt: Float32Array;
  light: Point; // unit vector towards the light, image frame
  contrast: number;
  brightness: number;
}

const uniform = (rand: Rand, lo: number, hi: number): number => lo + (hi - lo) * rand();
const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));

function gaussian(rand: Rand): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

function polar(angle: number, radius: number): Point {
  return { x: radius * Math.cos(angle), y: radius * Math.sin(angle) };
}

/** Smooth value noise in [-1, 1] on a lattice with the given cell size. */
function valueNoise(rand: Rand, cell: number): Float32Array {
  const n = Math.ceil(SIZE / cell) + 1;
  const lattice = Float32Array.from({ length: n * n }, () => 2 * rand() - 1);
  const out = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const gx = (x + 0.5) / cell;
      const gy = (y + 0.5) / cell;
      const i = Math.floor(gx);
      const j = Math.floor(gy);
      const sx = smoothstep(gx - i);
      const sy = smoothstep(gy - j);
      const top = lerp(lattice[j * n + i], lattice[j * n + i + 1], sx);
      const bottom = lerp(lattice[(j + 1) * n + i], lattice[(j + 1) * n + i + 1], sx);
      out[y * SIZE + x] = lerp(top, bottom, sy);
    }
  }
  return out;
}

function smoothstep(t: number): number {
  return t * t * (3 - 2 * t);
}

function lerp(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

function beltTexture(rand: Rand): Float32Array {
  const coarse = valueNoise(rand, 8);
  const fine = valueNoise(rand, 4);
  return coarse.map((c, i) => BELT_LEVEL + 0.025 * c + 0.012 * fine[i]);
}

/** A normal part and scene, with the variation a real line has. */
function normalScene(rand: Rand): Scene {
  const lightAngle = (-3 * Math.PI) / 4 + uniform(rand, -0.3, 0.3);
  const part: Part = {
    center: { x: SIZE / 2 + uniform(rand, -2, 2), y: SIZE / 2 + uniform(rand, -2, 2) },
    rotation: uniform(rand, 0, 2 * Math.PI),
    squash: null,
    outline: 'disc',
    bore: BORE_RADIUS,
    holes: Array.from({ length: HOLE_COUNT }, (_, k) => ({ ...polar(k * HOLE_PITCH, HOLE_CIRCLE_RADIUS), r: HOLE_RADIUS })),
    bites: [],
  };
  return {
    part,
    marks: [],
    belt: beltTexture(rand),
    light: polar(lightAngle, 1),
    contrast: uniform(rand, 0.92, 1.08),
    brightness: uniform(rand, 0.92, 1.08),
  };
}

/** A point on the metal between two bolt holes, at a radius in [rMin, rMax]. */
function pointBetweenHoles(rand: Rand, rMin: number, rMax: number): Point {
  const slot = Math.floor(rand() * HOLE_COUNT);
  const angle = (slot + 0.5) * HOLE_PITCH + uniform(rand, -0.15, 0.15);
  return polar(angle, uniform(rand, rMin, rMax));
}

/** A jagged polyline from the rim towards the centre. */
function crackPath(rand: Rand): Point[] {
  const start = (Math.floor(rand() * HOLE_COUNT) + 0.5) * HOLE_PITCH + uniform(rand, -0.2, 0.2);
  const points = [polar(start, RIM_RADIUS + 0.5)];
  const steps = 4 + Math.floor(rand() * 3);
  for (let i = 0; i < steps; i++) {
    const last = points[points.length - 1];
    const heading = start + Math.PI + uniform(rand, -0.8, 0.8);
    const step = polar(heading, uniform(rand, 2, 3));
    points.push({ x: last.x + step.x, y: last.y + step.y });
  }
  return points;
}

/** Adds exactly one defect of the given type; `variant` alternates sub-kinds. */
function applyAnomaly(scene: Scene, anomaly: Anomaly, variant: number, rand: Rand): void {
  const part = scene.part;
  switch (anomaly) {
    case 'scratch': {
      const mid = polar(uniform(rand, 0, 2 * Math.PI), uniform(rand, 8, 17));
      const half = polar(uniform(rand, 0, Math.PI), uniform(rand, 7, 13));
      const bright = variant % 2 === 0;
      scene.marks.push({
        kind: 'stroke',
        points: [
          { x: mid.x - half.x, y: mid.y - half.y },
          { x: mid.x + half.x, y: mid.y + half.y },
        ],
        width: uniform(rand, 0.7, 1),
        tone: bright ? 1 : 0.2,
        strength: 0.7,
      });
      break;
    }
    case 'crack':
      scene.marks.push({ kind: 'stroke', points: crackPath(rand), width: uniform(rand, 0.8, 1), tone: 0.05, strength: 0.85 });
      break;
    case 'missing_hole':
      part.holes.splice(Math.floor(rand() * HOLE_COUNT), 1);
      break;
    case 'extra_hole':
      part.holes.push({ ...pointBetweenHoles(rand, 13, 17), r: HOLE_RADIUS });
      break;
    case 'stain':
      scene.marks.push({
        kind: 'blob',
        center: pointBetweenHoles(rand, 10, 19),
        radius: uniform(rand, 2, 4),
        phases: [uniform(rand, 0, 2 * Math.PI), uniform(rand, 0, 2 * Math.PI)],
        tone: 0.1,
        strength: 0.6,
      });
      break;
    case 'chipped_rim':
      part.bites.push({ ...pointBetweenHoles(rand, RIM_RADIUS + 0.5, RIM_RADIUS + 1.5), r: uniform(rand, 3, 5) });
      break;
    case 'deformed':
      part.squash = { axis: uniform(rand, 0, Math.PI), factor: 1 - uniform(rand, 0.12, 0.2) };
      break;
    case 'wrong_part':
      if (variant % 2 === 0) part.outline = 'plate';
      else part.bore = 0;
      break;
  }
}

/** Image point -> part frame (undoing translation, squash and rotation). */
function toLocal(part: Part, x: number, y: number): Point {
  let dx = x - part.center.x;
  let dy = y - part.center.y;
  if (part.squash) {
    const c = Math.cos(part.squash.axis);
    const s = Math.sin(part.squash.axis);
    const along = c * dx + s * dy;
    const across = (-s * dx + c * dy) / part.squash.factor;
    dx = c * along - s * across;
    dy = s * along + c * across;
  }
  const c = Math.cos(part.rotation);
  const s = Math.sin(part.rotation);
  return { x: c * dx + s * dy, y: -s * dx + c * dy };
}

/** Signed distance to the outer outline, positive inside. */
function outlineDistance(part: Part, p: Point): number {
  if (part.outline === 'disc') return RIM_RADIUS - Math.hypot(p.x, p.y);
  const inner = PLATE_HALF_WIDTH - PLATE_CORNER_RADIUS;
  const qx = Math.abs(p.x) - inner;
  const qy = Math.abs(p.y) - inner;
  const outside = Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0);
  return PLATE_CORNER_RADIUS - outside;
}

const inCircle = (p: Point, c: Circle): boolean => (p.x - c.x) ** 2 + (p.y - c.y) ** 2 < c.r ** 2;

function isCutOut(part: Part, p: Point): boolean {
  return (
    p.x * p.x + p.y * p.y < part.bore * part.bore ||
    part.holes.some((h) => inCircle(p, h)) ||
    part.bites.some((b) => inCircle(p, b))
  );
}

/** Metal shade offset at an image point (the lit chamfer at the rim), or null off the part. */
function surfaceAt(scene: Scene, x: number, y: number): number | null {
  const part = scene.part;
  const p = toLocal(part, x, y);
  const edge = outlineDistance(part, p);
  if (edge <= 0 || isCutOut(part, p)) return null;
  if (edge >= CHAMFER_WIDTH) return 0;
  const dx = x - part.center.x;
  const dy = y - part.center.y;
  return (CHAMFER_SHADE * (dx * scene.light.x + dy * scene.light.y)) / Math.hypot(dx, dy);
}

function segmentDistance(p: Point, a: Point, b: Point): number {
  const abx = b.x - a.x;
  const aby = b.y - a.y;
  const t = clamp01(((p.x - a.x) * abx + (p.y - a.y) * aby) / (abx * abx + aby * aby));
  return Math.hypot(p.x - a.x - t * abx, p.y - a.y - t * aby);
}

/** Anti-aliased opacity of a mark at a part-frame point. */
function markAlpha(mark: Mark, p: Point): number {
  if (mark.kind === 'stroke') {
    let d = Infinity;
    for (let i = 1; i < mark.points.length; i++) d = Math.min(d, segmentDistance(p, mark.points[i - 1], mark.points[i]));
    return clamp01(mark.width / 2 + 0.5 - d);
  }
  const dx = p.x - mark.center.x;
  const dy = p.y - mark.center.y;
  const angle = Math.atan2(dy, dx);
  const edge = mark.radius * (1 + 0.15 * Math.sin(2 * angle + mark.phases[0]) + 0.1 * Math.sin(3 * angle + mark.phases[1]));
  return clamp01((edge - Math.hypot(dx, dy)) / 2 + 0.5);
}

/** Part coverage, chamfer shade and drop-shadow coverage of one pixel, by supersampling. */
function samplePixel(scene: Scene, x: number, y: number): { cover: number; shade: number; shadow: number } {
  let cover = 0;
  let shade = 0;
  let shadow = 0;
  for (let j = 0; j < SUPERSAMPLE; j++) {
    for (let i = 0; i < SUPERSAMPLE; i++) {
      const u = (i + 0.5) / SUPERSAMPLE;
      const v = (j + 0.5) / SUPERSAMPLE;
      const metal = surfaceAt(scene, x + u, y + v);
      if (metal !== null) {
        cover++;
        shade += metal;
      }
      const sx = x + 0.5 + (u - 0.5) * SHADOW_SPREAD + SHADOW_OFFSET * scene.light.x;
      const sy = y + 0.5 + (v - 0.5) * SHADOW_SPREAD + SHADOW_OFFSET * scene.light.y;
      if (surfaceAt(scene, sx, sy) !== null) shadow++;
    }
  }
  const n = SUPERSAMPLE * SUPERSAMPLE;
  return { cover: cover / n, shade: cover > 0 ? shade / cover : 0, shadow: shadow / n };
}

/** Renders the scene to 8-bit grayscale: shapes, marks, lighting, jitter, sensor noise. */
function render(scene: Scene, rand: Rand): Uint8Array {
  const out = new Uint8Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const { cover, shade, shadow } = samplePixel(scene, x, y);
      const belt = scene.belt[y * SIZE + x] * (1 - SHADOW_DEPTH * shadow);
      let value = lerp(belt, METAL_LEVEL + shade, cover);
      const local = toLocal(scene.part, x + 0.5, y + 0.5);
      for (const mark of scene.marks) value = lerp(value, mark.tone, mark.strength * cover * markAlpha(mark, local));
      const toLight = ((x + 0.5 - SIZE / 2) * scene.light.x + (y + 0.5 - SIZE / 2) * scene.light.y) / (SIZE / 2);
      value *= 1 + LIGHT_GRADIENT * toLight;
      value = ((value - 0.5) * scene.contrast + 0.5) * scene.brightness;
      value += SENSOR_NOISE * gaussian(rand);
      out[y * SIZE + x] = Math.round(255 * clamp01(value));
    }
  }
  return out;
}

function makeImage(seed: number, anomaly?: { type: Anomaly; variant: number }): Uint8Array {
  const rand = mulberry32(seed);
  const scene = normalScene(rand);
  if (anomaly) applyAnomaly(scene, anomaly.type, anomaly.variant, rand);
  return render(scene, rand);
}

async function writePng(file: string, pixels: Uint8Array): Promise<void> {
  await sharp(pixels, { raw: { width: SIZE, height: SIZE, channels: 1 } })
    .toColourspace('b-w') // keep one channel: sharp would otherwise write RGB
    .png({ compressionLevel: 9 })
    .toFile(file);
}

async function main(): Promise<void> {
  const outDir = process.argv[2] ?? 'fixtures';
  const normalDir = path.join(outDir, 'normal');
  const anomalousDir = path.join(outDir, 'anomalous');
  for (const dir of [normalDir, anomalousDir]) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
  }

  for (let i = 0; i < NORMAL_COUNT; i++) {
    const name = `normal_${String(i).padStart(4, '0')}.png`;
    await writePng(path.join(normalDir, name), makeImage(1_000 + i));
  }
  for (let i = 0; i < ANOMALIES.length * PER_ANOMALY; i++) {
    const type = ANOMALIES[i % ANOMALIES.length];
    const variant = Math.floor(i / ANOMALIES.length);
    const name = `${type}_${String(variant).padStart(2, '0')}.png`;
    await writePng(path.join(anomalousDir, name), makeImage(100_000 + i, { type, variant }));
  }

  console.log(
    `make-fixtures: wrote ${NORMAL_COUNT} normal and ${ANOMALIES.length * PER_ANOMALY} anomalous ` +
      `(${ANOMALIES.length} types x ${PER_ANOMALY}) 64x64 grayscale PNGs to ${outDir}/`,
  );
}

await main();
