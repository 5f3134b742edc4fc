-- The watcher, owned by watch_state.rs: what each trigger consumed, and
-- an index to find runs by trigger.
-- The PostgreSQL twin of sqlite/0004_watch_state.sql: the same tables, columns and
-- version number; integers are BIGINT, text compares byte-wise (COLLATE "C",
-- as SQLite does), and row ids are identity columns.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE watch_state (
    pipeline    TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (pipeline, key)
);
CREATE INDEX runs_by_trigger ON runs(pipeline, trigger);
