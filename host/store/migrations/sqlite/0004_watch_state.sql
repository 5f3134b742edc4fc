-- The watcher, owned by watch_state.rs: what each trigger consumed, and
-- an index to find runs by trigger.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE watch_state (
    pipeline    TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (pipeline, key)
);
CREATE INDEX runs_by_trigger ON runs(pipeline, trigger);
