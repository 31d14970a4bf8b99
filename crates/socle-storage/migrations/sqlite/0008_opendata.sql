-- Open data: datasets (metadata and field schema as JSON documents that
-- socle-opendata validates), their records as JSON rows in a stable order with
-- a stable record id, attachments as blobs, and usage counters per dataset
-- (counts only: no address, no user, no time of access).

CREATE TABLE datasets (
    id              TEXT PRIMARY KEY,             -- the slug: chosen once, never changes
    uid             TEXT NOT NULL UNIQUE,         -- Opendatasoft's dataset_uid (da_…)
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    visibility      TEXT NOT NULL,                -- private | internal | partners | public
    shared_with     TEXT NOT NULL DEFAULT '[]',   -- JSON: organisations a `partners` dataset is shared with
    metadata        TEXT NOT NULL,                -- JSON: title, description, themes, licence…
    fields          TEXT NOT NULL,                -- JSON: the field schema
    records_count   INTEGER NOT NULL DEFAULT 0,
    data_modified_at INTEGER,
    created_at      INTEGER NOT NULL,
    modified_at     INTEGER NOT NULL
);
CREATE INDEX datasets_organisation ON datasets(organisation_id);

CREATE TABLE dataset_records (
    dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    row_number INTEGER NOT NULL,                     -- order of the source file
    record_id  TEXT NOT NULL,                     -- stable across re-uploads of the same row
    data       TEXT NOT NULL,                     -- JSON object: field → value
    PRIMARY KEY (dataset_id, row_number)
);
CREATE UNIQUE INDEX dataset_records_id ON dataset_records(dataset_id, record_id);

CREATE TABLE dataset_attachments (
    dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    title      TEXT NOT NULL,
    media_type TEXT NOT NULL,
    content    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, name)
);

CREATE TABLE dataset_usage (
    dataset_id TEXT PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
    views      INTEGER NOT NULL DEFAULT 0,
    downloads  INTEGER NOT NULL DEFAULT 0,
    api_calls  INTEGER NOT NULL DEFAULT 0
);
