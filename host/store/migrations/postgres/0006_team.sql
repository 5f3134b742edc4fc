-- The team store, owned by lease.rs: leases (a run's liveness, a cache
-- key being computed) that expire unless their holder renews them, on the
-- database's clock, so that machines sharing a store need no file locks;
-- who started each run; and the objects gc found unreferenced (gc.rs),
-- since when on the database's clock.
-- The PostgreSQL twin of sqlite/0006_team.sql.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE leases (
    name        TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT COLLATE "C" NOT NULL,
    expires_ms  BIGINT NOT NULL,
    acquired_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX leases_by_holder ON leases(holder);
-- Who started a run: SLUICE_USER, else user@host.
ALTER TABLE runs ADD COLUMN started_by TEXT COLLATE "C";
-- An unreferenced object, since when (ms, database clock): on a store
-- machines share, gc's grace period runs from here, not from the object's
-- timestamp (another machine's clock, or the bucket's).
CREATE TABLE gc_marks (
    digest        TEXT COLLATE "C" PRIMARY KEY,
    first_seen_ms BIGINT NOT NULL
);
