// Listing a data folder (Finding 18): a training set assembled from symbolic
// links must list the images the links point to, follow linked directories
// without looping, and say what was left out and why.
import { mkdir, symlink, writeFile, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../server/domain/errors.js';
import { describeSkipped, listImageFiles, listTrainingImages, loadImages, scanImageFiles } from '../../server/ml/dataset.js';
import { tempDir } from '../helpers.js';

const FIXTURES = path.resolve('fixtures/normal');

let dir: string;
let cleanup: () => Promise<void>;
const rel = (files: readonly string[]) => files.map((f) => path.relative(dir, f));

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  // raw/: the real files, in a folder of their own.
  await mkdir(path.join(dir, 'raw', 'more'), { recursive: true });
  await copyFile(path.join(FIXTURES, 'normal_0000.png'), path.join(dir, 'raw', 'a.png'));
  await copyFile(path.join(FIXTURES, 'normal_0001.png'), path.join(dir, 'raw', 'more', 'b.png'));
  await copyFile(path.join(FIXTURES, 'normal_0002.png'), path.join(dir, 'raw', 'blob-0002')); // a content-addressed blob: no extension

  // links/: only symbolic links, the usual way of assembling a training set.
  const links = path.join(dir, 'links');
  await mkdir(links);
  await symlink(path.join(dir, 'raw', 'a.png'), path.join(links, 'one.png')); // absolute link to a file
  await symlink('../raw/blob-0002', path.join(links, 'two.png')); // relative link to a blob, named as an image
  await symlink('../raw/more', path.join(links, 'more')); // link to a directory
  await symlink('../raw/more', path.join(links, 'again')); // the same directory a second time
  await symlink('.', path.join(links, 'self')); // a link back to its own directory: a cycle
  await symlink('loop-b', path.join(links, 'loop-a')); // a chain of links that loops
  await symlink('loop-a', path.join(links, 'loop-b'));
  await symlink('../raw/gone.png', path.join(links, 'gone.png')); // a broken link
  await writeFile(path.join(links, 'notes.txt'), 'not an image');
  await writeFile(path.join(links, '.DS_Store'), 'not an image either');

  // only-junk/: nothing to train on.
  const junk = path.join(dir, 'only-junk');
  await mkdir(junk);
  await writeFile(path.join(junk, 'a.txt'), 'x');
  await writeFile(path.join(junk, 'b.csv'), 'x');
  await symlink('nowhere.png', path.join(junk, 'c.png'));
});
afterAll(() => cleanup());

describe('listing a data folder made of symbolic links', () => {
  it('lists the images that links to files and to directories point to, each directory once', async () => {
    const files = await listImageFiles([path.join(dir, 'links')]);
    expect(rel(files)).toEqual(['links/again/b.png', 'links/one.png', 'links/two.png']);
  });

  it('decodes the linked images', async () => {
    const loaded = await loadImages(await listImageFiles([path.join(dir, 'links')]), { size: 28, channels: 1 });
    expect(loaded.failures).toEqual([]);
    expect(loaded.set.count).toBe(3);
  });

  it('says which entries were skipped and why, without looping on cycles', async () => {
    const { skipped } = await scanImageFiles([path.join(dir, 'links')]);
    expect(skipped.map((s) => [path.relative(dir, s.path), s.reason])).toEqual([
      ['links/.DS_Store', 'not_image'],
      ['links/gone.png', 'broken_link'],
      ['links/loop-a', 'link_cycle'],
      ['links/loop-b', 'link_cycle'],
      ['links/more', 'duplicate_dir'],
      ['links/notes.txt', 'not_image'],
      ['links/self', 'link_cycle'],
    ]);
    expect(describeSkipped(skipped)).toBe('skipped 7: 3 link cycles, 2 not images, 1 broken link, 1 directory already listed');
  });

  it('lists a plain directory as before, with nothing skipped', async () => {
    const listing = await scanImageFiles([path.join(dir, 'raw')]);
    expect(rel(listing.files)).toEqual(['raw/a.png', 'raw/more/b.png']);
    expect(listing.skipped.map((s) => [path.relative(dir, s.path), s.reason])).toEqual([['raw/blob-0002', 'not_image']]);
  });

  it('refuses a folder without images for training and says what it held instead', async () => {
    const junk = path.join(dir, 'only-junk');
    const err = await listTrainingImages(junk, 'datasets/only-junk').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({
      code: 'not_enough_images',
      message: 'datasets/only-junk: no image files found (skipped 3: 2 not images, 1 broken link)',
    });
    expect(describeSkipped([])).toBe('');
  });
});
