//! Versioned migrations, embedded in the binary and applied at start-up.
//!
//! Each backend has its own folder of numbered SQL files; the version table
//! is `socle_migrations`. A database whose schema is newer than the binary is
//! refused rather than silently used, so a downgrade cannot corrupt data.

/// One migration: its version, a name for humans, its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "initial schema", sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, name: "accounts", sql: include_str!("../migrations/sqlite/0002_accounts.sql") },
    Migration { version: 3, name: "web sign-in", sql: include_str!("../migrations/sqlite/0003_web_sign_in.sql") },
    Migration { version: 4, name: "ingestion", sql: include_str!("../migrations/sqlite/0004_ingestion.sql") },
    Migration { version: 5, name: "downlinks", sql: include_str!("../migrations/sqlite/0005_downlinks.sql") },
    Migration { version: 6, name: "alerts", sql: include_str!("../migrations/sqlite/0006_alerts.sql") },
    Migration { version: 7, name: "notifications", sql: include_str!("../migrations/sqlite/0007_notifications.sql") },
    Migration { version: 8, name: "open data", sql: include_str!("../migrations/sqlite/0008_opendata.sql") },
    Migration {
        version: 9,
        name: "NGSI-LD subscriptions",
        sql: include_str!("../migrations/sqlite/0009_ngsi_subscriptions.sql"),
    },
    Migration {
        version: 10,
        name: "JSON-LD contexts",
        sql: include_str!("../migrations/sqlite/0010_jsonld_contexts.sql"),
    },
];

pub const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "initial schema", sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, name: "accounts", sql: include_str!("../migrations/postgres/0002_accounts.sql") },
    Migration { version: 3, name: "web sign-in", sql: include_str!("../migrations/postgres/0003_web_sign_in.sql") },
    Migration { version: 4, name: "ingestion", sql: include_str!("../migrations/postgres/0004_ingestion.sql") },
    Migration { version: 5, name: "downlinks", sql: include_str!("../migrations/postgres/0005_downlinks.sql") },
    Migration { version: 6, name: "alerts", sql: include_str!("../migrations/postgres/0006_alerts.sql") },
    Migration { version: 7, name: "notifications", sql: include_str!("../migrations/postgres/0007_notifications.sql") },
    Migration { version: 8, name: "open data", sql: include_str!("../migrations/postgres/0008_opendata.sql") },
    Migration {
        version: 9,
        name: "NGSI-LD subscriptions",
        sql: include_str!("../migrations/postgres/0009_ngsi_subscriptions.sql"),
    },
    Migration {
        version: 10,
        name: "JSON-LD contexts",
        sql: include_str!("../migrations/postgres/0010_jsonld_contexts.sql"),
    },
];

/// The migrations still to apply, or an error if the database is newer.
pub fn pending(all: &'static [Migration], current: i64) -> crate::Result<&'static [Migration]> {
    let latest = all.last().map_or(0, |m| m.version);
    if current > latest {
        return Err(crate::StoreError::SchemaTooNew { found: current, supported: latest });
    }
    let from = all.iter().position(|m| m.version > current).unwrap_or(all.len());
    Ok(&all[from..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_and_aligned_between_backends() {
        for set in [SQLITE, POSTGRES] {
            for (i, m) in set.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{}", m.name);
            }
        }
        assert_eq!(SQLITE.len(), POSTGRES.len(), "both backends must reach the same schema version");
    }

    #[test]
    fn pending_and_too_new() {
        assert_eq!(pending(SQLITE, 0).unwrap().len(), SQLITE.len());
        assert!(pending(SQLITE, SQLITE.last().unwrap().version).unwrap().is_empty());
        assert!(matches!(pending(SQLITE, 999), Err(crate::StoreError::SchemaTooNew { .. })));
    }
}
