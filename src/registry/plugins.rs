//! Plug-ins: pushing a version (one call for the API, the command line and configuration),
//! listing, removing (refused while a registration runs it), and [`PluginLibrary`], where the
//! places that run plug-ins find a version: read from the store once per change of the routing
//! (any instance's push changes it), compiled once per content hash by the sandbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Registry, RegistryError, Routing};
use crate::destinations::plugin::check_plugin_name;
use crate::model::{DestinationSettings, NewPluginVersion, PluginVersion, Scope};
use crate::plugins::{
    content_hash, Library, LoadError, Loaded, PluginError, Sandbox, Version, VersionStatistics,
};
use crate::store::plugins::Pushed;
use crate::store::Store;

/// A version to push.
#[derive(Debug, Clone)]
pub struct PushInput {
    /// The plug-in's name.
    pub name: String,
    /// Its solution (the events it may emit); the caller's only solution when absent.
    pub solution: Option<String>,
    /// What it does.
    pub description: String,
    /// The component's bytes.
    pub bytes: Vec<u8>,
}

/// A plug-in as the API shows it: its versions, where it is used, its statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginView {
    /// Its name.
    pub name: String,
    /// Its solution.
    pub solution: String,
    /// Its versions, newest first.
    pub versions: Vec<PluginVersionView>,
    /// The endpoints (registrations) that run it, and the subscriptions it transforms
    /// (`subscription <name>`).
    pub used_by: Vec<String>,
    /// What its versions did on this instance, newest version first.
    pub statistics: Vec<VersionStatistics>,
}

/// One version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginVersionView {
    /// The version.
    pub version: u32,
    /// What it does.
    pub description: String,
    /// SHA-256 of its bytes.
    pub hash: String,
    /// Its size in bytes.
    pub size: u64,
    /// What it exports.
    pub exports: Vec<String>,
    /// When it was pushed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&PluginVersion> for PluginVersionView {
    fn from(v: &PluginVersion) -> Self {
        PluginVersionView {
            version: v.version,
            description: v.description.clone(),
            hash: v.hash.clone(),
            size: v.size,
            exports: v.exports.clone(),
            created_at: v.created_at,
        }
    }
}

impl Registry {
    /// The sandbox, when plug-ins are enabled.
    fn sandbox(&self) -> Result<&Sandbox, RegistryError> {
        self.sandbox.as_ref().ok_or_else(|| {
            RegistryError::Conflict("plug-ins are not enabled on this instance".into())
        })
    }

    /// The largest component a push may carry (nothing when plug-ins are off).
    pub fn plugin_upload_limit(&self) -> usize {
        self.sandbox.as_ref().map_or(0, |s| s.limits().upload)
    }

    /// Pushes `input` as the next version of its plug-in: checked (a component of the world
    /// `herald:plugin@1.0.0` that imports nothing Herald does not grant, compiled once here),
    /// then stored for every instance. The same bytes as the latest version answer that one.
    pub async fn push_plugin(
        &self,
        scope: &Scope,
        input: PushInput,
    ) -> Result<Pushed, RegistryError> {
        check_plugin_name(&input.name).map_err(|m| RegistryError::invalid("name", m))?;
        if input.description.len() > 1024 {
            return Err(RegistryError::invalid("description", "at most 1024 bytes"));
        }
        let solution = match (&input.solution, scope.solutions()) {
            (Some(s), _) => s.clone(),
            (None, Some([only])) => only.clone(),
            (None, _) => return Err(RegistryError::invalid(
                "solution",
                "is needed: name the solution the plug-in belongs to (its events are the ones it may emit)",
            )),
        };
        if !scope.covers(&solution)
            || !self
                .catalog
                .solutions()
                .iter()
                .any(|s| s.unique_name == solution)
        {
            return Err(RegistryError::invalid(
                "solution",
                format!("no solution `{solution}` in the catalog"),
            ));
        }
        if let Some(latest) = self
            .store
            .plugins()
            .plugin_versions(&input.name)
            .await?
            .last()
        {
            if !scope.covers(&latest.solution) {
                return Err(RegistryError::Conflict(format!(
                    "the plug-in name `{}` is taken",
                    input.name
                )));
            }
        }
        let bytes: Arc<[u8]> = Arc::from(input.bytes);
        let compiled = self
            .sandbox()?
            .compile(bytes.clone())
            .await
            .map_err(|e| match e {
                PluginError::Invalid(m) => RegistryError::invalid("component", m),
                other => RegistryError::invalid("component", other.to_string()),
            })?;
        let pushed = self
            .store
            .plugins()
            .push_plugin(&NewPluginVersion {
                name: input.name,
                solution,
                description: input.description,
                hash: compiled.hash.clone(),
                exports: compiled.exports.clone(),
                bytes: bytes.to_vec(),
                created_at: OffsetDateTime::now_utc(),
            })
            .await?;
        self.routing.changed();
        Ok(pushed)
    }

