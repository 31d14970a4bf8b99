-- IoT ingestion: devices with their mappings and health, the frames already
-- stored (so each radio frame is stored once, across retries and restarts),
-- and dead letters (rejected bodies kept for inspection and replay).

CREATE TABLE devices (
    dev_eui         TEXT PRIMARY KEY,   -- 16 lowercase hexadecimal digits
    name            TEXT NOT NULL,
    model           TEXT NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    entity_id       TEXT NOT NULL REFERENCES entities(id),
    mappings        TEXT NOT NULL,      -- JSON array of mappings
    created_at      INTEGER NOT NULL,
    modified_at     INTEGER NOT NULL,
    -- Health, updated in the transaction that stores each frame.
    last_seen       INTEGER,
    battery         REAL,
    margin          INTEGER,
    rssi            INTEGER,
    snr             REAL,
    f_cnt           INTEGER,
    frames_received INTEGER NOT NULL DEFAULT 0,
    UNIQUE (organisation_id, name)
);
CREATE INDEX devices_entity ON devices(entity_id);

-- One row per stored frame that has an identity. NULLs never conflict in a
-- unique index, so each index only applies when its key is complete:
-- the network server's id, or the frame counter within a session.
CREATE TABLE frames (
    id        INTEGER PRIMARY KEY,
    dev_eui   TEXT NOT NULL,
    ns_id     TEXT,
    session   TEXT,
    f_cnt     INTEGER,
    stored_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX frames_ns ON frames(dev_eui, ns_id);
CREATE UNIQUE INDEX frames_counter ON frames(dev_eui, session, f_cnt);
CREATE INDEX frames_stored_at ON frames(stored_at);

CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are never reused
    at              INTEGER NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    source          TEXT NOT NULL,      -- chirpstack, ttn, generic (or an MQTT source)
    event           TEXT,               -- ChirpStack event type, MQTT topic
    dev_eui         TEXT,
    reason_code     TEXT NOT NULL,
    reason          TEXT NOT NULL,
    body            BLOB NOT NULL,      -- as received (cut for oversized bodies)
    body_size       INTEGER NOT NULL,   -- size as received
    replayed_at     INTEGER
);
CREATE INDEX dead_letters_org ON dead_letters(organisation_id, id);
CREATE INDEX dead_letters_at ON dead_letters(at);
