// One error type for everything a user can get wrong. It carries a stable
// machine-readable code and the HTTP status the API will answer with.

export type ErrorCode =
  | 'bad_request'
  | 'invalid_option'
  | 'not_found'
  | 'empty_file'
  | 'unsupported_image'
  | 'corrupt_image'
  | 'image_too_large'
  | 'not_enough_images'
  | 'model_invalid'
  | 'cancelled'
  | 'unauthorized'
  | 'forbidden'
  | 'no_active_model'
  | 'conflict'
  | 'payload_too_large'
  | 'too_many_requests'
  | 'unavailable';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_option: 400,
  not_found: 404,
  empty_file: 422,
  unsupported_image: 415,
  corrupt_image: 422,
  image_too_large: 413,
  not_enough_images: 422,
  model_invalid: 422,
  cancelled: 409,
  unauthorized: 401,
  forbidden: 403,
  no_active_model: 409,
  conflict: 409,
  payload_too_large: 413,
  too_many_requests: 429,
  unavailable: 503,
};

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
    this.status = STATUS[code];
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/**
 * Whether the client caused it (bad input, bad request): such an error is
 * shown as is. Anything else is the server's and is answered generically.
 */
export function isClientError(err: unknown): err is AppError {
  return err instanceof AppError && err.status < 500;
}

/** Normalises anything thrown into `{code, message}` for output. */
export function errorBody(err: unknown): { code: string; message: string } {
  if (err instanceof AppError) return err.toJSON();
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}
