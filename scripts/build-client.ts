// Bundles the dashboard (client/src, Chart.js included) into dist/client with
// esbuild, next to its index.html and styles.css. The server serves dist/client.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';

const out = path.resolve('dist/client');
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: ['client/src/main.ts'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outfile: path.join(out, 'app.js'),
  logLevel: 'warning',
  metafile: true,
});
for (const f of ['index.html', 'styles.css']) await copyFile(path.join('client', f), path.join(out, f));
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
console.log(`client built into ${path.relative(process.cwd(), out)} (${Math.round(bytes / 1024)} KiB)`);