    /// Every plug-in the caller's solutions own.
    pub async fn plugins(&self, scope: &Scope) -> Result<Vec<PluginView>, RegistryError> {
        let versions = self.store.plugins().plugins().await?;
        let endpoints = self.store.records().endpoints().await?;
        let subscriptions = self.store.records().subscriptions().await?;
        let mut by_name: Vec<(String, Vec<PluginVersion>)> = Vec::new();
        for v in versions.into_iter().filter(|v| scope.covers(&v.solution)) {
            match by_name.last_mut() {
                Some((name, list)) if *name == v.name => list.push(v),
                _ => by_name.push((v.name.clone(), vec![v])),
            }
        }
        Ok(by_name
            .into_iter()
            .map(|(name, versions)| self.plugin_view(name, versions, &endpoints, &subscriptions))
            .collect())
    }

    /// One plug-in, if the caller's solutions own it.
    pub async fn plugin(&self, scope: &Scope, name: &str) -> Result<PluginView, RegistryError> {
        let versions = self.store.plugins().plugin_versions(name).await?;
        match versions.last() {
            Some(v) if scope.covers(&v.solution) => {}
            _ => return Err(RegistryError::NotFound(format!("no plug-in `{name}`"))),
        }
        let endpoints = self.store.records().endpoints().await?;
        let subscriptions = self.store.records().subscriptions().await?;
        Ok(self.plugin_view(name.to_owned(), versions, &endpoints, &subscriptions))
    }

    fn plugin_view(
        &self,
        name: String,
        mut versions: Vec<PluginVersion>,
        endpoints: &[crate::model::Endpoint],
        subscriptions: &[crate::model::Subscription],
    ) -> PluginView {
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        let used_by = endpoints
            .iter()
            .filter(|e| matches!(&e.settings, DestinationSettings::Plugin(p) if p.plugin == name))
            .map(|e| e.name.clone())
            .chain(
                subscriptions
                    .iter()
                    .filter(|s| s.transform.as_ref().is_some_and(|t| t.plugin == name))
                    .map(|s| format!("subscription {}", s.name)),
            )
            .collect();
        let statistics = self
            .sandbox
            .as_ref()
            .map(|s| s.statistics().of(&name))
            .unwrap_or_default();
        PluginView {
            solution: versions
                .first()
                .map(|v| v.solution.clone())
                .unwrap_or_default(),
            versions: versions.iter().map(PluginVersionView::from).collect(),
            used_by,
            statistics,
            name,
        }
    }

