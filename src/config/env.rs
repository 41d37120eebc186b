//! The `HERALD_*` environment as a configuration layer: `HERALD_SERVER__LISTEN` sets
//! `server.listen`, `HERALD_API_KEY` sets `api_key`, and `HERALD_STORE_URL` is the short form
//! of `HERALD_STORE__URL`. Only variables that name a top-level field of [`Config`] are read,
//! so `HERALD_URL` (a CLI option) and other tools' `HERALD_*` variables are not mistaken for
//! settings. That list of fields is read off the config tree itself (by serde), not kept by
//! hand, so a new section can never be silently ignored.

use figment::value::Value;
use serde::de::{self, Deserializer, Visitor};

use super::Config;

/// The prefix of Herald's variables.
const PREFIX: &str = "HERALD_";

/// `HERALD_*` variables, to lay over the configuration.
#[derive(Debug, Clone, Default)]
pub struct EnvVars(Vec<(String, String)>);

impl EnvVars {
    /// These variables (name, value); names without the prefix are ignored.
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(vars.into_iter().collect())
    }

    /// The variables of this process.
    pub fn from_process() -> Self {
        Self::new(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// The settings the variables make: a dotted path into the config tree, and a value
    /// parsed as figment parses environment values (numbers, booleans, arrays, strings).
    pub fn settings(&self) -> Vec<(String, Value)> {
        let top = top_level_fields();
        self.0
            .iter()
            .filter_map(|(name, value)| {
                let key = name.get(..PREFIX.len())?;
                if !key.eq_ignore_ascii_case(PREFIX) {
                    return None;
                }
                let mut key = name[PREFIX.len()..].trim().to_ascii_lowercase();
                if key == "store_url" {
                    key = "store__url".into();
                }
                let path: Vec<&str> = key.split("__").collect();
                if path.iter().any(|p| p.is_empty()) || !top.contains(&path[0]) {
                    return None;
                }
                let value: Value = value
                    .parse()
                    .expect("parsing a figment value is infallible");
                Some((path.join("."), value))
            })
            .collect()
    }
}

/// The names of [`Config`]'s own fields, as its `Deserialize` implementation declares them.
pub fn top_level_fields() -> &'static [&'static str] {
    let mut fields = FieldNames(&[]);
    // The derived implementation hands its field list to `deserialize_struct`, which records
    // it and stops; the error that follows is expected.
    let _ = <Config as serde::Deserialize>::deserialize(&mut fields);
    fields.0
}

/// A deserializer that only records the fields of the struct asked for.
struct FieldNames(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut FieldNames {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("only the field names were asked for"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct has field names"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Config {
        let env = EnvVars::new(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::load(None, env).expect("the configuration loads")
    }

    #[test]
    fn the_top_level_fields_are_read_off_the_config_tree() {
        let fields = top_level_fields();
        for section in [
            "server",
            "store",
            "catalog",
            "delivery",
            "webhooks",
            "dataverse",
            "pipeline",
            "retention",
            "encryption_keys",
            "api_key",
            "api_keys",
            "endpoints",
            "subscriptions",
        ] {
            assert!(
                fields.contains(&section),
                "{section} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn server_is_set_from_the_environment() {
        let c = load(&[("HERALD_SERVER__LISTEN", "127.0.0.1:9999")]);
        assert_eq!(c.server.listen.port(), 9999);
    }

    #[test]
    fn store_is_set_from_the_environment_long_and_short() {
        let c = load(&[("HERALD_STORE__URL", "sqlite://elsewhere.db")]);
        assert_eq!(c.store.url.to_string(), "sqlite://elsewhere.db");
        let c = load(&[("HERALD_STORE_URL", "postgres://h@db/herald")]);
        assert!(matches!(c.store.url, crate::store::StoreUrl::Postgres(_)));
    }

    #[test]
    fn catalog_is_set_from_the_environment() {
        let c = load(&[("HERALD_CATALOG__DIR", "/srv/catalog")]);
        assert_eq!(
            c.catalog.dir.as_deref(),
            Some(std::path::Path::new("/srv/catalog"))
        );
    }

    #[test]
    fn delivery_is_set_from_the_environment() {
        let c = load(&[("HERALD_DELIVERY__MAX_ATTEMPTS", "7")]);
        assert_eq!(c.delivery.max_attempts.get(), 7);
    }

    #[test]
    fn webhooks_are_set_from_the_environment() {
        let c = load(&[("HERALD_WEBHOOKS__TIMEOUT", "5s")]);
        assert_eq!(c.webhooks.timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn dataverse_is_set_from_the_environment() {
        let c = load(&[("HERALD_DATAVERSE__ORGANIZATION", "contoso-prod")]);
        assert_eq!(c.dataverse.organization, "contoso-prod");
    }

    #[test]
    fn retention_is_set_from_the_environment() {
        let c = load(&[("HERALD_RETENTION__SUCCEEDED", "3d")]);
        assert_eq!(
            c.retention.succeeded,
            std::time::Duration::from_secs(3 * 86_400)
        );
    }

    #[test]
    fn encryption_keys_are_set_from_the_environment_comma_separated() {
        let (a, b) = (
            crate::store::sealing::KeyRing::generate_line(),
            crate::store::sealing::KeyRing::generate_line(),
        );
        let c = load(&[("HERALD_ENCRYPTION_KEYS", &format!("{a}, {b}"))]);
        assert_eq!(c.encryption_keys.0, vec![a.clone(), b]);
        let keys = crate::store::sealing::KeyRing::parse(&c.encryption_keys.0).unwrap();
        assert_eq!(keys.current(), a.split(':').next().unwrap());
        assert!(!format!("{c:?}").contains(a.split(':').nth(1).unwrap()));
    }

    #[test]
    fn api_keys_are_set_from_the_environment() {
        let c = load(&[("HERALD_API_KEY", "hk_from_env")]);
        assert_eq!(c.api_key.as_deref(), Some("hk_from_env"));
        let hash = "ab".repeat(32);
        let c = load(&[(
            "HERALD_API_KEYS",
            &format!("[{{name=\"pos\",sha256=\"{hash}\",solutions=[\"contoso\"]}}]"),
        )]);
        assert_eq!(c.api_keys.len(), 1);
        assert_eq!(c.api_keys[0].sha256.0, [0xab; 32]);
    }

    #[test]
    fn endpoints_and_subscriptions_are_set_from_the_environment() {
        let c = load(&[
            (
                "HERALD_ENDPOINTS",
                "[{name=\"hook\",kind=\"webhook\",url=\"https://example.com/h\",secret=\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}]",
            ),
            (
                "HERALD_SUBSCRIPTIONS",
                "[{name=\"s\",event=\"contoso_CustomerPurchase\",endpoint=\"hook\"}]",
            ),
        ]);
        assert_eq!(c.endpoints[0].name, "hook");
        assert_eq!(c.subscriptions[0].endpoint, "hook");
    }

    #[test]
    fn other_herald_variables_are_not_settings() {
        // `HERALD_URL` is the CLI's option and `HERALD_TEST_PYTHON` the tests'.
        let c = load(&[
            ("HERALD_URL", "http://127.0.0.1:8080"),
            ("HERALD_TEST_PYTHON", "/usr/bin/python3"),
            ("OTHER_SERVER__LISTEN", "127.0.0.1:1"),
        ]);
        assert_ne!(c.server.listen.port(), 1);
    }
}
