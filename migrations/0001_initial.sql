-- latentwatch schema v1. Times are integer milliseconds since the Unix epoch.
-- JSON columns hold small documents validated by the application.

CREATE TABLE api_keys (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  name          TEXT    NOT NULL,
  role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  key_hash      TEXT    NOT NULL UNIQUE,   -- sha256 of the key; the key itself is never stored
  prefix        TEXT    NOT NULL,          -- first characters, to recognise a key in lists
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER,
  revoked_at    INTEGER
);

CREATE TABLE sessions (
  token_hash  TEXT    PRIMARY KEY,
  key_id      INTEGER NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL
);

CREATE TABLE models (
  id          TEXT    PRIMARY KEY,
  dir         TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  input_size  INTEGER NOT NULL,
  channels    INTEGER NOT NULL,
  summary     TEXT    NOT NULL,            -- JSON: options, thresholds, training summary
  active      INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
);
CREATE UNIQUE INDEX models_one_active ON models(active) WHERE active = 1;

CREATE TABLE training_jobs (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  status       TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  options      TEXT    NOT NULL,           -- JSON TrainOptions
  data_dir     TEXT    NOT NULL,           -- directory of the normal images
  source       TEXT    NOT NULL,           -- what the images are, for people
  model_id     TEXT,                       -- the model it produced
  progress     TEXT,                       -- JSON: the latest progress event
  curves       TEXT    NOT NULL DEFAULT '[]', -- JSON: one record per finished epoch
  error        TEXT,
  created_by   INTEGER REFERENCES api_keys(id),
  created_at   INTEGER NOT NULL,
  started_at   INTEGER,
  finished_at  INTEGER
);

CREATE TABLE images (
  id                   INTEGER PRIMARY KEY AUTOINCREMENT,
  received_at          INTEGER NOT NULL,
  source               TEXT    NOT NULL,
  original_name        TEXT    NOT NULL,
  sha256               TEXT    NOT NULL,
  format               TEXT    NOT NULL,
  width                INTEGER NOT NULL,
  height               INTEGER NOT NULL,
  bytes                INTEGER NOT NULL,
  model_id             TEXT    NOT NULL REFERENCES models(id),
  kl                   REAL    NOT NULL,
  recon                REAL    NOT NULL,
  elbo                 REAL    NOT NULL,
  p_kl                 REAL    NOT NULL,
  p_recon              REAL    NOT NULL,
  p_elbo               REAL    NOT NULL,
  p_combined           REAL    NOT NULL,
  pct_kl               REAL    NOT NULL,
  pct_recon            REAL    NOT NULL,
  pct_elbo             REAL    NOT NULL,
  anomaly              INTEGER NOT NULL CHECK (anomaly IN (0, 1)),
  original_path        TEXT    NOT NULL,   -- relative to the data directory
  thumbnail_path       TEXT    NOT NULL,
  reconstruction_path  TEXT    NOT NULL,
  heatmap_path         TEXT    NOT NULL
);
CREATE INDEX images_by_time ON images(received_at, id);
CREATE INDEX images_by_source ON images(source, received_at);
CREATE INDEX images_by_sha ON images(sha256);

CREATE TABLE alert_rules (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  name              TEXT    NOT NULL,
  channel           TEXT    NOT NULL CHECK (channel IN ('kl', 'recon', 'elbo', 'combined')),
  source            TEXT,                  -- NULL: every source
  threshold         TEXT    NOT NULL,      -- JSON Threshold
  pending_k         INTEGER NOT NULL DEFAULT 1,
  pending_n         INTEGER NOT NULL DEFAULT 1,
  recovery          TEXT,                  -- JSON Threshold or NULL
  clear_after       INTEGER NOT NULL DEFAULT 1,
  renotify_seconds  INTEGER,
  enabled           INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  webhook_url       TEXT,
  state             TEXT    NOT NULL,      -- JSON RuleState: the machine's memory
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  deleted_at        INTEGER                -- soft delete keeps alert history readable
);

CREATE TABLE alerts (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  rule_id          INTEGER NOT NULL REFERENCES alert_rules(id),
  state            TEXT    NOT NULL CHECK (state IN ('pending', 'firing', 'resolved', 'normal')),
  started_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  first_image_id   INTEGER REFERENCES images(id) ON DELETE SET NULL,
  last_image_id    INTEGER REFERENCES images(id) ON DELETE SET NULL,
  value            REAL,                   -- the channel value that caused the latest change
  acked_by         INTEGER REFERENCES api_keys(id),
  acked_at         INTEGER
);
CREATE INDEX alerts_by_rule ON alerts(rule_id, id);

CREATE TABLE alert_transitions (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_id    INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  from_state  TEXT    NOT NULL,
  to_state    TEXT    NOT NULL,
  at          INTEGER NOT NULL,
  image_id    INTEGER REFERENCES images(id) ON DELETE SET NULL,
  value       REAL,
  notified    INTEGER NOT NULL CHECK (notified IN (0, 1))
);

CREATE TABLE silences (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  rule_id     INTEGER REFERENCES alert_rules(id),   -- NULL: every rule
  starts_at   INTEGER NOT NULL,
  ends_at     INTEGER NOT NULL,
  reason      TEXT    NOT NULL DEFAULT '',
  created_by  INTEGER REFERENCES api_keys(id),
  created_at  INTEGER NOT NULL
);

-- Everything pushed to dashboards, in order. A socket reconnecting with
-- ?since=<id> is sent the rows after it before live events.
CREATE TABLE events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  at       INTEGER NOT NULL,
  type     TEXT    NOT NULL,
  payload  TEXT    NOT NULL
);

CREATE TABLE audit_log (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  key_id  INTEGER REFERENCES api_keys(id),
  action  TEXT    NOT NULL,
  target  TEXT    NOT NULL,
  detail  TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE settings (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
