// Streaming multipart parsing with hard limits (busboy): every file is held in
// memory only up to the per-file limit; past it, or past the file count, the
// whole request is refused with 413 and nothing is stored.
import busboy from 'busboy';
import type { Request } from 'express';
import { AppError } from '../domain/errors.js';
import type { Upload } from '../services/scoring.js';

export interface UploadLimits {
  maxFileBytes: number;
  maxFiles: number;
  /** The form field carrying files. */
  field: string;
}

export interface ParsedUpload {
  files: Upload[];
  fields: Record<string, string>;
}

export function parseMultipart(req: Request, limits: UploadLimits): Promise<ParsedUpload> {
  const type = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(type)) {
    return Promise.reject(new AppError('bad_request', `send images as multipart/form-data in the "${limits.field}" field (got ${type || 'no content type'})`));
  }
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fields: 50, fieldSize: 64 * 1024 } });
    } catch (err) {
      reject(new AppError('bad_request', `malformed multipart request: ${(err as Error).message}`));
      return;
    }
    const files: Upload[] = [];
    const fields: Record<string, string> = {};
    let failed: AppError | null = null;
    const fail = (e: AppError) => {
      if (!failed) failed = e;
    };
    bb.on('file', (name, stream, info) => {
      if (name !== limits.field) {
        stream.resume();
        fail(new AppError('bad_request', `unexpected file field "${name}"; send images in "${limits.field}"`));
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(new AppError('payload_too_large', `${info.filename}: larger than the ${Math.round(limits.maxFileBytes / 1024 / 1024)} MB limit per file`)));
      stream.on('close', () => {
        if (!failed) files.push({ name: info.filename || `upload-${files.length + 1}`, bytes: Buffer.concat(chunks) });
      });
    });
    bb.on('field', (name, value) => {
      fields[name] = value;
    });
    bb.on('filesLimit', () => fail(new AppError('payload_too_large', `too many files: at most ${limits.maxFiles} per request`)));
    bb.on('error', (err) => reject(new AppError('bad_request', `malformed multipart request: ${(err as Error).message}`)));
    bb.on('close', () => {
      if (failed) reject(failed);
      else resolve({ files, fields });
    });
    req.pipe(bb);
  });
}
