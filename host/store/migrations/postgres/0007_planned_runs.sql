-- Runs an engine drives (a Kubeflow Pipelines task per step, each a fresh
-- `sluice step exec` process), owned by pipeline/src/execute/package.rs:
-- each run's plan (JSON: the spec's text, each component's digest and
-- manifest, the models resolved, the run's options), by its digest, kept
-- here rather than in the object store so that a task whose step is
-- cached needs nothing but the database; and the digest of its plan on
-- the run. No process holds such a run, so recovery leaves it alone;
-- `sluice runs finish` ends it.
-- The PostgreSQL twin of sqlite/0007_planned_runs.sql.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE run_plans (
    digest TEXT COLLATE "C" PRIMARY KEY,
    plan   TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN plan TEXT COLLATE "C";
