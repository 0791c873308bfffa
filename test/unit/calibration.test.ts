import { describe, expect, it } from 'vitest';
import { assess, auroc, buildCalibration, combinePValues, DEFAULT_COMBINATION, fisherStatistic, weightedMinStatistic, lowerPValue, percentile, pValue, tailScaleOf, thresholdAt, twoSidedPValue } from '../../server/domain/calibration.js';
import { mulberry32 } from '../../server/ml/random.js';

const ascending = Array.from({ length: 99 }, (_, i) => i + 1); // 1..99

describe('pValue', () => {
  const cal = { scores: ascending, threshold: 99, tailScale: tailScaleOf(ascending) };
  it('is (1 + #{v >= s}) / (n + 1) inside the calibration range', () => {
    expect(pValue(cal, 0)).toBe(1);
    expect(pValue(cal, 1)).toBe(1);
    expect(pValue(cal, 50)).toBeCloseTo(51 / 100);
    expect(pValue(cal, 50.5)).toBeCloseTo(50 / 100);
    expect(pValue(cal, 99)).toBeCloseTo(2 / 100);
  });
  it('keeps falling beyond the largest score along the fitted tail', () => {
    const justAbove = pValue(cal, 99.0001);
    expect(justAbove).toBeLessThanOrEqual(1 / 100);
    expect(justAbove).toBeGreaterThan(0.99 / 100);
    expect(pValue(cal, 150)).toBeLessThan(pValue(cal, 120));
    expect(pValue(cal, 1e6)).toBeGreaterThanOrEqual(0);
  });
  it('is monotone non-increasing in the score', () => {
    let last = 1;
    for (let s = -5; s < 200; s += 0.37) {
      const p = pValue(cal, s);
      expect(p).toBeLessThanOrEqual(last);
      last = p;
    }
  });
  it('treats NaN as no evidence', () => {
    expect(pValue(cal, NaN)).toBe(1);
  });
});

describe('two-sided p-values', () => {
  const cal = { scores: ascending, threshold: 99, tailScale: tailScaleOf(ascending), lowTailScale: tailScaleOf(ascending) };
  it('mirror the upper tail below the calibration range', () => {
    expect(lowerPValue(cal, 1)).toBeCloseTo(2 / 100);
    expect(lowerPValue(cal, 99)).toBe(1);
    expect(lowerPValue(cal, 0.5)).toBeLessThanOrEqual(1 / 100);
    expect(lowerPValue(cal, -50)).toBeLessThan(lowerPValue(cal, -10));
  });
  it('are twice the smaller tail, at most 1, and small at both ends', () => {
    expect(twoSidedPValue(cal, 50)).toBe(1);
    expect(twoSidedPValue(cal, 99)).toBeCloseTo(4 / 100);
    expect(twoSidedPValue(cal, 1)).toBeCloseTo(4 / 100);
    expect(twoSidedPValue(cal, -100)).toBeLessThan(1e-4);
    expect(twoSidedPValue(cal, 300)).toBeLessThan(1e-4);
  });
});

describe('thresholdAt', () => {
  it('lets at most the given share of calibration scores exceed it', () => {
    expect(thresholdAt(ascending, 0.01)).toBe(99); // 0.99 of 99 allowed above: none
    expect(thresholdAt(ascending, 0.02)).toBe(98); // 1 of 99 above
    expect(thresholdAt(ascending, 0.1)).toBe(90);
    expect(thresholdAt([1, 2, 3], 0.01)).toBe(3);
  });
  it('matches the p-value: about rate of normal images score above it', () => {
    const t = thresholdAt(ascending, 0.05);
    expect(ascending.filter((v) => v > t).length / ascending.length).toBeLessThanOrEqual(0.05);
  });
});

describe('percentile', () => {
  it('counts ties as half', () => {
    expect(percentile([1, 2, 3, 4], 0)).toBe(0);
    expect(percentile([1, 2, 3, 4], 2)).toBe(37.5);
    expect(percentile([1, 2, 3, 4], 10)).toBe(100);
  });
});

