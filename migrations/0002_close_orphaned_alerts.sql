-- Before rule changes closed their alerts, deleting or disabling a rule left
-- its open alert firing (or pending) forever. Close those now, once, with a
-- transition each, and clear the disabled rules' memory so that re-enabling
-- one starts afresh. Nothing is notified: these episodes ended long ago.
INSERT INTO alert_transitions (alert_id, from_state, to_state, at, image_id, value, notified)
SELECT a.id, a.state, CASE a.state WHEN 'firing' THEN 'resolved' ELSE 'normal' END,
       CAST(strftime('%s', 'now') AS INTEGER) * 1000, NULL, NULL, 0
FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
WHERE a.state IN ('firing', 'pending') AND (r.deleted_at IS NOT NULL OR r.enabled = 0);

UPDATE alerts
SET state = CASE state WHEN 'firing' THEN 'resolved' ELSE 'normal' END,
    updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE state IN ('firing', 'pending')
  AND rule_id IN (SELECT id FROM alert_rules WHERE deleted_at IS NOT NULL OR enabled = 0);

UPDATE alert_rules
SET state = '{"state":"normal","window":[],"cleanStreak":0,"lastNotifiedAt":null}'
WHERE deleted_at IS NOT NULL OR enabled = 0;
