-- Serving statistics, owned by serving_stats.rs: one row per window of
-- requests a model server answered for one model version, under one
-- reference and role. Counts and fixed-bucket latency histograms add, so
-- the windows of many servers sum exactly.
-- `reference` is what the server was asked to serve (NAME@ALIAS, NAME:VERSION
-- or NAME); `role` is `primary` or `canary`; `latency_counts` is a JSON array
-- of counts per bucket of serving_stats::LATENCY_BUCKETS_MS, then one for
-- slower requests.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE serving_stats (
    id              INTEGER PRIMARY KEY,
    server          TEXT NOT NULL,
    name            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    reference       TEXT NOT NULL,
    role            TEXT NOT NULL,
    window_start    TEXT NOT NULL,
    window_end      TEXT NOT NULL,
    requests        INTEGER NOT NULL,
    errors_4xx      INTEGER NOT NULL,
    errors_5xx      INTEGER NOT NULL,
    latency_counts  TEXT NOT NULL,
    latency_sum_ms  REAL NOT NULL
);
CREATE INDEX serving_stats_by_version ON serving_stats(name, version, window_end);
