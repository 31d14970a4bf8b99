-- Notifications: each user's subscriptions, each organisation's webhooks,
-- browsers' Web Push subscriptions, and the outbox of deliveries (written in
-- the transaction that decides them; a worker delivers and retries them).

CREATE TABLE notification_subscriptions (
    id          TEXT PRIMARY KEY,                 -- UUID
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    spec        TEXT NOT NULL,                    -- JSON: filters, channels, quiet hours, escalation
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);
CREATE INDEX notification_subscriptions_user ON notification_subscriptions(user_id);

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,             -- UUID
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,                -- HMAC-SHA256 key
    spec            TEXT NOT NULL,                -- JSON: filters
    created_at      BIGINT NOT NULL,
    modified_at     BIGINT NOT NULL
);
CREATE INDEX webhooks_organisation ON webhooks(organisation_id);

CREATE TABLE push_subscriptions (
    id         TEXT PRIMARY KEY,                  -- UUID
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL UNIQUE,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);

-- One row per delivery (channel + recipient). The id is the delivery id sent
-- with every attempt; due_at is moved forward by claims (a lease), retries
-- (backoff), quiet hours and escalation delays.
CREATE TABLE notification_outbox (
    id           TEXT PRIMARY KEY,                -- UUID
    channel      TEXT NOT NULL,                   -- email, webpush, sms, webhook, escalation
    recipient    TEXT NOT NULL,
    alert_id     TEXT NOT NULL,
    payload      TEXT NOT NULL,                   -- JSON
    due_at       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivered_at BIGINT,
    failed_at    BIGINT
);
CREATE INDEX notification_outbox_due ON notification_outbox(due_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX notification_outbox_alert ON notification_outbox(alert_id);
