/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core (the system browser, no
 * download), against the API harness on loopback port 0 over a real EdgeNode. Logs in with a token, creates an app
 * through the form and sees it listed, sees the field error of a bad protocol, holds 5 TCP connections open through
 * the edge (real sockets, a loopback echo origin) and sees 5 in `established` on the live view, sees the event tail
 * show their events, sees the analytics charts draw that traffic (from the real bytime endpoint), and checks the layout at a laptop and a phone width. Skipped loudly when /usr/bin/chromium is
 * missing, failed under REFRACT_REQUIRE_PEERS=1 (.ci/run installs it and sets that).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { freePort, startApi, ZONE, type ApiUnderTest } from '../unit/api/harness.ts';
import { peerSkip } from '../helpers/peers.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = peerSkip('chromium', 'chromium', existsSync(CHROMIUM) ? CHROMIUM : undefined);
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

async function echoServer(): Promise<net.Server> {
  const s = net.createServer((c) => c.pipe(c));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return s;
}

/** A connection through the edge that has echoed one round trip (both legs up). */
async function echoedConnection(port: number): Promise<net.Socket> {
  const sock = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.once('data', () => resolve());
    sock.write('ping');
  });
  return sock;
}

/** Horizontal overflow of the page (0 when it fits the viewport). */
function overflow(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

describe('dashboard in chromium', { skip }, () => {
  let browser: Browser;
  let api: ApiUnderTest;
  let echo: net.Server;
  let page: Page;
  let url: string;
  const sockets: net.Socket[] = [];

  before(async () => {
    const { chromium } = await import('playwright-core');
    echo = await echoServer();
    api = await startApi({ edge: { addresses: ['127.0.0.1'] } });
    url = api.base.replace('/client/v4', '/dashboard/');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: LAPTOP });
    page.setDefaultTimeout(10_000);
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await browser?.close();
    await api?.close();
    await new Promise<void>((r) => (echo ? echo.close(() => r()) : r()));
  });

  it('logs in with a token (a wrong one is refused at the form)', async () => {
    await page.goto(url);
    await page.fill('#token', 'rfk_not-a-token');
    await page.click('button[type=submit]');
    await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();
    await page.fill('#token', api.token);
    await page.click('button[type=submit]');
    await page.getByRole('heading', { name: 'Apps' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('refract.token')), api.token);
  });

  let appPort = 0;
  it('creates an app through the form and lists it', async () => {
    appPort = await freePort();
    const echoPort = (echo.address() as AddressInfo).port;
    await page.click('text=New app');
    await page.fill('#f-protocol', `tcp/${appPort}`);
    await page.fill('#f-dns', 'web.example.com');
    await page.fill('#f-origins', `tcp://127.0.0.1:${echoPort}`);
    await page.click('form[aria-label="New app"] button[type=submit]');
    await page.locator('table.apps tr', { hasText: 'web.example.com' }).waitFor();
    const listed = (await api.call('GET', `/zones/${ZONE.id}/spectrum/apps`)).json.result as Array<{ dns: { name: string }; protocol: string }>;
    assert.deepEqual(listed.map((a) => [a.dns.name, a.protocol]), [['web.example.com', `tcp/${appPort}`]]);
  });

  it('shows the API error of a bad protocol at the protocol field', async () => {
    await page.click('text=New app');
    await page.fill('#f-protocol', 'tcp/not-a-port');
    await page.fill('#f-dns', 'bad.example.com');
    await page.fill('#f-origins', 'tcp://127.0.0.1:9');
    await page.click('form[aria-label="New app"] button[type=submit]');
    const err = page.locator('.field-error[data-field="protocol"]');
    await err.waitFor();
    assert.match(await err.innerText(), /E_CONFIG_PROTOCOL/);
    assert.equal(await page.locator('.field-error[data-field="dns"]').count(), 0, 'only the protocol field has an error');
    await page.click('text=Cancel');
    assert.equal((await api.call('GET', `/zones/${ZONE.id}/spectrum/apps`)).json.result.length, 1, 'nothing was created');
  });

  it('shows 5 connections in established on the live view while a client holds them open', async () => {
    for (let i = 0; i < 5; i++) sockets.push(await echoedConnection(appPort));
    await page.goto(`${url}#/live`);
    const established = page.locator('svg[data-machine="tcpConnection"] [data-state="established"]');
    await established.and(page.locator('[data-count="5"]')).waitFor();
    assert.equal(await established.locator('.count').textContent(), '5');
    assert.equal(api.edge.tcp.states().length, 5);
    // The UDP machine is drawn too, with no flow.
    assert.equal(await page.locator('svg[data-machine="udpFlow"] [data-state="active"]').getAttribute('data-count'), '0');
  });

  it('tails events live, filtered by event', async () => {
    await page.goto(`${url}#/events`);
    await page.locator('[data-stream-state="live"]').waitFor();
    await page.selectOption('#ev-event', 'disconnect');
    await page.click('form[aria-label="Event filters"] button[type=submit]');
    await page.locator('[data-stream-state="live"]').waitFor();
    // Closing the 5 connections makes 5 disconnect events; a new connection's connect is filtered out.
    for (const s of sockets.splice(0)) s.end();
    const extra = await echoedConnection(appPort);
    sockets.push(extra);
    await page.waitForFunction(() => document.querySelectorAll('table.events tr[data-event="disconnect"]').length === 5);
    assert.equal(await page.locator('table.events tr[data-event="connect"]').count(), 0);
    const row = await page.locator('table.events tr[data-event="disconnect"]').first().innerText();
    assert.match(row, /web\.example\.com/);
    assert.match(row, /200/);
  });

  it('shows the health page (applies, listeners)', async () => {
    await page.goto(`${url}#/health`);
    await page.locator('table.applies tr', { hasText: 'api' }).waitFor();
    assert.ok(await page.locator('table.listeners tr', { hasText: `127.0.0.1:${appPort}` }).count() === 1);
  });

  it('draws the analytics charts from the traffic so far', async () => {
    // So far: 6 connections through web.example.com (5 held, then closed; 1 still open), so 6 connect events and 5
    // disconnects, each of 4 bytes each way ('ping' echoed). The charts read the real bytime endpoint.
    await page.goto(`${url}#/analytics`);
    for (const id of ['connections', 'bytes', 'statuses']) await page.locator(`[data-chart="${id}"][data-chart-state="ok"] canvas`).waitFor();
    const total = async (id: string): Promise<number> => Number(await page.locator(`[data-chart="${id}"]`).getAttribute('data-total'));
    assert.equal(await total('connections'), 6);
    assert.equal(await total('statuses'), 5);
    assert.equal(await total('bytes'), 5 * 4 * 2);
    assert.ok(Number(await page.locator('[data-chart="connections"]').getAttribute('data-points')) >= 1);
    assert.match(await page.locator('[data-chart="connections"] .u-legend').innerText(), /web\.example\.com/, 'series named by DNS name');
    assert.match(await page.locator('[data-chart="statuses"] .u-legend').innerText(), /disconnect/);
    // The line is on the canvas: pixels of the first series' colour (#2563eb), which only a drawn series has.
    const blue = await page.locator('[data-chart="connections"] canvas').evaluate((c: HTMLCanvasElement) => {
      const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < px.length; i += 4) if (Math.abs(px[i]! - 0x25) + Math.abs(px[i + 1]! - 0x63) + Math.abs(px[i + 2]! - 0xeb) < 60 && px[i + 3]! > 200) n++;
      return n;
    });
    assert.ok(blue > 20, `the series is drawn (${blue} pixels of its colour)`);
  });

  it('fits a phone width: the menu folds and no page scrolls sideways', async () => {
    for (const route of ['apps', 'rules', 'live', 'events', 'health', 'analytics']) {
      await page.setViewportSize(LAPTOP);
      await page.goto(`${url}#/${route}`);
      await page.locator('main.content h2').waitFor();
      assert.ok((await overflow(page)) <= 0, `${route} overflows at laptop width`);
      assert.ok(await page.locator('#nav').isVisible());
      await page.setViewportSize(PHONE);
      assert.ok((await overflow(page)) <= 0, `${route} overflows at phone width`);
      assert.equal(await page.locator('#nav').isVisible(), false, 'the menu is folded on a phone');
    }
    await page.click('.menu-toggle');
    assert.ok(await page.locator('#nav').isVisible());
    await page.setViewportSize(LAPTOP);
  });

  it('says analytics are not available when the endpoint answers 404', async () => {
    // A node without the analytics store answers 404 E_API_ANALYTICS_OFF; the harness has one, so the answer is faked.
    await page.route('**/spectrum/analytics/**', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"success":false,"errors":[{"code":10000,"message":"analytics are off"}],"messages":[],"result":null}' }));
    try {
      await page.goto(`${url}#/analytics`);
      await page.reload();
      await page.locator('[data-chart="connections"][data-chart-state="unavailable"]').waitFor();
      assert.match(await page.locator('[data-chart="connections"]').innerText(), /not available/);
      assert.equal(await page.locator('[data-chart="connections"] canvas').count(), 0, 'nothing drawn');
    } finally {
      await page.unroute('**/spectrum/analytics/**');
    }
  });

  it('logs out (the token leaves sessionStorage)', async () => {
    await page.click('text=Log out');
    await page.locator('#token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('refract.token')), null);
  });
});
