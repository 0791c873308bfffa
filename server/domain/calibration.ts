// Turns raw scores into calibrated statements (docs/architecture.md): empirical
// p-values against held-out normal images, percentiles, suggested thresholds
// at a false-alarm rate, a combined verdict (a weighted minimum of the channels'
// p-values, or Fisher's statistic in older models, calibrated on
// the same held-out images), and AUROC for evaluation.
import type { Assessment, Calibration, Channel, ChannelCalibration, Combination, RawScores } from './types.js';
import { CHANNELS } from './types.js';

/** Index of the first element >= s in an ascending array. */
function lowerBound(sorted: readonly number[], s: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * p = (1 + #{v >= s}) / (n + 1). Beyond the largest calibration score the
 * p-value keeps falling along an exponential tail fitted to the top decile,
 * so that a score far outside anything seen is not stuck at 1 / (n + 1).
 */
export function pValue(cal: ChannelCalibration, s: number): number {
  const { scores, tailScale } = cal;
  const n = scores.length;
  if (n === 0) return 1;
  if (Number.isNaN(s)) return 1;
  const max = scores[n - 1];
  if (s <= max) return (1 + n - lowerBound(scores, s)) / (n + 1);
  return Math.exp(-(s - max) / tailScale) / (n + 1);
}

/** Index of the first element > s in an ascending array. */
function upperBound(sorted: readonly number[], s: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The lower-tail mirror of pValue: p = (1 + #{v <= s}) / (n + 1), falling
 * exponentially below the smallest calibration score.
 */
export function lowerPValue(cal: ChannelCalibration, s: number): number {
  const { scores } = cal;
  const n = scores.length;
  if (n === 0 || Number.isNaN(s)) return 1;
  const min = scores[0];
  if (s >= min) return (1 + upperBound(scores, s)) / (n + 1);
  const scale = cal.lowTailScale ?? cal.tailScale;
  return Math.exp(-(min - s) / scale) / (n + 1);
}

/** Unusual in either direction: twice the smaller tail, at most 1. */
export function twoSidedPValue(cal: ChannelCalibration, s: number): number {
  return Math.min(1, 2 * Math.min(pValue(cal, s), lowerPValue(cal, s)));
}

/** Share of calibration scores below s, as a percentage (ties count half). */
export function percentile(sorted: readonly number[], s: number): number {
  const n = sorted.length;
  if (n === 0) return 50;
  const below = lowerBound(sorted, s);
  let ties = 0;
  while (below + ties < n && sorted[below + ties] === s) ties++;
  return (100 * (below + ties / 2)) / n;
}

/** Smallest threshold t such that at most `rate` of the calibration scores exceed it. */
export function thresholdAt(sorted: readonly number[], rate: number): number {
  const n = sorted.length;
  if (n === 0) return Infinity;
  const allowed = Math.floor(rate * n + 1e-9);
  return sorted[Math.max(0, n - 1 - allowed)];
}

/** Mean excess over the (k+1)-th largest score, k = max(5, 10 % of n). */
export function tailScaleOf(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n < 2) return Math.max(Math.abs(sorted[0] ?? 1) * 0.1, 1e-12);
  const k = Math.min(n - 1, Math.max(5, Math.ceil(0.1 * n)));
  const u = sorted[n - 1 - k];
  let sum = 0;
  for (let i = n - k; i < n; i++) sum += sorted[i] - u;
  const scale = sum / k;
  // All tied: fall back to a small fraction of the value's magnitude.
  return scale > 0 ? scale : Math.max(Math.abs(u) * 1e-3, 1e-12);
}

/** Bonferroni-corrected minimum p-value: valid without assuming independence. */
export function combinePValues(ps: readonly number[]): number {
  return Math.min(1, ps.length * Math.min(...ps));
}

/** Fisher's statistic -2·Σ log p: evidence from every channel adds up. */
export function fisherStatistic(ps: readonly number[]): number {
  return -2 * ps.reduce((sum, p) => sum + Math.log(p), 0);
}

/**
 * The verdict's weights. Fisher's sum let the weak channels dilute the
 * strong one: on ELPV solar cells the combined AUROC was 0.736 where recon
 * alone reached 0.779 (mono cells 0.840 against 0.927), on the fixtures
 * 0.967 against 0.986. The weighted minimum follows recon, the channel made
 * for defects, and still lets an extreme KL through on its own: a blank or
 * washed-out frame, whose KL p-value is far below anything normal. ELBO,
 * mostly the global reconstruction error again, only adds noise to recon.
 * Weighted on ELPV: 0.774 (mono 0.927) with these weights.
 */
export const DEFAULT_COMBINATION = { rule: 'weighted-min', weights: { recon: 0.95, kl: 0.05 } } satisfies Combination;

/** -log of the weighted Bonferroni minimum min_c p_c / w_c (larger is more anomalous). */
export function weightedMinStatistic(p: Record<Channel, number>, weights: Partial<Record<Channel, number>>): number {
  let best = Infinity;
  for (const ch of CHANNELS) {
    const w = weights[ch] ?? 0;
    if (w > 0) best = Math.min(best, p[ch] / w);
  }
  return -Math.log(best);
}

/** The combined statistic of one image's channel p-values under a model's combination. */
export function combinedStatistic(p: Record<Channel, number>, combination: Combination): number {
  return combination.rule === 'fisher' ? fisherStatistic(CHANNELS.map((ch) => p[ch])) : weightedMinStatistic(p, combination.weights);
}

function channelCalibration(values: readonly number[], falseAlarmRate: number, twoSided = false): ChannelCalibration {
  const scores = Array.from(Float64Array.from(values).sort());
  const cal: ChannelCalibration = { scores, threshold: thresholdAt(scores, falseAlarmRate), tailScale: tailScaleOf(scores) };
  // The bottom tail, measured as the top tail of the negated scores.
  if (twoSided) cal.lowTailScale = tailScaleOf(scores.map((v) => -v).reverse());
  return cal;
}

export interface CalibrationExtras {
  /** Channels whose low values are abnormal too. */
  twoSided?: Channel[];
  local?: Calibration['local'];
  /** How channels combine into the verdict; DEFAULT_COMBINATION unless told. */
  combination?: Combination;
}

/**
 * `scores` holds each calibration image's three scores at the same index.
 * Besides each channel's sorted scores, it stores the null distribution of
 * the combined statistic: for image i, Fisher's statistic of its
 * leave-one-out p-values (1 + #{j ≠ i: v_j ≥ v_i}) / n. A new image's
 * combined p-value is then read from that distribution, so the verdict's
 * false-alarm rate is calibrated empirically instead of bounded by
 * Bonferroni, and the channels' evidence adds up instead of only the
 * strongest one counting.
 */
export function buildCalibration(
  scores: Record<Channel, readonly number[]>,
  falseAlarmRate: number,
  heatmapScale: number,
  extras: CalibrationExtras = {},
): Calibration {
  const n = scores.kl.length;
  const twoSided = new Set(extras.twoSided ?? []);
  const channels = {} as Record<Channel, ChannelCalibration>;
  for (const ch of CHANNELS) channels[ch] = channelCalibration(scores[ch], falseAlarmRate, twoSided.has(ch));
  // Leave-one-out p-values of each calibration image, in the same sidedness assess() uses.
  const looP = (ch: Channel, v: number) => {
    const upper = (n - lowerBound(channels[ch].scores, v)) / n;
    if (!twoSided.has(ch)) return upper;
    return Math.min(1, 2 * Math.min(upper, upperBound(channels[ch].scores, v) / n));
  };
  const combination = extras.combination ?? DEFAULT_COMBINATION;
  const nullStats = Array.from({ length: n }, (_, i) => {
    const p = Object.fromEntries(CHANNELS.map((ch) => [ch, looP(ch, scores[ch][i])])) as Record<Channel, number>;
    return combinedStatistic(p, combination);
  });
  const cal: Calibration = { n, falseAlarmRate, channels, combined: channelCalibration(nullStats, falseAlarmRate), combination, heatmapScale };
  if (extras.twoSided?.length) cal.twoSided = [...extras.twoSided];
  if (extras.local) cal.local = extras.local;
  return cal;
}

export function assess(cal: Calibration, raw: RawScores): Assessment {
  const p = {} as Assessment['p'];
  const pct = {} as Assessment['percentile'];
  const twoSided = new Set(cal.twoSided ?? []);
  for (const ch of CHANNELS) {
    p[ch] = twoSided.has(ch) ? twoSidedPValue(cal.channels[ch], raw[ch]) : pValue(cal.channels[ch], raw[ch]);
    pct[ch] = percentile(cal.channels[ch].scores, raw[ch]);
  }
  const channelPs = p as Record<Channel, number>;
  p.combined = cal.combined
    ? pValue(cal.combined, combinedStatistic(channelPs, cal.combination ?? { rule: 'fisher' }))
    : combinePValues(CHANNELS.map((ch) => p[ch]));
  return { p, percentile: pct, anomaly: p.combined < cal.falseAlarmRate };
}

/**
 * Area under the ROC curve: the probability that a random positive scores
 * above a random negative (ties count half), via the Mann–Whitney U statistic.
 */
export function auroc(negatives: readonly number[], positives: readonly number[]): number {
  const nNeg = negatives.length;
  const nPos = positives.length;
  if (nNeg === 0 || nPos === 0) return NaN;
  const all = [
    ...negatives.map((v) => ({ v, pos: false })),
    ...positives.map((v) => ({ v, pos: true })),
  ].sort((a, b) => a.v - b.v);
  let rankSumPos = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j].v === all[i].v) j++;
    const midRank = (i + 1 + j) / 2; // ranks are 1-based
    for (let k = i; k < j; k++) if (all[k].pos) rankSumPos += midRank;
    i = j;
  }
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
