// /api/images: upload and score, list, detail, stored files.
import { Router } from 'express';
import type { Context } from '../../context.js';
import { AppError } from '../../domain/errors.js';
import { getImage, listImages } from '../../db/images.js';
import { writeImagesCsv } from '../../services/image-export.js';
import { imageView } from '../../services/scoring.js';
import { requireRole } from '../auth.js';
import { boolParam, idParam, intParam, strParam, timeParam } from '../params.js';
import { parseMultipart } from '../uploads.js';

/** attachment; with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987). */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** ?format=csv|json decides; without it, an Accept header asking for CSV does. */
function wantsCsv(format: string | undefined, accept: string | undefined): boolean {
  if (format !== undefined && format !== '') {
    if (format !== 'csv' && format !== 'json') throw new AppError('bad_request', `format must be csv or json, got ${JSON.stringify(format)}`);
    return format === 'csv';
  }
  return /(^|,)\s*text\/csv/i.test(accept ?? '');
}

const FILES = { original: 'original_path', thumbnail: 'thumbnail_path', reconstruction: 'reconstruction_path', heatmap: 'heatmap_path' } as const;

export function imagesRouter(ctx: Context): Router {
  const r = Router();

  r.post('/', requireRole('operator'), async (req, res) => {
    const { files, fields } = await parseMultipart(req, { field: 'images', maxFileBytes: ctx.config.maxUploadBytes, maxFiles: ctx.config.maxUploadFiles, maxTotalBytes: ctx.config.maxRequestBytes });
    if (files.length === 0) throw new AppError('bad_request', 'no images: send one or more files in the multipart field "images"');
    const source = strParam(fields.source, 'source', { max: 100, optional: true }) ?? 'default';
    const results = await ctx.scoring.scoreUploads(files, source);
    const errors = results.flatMap((x) => ('error' in x ? [x.error] : []));
    if (errors.length === results.length) {
      // Nothing scored: the request as a whole was bad, as the first file's error says.
      res.status(errors[0].status).json({ error: errors[0], results });
      return;
    }
    res.status(201).json({ results });
  });

  r.get('/', requireRole('viewer'), async (req, res) => {
    const q = req.query as Record<string, string | undefined>;
    const filter = {
      since: timeParam(q.since, 'since'),
      until: timeParam(q.until, 'until'),
      source: strParam(q.source, 'source', { max: 100, optional: true }),
      anomalous: boolParam(q.anomalous, 'anomalous', false),
      name: strParam(q.name, 'name', { max: 200, optional: true }),
    };
    if (wantsCsv(q.format, req.get('accept'))) {
      // The whole filtered history, streamed: no limit or cursor applies.
      res.status(200).type('text/csv; charset=utf-8');
      res.setHeader('Content-Disposition', contentDisposition('latentwatch-images.csv'));
      const aborted = new AbortController();
      res.on('close', () => aborted.abort());
      try {
        await writeImagesCsv(ctx.db, filter, res, aborted.signal);
        res.end();
      } catch (err) {
        if (aborted.signal.aborted) return; // the client went away; nothing to answer
        // Headers are sent: the only honest signal left is a cut-off body.
        ctx.log.http.error('CSV export failed', { err: String((err as Error)?.stack ?? err) });
        res.destroy();
      }
      return;
    }
    const limit = intParam(q.limit, 'limit', { min: 1, max: 500, fallback: 50 });
    const rows = listImages(ctx.db, { ...filter, before: q.cursor === undefined ? undefined : intParam(q.cursor, 'cursor', { min: 1 }), limit });
    res.json({ images: rows.map(imageView), nextCursor: rows.length === limit ? rows[rows.length - 1].id : null });
  });

  r.get('/:id', requireRole('viewer'), (req, res) => {
    const row = getImage(ctx.db, idParam(req.params.id, 'image id'));
    if (!row) throw new AppError('not_found', `no image ${req.params.id}`);
    res.json(imageView(row));
  });

  r.get('/:id/:file', requireRole('viewer'), (req, res, next) => {
    const kind = req.params.file as keyof typeof FILES;
    if (!Object.hasOwn(FILES, kind)) throw new AppError('not_found', `no such image file "${req.params.file}"; use original, thumbnail, reconstruction or heatmap`);
    const row = getImage(ctx.db, idParam(req.params.id, 'image id'));
    if (!row) throw new AppError('not_found', `no image ${req.params.id}`);
    res.setHeader('cache-control', 'private, max-age=31536000, immutable'); // content-addressed
    if (kind === 'original') {
      // An original is the uploader's bytes: never rendered as a page of this origin.
      res.setHeader('content-disposition', contentDisposition(row.original_name));
      res.setHeader('content-security-policy', "default-src 'none'; sandbox");
    }
    res.sendFile(ctx.files.absolute(row[FILES[kind]]), (err) => {
      if (err && !res.headersSent) next(new AppError('not_found', `the ${kind} file of image ${row.id} is gone`));
    });
  });

  return r;
}
