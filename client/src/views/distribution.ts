// Distribution: for each channel, the calibration scores (held-out normal
// images) against recent scores on shared bins, and a KL-versus-recon scatter
// that separates whole-image anomalies (high KL) from local defects (high recon).
import type { HistogramView, StatsView } from '../../../server/domain/wire.js';
import { api } from '../api.js';
import { COLORS, makeChart, type Chart } from '../charts.js';
import type { Store } from '../store.js';
import { clear, empty, h, num, toast } from '../ui.js';

const CHANNELS = [['kl', 'KL divergence'], ['recon', 'reconstruction error (worst region)'], ['elbo', 'negative ELBO']] as const;

export function mountDistribution(root: HTMLElement, store: Store): { refresh(): void } {
  const charts = new Map<string, Chart>();
  const note = h('p', { class: 'muted', id: 'distribution-note' });
  const cards = CHANNELS.map(([key, label]) => {
    const canvas = h('canvas', { id: `hist-${key}`, role: 'img', 'aria-label': `${label} histogram` });
    charts.set(key, makeChart(canvas, {
      type: 'bar',
      data: { labels: [], datasets: [
        { label: 'calibration (normal)', data: [], backgroundColor: COLORS.cal },
        { label: 'recent', data: [], backgroundColor: COLORS.accent },
      ] },
      options: { scales: { x: { ticks: { maxTicksLimit: 6 } }, y: { title: { display: true, text: 'share of images' } } }, plugins: { legend: { position: 'bottom' } } },
    }));
    return h('div', { class: 'card' }, h('h3', {}, label), h('div', { class: 'chart-box' }, canvas));
  });
  const scatterCanvas = h('canvas', { id: 'scatter', role: 'img', 'aria-label': 'KL versus reconstruction scatter' });
  const scatter = makeChart(scatterCanvas, {
    type: 'scatter',
    data: { datasets: [
      { label: 'normal', data: [], backgroundColor: COLORS.ok },
      { label: 'anomalous', data: [], backgroundColor: COLORS.bad },
    ] },
    options: {
      parsing: false,
      scales: { x: { title: { display: true, text: 'KL divergence (whole-image)' } }, y: { title: { display: true, text: 'reconstruction error (worst region)' } } },
      plugins: { legend: { position: 'bottom' } },
    },
  });
  clear(root, note, h('div', { class: 'grid' }, ...cards,
    h('div', { class: 'card', style: 'grid-column: 1 / -1' }, h('h3', {}, 'KL versus reconstruction error'),
      h('p', { class: 'muted' }, 'Far right: the image as a whole is unlike the training data. High up: a local defect the model cannot reproduce.'),
      h('div', { class: 'chart-box tall' }, scatterCanvas))));

  function drawHistogram(key: string, hist: HistogramView | undefined): void {
    const chart = charts.get(key)!;
    if (!hist) {
      chart.data.labels = [];
      chart.data.datasets.forEach((d) => (d.data = []));
      return chart.update('none');
    }
    const width = (hist.hi - hist.lo) / hist.bins;
    const share = (counts: number[]) => {
      const total = counts.reduce((a, b) => a + b, 0) || 1;
      return counts.map((c) => c / total);
    };
    chart.data.labels = hist.calibration.map((_, i) => num(hist.lo + (i + 0.5) * width, 2));
    chart.data.datasets[0].data = share(hist.calibration);
    chart.data.datasets[1].data = share(hist.recent);
    chart.update('none');
  }

  function drawScatter(): void {
    const recent = store.images.slice(0, 300);
    scatter.data.datasets[0].data = recent.filter((i) => !i.anomaly).map((i) => ({ x: i.scores.kl, y: i.scores.recon }));
    scatter.data.datasets[1].data = recent.filter((i) => i.anomaly).map((i) => ({ x: i.scores.kl, y: i.scores.recon }));
    scatter.update('none');
  }

  let loading = false;
  async function refresh(): Promise<void> {
    if (loading) return;
    loading = true;
    try {
      const stats = await api<StatsView>('GET', '/api/stats?hours=24&bins=30');
      clear(note, stats.activeModel
        ? `Last 24 h: ${stats.images} images scored with model ${stats.activeModel}, ${stats.anomalies} anomalous. Grey: the model's held-out normal images.`
        : empty('No active model yet: train one on the Models tab.'));
      for (const [key] of CHANNELS) drawHistogram(key, stats.channels[key]);
      drawScatter();
    } catch (err) {
      toast(`statistics: ${(err as Error).message}`, 'error');
    } finally {
      loading = false;
    }
  }
  store.on('images', drawScatter);
  return { refresh: () => void refresh() };
}
