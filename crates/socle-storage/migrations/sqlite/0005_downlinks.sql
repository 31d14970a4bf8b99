-- Downlinks: commands sent to devices through their network server, and how
-- each device is reached (learnt from its uplinks).

CREATE TABLE device_routes (
    dev_eui     TEXT PRIMARY KEY REFERENCES devices(dev_eui) ON DELETE CASCADE,
    network     TEXT NOT NULL,      -- chirpstack | ttn
    application TEXT NOT NULL,      -- ChirpStack application id, or TTN application[@tenant]
    device_id   TEXT,               -- TTN device id
    updated_at  INTEGER NOT NULL
);

CREATE TABLE downlinks (
    id              TEXT PRIMARY KEY,   -- UUID, also the network server's queue item / correlation id
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    dev_eui         TEXT NOT NULL REFERENCES devices(dev_eui) ON DELETE CASCADE,
    f_port          INTEGER NOT NULL,
    payload         BLOB NOT NULL,
    confirmed       INTEGER NOT NULL,
    requested_by    TEXT,
    created_at      INTEGER NOT NULL,
    status          TEXT NOT NULL,      -- queued | sent | transmitted | acknowledged | failed
    detail          TEXT,
    f_cnt_down      INTEGER,
    sent_at         INTEGER,
    transmitted_at  INTEGER,
    acknowledged_at INTEGER,
    failed_at       INTEGER
);
CREATE INDEX downlinks_device ON downlinks(dev_eui, created_at);
CREATE INDEX downlinks_queued ON downlinks(created_at) WHERE status = 'queued';
