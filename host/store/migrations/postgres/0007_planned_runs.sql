-- Runs an engine drives (a Kubeflow Pipelines task per step, each a fresh
-- `sluice step exec` process): the digest of the run's stored plan
-- (pipeline/src/execute/package.rs). No process holds such a run, so
-- recovery leaves it alone; `sluice runs finish` ends it.
-- The PostgreSQL twin of sqlite/0007_planned_runs.sql.
-- Released: never edit; add a new numbered file instead.
ALTER TABLE runs ADD COLUMN plan TEXT COLLATE "C";