    /// Removes every version of `name`; refused while an endpoint runs it.
    pub async fn remove_plugin(&self, scope: &Scope, name: &str) -> Result<(), RegistryError> {
        let view = self.plugin(scope, name).await?;
        if !view.used_by.is_empty() {
            return Err(RegistryError::Conflict(format!(
                "plug-in `{name}` is run by {}: delete or change those first",
                view.used_by
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.store.plugins().delete_plugin(name).await?;
        if let Some(sandbox) = &self.sandbox {
            for v in &view.versions {
                sandbox.forget(&v.hash);
            }
        }
        self.routing.changed();
        Ok(())
    }

    /// Checks that the plug-in an endpoint would run exists and belongs to a solution the
    /// caller covers.
    pub(super) async fn check_plugin_reference(
        &self,
        scope: &Scope,
        settings: &DestinationSettings,
    ) -> Result<(), RegistryError> {
        match settings {
            DestinationSettings::Plugin(p) => {
                self.check_plugin_version(scope, &p.plugin, p.version, "")
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Checks a subscription's transformation: its plug-in (and pinned version) exists in a
    /// solution the caller covers; its configuration is not too long.
    pub(super) async fn check_transform(
        &self,
        scope: &Scope,
        transform: &crate::model::Transform,
    ) -> Result<(), RegistryError> {
        if transform
            .config
            .as_ref()
            .is_some_and(|c| c.len() > 16 * 1024)
        {
            return Err(RegistryError::invalid(
                "transform.config",
                "at most 16384 bytes",
            ));
        }
        self.check_plugin_version(scope, &transform.plugin, transform.version, "transform.")
            .await
    }

    /// Checks that `plugin` (and its `pinned` version) exists in a solution `scope` covers;
    /// the fields a refusal names start with `prefix`.
    async fn check_plugin_version(
        &self,
        scope: &Scope,
        plugin: &str,
        pinned: Option<u32>,
        prefix: &str,
    ) -> Result<(), RegistryError> {
        self.sandbox()?;
        let versions = self.store.plugins().plugin_versions(plugin).await?;
        let Some(latest) = versions.last().filter(|v| scope.covers(&v.solution)) else {
            return Err(RegistryError::invalid(
                format!("{prefix}plugin"),
                format!("no plug-in `{plugin}`"),
            ));
        };
        if let Some(pinned) = pinned {
            if !versions.iter().any(|v| v.version == pinned) {
                return Err(RegistryError::invalid(
                    format!("{prefix}version"),
                    format!(
                        "plug-in `{plugin}` has no version {pinned} (the latest is {})",
                        latest.version
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where plug-in versions are found, over this registry's store.
    pub fn plugin_library(&self) -> Option<Arc<PluginLibrary>> {
        Some(Arc::new(PluginLibrary {
            store: self.store.clone(),
            sandbox: self.sandbox.clone()?,
            routing: self.routing.clone(),
            cache: Mutex::new(HashMap::new()),
        }))
    }
}

/// A loaded version with the routing version it was read at, by name and pinned version.
type Cache = HashMap<(String, Option<u32>), (u64, Loaded)>;

/// Finds plug-in versions in the store, reading each once per routing version.
pub struct PluginLibrary {
    store: Arc<dyn Store>,
    sandbox: Sandbox,
    routing: Routing,
    cache: Mutex<Cache>,
}

#[async_trait]
impl Library for PluginLibrary {
    async fn load(&self, name: &str, version: Option<u32>) -> Result<Loaded, LoadError> {
        let key = (name.to_owned(), version);
        let now = self.routing.version();
        if let Some((seen, loaded)) = self.cache.lock().expect("plug-in cache poisoned").get(&key) {
            if *seen == now {
                return Ok(loaded.clone());
            }
        }
        let label = match version {
            Some(v) => format!("{name}@{v}"),
            None => name.to_owned(),
        };
        let store_error = |e: crate::store::StoreError| LoadError::Store {
            name: label.clone(),
            message: e.to_string(),
        };
        // The versions' metadata first: a component this instance has compiled already is
        // not read again (a JavaScript one is 12 MB).
        let versions = self
            .store
            .plugins()
            .plugin_versions(name)
            .await
            .map_err(store_error)?;
        let meta = match version {
            Some(v) => versions.into_iter().find(|m| m.version == v),
            None => versions.into_iter().last(),
        };
        let Some(meta) = meta else {
            return Err(LoadError::Missing(label));
        };
        let compiled = match self.sandbox.compiled(&meta.hash) {
            Some(compiled) => compiled,
            None => {
                // The version the metadata named, so a push in between cannot mix the two.
                let found = self
                    .store
                    .plugins()
                    .plugin_bytes(name, Some(meta.version))
                    .await
                    .map_err(store_error)?;
                let Some((_, bytes)) = found else {
                    return Err(LoadError::Missing(label));
                };
                if content_hash(&bytes) != meta.hash {
                    return Err(LoadError::Store {
                        name: label,
                        message: "its bytes do not match their hash".into(),
                    });
                }
                self.sandbox.compile(Arc::from(bytes)).await?
            }
        };
        let loaded = Loaded {
            version: Version {
                name: meta.name,
                version: meta.version,
            },
            solution: meta.solution,
            compiled,
        };
        self.cache
            .lock()
            .expect("plug-in cache poisoned")
            .insert(key, (now, loaded.clone()));
        Ok(loaded)
    }
}