describe('the calibrated combined p-value', () => {
  // Three correlated channels, like kl / recon / elbo of normal images.
  function normalImages(n: number, seed: number) {
    const rand = mulberry32(seed);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const out = { kl: [] as number[], recon: [] as number[], elbo: [] as number[] };
    for (let i = 0; i < n; i++) {
      const shared = gauss();
      out.kl.push(gauss());
      out.recon.push(Math.exp(0.5 * shared + 0.3 * gauss()));
      out.elbo.push(shared + 0.1 * gauss());
    }
    return out;
  }

  it('keeps its false-alarm rate on fresh normal images', () => {
    const cal = buildCalibration(normalImages(2000, 1), 0.01, 1);
    expect(cal.combined!.scores).toHaveLength(2000);
    const fresh = normalImages(4000, 2);
    for (const alpha of [0.01, 0.05, 0.2]) {
      let alarms = 0;
      for (let i = 0; i < 4000; i++) if (assess(cal, { kl: fresh.kl[i], recon: fresh.recon[i], elbo: fresh.elbo[i] }).p.combined < alpha) alarms++;
      expect(alarms / 4000, `alpha ${alpha}`).toBeGreaterThan(alpha * 0.6);
      expect(alarms / 4000, `alpha ${alpha}`).toBeLessThan(alpha * 1.4);
    }
  });

  it('keeps its false-alarm rate with a two-sided channel', () => {
    const cal = buildCalibration(normalImages(2000, 4), 0.01, 1, { twoSided: ['kl'] });
    expect(cal.twoSided).toEqual(['kl']);
    const fresh = normalImages(4000, 5);
    for (const alpha of [0.01, 0.05]) {
      let alarms = 0;
      for (let i = 0; i < 4000; i++) if (assess(cal, { kl: fresh.kl[i], recon: fresh.recon[i], elbo: fresh.elbo[i] }).p.combined < alpha) alarms++;
      expect(alarms / 4000, `alpha ${alpha}`).toBeGreaterThan(alpha * 0.6);
      expect(alarms / 4000, `alpha ${alpha}`).toBeLessThan(alpha * 1.4);
    }
  });

  it('flags a channel far below normal only where that channel is two-sided', () => {
    const images = normalImages(500, 6);
    const oneSided = buildCalibration(images, 0.01, 1);
    const twoSided = buildCalibration(images, 0.01, 1, { twoSided: ['kl'] });
    const median = (ch: 'recon' | 'elbo') => [...images[ch]].sort((a, b) => a - b)[250];
    // A blank frame: far less information than any normal image, the rest typical.
    const blank = { kl: -20, recon: median('recon'), elbo: median('elbo') };
    expect(assess(oneSided, blank).anomaly).toBe(false);
    expect(assess(twoSided, blank).p.kl).toBeLessThan(1e-4);
    expect(assess(twoSided, blank).anomaly).toBe(true);
  });

  it('keeps its false-alarm rate with Fisher\'s combination too', () => {
    const cal = buildCalibration(normalImages(2000, 7), 0.01, 1, { twoSided: ['kl'], combination: { rule: 'fisher' } });
    const fresh = normalImages(4000, 8);
    let alarms = 0;
    for (let i = 0; i < 4000; i++) if (assess(cal, { kl: fresh.kl[i], recon: fresh.recon[i], elbo: fresh.elbo[i] }).p.combined < 0.05) alarms++;
    expect(alarms / 4000).toBeGreaterThan(0.03);
    expect(alarms / 4000).toBeLessThan(0.07);
  });

  it('follows recon by default: a strong recon signal outranks an equally rare KL or ELBO', () => {
    const cal = buildCalibration(normalImages(2000, 9), 0.01, 1, { twoSided: ['kl'] });
    expect(cal.combination).toEqual(DEFAULT_COMBINATION);
    const q = (ch: 'kl' | 'recon' | 'elbo', p: number) => [...cal.channels[ch].scores][Math.floor((1 - p) * 1999)];
    const typical = { kl: q('kl', 0.5), recon: q('recon', 0.5), elbo: q('elbo', 0.5) };
    const reconHigh = assess(cal, { ...typical, recon: q('recon', 0.005) });
    const elboHigh = assess(cal, { ...typical, elbo: q('elbo', 0.005) });
    const klHigh = assess(cal, { ...typical, kl: q('kl', 0.0025) });
    expect(reconHigh.anomaly).toBe(true);
    expect(reconHigh.p.combined).toBeLessThan(klHigh.p.combined);
    expect(elboHigh.anomaly).toBe(false);
    expect(klHigh.anomaly).toBe(false);
    expect(weightedMinStatistic({ kl: 0.5, recon: 0.02, elbo: 0.001 }, DEFAULT_COMBINATION.weights)).toBeCloseTo(-Math.log(0.02 / 0.95));
  });

  it('adds evidence up under Fisher: moderately high on two channels beats high on one', () => {
    const cal = buildCalibration(normalImages(2000, 3), 0.01, 1, { combination: { rule: 'fisher' } });
    const q = (ch: 'kl' | 'recon' | 'elbo', p: number) => cal.channels[ch].scores[Math.floor((1 - p) * 2000)];
    const two = assess(cal, { kl: q('kl', 0.02), recon: q('recon', 0.5), elbo: q('elbo', 0.02) });
    const one = assess(cal, { kl: q('kl', 0.01), recon: q('recon', 0.5), elbo: q('elbo', 0.5) });
    expect(two.p.combined).toBeLessThan(one.p.combined);
    expect(fisherStatistic([1, 1, 1])).toBeCloseTo(0); // no evidence at all
  });
});

