-- The model registry, owned by registry.rs: models, aliases and the
-- history of every alias move.
-- Released: never edit; add a new numbered file instead.
CREATE TABLE models (
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    artifact     TEXT NOT NULL REFERENCES artifacts(digest),
    metrics      TEXT NOT NULL,
    run_id       TEXT REFERENCES runs(id),
    execution_id INTEGER REFERENCES executions(id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, artifact)
);
CREATE TABLE model_aliases (
    name     TEXT NOT NULL,
    alias    TEXT NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES models(name, version)
);
CREATE TABLE alias_history (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    alias     TEXT NOT NULL,
    version   INTEGER NOT NULL,
    previous  INTEGER,
    at        TEXT NOT NULL,
    who       TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX alias_history_by_alias ON alias_history(name, alias, id);
