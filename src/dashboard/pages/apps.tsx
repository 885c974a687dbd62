/**
 * Apps: the zone's Spectrum apps, and a form to create or edit one (POST, or PUT of the whole app) and delete it.
 * The API's validation errors are shown at their field: each error's `source.pointer` names the field
 * (`/protocol`, `/dns/name`, `/origin_direct/0`); the others are shown above the form.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, call, callAll, ENDPOINTS, fieldOf, type ApiError } from '../api.ts';

type App = Record<string, unknown> & { id: string; protocol: string; dns?: { name?: string; type?: string }; origin_direct?: string[]; origin_dns?: { name?: string }; origin_port?: number | string; tls?: string; proxy_protocol?: string; ip_firewall?: boolean };

interface Form {
  protocol: string;
  dnsName: string;
  dnsType: string;
  origins: string;
  tls: string;
  proxyProtocol: string;
  ipFirewall: boolean;
}

const EMPTY: Form = { protocol: '', dnsName: '', dnsType: 'CNAME', origins: '', tls: 'off', proxyProtocol: 'off', ipFirewall: false };

/** The form's fields, by the body field their errors point at. */
const FIELDS = ['protocol', 'dns', 'origin_direct', 'tls', 'proxy_protocol', 'ip_firewall'] as const;

function formOf(a: App): Form {
  return {
    protocol: a.protocol,
    dnsName: a.dns?.name ?? '',
    dnsType: a.dns?.type ?? 'CNAME',
    origins: (a.origin_direct ?? []).join('\n'),
    tls: a.tls ?? 'off',
    proxyProtocol: a.proxy_protocol ?? 'off',
    ipFirewall: a.ip_firewall === true,
  };
}

/** The request body: the edited app's own fields (PUT replaces the whole app) with the form's values over them. */
function bodyOf(f: Form, base: App | undefined): Record<string, unknown> {
  const { id: _id, created_on: _c, modified_on: _m, ips: _i, ...rest } = base ?? ({} as App);
  const origins = f.origins.split(/[\s,]+/).filter((s) => s !== '');
  const body: Record<string, unknown> = { ...rest, protocol: f.protocol.trim(), dns: { type: f.dnsType, name: f.dnsName.trim() }, tls: f.tls, proxy_protocol: f.proxyProtocol, ip_firewall: f.ipFirewall };
  if (origins.length > 0 || base?.origin_dns === undefined) {
    body['origin_direct'] = origins;
    delete body['origin_dns'];
    delete body['origin_port'];
  }
  return body;
}

function origin(a: App): string {
  if (a.origin_direct?.length) return a.origin_direct.join(', ');
  if (a.origin_dns?.name) return `${a.origin_dns.name}:${String(a.origin_port ?? '')}`;
  return '';
}

function FieldError({ errors, field }: { errors: readonly ApiError[]; field: string }) {
  const mine = errors.filter((e) => fieldOf(e) === field);
  if (mine.length === 0) return null;
  return (
    <p class="field-error" id={`err-${field}`} data-field={field} role="alert">
      {mine.map((e) => `${e.message} (${e.refract_code ?? e.code})`).join('; ')}
    </p>
  );
}

