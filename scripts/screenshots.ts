/**
 * `npm run screenshots`: starts a demo node (the API on loopback port 0 over a real edge, a loopback echo origin,
 * some apps and rules, connections held open and some traffic), opens each dashboard page in headless chromium
 * (/usr/bin/chromium, driven by playwright-core) at laptop and phone width, and writes the PNGs to docs/img/.
 * Bounded: it gives up after 120 s.
 */
import { mkdirSync } from 'node:fs';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { chromium, type Page } from 'playwright-core';
import type { RollupRow } from '../src/streams/analytics.ts';
import { freePort, startApi, ZONE, type ApiUnderTest } from '../test/unit/api/harness.ts';

const OUT = new URL('../docs/img/', import.meta.url);
const SIZES = { laptop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } } as const;
const PAGES = ['apps', 'rules', 'live', 'events', 'health', 'analytics'] as const;
const bound = setTimeout(() => {
  process.stderr.write('screenshots: not done within 120 s\n');
  process.exit(1);
}, 120_000);

async function echoed(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.once('data', () => resolve());
    s.write('hello');
  });
  return s;
}

/**
 * The analytics page charts an hour, and the demo has only just started: the 40 minutes before now get made-up
 * traffic (rollup rows written straight into the analytics store: connections, bytes and closing events per app,
 * varying by minute); the current minute holds the demo's real traffic.
 */
function seedHistory(api: ApiUnderTest): void {
  const apps = api.source.config.apps;
  const colo = api.writer.rollup.pending()[0]?.colo ?? 'local';
  const nowMin = Math.floor(Date.now() / 60_000) * 60;
  const rows: RollupRow[] = [];
  apps.forEach((app, k) => {
    for (let m = 40; m >= 1; m--) {
      const t = nowMin - m * 60;
      const n = Math.round((k + 1) * 3 + (k + 2) * 2 * (1 + Math.sin((m + k * 7) / 6)));
      const row = (event: string, count: number, bytes: number): RollupRow => ({ res: 60, t, zone: ZONE.id, app: app.id, event, ipVersion: 4, colo, count, bytesIngress: bytes, bytesEgress: bytes * 3, durN: event === 'connect' ? 0 : count, durSum: event === 'connect' ? 0 : count * 800, sketch: undefined });
      rows.push(row('connect', n, 0));
      if (app.dns.name === 'broken.example.com') rows.push(row('originError', n, 0));
      else rows.push(row('disconnect', n - (m % 9 === 0 ? 1 : 0), n * 2_000));
      if (m % 9 === 0 && app.dns.name !== 'broken.example.com') rows.push(row('originError', 1, 0));
    }
  });
  api.analytics.write(rows);
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const echo = net.createServer((c) => c.pipe(c));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const echoPort = (echo.address() as AddressInfo).port;
  const udpEcho = dgram.createSocket('udp4');
  udpEcho.on('message', (m, from) => udpEcho.send(m, from.port, from.address));
  await new Promise<void>((r) => udpEcho.bind(0, '127.0.0.1', () => r()));
  const udpEchoPort = udpEcho.address().port;
  const [ssh, db, game, broken] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const api = await startApi({
    edge: { addresses: ['127.0.0.1'] },
    apps: [{ id: 'ssh', protocol: `tcp/${ssh}`, dns: { type: 'CNAME', name: 'ssh.example.com' }, origin_direct: [`tcp://127.0.0.1:${echoPort}`], ip_firewall: true }],
    access_rules: [{ mode: 'allow', configuration: { target: 'ip', value: '127.0.0.1' }, notes: 'loopback (from the config file)' }],
  });
  const Z = `/zones/${ZONE.id}`;
  await api.call('POST', `${Z}/spectrum/apps`, { protocol: `tcp/${db}`, dns: { type: 'CNAME', name: 'db.example.com' }, origin_direct: [`tcp://127.0.0.1:${echoPort}`] });
  await api.call('POST', `${Z}/spectrum/apps`, { protocol: `udp/${game}`, dns: { type: 'CNAME', name: 'game.example.com' }, origin_direct: [`udp://127.0.0.1:${udpEchoPort}`] });
  await api.call('POST', `${Z}/spectrum/apps`, { protocol: `tcp/${broken}`, dns: { type: 'CNAME', name: 'broken.example.com' }, origin_direct: ['tcp://127.0.0.1:1'] });
  await api.call('POST', `${Z}/firewall/access_rules/rules`, { mode: 'block', configuration: { target: 'ip_range', value: '198.51.100.0/24' }, notes: 'scanner range' });
  await api.call('POST', `${Z}/firewall/access_rules/rules`, { mode: 'block', configuration: { target: 'country', value: 'AQ' }, notes: '' });

  const held: net.Socket[] = [];
  for (let i = 0; i < 4; i++) held.push(await echoed(ssh));
  for (let i = 0; i < 2; i++) held.push(await echoed(db));
  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  const udpReply = new Promise<void>((r) => client.once('message', () => r()));
  client.send('ping', game, '127.0.0.1');
  await udpReply;
  /** Short connections (connect + disconnect events) and a refused one (an error). */
  const traffic = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) (await echoed(i % 2 === 0 ? ssh : db)).end();
    const bad = net.connect({ host: '127.0.0.1', port: broken });
    await new Promise<void>((r) => bad.on('close', () => r()).on('error', () => undefined));
  };
  await traffic();
  seedHistory(api);

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const url = api.base.replace('/client/v4', '/dashboard/');
    for (const [size, viewport] of Object.entries(SIZES)) {
      const page: Page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
      page.setDefaultTimeout(10_000);
      await page.goto(url);
      await page.fill('#token', api.token);
      await page.click('button[type=submit]');
      await page.getByRole('heading', { name: 'Apps' }).waitFor();
      for (const name of PAGES) {
        await page.goto(`${url}#/${name}`);
        await page.locator('main.content h2').waitFor();
        if (name === 'apps') await page.locator('table.apps tbody tr').first().waitFor();
        if (name === 'rules') await page.locator('table.rules tbody tr').first().waitFor();
        if (name === 'live') await page.locator('svg[data-machine="tcpConnection"] [data-state="established"][data-count="6"]').waitFor();
        if (name === 'events') {
          await page.locator('[data-stream-state="live"]').waitFor();
          await traffic();
          await page.locator('table.events tbody tr').nth(5).waitFor();
        }
        if (name === 'health') await page.locator('table.applies tbody tr').first().waitFor();
        if (name === 'analytics') for (const id of ['connections', 'bytes', 'statuses']) await page.locator(`[data-chart="${id}"][data-chart-state="ok"] canvas`).waitFor();
        const file = new URL(`dashboard-${name}-${size}.png`, OUT);
        await page.screenshot({ path: file.pathname, fullPage: true });
        process.stdout.write(`screenshots: ${file.pathname}\n`);
      }
      await page.close();
    }
  } finally {
    await browser.close();
    for (const s of held) s.destroy();
    client.close();
    await api.close();
    udpEcho.close();
    echo.close();
    clearTimeout(bound);
  }
}

await main();
