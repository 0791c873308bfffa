// Admin: API keys (create: shown once; revoke) and the audit log of who
// changed rules, thresholds, models and keys.
import type { ApiKeyView, AuditEntryView } from '../../../server/domain/wire.js';
import { api } from '../api.js';
import type { Store } from '../store.js';
import { badge, clear, dateTime, empty, h, toast } from '../ui.js';

export function mountAdmin(root: HTMLElement, _store: Store): { refresh(): void } {
  const keys = h('div', { class: 'scroll-x', id: 'keys-table' });
  const audit = h('div', { class: 'scroll-x', id: 'audit-log' });
  const name = h('input', { id: 'key-name', required: true, maxlength: 100, placeholder: 'line-1 camera' });
  const role = h('select', { id: 'key-role' }, ...['viewer', 'operator', 'admin'].map((r) => h('option', { value: r, selected: r === 'operator' }, r)));
  const created = h('div', { id: 'key-created', role: 'status' });
  const form = h('form', { class: 'row', id: 'key-form' }, h('label', {}, 'Name', name), h('label', {}, 'Role', role), h('button', { type: 'submit', class: 'primary' }, 'Create key'));
  clear(root, h('div', { class: 'grid' },
    h('div', { class: 'card', style: 'grid-column: 1 / -1' }, h('h2', {}, 'API keys'),
      h('p', { class: 'muted' }, 'Viewers read and watch; operators also upload, acknowledge and edit rules; admins also train, activate models and manage keys.'),
      form, created, keys),
    h('div', { class: 'card', style: 'grid-column: 1 / -1' }, h('h2', {}, 'Audit log'), audit)));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const k = await api<ApiKeyView & { key: string }>('POST', '/api/keys', { name: name.value.trim(), role: role.value });
      name.value = '';
      clear(created, h('p', {}, 'New key for ', h('b', {}, k.name), ` (${k.role}). Copy it now: it is not shown again.`),
        h('input', { id: 'key-secret', readonly: true, value: k.key, style: 'width: 100%; font-family: monospace' }));
      await refresh();
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  });

  async function refresh(): Promise<void> {
    try {
      const [k, a] = await Promise.all([api<{ keys: ApiKeyView[] }>('GET', '/api/keys'), api<{ entries: AuditEntryView[] }>('GET', '/api/audit')]);
      const names = new Map(k.keys.map((x) => [x.id, x.name]));
      clear(keys, h('table', {},
        h('thead', {}, h('tr', {}, ...['name', 'role', 'key', 'created', 'last used', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, ...k.keys.map((x) => h('tr', { 'data-key-id': x.id },
          h('td', {}, x.name), h('td', {}, x.role), h('td', {}, h('code', {}, `${x.prefix}…`)),
          h('td', {}, dateTime(x.created_at)), h('td', {}, x.last_used_at ? dateTime(x.last_used_at) : 'never'),
          h('td', {}, x.revoked_at ? badge('revoked', 'pending') : h('button', { class: 'danger revoke', onclick: async () => {
            if (!confirm(`Revoke the key "${x.name}"? Clients using it stop working at once.`)) return;
            try {
              await api('DELETE', `/api/keys/${x.id}`);
              await refresh();
            } catch (err) {
              toast((err as Error).message, 'error');
            }
          } }, 'Revoke')))))));
      clear(audit, a.entries.length === 0 ? empty('Nothing changed yet.') : h('table', {},
        h('thead', {}, h('tr', {}, ...['when', 'who', 'what', 'target'].map((c) => h('th', {}, c)))),
        h('tbody', {}, ...a.entries.map((x) => h('tr', {},
          h('td', {}, dateTime(x.at)), h('td', {}, x.key_id === null ? 'system' : names.get(x.key_id) ?? `key ${x.key_id}`),
          h('td', {}, x.action), h('td', {}, x.target))))));
    } catch (err) {
      toast(`admin: ${(err as Error).message}`, 'error');
    }
  }
  return { refresh: () => void refresh() };
}
