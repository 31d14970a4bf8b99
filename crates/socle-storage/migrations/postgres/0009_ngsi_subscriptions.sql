-- NGSI-LD subscriptions and the outbox of their notifications. A matcher
-- (a reliable consumer of the commit feed) writes one outbox row per
-- notification; a deliverer sends it (HTTP or MQTT) with leases and backoff.

CREATE TABLE ngsi_subscriptions (
    id                TEXT PRIMARY KEY,           -- the subscription's URI
    organisation_id   TEXT NOT NULL REFERENCES organisations(id),
    tenant_only       BOOLEAN NOT NULL,           -- created under NGSILD-Tenant, sees that organisation only
    owner_user        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    spec              TEXT NOT NULL,              -- JSON: the checked subscription and its @context
    created_at        BIGINT NOT NULL,
    modified_at       BIGINT NOT NULL,
    times_sent        BIGINT NOT NULL DEFAULT 0,
    times_failed      BIGINT NOT NULL DEFAULT 0,
    last_notification BIGINT,
    last_success      BIGINT,
    last_failure      BIGINT
);
CREATE INDEX ngsi_subscriptions_organisation ON ngsi_subscriptions(organisation_id);

-- One row per notification; its id is the notification id every attempt carries.
CREATE TABLE ngsi_notification_outbox (
    id              TEXT PRIMARY KEY,             -- UUID v5 (urn:ngsi-ld:Notification:<id>)
    subscription_id TEXT NOT NULL REFERENCES ngsi_subscriptions(id) ON DELETE CASCADE,
    body            TEXT NOT NULL,                -- JSON: the notification, the same on every attempt
    due_at          BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    BIGINT,
    failed_at       BIGINT
);
CREATE INDEX ngsi_notification_outbox_due ON ngsi_notification_outbox(due_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX ngsi_notification_outbox_subscription ON ngsi_notification_outbox(subscription_id);
