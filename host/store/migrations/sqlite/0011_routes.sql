-- The route whose traffic a serving window or a chunk of logged requests
-- belongs to, owned by serving_stats.rs and request_log.rs: the reference
-- the server's route serves as its primary (NAME@ALIAS as `sluice serve
-- --model` named it), for every role. A canary's own reference names what
-- it serves (NAME@OTHER or NAME:VERSION), not the alias whose requests it
-- took a share of; this does, so an A/B report or a rollout of
-- NAME@production counts the canary of production's servers only, not one
-- splitting NAME@staging's traffic elsewhere. '' in rows written before
-- this column, and in logs ingested from a device (no route known).
-- Released: never edit; add a new numbered file instead.
ALTER TABLE serving_stats ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE request_logs ADD COLUMN route TEXT NOT NULL DEFAULT '';
