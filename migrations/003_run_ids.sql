-- 003_run_ids.sql - run ids are never handed out again, and a run keeps the
-- worker that ran it.
--
-- runs.id was INTEGER PRIMARY KEY, which reuses the largest id once its row
-- is deleted: the next run then inherited the deleted run's stored events
-- (its stream began with `deleted`) and old links pointed at a new run.
-- AUTOINCREMENT needs a rebuilt table (SQLite cannot alter a primary key):
-- the new table is filled with every run, the old one dropped and the new
-- one renamed, then its indexes and the run_counts triggers (002) are made
-- again. The runner applies this with foreign keys off (dropping runs would
-- otherwise cascade into every child table) and checks them before commit.
--
-- worker_name/worker_host: workers are forgotten at each daemon start, so
-- the run remembers who ran it (a local slot on this host, or a remote
-- worker's name and address).
CREATE TABLE runs_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    model            TEXT NOT NULL,
    spec             TEXT NOT NULL,
    tags             TEXT NOT NULL DEFAULT '[]',
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'canceled')),
    stage            TEXT,
    reason           TEXT,
    owner            TEXT NOT NULL,
    sweep_id         INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
    worker_id        INTEGER,                  -- the worker running it, or that ran it last
    attempts         INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    worker_name      TEXT,                     -- that worker's name (local-0, or a remote worker's)
    worker_host      TEXT                      -- and its host (this host's name, or the remote address)
);
INSERT INTO runs_new (id, name, model, spec, tags, status, stage, reason, owner, sweep_id, worker_id, attempts,
                      cancel_requested, created_at, started_at, finished_at)
    SELECT id, name, model, spec, tags, status, stage, reason, owner, sweep_id, worker_id, attempts,
           cancel_requested, created_at, started_at, finished_at
    FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_status ON runs(status, id);
CREATE INDEX runs_model ON runs(model, id);
CREATE INDEX runs_sweep ON runs(sweep_id, id);

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

-- The next id lies past every id ever used: the live runs', and those of
-- deleted runs whose events (kept by design) or other rows remain.
DELETE FROM sqlite_sequence WHERE name = 'runs';
INSERT INTO sqlite_sequence (name, seq) SELECT 'runs', max(
    (SELECT coalesce(max(id), 0) FROM runs),
    (SELECT coalesce(max(run_id), 0) FROM events),
    (SELECT coalesce(max(run_id), 0) FROM metrics),
    (SELECT coalesce(max(run_id), 0) FROM metrics_latest),
    (SELECT coalesce(max(run_id), 0) FROM run_tags),
    (SELECT coalesce(max(run_id), 0) FROM checkpoints),
    (SELECT coalesce(max(run_id), 0) FROM artifacts),
    (SELECT coalesce(max(run_id), 0) FROM workers));
