/**
 * Access rules: the IP Access rules that apply to the zone's apps (node-wide rules of the config file, then the
 * zone's), a form to create one and a button to delete one (rules from the config file are read-only: the API
 * answers E_API_FILE_RULE, shown here).
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, call, callAll, ENDPOINTS, fieldOf, type ApiError } from '../api.ts';

interface Rule {
  id: string;
  mode: string;
  configuration: { target: string; value: string };
  notes: string;
  scope?: { type: string; name?: string };
}

export function RulesPage({ zone }: { zone: string }) {
  const [rules, setRules] = useState<Rule[] | undefined>();
  const [mode, setMode] = useState('block');
  const [target, setTarget] = useState('ip');
  const [value, setValue] = useState('');
  const [notes, setNotes] = useState('');
  const [errors, setErrors] = useState<readonly ApiError[]>([]);
  const [notice, setNotice] = useState('');
  const load = () => callAll<Rule>(ENDPOINTS.rules, { zone }, 1000).then(setRules, (e: unknown) => setNotice(e instanceof Error ? e.message : String(e)));
  useEffect(() => void load(), [zone]);

  const create = async (e: Event) => {
    e.preventDefault();
    try {
      await call(ENDPOINTS.createRule, { params: { zone }, body: { mode, configuration: { target, value: value.trim() }, notes } });
      setErrors([]);
      setValue('');
      setNotes('');
      setNotice('Rule created.');
      await load();
    } catch (err) {
      setErrors(err instanceof ApiFailure ? err.errors : [{ code: 0, message: String(err) }]);
    }
  };
  const remove = async (r: Rule) => {
    if (!confirm(`Delete the rule ${r.mode} ${r.configuration.value}?`)) return;
    try {
      await call(ENDPOINTS.deleteRule, { params: { zone, rule: r.id } });
      setNotice('Rule deleted.');
      await load();
    } catch (err) {
      setNotice(err instanceof Error ? err.message : String(err));
    }
  };
  const err = (field: string) => errors.filter((x) => fieldOf(x) === field);
  const other = errors.filter((x) => !['mode', 'configuration', 'notes'].includes(fieldOf(x)));

  return (
    <section aria-labelledby="rules-title">
      <div class="page-head">
        <h2 id="rules-title">Access rules</h2>
      </div>
      {notice && <p class="notice" role="status">{notice}</p>}
      <form class="card rule-form" onSubmit={create} aria-label="New rule" noValidate>
        {other.length > 0 && <p class="error" role="alert">{other.map((x) => x.message).join('; ')}</p>}
        <div class="grid">
          <div class="field">
            <label for="r-mode">Mode</label>
            <select id="r-mode" value={mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value)}>
              <option value="block">block</option>
              <option value="whitelist">allow (whitelist)</option>
            </select>
          </div>
          <div class="field">
            <label for="r-target">Target</label>
            <select id="r-target" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
              {['ip', 'ip6', 'ip_range', 'asn', 'country'].map((t) => (
                <option>{t}</option>
              ))}
            </select>
          </div>
          <div class={`field ${err('configuration').length ? 'invalid' : ''}`}>
            <label for="r-value">Value</label>
            <input id="r-value" placeholder="198.51.100.4, 10.0.0.0/8, AS64496, NL" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
            {err('configuration').map((x) => (
              <p class="field-error" data-field="configuration" role="alert">{`${x.message} (${x.refract_code ?? x.code})`}</p>
            ))}
          </div>
          <div class={`field ${err('notes').length ? 'invalid' : ''}`}>
            <label for="r-notes">Notes</label>
            <input id="r-notes" value={notes} onInput={(e) => setNotes((e.target as HTMLInputElement).value)} />
          </div>
        </div>
        <div class="actions">
          <button type="submit">Add rule</button>
        </div>
      </form>
      {rules === undefined ? (
        <p class="muted">Loading…</p>
      ) : rules.length === 0 ? (
        <p class="muted">No IP Access rule applies to this zone.</p>
      ) : (
        <div class="table-wrap">
          <table class="rules">
            <thead>
              <tr>
                <th>Mode</th>
                <th>Target</th>
                <th>Value</th>
                <th>Scope</th>
                <th>Notes</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              {rules.map((r) => (
                <tr data-rule={r.id}>
                  <td data-label="Mode">
                    <span class={`badge ${r.mode === 'block' ? 'bad' : 'good'}`}>{r.mode === 'whitelist' ? 'allow' : r.mode}</span>
                  </td>
                  <td data-label="Target">{r.configuration.target}</td>
                  <td data-label="Value">{r.configuration.value}</td>
                  <td data-label="Scope">{r.scope?.type === 'node' ? 'node-wide' : (r.scope?.name ?? 'zone')}</td>
                  <td data-label="Notes" class="wrap">{r.notes}</td>
                  <td class="row-actions">
                    <button class="danger small" onClick={() => void remove(r)}>Delete</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
