-- The request log, owned by request_log.rs: one row per Parquet chunk of
-- logged requests.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE request_logs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    object      TEXT NOT NULL,
    rows        INTEGER NOT NULL,
    first_at    TEXT NOT NULL,
    last_at     TEXT NOT NULL,
    server      TEXT NOT NULL
);
CREATE INDEX request_logs_by_model ON request_logs(name, last_at);
