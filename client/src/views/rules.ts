// Rules: the alert rules with their state, an editor for thresholds
// (absolute, or by false-alarm rate) with a preview over the last stored
// images, and silences.
import type { Threshold } from '../../../server/domain/alert-types.js';
import type { RuleView, SilenceView } from '../../../server/domain/wire.js';
import { api } from '../api.js';
import type { Store } from '../store.js';
import { badge, clear, dateTime, empty, h, num, toast } from '../ui.js';

function describeThreshold(t: Threshold): string {
  return t.kind === 'rate' ? `${(t.rate * 100).toFixed(2).replace(/\.?0+$/, '')}% false alarms` : num(t.value, 4);
}

export function mountRules(root: HTMLElement, store: Store): { refresh(): void } {
  const table = h('div', { class: 'scroll-x', id: 'rules-table' });
  const form = h('form', { id: 'rule-form', class: 'card', 'data-needs': 'operator' });
  const silences = h('div', { id: 'silences' });
  clear(root, h('div', { class: 'grid' },
    h('div', { class: 'card', style: 'grid-column: 1 / -1' }, h('h2', {}, 'Alert rules'), table),
    form,
    h('div', { class: 'card' }, h('h2', {}, 'Silences'), h('p', { class: 'muted' }, 'A silenced rule keeps evaluating, but sends no notifications.'), silences)));

  let editing: RuleView | null = null;
  const f = {
    name: h('input', { name: 'name', required: true, maxlength: 100 }),
    channel: h('select', { name: 'channel' }, ...['recon', 'kl', 'elbo', 'combined'].map((c) => h('option', { value: c }, c))),
    kind: h('select', { name: 'kind' }, h('option', { value: 'rate' }, 'false-alarm rate'), h('option', { value: 'absolute' }, 'absolute value')),
    value: h('input', { name: 'value', type: 'number', step: 'any', required: true, value: '1' }),
    unit: h('span', { class: 'muted' }, '%'),
    source: h('input', { name: 'source', placeholder: 'all sources', maxlength: 100 }),
    pendingK: h('input', { name: 'pendingK', type: 'number', min: 1, value: '1' }),
    pendingN: h('input', { name: 'pendingN', type: 'number', min: 1, value: '1' }),
    clearAfter: h('input', { name: 'clearAfter', type: 'number', min: 1, value: '1' }),
    webhook: h('input', { name: 'webhookUrl', type: 'url', placeholder: 'https://… (optional)' }),
  };
  const preview = h('p', { id: 'rule-preview', class: 'muted' });
  const title = h('h2', {}, 'New rule');
  const cancel = h('button', { type: 'button', hidden: true, onclick: () => edit(null) }, 'Cancel');
  f.kind.addEventListener('change', () => (f.unit.textContent = f.kind.value === 'rate' ? '%' : ''));
  clear(form, title,
    h('div', { class: 'row' }, h('label', {}, 'Name', f.name), h('label', {}, 'Channel', f.channel), h('label', {}, 'Source', f.source)),
    h('div', { class: 'row' }, h('label', {}, 'Threshold', f.kind), h('label', {}, 'Value', h('span', { class: 'row' }, f.value, f.unit))),
    h('div', { class: 'row' }, h('label', {}, 'Fire after k breaches…', f.pendingK), h('label', {}, '…in the last n images', f.pendingN), h('label', {}, 'Clean images to resolve', f.clearAfter)),
    h('div', { class: 'row' }, h('label', { style: 'flex: 1' }, 'Webhook', f.webhook)),
    h('div', { class: 'row', style: 'margin-top: .8rem' },
      h('button', { type: 'button', id: 'rule-preview-button', onclick: () => void runPreview() }, 'Preview'),
      h('button', { type: 'submit', class: 'primary', id: 'rule-save' }, 'Save rule'), cancel),
    preview);

  function body(): Record<string, unknown> {
    const v = Number(f.value.value);
    const threshold = f.kind.value === 'rate' ? { kind: 'rate', rate: v / 100 } : { kind: 'absolute', value: v };
    return {
      name: f.name.value.trim(), channel: f.channel.value, source: f.source.value.trim() || null, threshold,
      pendingK: Number(f.pendingK.value), pendingN: Number(f.pendingN.value), clearAfter: Number(f.clearAfter.value),
      webhookUrl: f.webhook.value.trim() || null,
    };
  }

  async function runPreview(): Promise<void> {
    try {
      const r = await api<{ images: number; breaches: number; firings: number }>('POST', '/api/rules/preview', { ...body(), name: body().name || 'preview', last: 200 });
      preview.textContent = r.images === 0
        ? 'No stored images to preview against yet.'
        : `Over the last ${r.images} images this rule would have breached ${r.breaches} times and fired ${r.firings} times.`;
    } catch (err) {
      preview.textContent = (err as Error).message;
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      if (editing) await api('PUT', `/api/rules/${editing.id}`, body());
      else await api('POST', '/api/rules', body());
      toast(editing ? 'Rule updated' : 'Rule created');
      edit(null);
      await refresh();
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  });

  function edit(rule: RuleView | null): void {
    editing = rule;
    title.textContent = rule ? `Edit "${rule.name}"` : 'New rule';
    cancel.hidden = !rule;
    preview.textContent = '';
    f.name.value = rule?.name ?? '';
    f.channel.value = rule?.channel ?? 'recon';
    f.source.value = rule?.source ?? '';
    f.kind.value = rule?.threshold.kind ?? 'rate';
    f.value.value = rule ? String(rule.threshold.kind === 'rate' ? rule.threshold.rate * 100 : rule.threshold.value) : '1';
    f.unit.textContent = f.kind.value === 'rate' ? '%' : '';
    f.pendingK.value = String(rule?.pendingK ?? 1);
    f.pendingN.value = String(rule?.pendingN ?? 1);
    f.clearAfter.value = String(rule?.clearAfter ?? 1);
    f.webhook.value = rule?.webhookUrl ?? '';
    if (rule) form.scrollIntoView({ behavior: 'smooth' });
  }

  function drawRules(): void {
    if (store.rules.length === 0) return clear(table, empty('No rules yet. Without rules, scores are stored and shown but never alert.'));
    const canEdit = store.can('operator');
    clear(table, h('table', {},
      h('thead', {}, h('tr', {}, ...['name', 'channel', 'threshold', 'fires after', 'source', 'state', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, ...store.rules.map((r) => h('tr', { 'data-rule-id': r.id },
        h('td', {}, r.name), h('td', {}, r.channel), h('td', { class: 'num' }, `${r.channel === 'combined' ? 'p < ' : '> '}${describeThreshold(r.threshold)}`),
        h('td', {}, `${r.pendingK} of ${r.pendingN}`), h('td', {}, r.source ?? 'all'),
        h('td', {}, r.enabled ? instanceStates(r) : badge('disabled', 'pending')),
        h('td', {}, canEdit ? h('span', { class: 'row' },
          h('button', { class: 'edit', onclick: () => edit(r) }, 'Edit'),
          h('button', { class: 'danger', onclick: async () => {
            if (!confirm(`Delete rule "${r.name}"?`)) return;
            try {
              await api('DELETE', `/api/rules/${r.id}`);
              await refresh();
            } catch (err) {
              toast((err as Error).message, 'error');
            }
          } }, 'Delete')) : ''))))));
  }

  /** The rule's state; for a rule over every source, each source that is not normal beside it. */
  function instanceStates(r: RuleView): HTMLElement {
    const notable = r.source === null ? r.instances.filter((i) => i.state === 'pending' || i.state === 'firing') : [];
    return h('span', {}, badge(r.state), ...notable.map((i) => h('span', { class: 'muted', 'data-source': i.source }, ` ${i.source}: ${i.state}`)));
  }

  async function drawSilences(): Promise<void> {
    const list = (await api<{ silences: SilenceView[] }>('GET', '/api/silences')).silences;
    const ruleSelect = h('select', { id: 'silence-rule' }, h('option', { value: '' }, 'all rules'), ...store.rules.map((r) => h('option', { value: r.id }, r.name)));
    const source = h('input', { id: 'silence-source', placeholder: 'all sources', maxlength: 100 });
    const minutes = h('input', { id: 'silence-minutes', type: 'number', min: 1, value: '60' });
    const reason = h('input', { id: 'silence-reason', placeholder: 'maintenance', maxlength: 500 });
    clear(silences,
      list.length ? h('ul', { class: 'feed' }, ...list.map((s) => h('li', {},
        h('span', {}, h('b', {}, s.rule_id === null ? 'all rules' : store.ruleName(s.rule_id)), s.source === null ? '' : ` on ${s.source}`,
          ` until ${dateTime(s.ends_at)}`, s.reason ? ` — ${s.reason}` : ''),
        store.can('operator') ? h('button', { onclick: async () => {
          await api('DELETE', `/api/silences/${s.id}`).catch((err) => toast((err as Error).message, 'error'));
          void drawSilences();
        } }, 'End') : ''))) : empty('No silences.'),
      store.can('operator') ? h('form', { class: 'row', onsubmit: async (e: Event) => {
        e.preventDefault();
        try {
          await api('POST', '/api/silences', { ruleId: ruleSelect.value ? Number(ruleSelect.value) : null, source: source.value || null, minutes: Number(minutes.value), reason: reason.value });
          void drawSilences();
        } catch (err) {
          toast((err as Error).message, 'error');
        }
      } }, h('label', {}, 'Rule', ruleSelect), h('label', {}, 'Source', source), h('label', {}, 'Minutes', minutes), h('label', {}, 'Reason', reason), h('button', { type: 'submit' }, 'Silence')) : '');
  }

  async function refresh(): Promise<void> {
    try {
      store.rules = (await api<{ rules: RuleView[] }>('GET', '/api/rules')).rules;
      store.emit('rules');
      await drawSilences();
    } catch (err) {
      toast(`rules: ${(err as Error).message}`, 'error');
    }
  }
  store.on('rules', drawRules);
  store.on('alerts', () => {
    // Rule states move with alerts; re-read them lazily.
    if (!root.hidden) void refresh();
  });
  drawRules();
  return { refresh: () => void refresh() };
}
