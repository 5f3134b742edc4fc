-- Promotion gates, owned by promotion.rs: each model's promotion policy
-- (JSON: the environments in order and what a move into each requires),
-- and, on every alias move, whether gates were overridden and what they
-- said at the time.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE promotion_policies (
    name       TEXT PRIMARY KEY,
    policy     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    who        TEXT NOT NULL
);
ALTER TABLE alias_history ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alias_history ADD COLUMN gates TEXT;
