//! Where a PostgreSQL source is, from its URL: a replication session for the replication
//! crate, and an ordinary one (sqlx) for setting up and watching the slot. Both keep
//! `DateStyle` ISO and `TimeZone` UTC, so values arrive in the form `values.rs` reads.

use std::str::FromStr;
use std::time::Duration;

use pgwire_replication::{ReplicationConfig, TlsConfig};
use sqlx::postgres::PgConnectOptions;
use url::Url;

/// The session settings every connection of a source uses.
const OPTIONS: &str = "-c datestyle=ISO,YMD -c timezone=UTC -c extra_float_digits=3";

/// Why a source URL is unusable.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not a URL.
    #[error("url is not a URL: {0}")]
    Parse(#[from] url::ParseError),
    /// Not `postgres://`.
    #[error("url must start with postgres:// or postgresql://")]
    Scheme,
    /// No database.
    #[error("url names no database: postgres://user:password@host:port/database")]
    Database,
    /// An `sslmode` Herald does not know.
    #[error("sslmode \"{0}\" is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
}

/// A parsed source URL.
#[derive(Clone)]
pub struct Target {
    url: String,
    host: String,
    port: u16,
    user: String,
    password: String,
    database: String,
    tls: TlsConfig,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location())
    }
}

impl Target {
    /// Reads `url`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let parsed = Url::parse(url)?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(UrlError::Scheme);
        }
        let database = parsed.path().trim_start_matches('/').to_owned();
        if database.is_empty() {
            return Err(UrlError::Database);
        }
        let query = |key: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let root = query("sslrootcert").map(Into::into);
        let tls = match query("sslmode").as_deref() {
            Some("disable") => TlsConfig::disabled(),
            // libpq's default: TLS when the server offers it.
            None | Some("prefer") | Some("allow") => {
                let mut t = TlsConfig::disabled();
                t.mode = pgwire_replication::SslMode::Prefer;
                t
            }
            Some("require") => TlsConfig::require(),
            Some("verify-ca") => TlsConfig::verify_ca(root),
            Some("verify-full") => TlsConfig::verify_full(root),
            Some(other) => return Err(UrlError::SslMode(other.to_owned())),
        };
        let decode = |s: &str| percent_decode(s);
        Ok(Self {
            url: url.to_owned(),
            host: query("host")
                .unwrap_or_else(|| parsed.host_str().unwrap_or("localhost").to_owned()),
            port: parsed.port().unwrap_or(5432),
            user: decode(parsed.username()),
            password: parsed.password().map(decode).unwrap_or_default(),
            database: decode(&database),
            tls,
        })
    }

    /// Host, port and database, without credentials: what may be shown.
    pub fn location(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.database)
    }

    /// The replication session for `slot` and `publication`.
    pub fn replication(
        &self,
        slot: &str,
        publication: &str,
        application: &str,
    ) -> ReplicationConfig {
        ReplicationConfig::new(
            self.host.clone(),
            self.user.clone(),
            self.password.clone(),
            self.database.clone(),
            slot,
            publication,
        )
        .with_port(self.port)
        .with_tls(self.tls.clone())
        .with_options(OPTIONS)
        .with_application_name(application)
        // Positions are confirmed within a second of being stored, so the slot frees WAL
        // promptly and a restart reads little again.
        .with_status_interval(Duration::from_secs(1))
        .with_wakeup_interval(Duration::from_secs(5))
    }

    /// An ordinary session (setup, slot statistics, outbox deletes).
    pub fn ordinary(&self) -> Result<PgConnectOptions, sqlx::Error> {
        Ok(PgConnectOptions::from_str(&self.url)?
            .options([("datestyle", "ISO,YMD"), ("timezone", "UTC")])
            .application_name("herald"))
    }
}

/// `%XX` escapes of a URL's user, password or path.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_its_parts_and_shows_no_password() {
        let t = Target::parse("postgres://app:p%40ss%26+x@db.example:6543/shop?sslmode=require")
            .unwrap();
        assert_eq!(t.password, "p@ss&+x");
        assert_eq!(t.location(), "db.example:6543/shop");
        assert!(!format!("{t:?}").contains("p@ss"));
        let default = Target::parse("postgres://app@db.example/shop").unwrap();
        assert_eq!(
            default.tls.mode,
            pgwire_replication::SslMode::Prefer,
            "as libpq"
        );
        assert!(t.tls.mode.requires_tls());
        assert!(matches!(
            Target::parse("mysql://x/y"),
            Err(UrlError::Scheme)
        ));
        assert!(matches!(
            Target::parse("postgres://x"),
            Err(UrlError::Database)
        ));
        assert!(matches!(
            Target::parse("postgres://x/y?sslmode=sometimes"),
            Err(UrlError::SslMode(_))
        ));
    }
}
