-- Promotion gates, owned by promotion.rs: each model's promotion policy
-- (JSON: the environments in order and what a move into each requires),
-- and, on every alias move, whether gates were overridden and what they
-- said at the time.
-- The PostgreSQL twin of sqlite/0008_promotion.sql.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE promotion_policies (
    name       TEXT COLLATE "C" PRIMARY KEY,
    policy     TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    who        TEXT COLLATE "C" NOT NULL
);
ALTER TABLE alias_history ADD COLUMN forced BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alias_history ADD COLUMN gates TEXT COLLATE "C";
