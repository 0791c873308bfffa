-- Alert instances per source, and a summary of every source.
--
-- A rule for every source used to keep one state machine, so one camera's
-- clean images resolved another camera's firing alert. Now each (rule,
-- source) pair is an instance with its own state machine memory, alerts,
-- acknowledgements and silences, as Grafana evaluates one rule per label set.

-- The machine's memory per instance (was alert_rules.state, one per rule).
CREATE TABLE alert_instances (
  rule_id           INTEGER NOT NULL REFERENCES alert_rules(id),
  source            TEXT    NOT NULL,
  state             TEXT    NOT NULL CHECK (state IN ('normal', 'pending', 'firing', 'resolved')),
  breaches          TEXT    NOT NULL DEFAULT '[]',   -- JSON: breach flags of the last pendingN images
  clean_streak      INTEGER NOT NULL DEFAULT 0,
  last_notified_at  INTEGER,
  PRIMARY KEY (rule_id, source)
);

-- Every alert belongs to one instance. Older alerts take the source of the
-- image that drove their episode: the one behind their latest move into
-- pending or firing, else their first image, else (images deleted by
-- retention) their rule's source. NULL when none is known: a rule for every
-- source whose images are gone (history only: open ones are closed below).
ALTER TABLE alerts ADD COLUMN source TEXT;
UPDATE alerts SET source = COALESCE(
  (SELECT i.source FROM alert_transitions t JOIN images i ON i.id = t.image_id
   WHERE t.alert_id = alerts.id AND t.to_state IN ('pending', 'firing') ORDER BY t.id DESC LIMIT 1),
  (SELECT i.source FROM images i WHERE i.id = alerts.first_image_id),
  (SELECT r.source FROM alert_rules r WHERE r.id = alerts.rule_id));

-- An open alert no source can be named for could never be resolved by an
-- image: close it, with a transition and without notifying, as 0002 did.
INSERT INTO alert_transitions (alert_id, from_state, to_state, at, image_id, value, notified)
SELECT id, state, CASE state WHEN 'firing' THEN 'resolved' ELSE 'normal' END,
       CAST(strftime('%s', 'now') AS INTEGER) * 1000, NULL, NULL, 0
FROM alerts WHERE state IN ('firing', 'pending') AND source IS NULL;
UPDATE alerts
SET state = CASE state WHEN 'firing' THEN 'resolved' ELSE 'normal' END,
    updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE state IN ('firing', 'pending') AND source IS NULL;

-- A rule's memory moves to its instance: a rule for one source keeps it as
-- it was; a rule for every source hands it to the source of its open alert
-- (without the clean streak, which other sources' images may have counted),
-- and forgets it when no alert is open, since its window mixed sources.
INSERT INTO alert_instances (rule_id, source, state, breaches, clean_streak, last_notified_at)
SELECT r.id, r.source, json_extract(r.state, '$.state'), json_extract(r.state, '$.window'),
       json_extract(r.state, '$.cleanStreak'), json_extract(r.state, '$.lastNotifiedAt')
FROM alert_rules r
WHERE r.deleted_at IS NULL AND r.source IS NOT NULL;
INSERT INTO alert_instances (rule_id, source, state, breaches, clean_streak, last_notified_at)
SELECT r.id, a.source, json_extract(r.state, '$.state'), json_extract(r.state, '$.window'),
       0, json_extract(r.state, '$.lastNotifiedAt')
FROM alert_rules r
JOIN alerts a ON a.id = (SELECT MAX(id) FROM alerts WHERE rule_id = r.id AND state IN ('pending', 'firing'))
WHERE r.deleted_at IS NULL AND r.source IS NULL
  AND json_extract(r.state, '$.state') IN ('pending', 'firing');
ALTER TABLE alert_rules DROP COLUMN state;

-- The open alert of an instance, found without reading the rule's history.
CREATE INDEX alerts_open ON alerts(rule_id, source) WHERE state IN ('pending', 'firing');
CREATE INDEX alerts_by_source ON alerts(source, id);

-- A silence may cover one source (of one rule, or of every rule).
ALTER TABLE silences ADD COLUMN source TEXT;   -- NULL: every source

-- Per-source totals of the stored images, kept by triggers in the same
-- statement as every insert and delete (uploads, retention), so that
-- /api/sources answers from a few rows however many days are stored.
CREATE TABLE source_stats (
  source      TEXT    PRIMARY KEY,
  first_seen  INTEGER NOT NULL,   -- received_at of its oldest stored image
  last_seen   INTEGER NOT NULL,   -- and of its newest
  images      INTEGER NOT NULL,
  anomalies   INTEGER NOT NULL
);
INSERT INTO source_stats (source, first_seen, last_seen, images, anomalies)
SELECT source, MIN(received_at), MAX(received_at), COUNT(*), SUM(anomaly) FROM images GROUP BY source;

CREATE TRIGGER source_stats_insert AFTER INSERT ON images BEGIN
  INSERT INTO source_stats (source, first_seen, last_seen, images, anomalies)
  VALUES (NEW.source, NEW.received_at, NEW.received_at, 1, NEW.anomaly)
  ON CONFLICT (source) DO UPDATE SET
    first_seen = MIN(first_seen, excluded.first_seen),
    last_seen = MAX(last_seen, excluded.last_seen),
    images = images + 1,
    anomalies = anomalies + excluded.anomalies;
END;

CREATE TRIGGER source_stats_delete AFTER DELETE ON images BEGIN
  UPDATE source_stats SET
    images = images - 1,
    anomalies = anomalies - OLD.anomaly,
    first_seen = COALESCE((SELECT MIN(received_at) FROM images WHERE source = OLD.source), first_seen),
    last_seen = COALESCE((SELECT MAX(received_at) FROM images WHERE source = OLD.source), last_seen)
  WHERE source = OLD.source;
  DELETE FROM source_stats WHERE source = OLD.source AND images <= 0;
END;

-- Images are never updated today; should one be, its totals follow.
CREATE TRIGGER source_stats_update AFTER UPDATE OF source, received_at, anomaly ON images BEGIN
  UPDATE source_stats SET
    images = images - 1,
    anomalies = anomalies - OLD.anomaly,
    first_seen = COALESCE((SELECT MIN(received_at) FROM images WHERE source = OLD.source), first_seen),
    last_seen = COALESCE((SELECT MAX(received_at) FROM images WHERE source = OLD.source), last_seen)
  WHERE source = OLD.source;
  DELETE FROM source_stats WHERE source = OLD.source AND images <= 0;
  INSERT INTO source_stats (source, first_seen, last_seen, images, anomalies)
  VALUES (NEW.source, NEW.received_at, NEW.received_at, 1, NEW.anomaly)
  ON CONFLICT (source) DO UPDATE SET
    first_seen = MIN(first_seen, excluded.first_seen),
    last_seen = MAX(last_seen, excluded.last_seen),
    images = images + 1,
    anomalies = anomalies + excluded.anomalies;
END;
