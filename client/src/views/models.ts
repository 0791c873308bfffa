// Models: start a training run (upload normal images, set hyper-parameters),
// watch its loss curves advance per epoch, list versions, activate one.
import type { EpochRecord, TrainProgress } from '../../../server/domain/types.js';
import type { JobView, ModelView } from '../../../server/domain/wire.js';
import { api, upload } from '../api.js';
import { COLORS, makeChart } from '../charts.js';
import type { Store } from '../store.js';
import { badge, clear, dateTime, empty, h, num, toast } from '../ui.js';

export function mountModels(root: HTMLElement, store: Store): { refresh(): void; onProgress(p: TrainProgress & { jobId: number }): void } {
  const versions = h('div', { class: 'scroll-x', id: 'model-versions' });
  const files = h('input', { type: 'file', id: 'train-files', multiple: true, accept: 'image/*' });
  const size = h('select', { id: 'train-size' }, ...[28, 32, 48, 64, 96, 128].map((s) => h('option', { value: s, selected: s === 64 }, `${s}×${s}`)));
  const epochs = h('input', { id: 'train-epochs', type: 'number', min: 1, max: 1000, value: '30' });
  const latent = h('input', { id: 'train-latent', type: 'number', min: 1, max: 512, value: '32' });
  const channels = h('select', { id: 'train-channels' }, h('option', { value: 'auto' }, 'as the images'), h('option', { value: 1 }, 'grayscale'), h('option', { value: 3 }, 'colour'));
  const resolution = h('select', { id: 'train-resolution', title: 'Large images are cut into overlapping tiles of the input size at this working resolution (longer side), so that small defects keep their pixels. Whole: the image is squeezed into one input square.' },
    h('option', { value: 'auto' }, 'from the images'), h('option', { value: 'whole' }, 'whole image'),
    ...[128, 256, 512, 1024].map((r) => h('option', { value: r }, `tiles at ${r} px`)));
  const sendProgress = h('progress', { max: 1, value: 0, hidden: true });
  const jobStatus = h('p', { id: 'job-status', class: 'muted' }, 'No training run yet.');
  const jobProgress = h('progress', { id: 'job-progress', max: 1, value: 0, hidden: true });
  const cancelButton = h('button', { id: 'job-cancel', class: 'danger', hidden: true }, 'Cancel');
  const canvas = h('canvas', { id: 'loss-chart', role: 'img', 'aria-label': 'training and validation loss per epoch' });
  const chart = makeChart(canvas, {
    type: 'line',
    data: { labels: [], datasets: [
      { label: 'training loss', data: [], borderColor: COLORS.accent, pointRadius: 2 },
      { label: 'validation loss', data: [], borderColor: COLORS.warn, pointRadius: 2 },
    ] },
    options: { scales: { x: { title: { display: true, text: 'epoch' } }, y: { title: { display: true, text: 'loss (nats / image)' } } }, plugins: { legend: { position: 'bottom' } } },
  });
  const form = h('form', { id: 'train-form', class: 'card', 'data-needs': 'admin' },
    h('h2', {}, 'Train a model'),
    h('p', { class: 'muted' }, 'Upload normal images only. 20 % of them (at least 100, or a quarter of a small set) are held out to calibrate the scores. Images larger than 512 px, or twice as long as wide, are scored in tiles unless you choose otherwise.'),
    h('label', {}, 'Normal images', files),
    h('div', { class: 'row' }, h('label', {}, 'Input size', size), h('label', {}, 'Resolution', resolution), h('label', {}, 'Channels', channels), h('label', {}, 'Epochs', epochs), h('label', {}, 'Latent dims', latent)),
    h('div', { class: 'row', style: 'margin-top: .8rem' }, h('button', { type: 'submit', class: 'primary', id: 'train-start' }, 'Start training')), sendProgress);
  clear(root, h('div', { class: 'grid' },
    form,
    h('div', { class: 'card' }, h('h2', {}, 'Training run'), jobStatus, jobProgress, h('div', { class: 'chart-box tall' }, canvas), cancelButton),
    h('div', { class: 'card', style: 'grid-column: 1 / -1' }, h('h2', {}, 'Model versions'), versions)));

  let current: JobView | null = null;

  function drawCurves(curves: EpochRecord[]): void {
    chart.data.labels = curves.map((c) => c.epoch);
    chart.data.datasets[0].data = curves.map((c) => c.loss);
    chart.data.datasets[1].data = curves.map((c) => c.valLoss);
    chart.update('none');
    canvas.dataset.epochs = String(curves.length); // lets tests and scripts see what is drawn
  }

  function drawJob(): void {
    if (!current) return;
    const j = current;
    const p = j.progress;
    let text = `Job #${j.id} (${j.source}): ${j.status}`;
    if (j.status === 'running' && p) {
      if (p.type === 'loading') text += ` — loading images ${p.loaded}/${p.total}`;
      if (p.type === 'step' || p.type === 'epoch') text += ` — epoch ${p.epoch}/${p.epochs}, ETA ${Math.round(p.etaSeconds)} s`;
      if (p.type === 'calibrating') text += ' — calibrating';
    }
    if (j.status === 'succeeded') text += ` — model ${j.modelId}`;
    if (j.error) text += ` — ${j.error}`;
    jobStatus.textContent = text;
    const frac = p && (p.type === 'step' || p.type === 'epoch') ? (p.epoch - 1 + (p.type === 'step' ? p.step / p.steps : 1)) / p.epochs : 0;
    jobProgress.hidden = j.status !== 'running';
    jobProgress.value = frac;
    cancelButton.hidden = !(store.can('admin') && (j.status === 'running' || j.status === 'queued'));
    drawCurves(j.curves);
  }

  cancelButton.addEventListener('click', async () => {
    if (!current) return;
    try {
      current = await api<JobView>('POST', `/api/jobs/${current.id}/cancel`);
      drawJob();
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const chosen = [...(files.files ?? [])];
    if (chosen.length < 20) return toast('choose at least 20 normal images', 'error');
    const data = new FormData();
    for (const f of chosen) data.append('images', f, f.name);
    data.append('size', size.value);
    data.append('channels', channels.value);
    data.append('resolution', resolution.value);
    data.append('epochs', epochs.value);
    data.append('latent', latent.value);
    sendProgress.hidden = false;
    try {
      current = await upload<JobView>('/api/models/train', data, (f) => (sendProgress.value = f));
      drawJob();
      toast(`training job #${current.id} started`);
    } catch (err) {
      toast((err as Error).message, 'error');
    } finally {
      sendProgress.hidden = true;
    }
  });

  function drawVersions(): void {
    if (store.models.length === 0) return clear(versions, empty('No models yet. Train one from normal images.'));
    clear(versions, h('table', {},
      h('thead', {}, h('tr', {}, ...['model', 'created', 'input', 'images', 'epochs', 'best val loss', 'thresholds (1 %)', 'parameters', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, ...store.models.map((m: ModelView) => {
        const best = m.training.epochs[m.training.bestEpoch - 1];
        return h('tr', { 'data-model-id': m.id },
          h('td', {}, h('b', {}, m.id), ' ', m.active ? badge('active') : '',
            m.lineage ? h('div', { class: 'muted lineage' }, `recalibrated from ${m.lineage.parent} on ${m.lineage.images} images`) : ''),
          h('td', {}, dateTime(m.createdAt)),
          h('td', {}, `${m.input.size}×${m.input.size}×${m.input.channels}`, m.input.tiling ? h('div', { class: 'muted' }, `tiles at ${m.input.tiling.resolution} px`) : ''),
          h('td', { class: 'num' }, `${m.dataset.train} + ${m.dataset.validation} held out`),
          h('td', { class: 'num' }, `${m.training.epochs.length}`),
          h('td', { class: 'num' }, num(best?.valLoss)),
          h('td', { class: 'num' }, `kl ${num(m.calibration.thresholds.kl)}, recon ${num(m.calibration.thresholds.recon)}`),
          h('td', { class: 'num' }, m.parameters.toLocaleString()),
          h('td', {}, store.can('admin') && !m.active ? h('button', { class: 'activate', onclick: async () => {
            try {
              await api('POST', `/api/models/${encodeURIComponent(m.id)}/activate`);
              await refresh();
              toast(`model ${m.id} is now scoring new images`);
            } catch (err) {
              toast((err as Error).message, 'error');
            }
          } }, 'Activate') : '',
          store.can('admin') ? h('button', {
            class: 'recalibrate',
            title: 'A new version with the same weights, calibrated on the 500 most recent stored images: for a camera whose lighting changed. Use only when those images are normal.',
            onclick: async () => {
              try {
                const job = await api<{ id: number }>('POST', `/api/models/${encodeURIComponent(m.id)}/recalibrate`, { limit: 500 });
                toast(`recalibration job #${job.id} started`);
              } catch (err) {
                toast((err as Error).message, 'error');
              }
            },
          }, 'Recalibrate') : ''));
      }))));
  }

  async function refresh(): Promise<void> {
    try {
      store.models = (await api<{ models: ModelView[] }>('GET', '/api/models')).models;
      store.emit('models');
      const jobs = (await api<{ jobs: JobView[] }>('GET', '/api/jobs')).jobs;
      if (jobs[0] && (!current || jobs[0].id >= current.id)) current = jobs[0];
      drawJob();
    } catch (err) {
      toast(`models: ${(err as Error).message}`, 'error');
    }
  }

  store.on('models', drawVersions);
  drawVersions();
  return {
    refresh: () => void refresh(),
    onProgress(p) {
      if (!current || current.id !== p.jobId) {
        void refresh();
        return;
      }
      const { jobId: _id, ...progress } = p;
      current = { ...current, status: 'running', progress };
      if (p.type === 'epoch' && !current.curves.some((c) => c.epoch === p.epoch)) {
        current.curves = [...current.curves, { epoch: p.epoch, loss: p.loss, recon: p.recon, kl: p.kl, valLoss: p.valLoss, seconds: p.seconds, imagesPerSecond: p.imagesPerSecond }];
      }
      drawJob();
    },
  };
}
