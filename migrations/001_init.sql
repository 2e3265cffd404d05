-- 001_init.sql - the first schema of spinqd's store.
-- Applied once at daemon start (PRAGMA user_version records the last applied
-- migration). Never edit a migration that has landed: add the next number.

-- Tokens for the API and for remote workers; only the sha256 of a token is kept.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer', 'worker')),
    hash        TEXT NOT NULL UNIQUE,          -- hex sha256 of the token
    created_at  REAL NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);

-- A sweep: a base spec plus a grid over spec paths; one run per grid point.
CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    base        TEXT NOT NULL,                 -- the base spec as submitted (JSON)
    grid        TEXT NOT NULL,                 -- {"path": [values], ...} (JSON)
    owner       TEXT NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,
    model            TEXT NOT NULL,
    spec             TEXT NOT NULL,            -- normalized spec, every default filled in (JSON)
    tags             TEXT NOT NULL DEFAULT '[]',
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'canceled')),
    stage            TEXT,                     -- pipeline stage last reported
    reason           TEXT,                     -- why it failed or was re-queued
    owner            TEXT NOT NULL,            -- token name of the submitter
    sweep_id         INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
    worker_id        INTEGER,                  -- worker running it (status running)
    attempts         INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL
);
CREATE INDEX runs_status ON runs(status, id);
CREATE INDEX runs_model ON runs(model, id);
CREATE INDEX runs_sweep ON runs(sweep_id, id);

CREATE TABLE run_tags (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (tag, run_id)
) WITHOUT ROWID;

-- Every metric point a worker reported: loss and lr per step, scores.
CREATE TABLE metrics (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    step    INTEGER NOT NULL,
    value   REAL,
    t       REAL NOT NULL,
    PRIMARY KEY (run_id, key, step)
) WITHOUT ROWID;

-- The latest value of each metric of a run: what listings show and sort by.
CREATE TABLE metrics_latest (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    step    INTEGER NOT NULL,
    value   REAL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX metrics_latest_key ON metrics_latest(key, value);

-- Rotation checkpoints: what a resumed run starts from.
CREATE TABLE checkpoints (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,
    data        BLOB NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    UNIQUE (run_id, step)
);

-- Files a run produced, under the data dir (packed model, results).
CREATE TABLE artifacts (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    path        TEXT NOT NULL,                 -- relative to the data dir
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    UNIQUE (run_id, name)
);

CREATE TABLE workers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('local', 'remote')),
    state       TEXT NOT NULL,                 -- starting, idle, busy, gone
    pid         INTEGER,
    addr        TEXT,
    run_id      INTEGER,
    jobs_done   INTEGER NOT NULL DEFAULT 0,
    restarts    INTEGER NOT NULL DEFAULT 0,
    connected_at REAL,
    last_seen   REAL
);

-- Everything that happened to a run, in order: the source of the SSE streams
-- (an event's id is its SSE id, so Last-Event-ID resumes from here).
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  INTEGER,
    type    TEXT NOT NULL,                     -- run, status, metric, progress, log, checkpoint, artifact
    data    TEXT NOT NULL,                     -- JSON
    t       REAL NOT NULL
);
CREATE INDEX events_run ON events(run_id, id);