export function AppsPage({ zone }: { zone: string }) {
  const [apps, setApps] = useState<App[] | undefined>();
  const [loadError, setLoadError] = useState('');
  const [editing, setEditing] = useState<App | 'new' | undefined>();
  const [form, setForm] = useState<Form>(EMPTY);
  const [errors, setErrors] = useState<readonly ApiError[]>([]);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState('');

  const load = () =>
    callAll<App>(ENDPOINTS.apps, { zone }).then(
      (a) => {
        setApps(a);
        setLoadError('');
      },
      (e: unknown) => setLoadError(e instanceof Error ? e.message : String(e)),
    );
  useEffect(() => {
    setEditing(undefined);
    void load();
  }, [zone]);

  const open = (a: App | 'new') => {
    setEditing(a);
    setForm(a === 'new' ? EMPTY : formOf(a));
    setErrors([]);
    setNotice('');
  };
  const set = (k: keyof Form) => (e: Event) => {
    const t = e.target as HTMLInputElement;
    setForm({ ...form, [k]: t.type === 'checkbox' ? t.checked : t.value });
  };
  const save = async (e: Event) => {
    e.preventDefault();
    const base = editing === 'new' ? undefined : editing;
    setBusy(true);
    try {
      const saved =
        base === undefined
          ? await call<App>(ENDPOINTS.createApp, { params: { zone }, body: bodyOf(form, undefined) })
          : await call<App>(ENDPOINTS.replaceApp, { params: { zone, app: base.id }, body: bodyOf(form, base) });
      setEditing(undefined);
      setNotice(`${base === undefined ? 'Created' : 'Saved'} ${saved.dns?.name ?? saved.id}.`);
      await load();
    } catch (err) {
      setErrors(err instanceof ApiFailure ? err.errors : [{ code: 0, message: String(err) }]);
    } finally {
      setBusy(false);
    }
  };
  const remove = async (a: App) => {
    if (!confirm(`Delete ${a.dns?.name ?? a.id}? Its open connections drain.`)) return;
    try {
      await call(ENDPOINTS.deleteApp, { params: { zone, app: a.id } });
      setNotice(`Deleted ${a.dns?.name ?? a.id}.`);
      await load();
    } catch (err) {
      setNotice(err instanceof Error ? err.message : String(err));
    }
  };
  const formErrors = errors.filter((x) => !(FIELDS as readonly string[]).includes(fieldOf(x)));

  return (
    <section aria-labelledby="apps-title">
      <div class="page-head">
        <h2 id="apps-title">Apps</h2>
        <button onClick={() => open('new')}>New app</button>
      </div>
      {notice && <p class="notice" role="status">{notice}</p>}
      {loadError && <p class="error" role="alert">{loadError}</p>}
      {editing !== undefined && (
        <form class="card app-form" onSubmit={save} aria-label={editing === 'new' ? 'New app' : 'Edit app'} noValidate>
          <h3>{editing === 'new' ? 'New app' : `Edit ${editing.dns?.name ?? editing.id}`}</h3>
          {formErrors.length > 0 && (
            <div class="error" role="alert">
              {formErrors.map((x) => (
                <p>{`${x.message} (${x.refract_code ?? x.code})`}</p>
              ))}
            </div>
          )}
          <div class="grid">
            <div class={`field ${errors.some((x) => fieldOf(x) === 'protocol') ? 'invalid' : ''}`}>
              <label for="f-protocol">Protocol and edge port</label>
              <input id="f-protocol" name="protocol" placeholder="tcp/22 or udp/5000-5010" value={form.protocol} onInput={set('protocol')} aria-describedby="err-protocol" />
              <FieldError errors={errors} field="protocol" />
            </div>
            <div class={`field ${errors.some((x) => fieldOf(x) === 'dns') ? 'invalid' : ''}`}>
              <label for="f-dns">DNS name</label>
              <input id="f-dns" name="dns" placeholder="ssh.example.com" value={form.dnsName} onInput={set('dnsName')} aria-describedby="err-dns" />
              <FieldError errors={errors} field="dns" />
            </div>
            <div class="field">
              <label for="f-dnstype">DNS type</label>
              <select id="f-dnstype" value={form.dnsType} onChange={set('dnsType')}>
                <option>CNAME</option>
                <option>ADDRESS</option>
              </select>
            </div>
            <div class={`field wide ${errors.some((x) => fieldOf(x) === 'origin_direct') ? 'invalid' : ''}`}>
              <label for="f-origins">Origins (one per line)</label>
              <textarea id="f-origins" name="origin_direct" rows={2} placeholder="tcp://192.0.2.10:22" value={form.origins} onInput={set('origins')} aria-describedby="err-origin_direct" />
              <FieldError errors={errors} field="origin_direct" />
            </div>
            <div class={`field ${errors.some((x) => fieldOf(x) === 'tls') ? 'invalid' : ''}`}>
              <label for="f-tls">TLS</label>
              <select id="f-tls" value={form.tls} onChange={set('tls')}>
                {['off', 'flexible', 'full', 'strict'].map((v) => (
                  <option>{v}</option>
                ))}
              </select>
              <FieldError errors={errors} field="tls" />
            </div>
            <div class={`field ${errors.some((x) => fieldOf(x) === 'proxy_protocol') ? 'invalid' : ''}`}>
              <label for="f-pp">PROXY protocol</label>
              <select id="f-pp" value={form.proxyProtocol} onChange={set('proxyProtocol')}>
                {['off', 'v1', 'v2', 'simple'].map((v) => (
                  <option>{v}</option>
                ))}
              </select>
              <FieldError errors={errors} field="proxy_protocol" />
            </div>
            <div class="field check">
              <label>
                <input type="checkbox" checked={form.ipFirewall} onChange={set('ipFirewall')} /> IP Access rules apply (ip_firewall)
              </label>
              <FieldError errors={errors} field="ip_firewall" />
            </div>
          </div>
          <div class="actions">
            <button type="submit" disabled={busy}>{editing === 'new' ? 'Create' : 'Save'}</button>
            <button type="button" class="secondary" onClick={() => setEditing(undefined)}>Cancel</button>
          </div>
        </form>
      )}
      {apps === undefined ? (
        <p class="muted">Loading…</p>
      ) : apps.length === 0 ? (
        <p class="muted">No app in this zone yet.</p>
      ) : (
        <div class="table-wrap">
          <table class="apps">
            <thead>
              <tr>
                <th>DNS name</th>
                <th>Protocol</th>
                <th>Origin</th>
                <th>TLS</th>
                <th>Firewall</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              {apps.map((a) => (
                <tr data-app={a.id}>
                  <td data-label="DNS name">{a.dns?.name}</td>
                  <td data-label="Protocol">{a.protocol}</td>
                  <td data-label="Origin" class="wrap">{origin(a)}</td>
                  <td data-label="TLS">{a.tls ?? 'off'}</td>
                  <td data-label="Firewall">{a.ip_firewall ? 'on' : 'off'}</td>
                  <td class="row-actions">
                    <button class="secondary small" onClick={() => open(a)}>Edit</button>
                    <button class="danger small" onClick={() => void remove(a)}>Delete</button>
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
