-- A model version's identity (registry.rs): a digest of its ONNX and its
-- transform, so that a retrain reproducing a model byte for byte, whose card
-- names another run, is found as the version already registered. NULL for
-- versions registered before this migration (they match by artifact only).
-- Released: never edit; add a new numbered file instead.
ALTER TABLE models ADD COLUMN identity TEXT;
CREATE INDEX models_by_identity ON models (name, identity);
