-- Socle schema v1 (SQLite). Times are epoch milliseconds (UTC).

CREATE TABLE organisations (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    code           TEXT NOT NULL UNIQUE,
    parent_id      TEXT REFERENCES organisations(id),
    population     INTEGER,
    timezone       TEXT NOT NULL,
    retention_days INTEGER,
    created_at     INTEGER NOT NULL
);

-- seq is the stable integer key the R*Tree index needs (rowids of a table
-- without INTEGER PRIMARY KEY may change on VACUUM).
CREATE TABLE entities (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    location        TEXT,
    created_at      INTEGER NOT NULL,
    modified_at     INTEGER NOT NULL
);
CREATE INDEX entities_org_type ON entities(organisation_id, type, id);
CREATE INDEX entities_type ON entities(type, id);

CREATE VIRTUAL TABLE entities_bbox USING rtree(seq, min_lon, max_lon, min_lat, max_lat);

-- Current state of each attribute, NGSI-LD shaped (value is JSON).
CREATE TABLE entity_attributes (
    entity_seq  INTEGER NOT NULL REFERENCES entities(seq) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    unit_code   TEXT,
    observed_at INTEGER,
    PRIMARY KEY (entity_seq, name)
) WITHOUT ROWID;

-- One row per (entity, attribute) that has history. numeric = 1 for numbers
-- (observations + rollups), 0 for text (observations_text).
CREATE TABLE series (
    id         INTEGER PRIMARY KEY,
    entity_seq INTEGER NOT NULL REFERENCES entities(seq) ON DELETE CASCADE,
    attribute  TEXT NOT NULL,
    numeric    INTEGER NOT NULL,
    unit_code  TEXT,
    UNIQUE (entity_seq, attribute)
);

-- WITHOUT ROWID clusters points by series then time: a range read is one
-- contiguous B-tree scan, and the key doubles as the duplicate guard.
CREATE TABLE observations (
    series_id INTEGER NOT NULL,
    t         INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (series_id, t)
) WITHOUT ROWID;

CREATE TABLE observations_text (
    series_id INTEGER NOT NULL,
    t         INTEGER NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (series_id, t)
) WITHOUT ROWID;

CREATE TABLE rollups_hour (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

CREATE TABLE rollups_day (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
