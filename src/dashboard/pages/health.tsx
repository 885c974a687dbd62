/**
 * Health: the node's uptime (the node's monotonic clock), open connections, listeners, latest configuration applies
 * (start, file reloads, API writes; rejected ones with their code) and recent connection errors
 * (GET /refract/health, every 5 seconds).
 */
import { useEffect, useState } from 'preact/hooks';
import type { NodeHealth } from '../../model/engine-view.ts';
import { call, ENDPOINTS } from '../api.ts';

function duration(sec: number): string {
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = Math.floor(sec % 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m ${s}s` : `${m}m ${s}s`;
}

export function HealthPage() {
  const [h, setH] = useState<NodeHealth | undefined>();
  const [error, setError] = useState('');
  useEffect(() => {
    let stop = false;
    const poll = () => call<NodeHealth>(ENDPOINTS.health).then((x) => !stop && (setH(x), setError('')), (e: unknown) => !stop && setError(e instanceof Error ? e.message : String(e)));
    void poll();
    const timer = setInterval(() => void poll(), 5000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, []);
  return (
    <section aria-labelledby="health-title">
      <div class="page-head">
        <h2 id="health-title">Health</h2>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {h && (
        <>
          <div class="tiles">
            <div class="card tile">
              <span class="muted">Uptime</span>
              <strong data-uptime={h.uptimeSec}>{duration(h.uptimeSec)}</strong>
            </div>
            <div class="card tile">
              <span class="muted">TCP connections</span>
              <strong>{h.connections.tcp}</strong>
            </div>
            <div class="card tile">
              <span class="muted">UDP flows</span>
              <strong>{h.connections.udp}</strong>
            </div>
            <div class="card tile">
              <span class="muted">Listeners</span>
              <strong>{h.listeners.length}</strong>
            </div>
            <div class="card tile">
              <span class="muted">Version</span>
              <strong>{h.version}</strong>
            </div>
          </div>
          <h3>Configuration applies</h3>
          <div class="table-wrap">
            <table class="applies">
              <thead>
                <tr>
                  <th>When</th>
                  <th>Trigger</th>
                  <th>Result</th>
                  <th>Apps added / removed / changed</th>
                </tr>
              </thead>
              <tbody>
                {h.applies.map((a) => (
                  <tr>
                    <td data-label="When">{a.at.replace('T', ' ').slice(0, 19)}</td>
                    <td data-label="Trigger">{a.trigger}</td>
                    <td data-label="Result">{a.ok ? <span class="badge good">applied</span> : <span class="badge bad" title={a.message}>{a.code}</span>}</td>
                    <td data-label="Apps" class="num">{a.ok ? `${a.added} / ${a.removed} / ${a.changed}` : a.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h3>Listeners</h3>
          <div class="table-wrap">
            <table class="listeners">
              <thead>
                <tr>
                  <th>Protocol</th>
                  <th>Address</th>
                  <th>App</th>
                </tr>
              </thead>
              <tbody>
                {h.listeners.map((l) => (
                  <tr>
                    <td data-label="Protocol">{l.protocol}</td>
                    <td data-label="Address">{l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`}</td>
                    <td data-label="App" class="wrap" title={l.app}>{l.name || l.app}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h3>Recent errors</h3>
          {h.errors.length === 0 ? (
            <p class="muted">No connection error since the node started.</p>
          ) : (
            <div class="table-wrap">
              <table class="errors">
                <thead>
                  <tr>
                    <th>When</th>
                    <th>App</th>
                    <th>Event</th>
                    <th>Status</th>
                    <th>Code</th>
                    <th>Client</th>
                  </tr>
                </thead>
                <tbody>
                  {h.errors.map((e) => (
                    <tr>
                      <td data-label="When">{e.at.replace('T', ' ').slice(0, 19)}</td>
                      <td data-label="App">{e.appName || e.app}</td>
                      <td data-label="Event">{e.event}</td>
                      <td data-label="Status"><span class="badge bad">{e.status}</span></td>
                      <td data-label="Code">{e.code}</td>
                      <td data-label="Client">{e.client}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
