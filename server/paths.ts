// Where the project's own files are, whether running from dist/ (compiled) or
// from the TypeScript sources (tests).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository root: the nearest ancestor holding migrations/ and package.json. */
export const PROJECT_ROOT = (() => {
  let dir = here;
  while (!(existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'migrations')))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the latentwatch project root above ${here}`);
    dir = parent;
  }
  return dir;
})();

export const MIGRATIONS_DIR = path.join(PROJECT_ROOT, 'migrations');
/** Compiled JavaScript: worker threads need real .js files even under vitest. */
export const DIST_DIR = path.join(PROJECT_ROOT, 'dist');
export const CLIENT_DIR = path.join(PROJECT_ROOT, 'dist', 'client');