describe('combinePValues', () => {
  it('is the Bonferroni-corrected minimum, capped at 1', () => {
    expect(combinePValues([0.5, 0.01, 0.2])).toBeCloseTo(0.03);
    expect(combinePValues([0.9, 0.5, 0.4])).toBe(1);
  });
});

describe('assess', () => {
  it('flags a score far outside every channel and not one inside', () => {
    const scores = { kl: ascending, recon: ascending.map((v) => v / 100), elbo: ascending.map((v) => v * 10) };
    const cal = buildCalibration(scores, 0.01, 0.5);
    expect(cal.n).toBe(99);
    expect(cal.channels.recon.threshold).toBeCloseTo(0.99);
    const normal = assess(cal, { kl: 50, recon: 0.5, elbo: 500 });
    expect(normal.anomaly).toBe(false);
    expect(normal.percentile.kl).toBeCloseTo(50); // 49 below + half of 1 tie, of 99
    const outlier = assess(cal, { kl: 10, recon: 5, elbo: 500 });
    expect(outlier.anomaly).toBe(true);
    expect(outlier.p.recon).toBeLessThan(1e-3);
    expect(outlier.p.combined).toBeLessThan(0.01);
  });

  it('falls back to Bonferroni for a model calibrated without the combined distribution', () => {
    const scores = { kl: ascending, recon: ascending.map((v) => v / 100), elbo: ascending.map((v) => v * 10) };
    const { combined: _dropped, ...legacy } = buildCalibration(scores, 0.01, 0.5);
    const outlier = assess(legacy, { kl: 10, recon: 5, elbo: 500 });
    expect(outlier.p.combined).toBeCloseTo(3 * outlier.p.recon);
  });
  it('sorts unsorted calibration input', () => {
    const cal = buildCalibration({ kl: [3, 1, 2], recon: [3, 1, 2], elbo: [3, 1, 2] }, 0.01, 1);
    expect(cal.channels.kl.scores).toEqual([1, 2, 3]);
  });
});

describe('auroc', () => {
  it('is 1 for perfect separation, 0.5 for identical sets, 0 for reversed', () => {
    expect(auroc([1, 2, 3], [4, 5])).toBe(1);
    expect(auroc([1, 2, 3], [1, 2, 3])).toBe(0.5);
    expect(auroc([4, 5], [1, 2, 3])).toBe(0);
  });
  it('counts ties as half', () => {
    expect(auroc([1, 2], [2, 3])).toBeCloseTo(0.875);
  });
  it('is NaN without both classes', () => {
    expect(auroc([], [1])).toBeNaN();
  });
});
