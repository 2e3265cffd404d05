-- 002_run_counts.sql - runs by status, kept by triggers, so that health,
-- /metrics and unfiltered listings read a total without counting the table.
CREATE TABLE run_counts (
    status  TEXT PRIMARY KEY,
    n       INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO run_counts(status, n)
    SELECT s, (SELECT count(*) FROM runs WHERE status = s)
    FROM (SELECT 'queued' AS s UNION ALL SELECT 'running' UNION ALL SELECT 'done'
          UNION ALL SELECT 'failed' UNION ALL SELECT 'canceled');

CREATE TRIGGER run_counts_insert AFTER INSERT ON runs BEGIN
    UPDATE run_counts SET n = n + 1 WHERE status = NEW.status;
END;
CREATE TRIGGER run_counts_delete AFTER DELETE ON runs BEGIN
    UPDATE run_counts SET n = n - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER run_counts_update AFTER UPDATE OF status ON runs WHEN OLD.status != NEW.status BEGIN
    UPDATE run_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE run_counts SET n = n + 1 WHERE status = NEW.status;
END;
