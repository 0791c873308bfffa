// Every logger is declared here, named by area. Output is one JSON line per
// record on stderr by default; tests pass their own sink.
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type LogSink = (record: { level: Level; area: string; msg: string; [k: string]: unknown }) => void;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const AREAS = ['main', 'http', 'ws', 'db', 'ml', 'jobs', 'alerts', 'webhooks', 'retention'] as const;
export type Area = (typeof AREAS)[number];
export type Loggers = Record<Area, Logger>;

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export const stderrSink: LogSink = (record) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
};

export function createLoggers(sink: LogSink = stderrSink, minLevel: Level = 'info'): Loggers {
  const make = (area: string): Logger => {
    const log = (level: Level) => (msg: string, fields: Record<string, unknown> = {}) => {
      if (ORDER[level] >= ORDER[minLevel]) sink({ level, area, msg, ...fields });
    };
    return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  };
  return Object.fromEntries(AREAS.map((a) => [a, make(a)])) as Loggers;
}

/** Discards everything: for tests that do not look at logs. */
export const silentLoggers = (): Loggers => createLoggers(() => {}, 'error');
