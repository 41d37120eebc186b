//! Which database a store URL names, parsed once when the configuration is read. Its
//! `Display` never shows a password.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A store URL: `sqlite://PATH` or `postgres://…` (`postgresql://…`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (it may hold a password).
    Postgres(String),
}

/// A store URL that names no supported database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected sqlite://PATH or postgres://USER@HOST/DATABASE, not `{0}`")]
pub struct StoreUrlError(String);

impl FromStr for StoreUrl {
    type Err = StoreUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("sqlite://").filter(|p| !p.is_empty()) {
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return match url::Url::parse(s) {
                Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => {
                    Ok(StoreUrl::Postgres(s.to_owned()))
                }
                _ => Err(StoreUrlError(redact(s))),
            };
        }
        Err(StoreUrlError(redact(s)))
    }
}

impl<'de> serde::Deserialize<'de> for StoreUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Not a URL at all: it may be anything pasted, so show only its start.
        Err(_) => url.chars().take(12).collect::<String>() + "…",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_sqlite_files_or_postgres_servers() {
        assert_eq!(
            "sqlite://data/herald.db".parse::<StoreUrl>(),
            Ok(StoreUrl::Sqlite("data/herald.db".into()))
        );
        assert!(matches!(
            "postgresql://h@db/herald".parse::<StoreUrl>(),
            Ok(StoreUrl::Postgres(_))
        ));
        assert!("mysql://db/herald".parse::<StoreUrl>().is_err());
        assert!("sqlite://".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn a_store_url_never_shows_its_password() {
        let url: StoreUrl = "postgres://herald:s3cr3t@db:5432/herald".parse().unwrap();
        assert!(!url.to_string().contains("s3cr3t"), "{url}");
        assert!(!format!("{url:?}").contains("s3cr3t"));
        let err = "redis://:s3cr3t@db".parse::<StoreUrl>().unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
}
