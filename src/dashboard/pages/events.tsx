/**
 * Events: the node's Spectrum events as they happen (GET /refract/events/stream, Server-Sent Events), newest first,
 * the last 200 kept; filters by app, event and status (sent to the server, which filters before sending).
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, ENDPOINTS, stream } from '../api.ts';

interface Ev {
  Event: string;
  Timestamp: string;
  Application: string;
  ApplicationName: string;
  ClientIP: string;
  ClientPort: number;
  Status: number;
  ClientBytes: number;
  OriginBytes: number;
  DurationMs: number;
  CloseReason: string;
  ConnectionID: string;
}

const KEEP = 200;
const EVENTS = ['', 'connect', 'disconnect', 'originError', 'resolveOrigin', 'clientFiltered', 'tlsError'];

export function EventsPage() {
  const [events, setEvents] = useState<Ev[]>([]);
  const [app, setApp] = useState('');
  const [event, setEvent] = useState('');
  const [status, setStatus] = useState('');
  const [applied, setApplied] = useState({ app: '', event: '', status: '' });
  const [state, setState] = useState('connecting');
  const [dropped, setDropped] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setState('connecting');
    setEvents([]);
    setDropped(0);
    stream(ENDPOINTS.events, applied, ctl.signal, (name, data) => {
      setState('live');
      if (name === 'dropped') setDropped((JSON.parse(data) as { dropped: number }).dropped);
      if (name !== 'spectrum') return;
      const e = JSON.parse(data) as Ev;
      setEvents((list) => [e, ...list].slice(0, KEEP));
    }).then(
      () => !ctl.signal.aborted && setState('ended'),
      (e: unknown) => !ctl.signal.aborted && setState(e instanceof ApiFailure ? `error: ${e.message}` : 'disconnected'),
    );
    setState('live');
    return () => ctl.abort();
  }, [applied]);
  const apply = (e: Event) => {
    e.preventDefault();
    setApplied({ app: app.trim(), event, status: status.trim() });
  };
  return (
    <section aria-labelledby="events-title">
      <div class="page-head">
        <h2 id="events-title">Events</h2>
        <span class={`badge ${state === 'live' ? 'good' : 'bad'}`} data-stream-state={state}>{state}</span>
      </div>
      <form class="card filters" onSubmit={apply} aria-label="Event filters">
        <div class="grid">
          <div class="field">
            <label for="ev-app">App (id or DNS name)</label>
            <input id="ev-app" value={app} onInput={(e) => setApp((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field">
            <label for="ev-event">Event</label>
            <select id="ev-event" value={event} onChange={(e) => setEvent((e.target as HTMLSelectElement).value)}>
              {EVENTS.map((v) => (
                <option value={v}>{v === '' ? 'any' : v}</option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="ev-status">Status</label>
            <input id="ev-status" inputMode="numeric" placeholder="200, 521, …" value={status} onInput={(e) => setStatus((e.target as HTMLInputElement).value)} />
          </div>
        </div>
        <div class="actions">
          <button type="submit">Apply filters</button>
        </div>
      </form>
      {dropped > 0 && <p class="notice">{dropped} events were dropped because this page read too slowly.</p>}
      {events.length === 0 ? (
        <p class="muted">Waiting for events…</p>
      ) : (
        <div class="table-wrap">
          <table class="events">
            <thead>
              <tr>
                <th>Time</th>
                <th>Event</th>
                <th>App</th>
                <th>Client</th>
                <th>Status</th>
                <th>Bytes client / origin</th>
                <th>Duration</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr data-event={e.Event} key={`${e.ConnectionID}-${e.Event}-${e.Timestamp}`}>
                  <td data-label="Time">{e.Timestamp.slice(11, 23)}</td>
                  <td data-label="Event">{e.Event}</td>
                  <td data-label="App">{e.ApplicationName || e.Application}</td>
                  <td data-label="Client">{`${e.ClientIP}:${e.ClientPort}`}</td>
                  <td data-label="Status">
                    <span class={`badge ${e.Status === 0 || e.Status === 200 ? 'good' : 'bad'}`}>{e.Status}</span>
                  </td>
                  <td data-label="Bytes" class="num">{`${e.ClientBytes} / ${e.OriginBytes}`}</td>
                  <td data-label="Duration" class="num">{e.Event === 'connect' ? '' : `${e.DurationMs} ms`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
