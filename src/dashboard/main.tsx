/**
 * The dashboard's browser entry (bundled by src/api/dashboard.ts with esbuild): a login gate, then the pages, one
 * per hash route (#/apps, #/rules, #/live, #/events, #/health, #/analytics). Imports only preact, uplot and pure
 * types of src/model (eslint's layer rule).
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { ApiFailure, call, ENDPOINTS, savedToken, saveToken } from './api.ts';
import { AppsPage } from './pages/apps.tsx';
import { RulesPage } from './pages/rules.tsx';
import { LivePage } from './pages/live.tsx';
import { EventsPage } from './pages/events.tsx';
import { HealthPage } from './pages/health.tsx';
import { AnalyticsPage } from './charts.tsx';

export interface Zone {
  readonly id: string;
  readonly name: string;
}

const PAGES = [
  { id: 'apps', title: 'Apps' },
  { id: 'rules', title: 'Access rules' },
  { id: 'live', title: 'Live' },
  { id: 'events', title: 'Events' },
  { id: 'health', title: 'Health' },
  { id: 'analytics', title: 'Analytics' },
] as const;
type PageId = (typeof PAGES)[number]['id'];

function currentPage(): PageId {
  const h = location.hash.replace(/^#\/?/, '');
  return (PAGES.find((p) => p.id === h)?.id ?? 'apps') as PageId;
}

function Login({ onLogin }: { onLogin: (token: string) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await call(ENDPOINTS.verify, { token: token.trim() });
      saveToken(token.trim());
      onLogin(token.trim());
    } catch (err) {
      setError(err instanceof ApiFailure && err.status === 401 ? 'This token is not valid (unknown or revoked).' : err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={submit} class="card" aria-label="Log in">
        <h1>Refract</h1>
        <p class="muted">Paste an API token (from <code>refract token create</code>). It stays in this tab only.</p>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} required />
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>Log in</button>
      </form>
    </main>
  );
}

function Shell({ onLogout }: { onLogout: () => void }) {
  const [page, setPage] = useState<PageId>(currentPage());
  const [zones, setZones] = useState<Zone[]>([]);
  const [zone, setZone] = useState<string>('');
  const [error, setError] = useState('');
  const [menu, setMenu] = useState(false);
  useEffect(() => {
    const on = () => {
      setPage(currentPage());
      setMenu(false);
    };
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  useEffect(() => {
    call<Zone[]>(ENDPOINTS.zones, { query: { per_page: '100' } }).then(
      (z) => {
        setZones(z);
        setZone((cur) => cur || z[0]?.id || '');
      },
      (e: unknown) => {
        if (e instanceof ApiFailure && e.status === 401) onLogout();
        else setError(e instanceof Error ? e.message : String(e));
      },
    );
  }, []);
  const zoned = page === 'apps' || page === 'rules' || page === 'analytics';
  return (
    <div class="shell">
      <header class="top">
        <strong class="brand">Refract</strong>
        <button class="menu-toggle" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>Menu</button>
        <nav id="nav" class={menu ? 'open' : ''}>
          {PAGES.map((p) => (
            <a href={`#/${p.id}`} class={p.id === page ? 'active' : ''} aria-current={p.id === page ? 'page' : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        {zoned && zones.length > 0 && (
          <label class="zone">
            <span class="muted">Zone</span>
            <select aria-label="Zone" value={zone} onChange={(e) => setZone((e.target as HTMLSelectElement).value)}>
              {zones.map((z) => (
                <option value={z.id}>{z.name}</option>
              ))}
            </select>
          </label>
        )}
        <button class="logout secondary" onClick={onLogout}>Log out</button>
      </header>
      <main class="content">
        {error && <p class="error" role="alert">{error}</p>}
        {page === 'apps' && zone && <AppsPage zone={zone} />}
        {page === 'rules' && zone && <RulesPage zone={zone} />}
        {page === 'live' && <LivePage />}
        {page === 'events' && <EventsPage />}
        {page === 'health' && <HealthPage />}
        {page === 'analytics' && zone && <AnalyticsPage zone={zone} />}
        {zoned && zones.length === 0 && !error && <p class="muted">No zone is visible to this token.</p>}
      </main>
    </div>
  );
}

function Root() {
  const [token, setToken] = useState<string | null>(savedToken());
  const logout = () => {
    saveToken(null);
    setToken(null);
  };
  return token === null ? <Login onLogin={setToken} /> : <Shell onLogout={logout} />;
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<Root />, root);
}
