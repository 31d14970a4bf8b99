-- Accounts, tokens, audit trail, and who may read each entity.

ALTER TABLE entities ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private';
CREATE INDEX entities_visibility ON entities(visibility, organisation_id);

CREATE TABLE entity_shares (
    entity_seq      INTEGER NOT NULL REFERENCES entities(seq) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    PRIMARY KEY (entity_seq, organisation_id)
) WITHOUT ROWID;
CREATE INDEX entity_shares_org ON entity_shares(organisation_id, entity_seq);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT,
    oidc_subject  TEXT UNIQUE,
    disabled      INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    created_at    INTEGER NOT NULL
);

CREATE TABLE memberships (
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    role            TEXT NOT NULL,
    PRIMARY KEY (user_id, organisation_id, role)
) WITHOUT ROWID;

-- Only the SHA-256 of a token's secret is stored; tokens are random, so a
-- fast hash is enough and lookups stay one index probe.
CREATE TABLE api_tokens (
    id              TEXT PRIMARY KEY,
    secret_hash     TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    label           TEXT NOT NULL,
    user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    scope           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER
);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    organisation_id TEXT,
    action          TEXT NOT NULL,
    object          TEXT NOT NULL,
    detail          TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log(organisation_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
