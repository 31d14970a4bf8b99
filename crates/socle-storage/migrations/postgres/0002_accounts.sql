-- Accounts, tokens, audit trail, and who may read each entity.

ALTER TABLE entities ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private';
CREATE INDEX entities_visibility ON entities(visibility, organisation_id);

CREATE TABLE entity_shares (
    entity_seq      BIGINT NOT NULL REFERENCES entities(seq) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    PRIMARY KEY (entity_seq, organisation_id)
);
CREATE INDEX entity_shares_org ON entity_shares(organisation_id, entity_seq);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT,
    oidc_subject  TEXT UNIQUE,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    role            TEXT NOT NULL,
    PRIMARY KEY (user_id, organisation_id, role)
);

CREATE TABLE api_tokens (
    id              TEXT PRIMARY KEY,
    secret_hash     TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    label           TEXT NOT NULL,
    user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    scope           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    revoked_at      BIGINT
);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id              BIGSERIAL PRIMARY KEY,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    organisation_id TEXT,
    action          TEXT NOT NULL,
    object          TEXT NOT NULL,
    detail          TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log(organisation_id, id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
