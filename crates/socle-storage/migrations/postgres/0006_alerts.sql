-- Alerting: rules per organisation, alerts with their lifecycle and history,
-- and the rule engine's saved state.

CREATE TABLE alert_rules (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    definition      TEXT NOT NULL,      -- JSON of a socle_rules::RuleSpec
    enabled         BOOLEAN NOT NULL,
    author          TEXT,               -- user id
    created_at      BIGINT NOT NULL,
    modified_at     BIGINT NOT NULL
);
CREATE INDEX alert_rules_org ON alert_rules(organisation_id);

-- No foreign key to alert_rules: alerts are history and outlive their rule.
CREATE TABLE alerts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- ids are never reused
    rule_id         TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    severity        TEXT NOT NULL,
    severity_rank   BIGINT NOT NULL,   -- for sorting: 0 informational … 4 critical
    status          TEXT NOT NULL,      -- open, acknowledged, resolved
    opened_at       BIGINT NOT NULL,
    since           BIGINT NOT NULL,
    value           DOUBLE PRECISION,
    message_fr      TEXT NOT NULL,
    message_en      TEXT NOT NULL,
    flapping        BOOLEAN NOT NULL DEFAULT FALSE,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    resolved_at     BIGINT,
    resolved_by     TEXT,
    resolution      TEXT,               -- cleared, withdrawn, manual
    assignee        TEXT,
    modified_at     BIGINT NOT NULL,
    UNIQUE (rule_id, entity_id, opened_at)
);
-- At most one unresolved alert per (rule, entity): no storm, even if the engine
-- replays a transition after a crash.
CREATE UNIQUE INDEX alerts_one_unresolved ON alerts(rule_id, entity_id) WHERE resolved_at IS NULL;
CREATE INDEX alerts_org ON alerts(organisation_id, status);
CREATE INDEX alerts_entity ON alerts(entity_id);

CREATE TABLE alert_events (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id BIGINT NOT NULL REFERENCES alerts(id),
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,             -- opened, flapping, acknowledged, assigned, commented, resolved
    actor    TEXT,                      -- user id; NULL for the engine
    note     TEXT,
    note_en  TEXT
);
CREATE INDEX alert_events_alert ON alert_events(alert_id, id);

-- One row: the engine's snapshot and the observation time evaluated up to.
CREATE TABLE alert_engine (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot  TEXT NOT NULL,
    watermark BIGINT NOT NULL,
    saved_at  BIGINT NOT NULL
);
