// Streaming multipart parsing with hard limits (busboy). Two ways to receive
// files: in memory (scoring uploads, bounded per file and per request) or
// streamed into a directory (training uploads, which can be thousands of
// large files and must never sit in memory). Any failure — a limit, a
// malformed or truncated body, a disk error — rejects the whole request,
// stops reading it and keeps nothing.
import { createWriteStream, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import type { Request } from 'express';
import { AppError } from '../domain/errors.js';

export interface UploadLimits {
  /** The form field carrying files. */
  field: string;
  maxFileBytes: number;
  maxFiles: number;
  /** All files of the request together. */
  maxTotalBytes: number;
}

export interface MemoryFile {
  name: string;
  bytes: Buffer;
}

export interface DiskFile {
  /** The name the client gave (never used to build a path). */
  name: string;
  path: string;
  bytes: number;
}

export interface ParsedUpload<F> {
  files: F[];
  fields: Record<string, string>;
}

/**
 * Errors of our own side (a disk write failing) that reach a file stream:
 * they must become a 500, not a 400 blaming the client's body.
 */
const serverSide = new WeakSet<object>();

/**
 * Ends a file stream we stop reading. With an error, so that whatever
 * consumes it (a pipeline to disk) settles instead of waiting for an end
 * that will never come.
 */
function stop(stream: Readable): void {
  stream.destroy(new Error('upload stopped'));
}

const mb = (n: number) => `${Math.round((n / 1024 / 1024) * 10) / 10} MB`;

/**
 * Receives each file with `receive`, which must consume the stream and may
 * throw an AppError. Resolves when the body has been read and every file is
 * received; rejects on the first failure.
 */
function parse<F>(
  req: Request,
  limits: UploadLimits,
  receive: (stream: Readable, name: string, index: number) => Promise<F>,
): Promise<ParsedUpload<F>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(type)) {
    return Promise.reject(new AppError('bad_request', `send images as multipart/form-data in the "${limits.field}" field (got ${type || 'no content type'})`));
  }
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        // File names are UTF-8 in every browser and in curl; busboy assumes latin1.
        defParamCharset: 'utf8',
        limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fields: 50, fieldSize: 64 * 1024 },
      });
    } catch (err) {
      reject(new AppError('bad_request', `malformed multipart request: ${(err as Error).message}`));
      return;
    }
    const received: Promise<F>[] = [];
    const fields: Record<string, string> = {};
    const open = new Set<Readable>();
    let total = 0;
    let settled = false;

    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      // Stop parsing, but drain what the client still sends so it reads our answer.
      req.unpipe(bb);
      req.resume();
      bb.removeAllListeners();
      bb.on('error', () => {}); // late parser errors have nowhere to go
      for (const s of open) stop(s);
      // Let receivers that are still writing see their streams end, then report.
      void Promise.allSettled(received).then(() => reject(err));
    };

    bb.on('file', (name, stream, info) => {
      // Without a listener a stream error (a truncated body) would crash the process.
      stream.on('error', (err) => fail(serverSide.has(err) ? err : new AppError('bad_request', `malformed multipart request: ${err.message}`)));
      if (name !== limits.field) {
        stream.resume();
        fail(new AppError('bad_request', `unexpected file field "${name}"; send images in "${limits.field}"`));
        return;
      }
      const fileName = info.filename || `upload-${received.length + 1}`;
      open.add(stream);
      stream.on('close', () => open.delete(stream));
      stream.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > limits.maxTotalBytes) {
          fail(new AppError('payload_too_large', `the request is larger than the ${mb(limits.maxTotalBytes)} limit per request; send fewer or smaller files per request`));
          stop(stream);
        }
      });
      stream.on('limit', () => {
        fail(new AppError('payload_too_large', `${fileName}: larger than the ${mb(limits.maxFileBytes)} limit per file`));
        stop(stream);
      });
      const p = receive(stream, fileName, received.length);
      p.catch(fail);
      received.push(p);
    });
    bb.on('field', (name, value) => {
      fields[name] = value;
    });
    bb.on('filesLimit', () => fail(new AppError('payload_too_large', `too many files: at most ${limits.maxFiles} per request`)));
    bb.on('error', (err) => fail(new AppError('bad_request', `malformed multipart request: ${(err as Error).message}`)));
    bb.on('close', () => {
      void Promise.all(received).then(
        (files) => {
          if (settled) return;
          settled = true;
          resolve({ files, fields });
        },
        fail,
      );
    });
    req.on('error', (err) => fail(new AppError('bad_request', `the request body was cut off: ${err.message}`)));
    req.on('aborted', () => fail(new AppError('bad_request', 'the request body was cut off')));
    req.pipe(bb);
  });
}

/** Files held in memory: for scoring uploads, bounded by maxTotalBytes per request. */
export function parseMultipart(req: Request, limits: UploadLimits): Promise<ParsedUpload<MemoryFile>> {
  return parse(req, limits, async (stream, name) => {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    if ((stream as Readable & { truncated?: boolean }).truncated) throw new AppError('payload_too_large', `${name}: larger than the ${mb(limits.maxFileBytes)} limit per file`);
    return { name, bytes: Buffer.concat(chunks) };
  });
}

/**
 * Files streamed into `dir` (created here) as 00000.ext, 00001.ext, …; an
 * upload's own name never becomes a path. On failure the directory is removed.
 */
export async function parseMultipartToDir(
  req: Request,
  limits: UploadLimits,
  dir: string,
  extensionOf: (name: string) => string,
): Promise<ParsedUpload<DiskFile>> {
  // Synchronously: listeners for an aborted request are attached in parse, with no await before it.
  mkdirSync(dir, { recursive: true });
  try {
    return await parse(req, limits, async (stream, name, index) => {
      const file = path.join(dir, `${String(index).padStart(5, '0')}${extensionOf(name)}`);
      let bytes = 0;
      stream.on('data', (c: Buffer) => (bytes += c.length));
      const out = createWriteStream(file);
      // Registered before pipeline's own listener: the error is marked ours before it reaches the upload stream.
      out.on('error', (err) => serverSide.add(err));
      try {
        await pipeline(stream, out);
      } catch (err) {
        if (err instanceof AppError || serverSide.has(err as object)) throw err;
        // The client's side: a body cut off, or a stream we stopped (parse reports why).
        throw new AppError('bad_request', 'the request body was cut off');
      }
      return { name, path: file, bytes };
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
