// The dashboard: sign in, load the current state over REST, then follow the
// live stream. Each tab is a view module; the store is what they share.
import type { AlertView, ImageView, ModelView, RuleView, SessionState, SessionView } from '../../server/domain/wire.js';
import { api, ApiError } from './api.js';
import { Store } from './store.js';
import { LiveStream, type ConnectionState } from './stream.js';
import { clear, h, toast } from './ui.js';
import { mountAdmin } from './views/admin.js';
import { mountDistribution } from './views/distribution.js';
import { mountImages } from './views/images.js';
import { mountLive } from './views/live.js';
import { mountModels } from './views/models.js';
import { mountRules } from './views/rules.js';

const VIEWS = ['live', 'images', 'distribution', 'rules', 'models', 'admin'] as const;
type View = (typeof VIEWS)[number];
const $ = (id: string) => document.getElementById(id)!;

const store = new Store();

async function signIn(key: string): Promise<void> {
  store.session = await api<SessionView>('POST', '/api/session', { key });
}

function showSignIn(message = ''): void {
  $('app').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message;
  ($('signin-key') as HTMLInputElement).focus();
}

function applyRole(): void {
  const s = store.session!;
  $('who').textContent = `${s.name} · ${s.role}`;
  for (const el of document.querySelectorAll<HTMLElement>('[data-needs]')) {
    el.hidden = !store.can(el.dataset.needs as 'viewer' | 'operator' | 'admin');
  }
}

function setConnection(state: ConnectionState, lastId: number | null): void {
  const el = $('connection');
  el.className = `conn conn-${state}`;
  el.querySelector('b')!.textContent = state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : 'reconnecting…';
  el.title = `live connection: ${state}${lastId !== null ? ` (last event ${lastId})` : ''}`;
}

function drawBanner(): void {
  const firing = store.unacknowledgedFiring;
  const banner = $('alert-banner');
  banner.hidden = firing.length === 0;
  if (firing.length === 0) return;
  const names = [...new Set(firing.map((f) => f.ruleName))].join(', ');
  clear(banner, h('b', {}, `${firing.length} alert${firing.length > 1 ? 's' : ''} firing`), h('span', {}, names),
    h('button', { onclick: () => (location.hash = '#live') }, 'Show alerts'));
}

function drawModelName(): void {
  const m = store.activeModel;
  $('model-name').textContent = m ? `model ${m.id}` : 'no active model';
}

async function startApp(): Promise<void> {
  // Who is signed in, and what they may see, before anything is shown.
  applyRole();
  $('signin').hidden = true;
  $('app').hidden = false;
  const [models, images, rules, alerts] = await Promise.all([
    api<{ models: ModelView[] }>('GET', '/api/models'),
    api<{ images: ImageView[] }>('GET', '/api/images?limit=200'),
    api<{ rules: RuleView[] }>('GET', '/api/rules'),
    api<{ alerts: AlertView[] }>('GET', '/api/alerts?limit=100'),
  ]);
  store.models = models.models;
  store.rules = rules.rules;

  mountLive($('view-live'), store);
  mountImages($('view-images'), store);
  const distribution = mountDistribution($('view-distribution'), store);
  const rulesView = mountRules($('view-rules'), store);
  const modelsView = mountModels($('view-models'), store);
  const adminView = mountAdmin($('view-admin'), store);
  store.on('alerts', drawBanner);
  store.on('models', drawModelName);
  store.setImages(images.images);
  store.setAlerts(alerts.alerts);
  store.emit('models');
  store.emit('rules');
  applyRole();

  const stream = new LiveStream((e) => {
    switch (e.type) {
      case 'image.scored': return store.addImage(e.payload);
      case 'alert.changed': return store.applyAlert(e.payload, e.at);
      case 'training.progress': return modelsView.onProgress(e.payload);
      case 'training.finished':
      case 'model.activated': return modelsView.refresh();
    }
  }, setConnection, () => showSignIn('Your key was revoked or your session ended: sign in again.'));
  stream.start();

  const show = () => {
    const view = (location.hash.slice(1) || 'live') as View;
    const name = VIEWS.includes(view) && (view !== 'admin' || store.can('admin')) ? view : 'live';
    for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
    for (const a of document.querySelectorAll<HTMLAnchorElement>('#tabs a')) a.classList.toggle('active', a.dataset.view === name);
    if (name === 'distribution') distribution.refresh();
    if (name === 'rules') rulesView.refresh();
    if (name === 'models') modelsView.refresh();
    if (name === 'admin') adminView.refresh();
  };
  window.addEventListener('hashchange', show);
  show();

  $('signout').addEventListener('click', async () => {
    stream.stop();
    await api('DELETE', '/api/session').catch(() => undefined);
    location.hash = '';
    location.reload();
  });
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const key = ($('signin-key') as HTMLInputElement).value.trim();
  try {
    await signIn(key);
    ($('signin-key') as HTMLInputElement).value = '';
    await startApp();
  } catch (err) {
    showSignIn(err instanceof ApiError && err.status === 401 ? 'That key is unknown or revoked.' : (err as Error).message);
  }
});

(async () => {
  try {
    const session = await api<SessionState>('GET', '/api/session');
    if (!session.signedIn) return showSignIn();
    store.session = { name: session.name, role: session.role };
    await startApp();
  } catch (err) {
    showSignIn();
    toast((err as Error).message, 'error');
  }
})();
