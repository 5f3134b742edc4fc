-- Rollouts, owned by rollout.rs: a candidate version taking a growing
-- share of an alias's traffic stage by stage, decided from the serving
-- windows, until it is promoted (the alias moves) or rolled back (its
-- share goes to 0). Servers follow the running row; each stage is decided
-- once (UNIQUE), whoever decides it.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE rollouts (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    alias            TEXT NOT NULL,
    baseline         INTEGER NOT NULL,
    candidate        INTEGER NOT NULL,
    plan             TEXT NOT NULL,
    stage            INTEGER NOT NULL,
    share            REAL NOT NULL,
    state            TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    stage_started_at TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    who              TEXT NOT NULL,
    reason           TEXT NOT NULL
);
CREATE UNIQUE INDEX rollouts_one_running ON rollouts(name, alias) WHERE state = 'running';
CREATE TABLE rollout_decisions (
    id         INTEGER PRIMARY KEY,
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    stage      INTEGER NOT NULL,
    at         TEXT NOT NULL,
    decision   TEXT NOT NULL,
    evidence   TEXT NOT NULL,
    holder     TEXT NOT NULL,
    UNIQUE (rollout_id, stage)
);
