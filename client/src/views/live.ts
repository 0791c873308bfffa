// Live: scores of recent images over time with threshold lines, points
// coloured by verdict, and the alert feed with acknowledge.
import type { ImageView } from '../../../server/domain/wire.js';
import { api } from '../api.js';
import { COLORS, makeChart, type Chart } from '../charts.js';
import type { Store } from '../store.js';
import { badge, clear, empty, h, num, pValue, time, toast } from '../ui.js';
import { openDetail } from './detail.js';

const SERIES = [
  { key: 'kl', label: 'KL divergence', log: false },
  { key: 'recon', label: 'reconstruction error (worst region)', log: false },
  { key: 'combined', label: 'combined p-value (log scale, reversed: anomalies point up)', log: true },
] as const;

function value(img: ImageView, key: (typeof SERIES)[number]['key']): number {
  return key === 'combined' ? Math.max(img.p.combined, 1e-12) : img.scores[key];
}

export function mountLive(root: HTMLElement, store: Store): void {
  const charts = new Map<string, Chart>();
  const chartCards = SERIES.map((s) => {
    const canvas = h('canvas', { id: `live-${s.key}`, 'aria-label': s.label, role: 'img' });
    const chart = makeChart(canvas, {
      type: 'line',
      data: { datasets: [
        { label: s.label, data: [], showLine: true, borderColor: COLORS.muted, borderWidth: 1, pointRadius: 3, pointHoverRadius: 5 },
        { label: 'threshold', data: [], borderColor: COLORS.bad, borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0 },
      ] },
      options: {
        parsing: false,
        scales: {
          x: { type: 'linear', ticks: { callback: (v) => time(Number(v)), maxTicksLimit: 6 } },
          y: s.log ? { type: 'logarithmic', reverse: true, max: 1, ticks: { callback: (v) => (Math.log10(Number(v)) % 1 === 0 ? pValue(Number(v)) : '') } } : { type: 'linear' },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { title: (items) => (items[0] ? time(items[0].parsed.x ?? 0) : ''), label: (it) => `${it.dataset.label}: ${num(it.parsed.y)}` } },
        },
        onClick: (_e, els) => {
          const el = els.find((x) => x.datasetIndex === 0);
          const img = el && shown[el.index];
          if (img) void openDetail(img.id);
        },
      },
    });
    charts.set(s.key, chart);
    return h('div', {}, h('h3', {}, s.label), h('div', { class: 'chart-box' }, canvas));
  });

  let shown: ImageView[] = [];
  const chartsEmpty = empty('No images scored yet. Upload some on the Images tab, or send them to POST /api/images.');
  const feed = h('ul', { class: 'feed', id: 'alert-feed' });
  clear(root, h('div', { class: 'grid-2' },
    h('div', { class: 'card' }, h('h2', {}, 'Recent scores'), chartsEmpty, ...chartCards),
    h('div', { class: 'card' }, h('h2', {}, 'Alerts'), feed)));

  function drawCharts(): void {
    shown = store.images.slice(0, 200).reverse();
    chartsEmpty.hidden = shown.length > 0;
    root.dataset.points = String(shown.length); // lets tests and scripts see what is drawn
    const model = store.activeModel;
    const xs = shown.map((i) => Date.parse(i.receivedAt));
    for (const s of SERIES) {
      const chart = charts.get(s.key)!;
      chart.data.datasets[0].data = shown.map((img, i) => ({ x: xs[i], y: value(img, s.key) }));
      (chart.data.datasets[0] as { pointBackgroundColor?: string[] }).pointBackgroundColor = shown.map((i) => (i.anomaly ? COLORS.bad : COLORS.ok));
      const threshold = s.key === 'combined' ? model?.calibration.falseAlarmRate : model?.calibration.thresholds[s.key];
      chart.data.datasets[1].data = threshold !== undefined && xs.length ? [{ x: xs[0], y: threshold }, { x: xs[xs.length - 1], y: threshold }] : [];
      chart.update('none');
    }
  }

  function drawFeed(): void {
    const items = [...store.alerts.values()].sort((a, b) => b.at - a.at).slice(0, 100);
    if (items.length === 0) return clear(feed, h('li', { class: 'empty' }, 'No alerts. Create a rule on the Rules tab to get one when a score crosses its threshold.'));
    clear(feed, ...items.map(({ alert, message, ruleName, at }) => {
      const ack = alert.acknowledged
        ? h('span', { class: 'muted' }, `acknowledged ${time(alert.acknowledged.at)}`)
        : store.can('operator')
          ? h('button', { class: 'ack', 'data-alert': alert.id, onclick: async () => {
            try {
              store.applyAlert({ alert: await api('POST', `/api/alerts/${alert.id}/ack`), message: '' }, Date.now());
            } catch (err) {
              toast((err as Error).message, 'error');
            }
          } }, 'Acknowledge')
          : null;
      return h('li', { 'data-alert-id': alert.id, 'data-state': alert.state, 'data-source': alert.source ?? '' },
        h('div', {},
          badge(alert.state), ' ', h('b', {}, ruleName),
          h('div', { class: 'muted' }, message || `alert #${alert.id}: ${alert.state} at value ${num(alert.value, 4)}`),
          h('div', { class: 'muted' }, time(at), alert.lastImageId ? ' · ' : '',
            alert.lastImageId ? h('button', { class: 'link', onclick: () => void openDetail(alert.lastImageId!) }, `image #${alert.lastImageId}`) : '')),
        ack);
    }));
  }

  store.on('images', drawCharts);
  store.on('models', drawCharts);
  store.on('alerts', drawFeed);
  store.on('rules', drawFeed);
  drawCharts();
  drawFeed();
}
