// Drives Debian's chromium (headless, through playwright-core) over a relay's pages and prints
// what it saw as one JSON document on stdout; relay/tests/relay/browser.rs starts the relay,
// puts traffic on it, runs this script and asserts on the result. Screenshots go to the
// artifacts directory.
//
// usage: node pages.mjs <relay base URL> <artifacts dir>
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, artifacts] = process.argv.slice(2);
if (!base || !artifacts) {
  console.error('usage: node pages.mjs <relay base URL> <artifacts dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.WIRE_CHROMIUM || '/usr/bin/chromium';
const origin = new URL(base).origin;
const loopback = (u) => {
  try {
    const h = new URL(u).hostname;
    return h === '127.0.0.1' || h === 'localhost' || h === '[::1]';
  } catch {
    return false;
  }
};

const out = { requests: [], blocked: [], console: [], pageErrors: [], failed: [], screenshots: [] };
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--disable-features=Translate,OptimizationHints,MediaRouter',
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  // Every request the pages make is recorded; anything not on loopback is refused.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || loopback(url)) return route.continue();
    out.blocked.push(url);
    return route.abort('blockedbyclient');
  });
  context.on('request', (r) => out.requests.push(r.url()));
  context.on('requestfailed', (r) => out.failed.push({ url: r.url(), error: r.failure()?.errorText }));
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') out.console.push({ type: m.type(), text: m.text(), url: page.url() });
  });
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  const shot = async (name, opts = {}) => {
    const path = join(artifacts, name);
    await page.screenshot({ path, fullPage: true, ...opts });
    out.screenshots.push(path);
  };

  // Landing page.
  await page.goto(base + '/', { waitUntil: 'load' });
  out.landing = await page.evaluate(() => ({
    title: document.title,
    h1: document.querySelector('h1')?.textContent,
    commands: document.querySelector('pre.cmd')?.textContent,
    limits: [...document.querySelectorAll('#limits tr')].map((r) => r.textContent),
    links: [...document.querySelectorAll('a')].map((a) => a.getAttribute('href')),
  }));
  await shot('landing.png');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('landing-phone.png');
  out.landing.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  await page.setViewportSize({ width: 1100, height: 900 });

  // Stats: charts drawn from /stats/history.json, refreshed in place.
  const readCharts = () =>
    page.evaluate(() => ({
      generated: Number(document.body.dataset.generated),
      range: document.body.dataset.range,
      charts: [...document.querySelectorAll('figure.chart')].map((f) => {
        const svg = f.querySelector('svg');
        return {
          id: f.dataset.chart,
          caption: f.querySelector('figcaption').textContent,
          x0: Number(svg.dataset.x0),
          x1: Number(svg.dataset.x1),
          yMax: Number(svg.dataset.yMax),
          viewBox: svg.getAttribute('viewBox'),
          texts: [...svg.querySelectorAll('text')].map((t) => ({ cls: t.getAttribute('class'), text: t.textContent })),
          series: [...svg.querySelectorAll('g.series')].map((g) => ({
            key: g.dataset.series,
            hasPath: !!g.querySelector('path'),
            points: [...g.querySelectorAll('circle.pt')].map((c) => ({
              t: Number(c.dataset.t),
              v: Number(c.dataset.v),
              cx: Number(c.getAttribute('cx')),
              cy: Number(c.getAttribute('cy')),
            })),
          })),
        };
      }),
    }));
  const fetchHistory = () => page.evaluate(async () => (await fetch('/stats/history.json', { cache: 'no-store' })).json());
  await page.goto(base + '/stats', { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.generated && document.querySelectorAll('figure.chart svg').length === 6);
  await page.evaluate(() => { window.__sameDocument = true; });
  const hourDom = await readCharts();
  const hourJson = await fetchHistory();
  await shot('stats.png');
  // Wait for the page to refresh itself.
  const before = hourDom.generated;
  await page.waitForFunction((g) => Number(document.body.dataset.generated) > g, before, { timeout: 30000 });
  const afterRefresh = await readCharts();
  const afterJson = await fetchHistory();
  const sameDocument = await page.evaluate(() => window.__sameDocument === true);
  await page.click('button[data-range="day"]');
  await page.waitForFunction(() => document.body.dataset.range === 'day');
  const dayDom = await readCharts();
  const dayJson = await fetchHistory();
  await shot('stats-day.png');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot('stats-dark.png');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('stats-phone.png');
  const statsPhoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  await page.setViewportSize({ width: 1100, height: 900 });
  await page.emulateMedia({ colorScheme: 'light' });
  out.stats = { hourDom, hourJson, afterRefresh, afterJson, sameDocument, dayDom, dayJson, phoneOverflow: statsPhoneOverflow };

  // Phonebook: the listed handles, then a search.
  const readBook = () =>
    page.evaluate(() => ({
      url: location.href,
      entries: [...document.querySelectorAll('li.entry')].map((li) => ({
        handle: li.dataset.handle,
        profile: li.querySelector('.profile').textContent,
        nickname: li.querySelector('.nickname').textContent,
        emoji: li.querySelector('.emoji').textContent,
        fill: li.querySelector('svg.swatch circle').getAttribute('fill'),
        elements: [...li.querySelectorAll('*')].map((e) => e.localName),
      })),
      empty: document.querySelector('#empty')?.textContent ?? null,
      injected: typeof window.__pwned !== 'undefined',
    }));
  await page.goto(base + '/phonebook', { waitUntil: 'load' });
  const all = await readBook();
  await shot('phonebook.png');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('phonebook-phone.png');
  const bookPhoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  await page.setViewportSize({ width: 1100, height: 900 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot('phonebook-dark.png');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.fill('input[name="q"]', process.env.WIRE_SEARCH || 'garden');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.press('input[name="q"]', 'Enter')]);
  const search = await readBook();
  await shot('phonebook-search.png');
  await page.fill('input[name="q"]', 'nobody-by-this-name');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('form.search button')]);
  const none = await readBook();
  out.phonebook = { all, search, none, phoneOverflow: bookPhoneOverflow };
  out.origin = origin;
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
