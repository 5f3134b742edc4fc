-- Core tables, owned by metadata.rs: components, artifacts, runs,
-- executions, events, imports.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE components (
    digest      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    first_seen  TEXT NOT NULL
);
CREATE TABLE artifacts (
    digest      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    pipeline     TEXT NOT NULL,
    spec_path    TEXT NOT NULL,
    spec_digest  TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    state        TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    ended_at     TEXT,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    resumed_from TEXT REFERENCES runs(id)
);
CREATE INDEX runs_by_pipeline ON runs(pipeline, started_at);
CREATE TABLE executions (
    id               INTEGER PRIMARY KEY,
    run_id           TEXT NOT NULL REFERENCES runs(id),
    step             TEXT NOT NULL,
    component        TEXT NOT NULL,
    component_digest TEXT NOT NULL,
    cache_key        TEXT NOT NULL,
    key_parts        TEXT NOT NULL,
    params           TEXT NOT NULL,
    state            TEXT NOT NULL,
    cached_from      INTEGER REFERENCES executions(id),
    started_at       TEXT NOT NULL,
    ended_at         TEXT,
    duration_ms      REAL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    failure          TEXT,
    metrics          TEXT,
    report           TEXT,
    host             TEXT NOT NULL,
    UNIQUE (run_id, step)
);
CREATE INDEX executions_by_key ON executions(cache_key, state);
CREATE INDEX executions_by_step ON executions(step, id);
CREATE TABLE events (
    execution_id INTEGER NOT NULL REFERENCES executions(id),
    direction    TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    port         TEXT NOT NULL,
    artifact     TEXT NOT NULL REFERENCES artifacts(digest),
    source       TEXT,
    PRIMARY KEY (execution_id, direction, port)
);
CREATE INDEX events_by_artifact ON events(artifact, direction);
CREATE TABLE imports (
    run_id    TEXT NOT NULL REFERENCES runs(id),
    name      TEXT NOT NULL,
    path      TEXT NOT NULL,
    artifact  TEXT NOT NULL REFERENCES artifacts(digest),
    PRIMARY KEY (run_id, name)
);
