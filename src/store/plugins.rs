//! Plug-ins in the store: every version's bytes, so each instance of a cluster runs the same
//! component; a push tells the other instances (their routing refreshes, so steps that follow
//! the latest version take the new one at once).

use async_trait::async_trait;

use super::rows::{corrupt, from_millis, millis, Columns};
use super::sql::on_every_backend;
use super::StoreError;
use crate::model::{NewPluginVersion, PluginVersion};

/// What a push stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The version the bytes have.
    pub version: PluginVersion,
    /// Whether it is new; `false` when the latest version already had these bytes.
    pub created: bool,
}

/// Plug-ins in the store.
#[async_trait]
pub trait PluginRecords: Send + Sync {
    /// Stores `new` as the next version of its name, unless the latest version has the same
    /// bytes (then that version is answered). Fails with `Conflict` when the name belongs to
    /// another solution.
    async fn push_plugin(&self, new: &NewPluginVersion) -> Result<Pushed, StoreError>;
    /// Every version of every plug-in, by name then version (without bytes).
    async fn plugins(&self) -> Result<Vec<PluginVersion>, StoreError>;
    /// The versions of `name`, oldest first.
    async fn plugin_versions(&self, name: &str) -> Result<Vec<PluginVersion>, StoreError>;
    /// Version `version` of `name` (the latest when `None`), with its bytes.
    async fn plugin_bytes(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<(PluginVersion, Vec<u8>)>, StoreError>;
    /// Removes every version of `name`; answers how many there were.
    async fn delete_plugin(&self, name: &str) -> Result<u64, StoreError>;
}

const COLUMNS: &str = "name, version, solution, description, hash, size, exports, created_at";

on_every_backend!(PluginRecords {
    async fn push_plugin(&self, new: &NewPluginVersion) -> Result<Pushed, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let latest = sqlx::query::<DB>(&format!(
            "SELECT {COLUMNS} FROM plugins WHERE name = $1 ORDER BY version DESC LIMIT 1{}",
            DB::LOCK_ROWS
        ))
        .bind(new.name.clone())
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(version_from_row)
        .transpose()?;
        if let Some(latest) = &latest {
            if latest.solution != new.solution {
                return Err(StoreError::Conflict(format!(
                    "plug-in `{}` belongs to solution `{}`",
                    new.name, latest.solution
                )));
            }
            if latest.hash == new.hash {
                return Ok(Pushed {
                    version: latest.clone(),
                    created: false,
                });
            }
        }
        let version = latest.map_or(1, |l| l.version + 1);
        let exports = serde_json::to_string(&new.exports).expect("strings always serialize");
        sqlx::query::<DB>(
            "INSERT INTO plugins (name, version, solution, description, hash, size, exports, bytes, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(new.name.clone())
        .bind(i64::from(version))
        .bind(new.solution.clone())
        .bind(new.description.clone())
        .bind(new.hash.clone())
        .bind(new.bytes.len() as i64)
        .bind(exports)
        .bind(new.bytes.clone())
        .bind(millis(new.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| super::conflict_on_unique(e, format!("plug-in `{}` was pushed at the same time", new.name)))?;
        tx.commit().await?;
        self.messages.changed().await?;
        Ok(Pushed {
            version: PluginVersion {
                name: new.name.clone(),
                version,
                solution: new.solution.clone(),
                description: new.description.clone(),
                hash: new.hash.clone(),
                size: new.bytes.len() as u64,
                exports: new.exports.clone(),
                created_at: from_millis(millis(new.created_at)),
            },
            created: true,
        })
    }

    async fn plugins(&self) -> Result<Vec<PluginVersion>, StoreError> {
        sqlx::query::<DB>(&format!("SELECT {COLUMNS} FROM plugins ORDER BY name, version"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(version_from_row)
            .collect()
    }

    async fn plugin_versions(&self, name: &str) -> Result<Vec<PluginVersion>, StoreError> {
        sqlx::query::<DB>(&format!(
            "SELECT {COLUMNS} FROM plugins WHERE name = $1 ORDER BY version"
        ))
        .bind(name.to_owned())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(version_from_row)
        .collect()
    }

    async fn plugin_bytes(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<(PluginVersion, Vec<u8>)>, StoreError> {
        let pinned = format!("SELECT {COLUMNS}, bytes FROM plugins WHERE name = $1 AND version = $2");
        let latest = format!(
            "SELECT {COLUMNS}, bytes FROM plugins WHERE name = $1 ORDER BY version DESC LIMIT 1"
        );
        let row = match version {
            Some(v) => sqlx::query::<DB>(&pinned)
                .bind(name.to_owned())
                .bind(i64::from(v)),
            None => sqlx::query::<DB>(&latest).bind(name.to_owned()),
        }
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((version_from_row(&row)?, row.blob("bytes")?)))
            .transpose()
    }

    async fn delete_plugin(&self, name: &str) -> Result<u64, StoreError> {
        let done = sqlx::query::<DB>("DELETE FROM plugins WHERE name = $1")
            .bind(name.to_owned())
            .execute(&self.pool)
            .await?;
        let removed = DB::rows_affected(&done);
        if removed > 0 {
            self.messages.changed().await?;
        }
        Ok(removed)
    }
});

fn version_from_row(row: &impl Columns) -> Result<PluginVersion, StoreError> {
    let version = u32::try_from(row.int("version")?)
        .map_err(|_| corrupt("plugin version", "out of range".into()))?;
    let exports: Vec<String> =
        serde_json::from_str(&row.text("exports")?).map_err(|source| StoreError::Corrupt {
            what: "plugin exports",
            source,
        })?;
    Ok(PluginVersion {
        name: row.text("name")?,
        version,
        solution: row.text("solution")?,
        description: row.text("description")?,
        hash: row.text("hash")?,
        size: u64::try_from(row.int("size")?).unwrap_or(0),
        exports,
        created_at: from_millis(row.int("created_at")?),
    })
}
