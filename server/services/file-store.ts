// Image files under the data directory, addressed by content hash, so the
// same upload twice is stored once. Paths in the database are relative.
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile, access } from 'node:fs/promises';
import path from 'node:path';

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class FileStore {
  constructor(readonly root: string) {}

  absolute(rel: string): string {
    const abs = path.resolve(this.root, rel);
    if (!abs.startsWith(path.resolve(this.root) + path.sep)) throw new Error(`path escapes the data directory: ${rel}`);
    return abs;
  }

  /** Writes once (content-addressed names never change content); returns the relative path. */
  async put(rel: string, bytes: Uint8Array): Promise<string> {
    const abs = this.absolute(rel);
    try {
      await access(abs);
      return rel;
    } catch {
      // not there yet
    }
    await mkdir(path.dirname(abs), { recursive: true });
    const tmp = `${abs}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, abs);
    return rel;
  }

  async remove(rel: string): Promise<void> {
    await rm(this.absolute(rel), { force: true });
  }
}

/** images/ab/abcdef….png for originals; derived/ab/<sha>-<suffix>.png for the rest. */
export function originalPath(hash: string, format: string): string {
  const ext = format.replace(/[^a-z0-9]/gi, '').toLowerCase() || 'bin';
  return path.join('images', hash.slice(0, 2), `${hash}.${ext}`);
}

export function derivedPath(hash: string, suffix: string): string {
  return path.join('derived', hash.slice(0, 2), `${hash}-${suffix.replace(/[^a-zA-Z0-9_.-]/g, '_')}.png`);
}
