// Images: drag-and-drop or picker upload with progress, then a gallery of
// recent or anomalous images; a click opens the detail view.
import type { ImageView } from '../../../server/domain/wire.js';
import { ApiError, upload } from '../api.js';
import type { Store } from '../store.js';
import { badge, clear, empty, h, pValue, time, toast } from '../ui.js';
import { openDetail } from './detail.js';

type UploadResult = { name: string; image: ImageView } | { name: string; error: { code: string; message: string } };

export function mountImages(root: HTMLElement, store: Store): void {
  const input = h('input', { type: 'file', id: 'upload-input', multiple: true, accept: 'image/*', hidden: true });
  const source = h('input', { id: 'upload-source', value: 'dashboard', maxlength: 100 });
  const progress = h('progress', { id: 'upload-progress', max: 1, value: 0, hidden: true });
  const results = h('ul', { class: 'feed', id: 'upload-results' });
  const zone = h('div', { class: 'dropzone', id: 'dropzone' },
    'Drop images here, or ', h('button', { class: 'link', onclick: () => input.click() }, 'choose files'), '.');
  const uploadCard = h('div', { class: 'card', 'data-needs': 'operator' },
    h('h2', {}, 'Upload images for scoring'),
    h('div', { class: 'row' }, h('label', {}, 'Source label', source)),
    h('div', { style: 'margin: .8rem 0' }, zone, input), progress, results);

  let anomalousOnly = false;
  // Every stored result (not just the recent ones shown), as the server streams it.
  const exportLink = h('a', { id: 'export-csv', class: 'button', href: '/api/images?format=csv', download: 'latentwatch-images.csv' }, 'Download CSV');
  const toggle = h('label', { style: 'flex-direction: row; align-items: center; gap: .4rem' },
    h('input', { type: 'checkbox', id: 'anomalous-only', onchange: (e: Event) => {
      anomalousOnly = (e.target as HTMLInputElement).checked;
      exportLink.setAttribute('href', `/api/images?format=csv${anomalousOnly ? '&anomalous=true' : ''}`);
      draw();
    } }), 'anomalous only');
  const gallery = h('div', { class: 'gallery', id: 'gallery' });
  clear(root, h('div', { class: 'grid' }, uploadCard,
    h('div', { class: 'card', style: 'grid-column: 1 / -1' }, h('div', { class: 'row', style: 'justify-content: space-between' }, h('h2', {}, 'Recent images'), h('div', { class: 'row' }, toggle, exportLink)), gallery)));

  async function send(files: File[]): Promise<void> {
    if (files.length === 0) return;
    const form = new FormData();
    for (const f of files) form.append('images', f, f.name);
    form.append('source', source.value.trim() || 'dashboard');
    progress.hidden = false;
    progress.value = 0;
    clear(results, h('li', { class: 'muted' }, `uploading ${files.length} image${files.length > 1 ? 's' : ''}…`));
    let out: UploadResult[];
    try {
      out = (await upload<{ results: UploadResult[] }>('/api/images', form, (f) => (progress.value = f))).results;
    } catch (err) {
      const body = (err as { body?: { results?: UploadResult[] } }).body;
      if (!body?.results) {
        clear(results, h('li', { class: 'error' }, (err as ApiError).message));
        progress.hidden = true;
        return;
      }
      out = body.results;
    }
    progress.value = 1;
    clear(results, ...out.map((r) => ('error' in r
      ? h('li', { class: 'error' }, `${r.name}: ${r.error.message}`)
      : h('li', {}, h('span', {}, r.image.anomaly ? badge('anomaly') : badge('normal', 'ok'), ' ', r.name),
        h('button', { class: 'link', onclick: () => void openDetail(r.image.id) }, `p = ${pValue(r.image.p.combined)}`)))));
    for (const r of out) if ('image' in r) store.addImage(r.image);
    const failed = out.filter((r) => 'error' in r).length;
    if (failed) toast(`${failed} of ${out.length} files could not be scored`, 'error');
    setTimeout(() => (progress.hidden = true), 800);
  }

  input.addEventListener('change', () => {
    void send([...(input.files ?? [])]);
    input.value = '';
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    void send([...(e.dataTransfer?.files ?? [])]);
  });

  function draw(): void {
    const list = store.images.filter((i) => !anomalousOnly || i.anomaly).slice(0, 120);
    if (list.length === 0) return clear(gallery, empty(anomalousOnly ? 'No anomalous images among the recent ones.' : 'No images yet.'));
    clear(gallery, ...list.map((img) => h('button', { class: `thumb${img.anomaly ? ' is-anomaly' : ''}`, 'data-image-id': img.id, title: img.originalName, onclick: () => void openDetail(img.id) },
      h('img', { src: img.urls.thumbnail, alt: img.originalName, loading: 'lazy' }),
      h('span', {}, img.anomaly ? badge('anomaly') : badge('ok'), ` ${time(img.receivedAt)}`))));
  }
  store.on('images', draw);
  draw();
}
