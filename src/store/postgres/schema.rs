//! The schema name hookdock's tables live in, and the migrations that make them.

use std::sync::Arc;

use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Executor, Row};

use super::error::PgError;
use crate::error::ConfigError;

/// One embedded migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// Version number, applied in increasing order.
    pub version: i32,
    /// File name under `migrations/postgres/` in the crate.
    pub name: &'static str,
    /// The SQL, with unqualified names (run with `search_path` set to the schema).
    pub sql: &'static str,
}

/// The embedded migrations, in the order [`PgStore::from_pool`](super::PgStore::from_pool)
/// applies them.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_hookdock_init.sql",
        sql: include_str!("../../../migrations/postgres/0001_hookdock_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_hookdock_records.sql",
        sql: include_str!("../../../migrations/postgres/0002_hookdock_records.sql"),
    },
    Migration {
        version: 3,
        name: "0003_hookdock_event_log.sql",
        sql: include_str!("../../../migrations/postgres/0003_hookdock_event_log.sql"),
    },
    Migration {
        version: 4,
        name: "0004_hookdock_health.sql",
        sql: include_str!("../../../migrations/postgres/0004_hookdock_health.sql"),
    },
    Migration {
        version: 5,
        name: "0005_hookdock_ordering.sql",
        sql: include_str!("../../../migrations/postgres/0005_hookdock_ordering.sql"),
    },
    Migration {
        version: 6,
        name: "0006_hookdock_reconcile_sources.sql",
        sql: include_str!("../../../migrations/postgres/0006_hookdock_reconcile_sources.sql"),
    },
];

/// The longest schema name accepted: the notification channel `hookdock_<schema>` must fit
/// PostgreSQL's 63-byte identifier limit.
pub const MAX_SCHEMA_LEN: usize = 54;

/// A validated schema name and the names derived from it.
#[derive(Debug)]
pub(super) struct Schema {
    pub(super) name: String,
    /// `"name"`: safe to put into SQL (the name is checked to be `[a-z_][a-z0-9_]*`).
    quoted: String,
    /// The NOTIFY channel.
    channel: String,
}

impl Schema {
    pub(super) fn new(name: &str) -> Result<Self, ConfigError> {
        validate(name)?;
        Ok(Self {
            name: name.to_owned(),
            quoted: format!("\"{name}\""),
            channel: format!("hookdock_{name}"),
        })
    }

    /// Replaces `{schema}` in a SQL template with the quoted schema name.
    pub(super) fn sql(&self, template: &'static str) -> Sql {
        Sql(Arc::from(template.replace("{schema}", &self.quoted)))
    }

    pub(super) fn channel(&self) -> &str {
        &self.channel
    }

    /// Applies the embedded migrations not yet applied, creating the schema if needed, in
    /// one transaction under an advisory lock (so concurrent processes take turns).
    pub(super) async fn migrate(&self, pool: &PgPool) -> Result<(), PgError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("hookdock migrate {}", self.name))
            .execute(&mut *tx)
            .await?;
        let exists = sqlx::query("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1")
            .bind(&self.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            tx.execute(AssertSqlSafe(format!("CREATE SCHEMA {}", self.quoted)))
                .await?;
        }
        tx.execute(AssertSqlSafe(format!(
            "SET LOCAL search_path TO {}",
            self.quoted
        )))
        .await?;
        tx.execute(
            "CREATE TABLE IF NOT EXISTS hookdock_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT NOT NULL,
                checksum   TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
        let applied = self.applied(&mut tx).await?;
        for m in MIGRATIONS {
            let checksum = checksum(m);
            if let Some((_, stored)) = applied.iter().find(|(v, _)| *v == m.version) {
                if *stored != checksum {
                    return Err(PgError::MigrationChanged {
                        version: m.version,
                        schema: self.name.clone(),
                    });
                }
                continue;
            }
            tx.execute(m.sql).await?;
            sqlx::query(
                "INSERT INTO hookdock_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(checksum)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks that every embedded migration is applied and none is newer.
    pub(super) async fn check(&self, pool: &PgPool) -> Result<(), PgError> {
        let mut conn = pool.acquire().await?;
        let table = sqlx::query("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("{}.hookdock_migrations", self.quoted))
            .fetch_one(&mut *conn)
            .await?
            .try_get::<bool, _>(0)?;
        if !table {
            return Err(PgError::NotMigrated(self.name.clone()));
        }
        let applied = self.applied(&mut conn).await?;
        if MIGRATIONS
            .iter()
            .any(|m| !applied.iter().any(|(v, _)| *v == m.version))
        {
            return Err(PgError::NotMigrated(self.name.clone()));
        }
        Ok(())
    }

    /// The applied versions and checksums; fails if one is newer than this code knows.
    async fn applied(&self, conn: &mut sqlx::PgConnection) -> Result<Vec<(i32, String)>, PgError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT version, checksum FROM {}.hookdock_migrations ORDER BY version",
            self.quoted
        )))
        .fetch_all(&mut *conn)
        .await?;
        let applied = rows
            .iter()
            .map(|r| Ok((r.try_get::<i32, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if let Some(&(found, _)) = applied.iter().find(|(v, _)| *v > known) {
            return Err(PgError::SchemaTooNew {
                schema: self.name.clone(),
                found,
                known,
            });
        }
        Ok(applied)
    }
}

fn checksum(m: &Migration) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(m.sql))
}

/// A SQL statement for one schema, cheap to clone into a query.
#[derive(Debug, Clone)]
pub(super) struct Sql(Arc<str>);

impl Sql {
    pub(super) fn q(&self) -> AssertSqlSafe<Arc<str>> {
        // Safe: built from a constant template and a validated identifier.
        AssertSqlSafe(self.0.clone())
    }
}

fn validate(name: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::InvalidValue {
        what: "PostgreSQL schema",
        reason,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("must not be empty")),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return Err(invalid("must start with a lowercase ASCII letter or '_'"))
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(invalid(
            "may contain only lowercase ASCII letters, digits and '_'",
        ));
    }
    if name.len() > MAX_SCHEMA_LEN {
        return Err(invalid("is longer than 54 bytes"));
    }
    if name.starts_with("pg_") {
        return Err(invalid(
            "names starting with 'pg_' are reserved by PostgreSQL",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated() {
        for ok in [
            "public",
            "hookdock",
            "_x",
            "a1_b2",
            &"s".repeat(MAX_SCHEMA_LEN),
        ] {
            assert!(validate(ok).is_ok(), "{ok:?} should be accepted");
        }
        for bad in [
            "",
            "Public",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "a;drop table x",
            "pg_temp",
            "é",
            &"s".repeat(MAX_SCHEMA_LEN + 1),
        ] {
            assert!(
                matches!(validate(bad), Err(ConfigError::InvalidValue { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn sql_templates_get_the_quoted_schema() {
        let s = Schema::new("tenant_7").unwrap();
        assert_eq!(
            s.sql("SELECT 1 FROM {schema}.hookdock_events").0.as_ref(),
            "SELECT 1 FROM \"tenant_7\".hookdock_events"
        );
        assert_eq!(s.channel(), "hookdock_tenant_7");
    }

    #[test]
    fn migrations_are_ordered_and_qualified_nowhere() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        for m in MIGRATIONS {
            // Names are unqualified so the file runs in any schema.
            assert!(!m.sql.contains("public."), "{} qualifies a name", m.name);
            assert!(m.sql.contains("hookdock_"));
        }
    }
}
