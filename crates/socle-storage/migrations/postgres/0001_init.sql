-- Socle schema v1 (PostgreSQL). Times are epoch milliseconds (UTC), as on
-- SQLite, so both backends share rollup arithmetic and tests.

CREATE TABLE organisations (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    code           TEXT NOT NULL UNIQUE,
    parent_id      TEXT REFERENCES organisations(id),
    population     INTEGER,
    timezone       TEXT NOT NULL,
    retention_days INTEGER,
    created_at     BIGINT NOT NULL
);

-- bbox uses the built-in box type with a GiST index, so no PostGIS is needed.
CREATE TABLE entities (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    location        TEXT,
    bbox            BOX,
    created_at      BIGINT NOT NULL,
    modified_at     BIGINT NOT NULL
);
CREATE INDEX entities_org_type ON entities(organisation_id, type, id);
CREATE INDEX entities_type ON entities(type, id);
CREATE INDEX entities_bbox ON entities USING GIST (bbox);

CREATE TABLE entity_attributes (
    entity_seq  BIGINT NOT NULL REFERENCES entities(seq) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    unit_code   TEXT,
    observed_at BIGINT,
    PRIMARY KEY (entity_seq, name)
);

CREATE TABLE series (
    id         BIGSERIAL PRIMARY KEY,
    entity_seq BIGINT NOT NULL REFERENCES entities(seq) ON DELETE CASCADE,
    attribute  TEXT NOT NULL,
    numeric    BOOLEAN NOT NULL,
    unit_code  TEXT,
    UNIQUE (entity_seq, attribute)
);

CREATE TABLE observations (
    series_id BIGINT NOT NULL,
    t         BIGINT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, t)
);

CREATE TABLE observations_text (
    series_id BIGINT NOT NULL,
    t         BIGINT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (series_id, t)
);

CREATE TABLE rollups_hour (
    series_id BIGINT NOT NULL,
    bucket    BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    sum       DOUBLE PRECISION NOT NULL,
    min       DOUBLE PRECISION NOT NULL,
    max       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, bucket)
);

CREATE TABLE rollups_day (
    series_id BIGINT NOT NULL,
    bucket    BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    sum       DOUBLE PRECISION NOT NULL,
    min       DOUBLE PRECISION NOT NULL,
    max       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, bucket)
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
