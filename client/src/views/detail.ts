// The image detail dialog: original, reconstruction and heatmap side by side,
// the three scores with p-values and percentiles, the verdict and the model.
import type { ImageView } from '../../../server/domain/wire.js';
import { api } from '../api.js';
import { badge, dateTime, h, num, pValue, toast } from '../ui.js';

let dialog: HTMLDialogElement | null = null;

function ensureDialog(): HTMLDialogElement {
  if (dialog) return dialog;
  const d = h('dialog', { id: 'image-detail', 'aria-label': 'Image detail' });
  d.addEventListener('click', (e) => e.target === d && d.close()); // click on the backdrop
  document.body.append(d);
  dialog = d;
  return d;
}

export async function openDetail(id: number): Promise<void> {
  let img: ImageView;
  try {
    img = await api<ImageView>('GET', `/api/images/${id}`);
  } catch (err) {
    toast(`image ${id}: ${(err as Error).message}`, 'error');
    return;
  }
  const d = ensureDialog();
  const figure = (src: string, caption: string) => h('figure', {}, h('img', { src, alt: `${caption} of image ${img.id}`, loading: 'lazy' }), h('figcaption', {}, caption));
  const row = (label: string, ch: 'kl' | 'recon' | 'elbo') =>
    h('tr', {}, h('td', {}, label), h('td', { class: 'num' }, num(img.scores[ch], 4)), h('td', { class: 'num' }, pValue(img.p[ch])), h('td', { class: 'num' }, `${img.percentile[ch].toFixed(1)}`));
  d.replaceChildren(
    h('div', { class: 'dialog-body' },
      h('div', { class: 'row', style: 'justify-content: space-between; align-items: center' },
        h('h2', {}, `${img.originalName} `, img.anomaly ? badge('anomaly') : badge('normal', 'ok')),
        h('button', { onclick: () => d.close(), 'aria-label': 'Close' }, 'Close')),
      h('p', { class: 'muted' }, `#${img.id} · ${img.source} · ${dateTime(img.receivedAt)} · ${img.width}×${img.height} ${img.format} · model ${img.modelId}`),
      h('div', { class: 'triptych' }, figure(img.urls.original, 'original'), figure(img.urls.reconstruction, 'reconstruction'), figure(img.urls.heatmap, 'error heatmap')),
      heatmapLegend(),
      h('div', { class: 'scroll-x', style: 'margin-top: .8rem' },
        h('table', { id: 'detail-scores' },
          h('thead', {}, h('tr', {}, h('th', {}, 'channel'), h('th', {}, 'score'), h('th', {}, 'p-value'), h('th', {}, 'percentile'))),
          h('tbody', {}, row('KL divergence', 'kl'), row('reconstruction (worst region)', 'recon'), row('negative ELBO', 'elbo'),
            h('tr', {}, h('td', {}, h('b', {}, 'combined')), h('td', {}), h('td', { class: 'num' }, h('b', {}, pValue(img.p.combined))), h('td', {}))))),
      h('p', { class: 'muted' }, 'p-values compare each score with held-out normal images; combined follows the reconstruction score and lets an extreme KL (a blank or washed-out frame) through on its own, calibrated on the same images. The heatmap is the map the reconstruction score is read from, on a colour scale fixed at calibration.'),
    ),
  );
  if (!d.open) d.showModal();
}

/** The heatmap's colour scale: fixed at calibration, with the alert level two thirds along. */
function heatmapLegend(): HTMLElement {
  return h('div', { class: 'heat-legend', id: 'heatmap-legend', role: 'img', 'aria-label': 'heatmap colour scale: dark is like normal images, orange is as unusual as the reconstruction alert threshold, yellow is far beyond it' },
    h('div', { class: 'heat-bar' }),
    h('div', { class: 'heat-ticks' }, h('span', {}, 'like normal images'), h('span', {}, 'alert threshold'), h('span', {}, 'far beyond')));
}
