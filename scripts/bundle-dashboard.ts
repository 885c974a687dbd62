/**
 * `npm run build` (and so `npm install` in a checkout, and `npm pack`) bundles the dashboard's browser code once into
 * dist/dashboard/app.js and app.css, which an installed package serves: esbuild, preact and uPlot stay development
 * dependencies. A node running from the sources bundles in memory at start instead (src/api/dashboard.ts).
 *
 *   node --import tsx scripts/bundle-dashboard.ts [OUT_DIR]     (default: dist/dashboard/ of this checkout)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDashboard, dashboardEntry } from '../src/api/dashboard.ts';

const out = process.argv[2] ?? fileURLToPath(new URL('../dist/dashboard/', import.meta.url));
const r = await buildDashboard(dashboardEntry());
if (!r.ok) {
  process.stderr.write(`bundle-dashboard: E_DASHBOARD_BUILD: ${r.message}\n`);
  process.exit(1);
}
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'app.js'), r.bundle.js);
writeFileSync(join(out, 'app.css'), r.bundle.css);
process.stdout.write(`bundle-dashboard: ${join(out, 'app.js')} (${r.bundle.js.length} bytes), app.css (${r.bundle.css.length} bytes)\n`);
