//! Endpoint settings sealed at rest: signing secrets, SAS keys, client secrets and auth
//! header values never reach the database in the clear. Each row's settings are encrypted
//! with AES-256-GCM under the key ring's current key, bound to the endpoint's id (associated
//! data), so a backup or a read-only database user sees ciphertext and a row's settings
//! cannot be moved to another row. Several keys may be configured: the first encrypts what is
//! written, the others still open rows written before a rotation, and the store re-seals
//! those under the current key when it opens.
//!
//! Stored form: `sealed:v1:<key id>:<base64 of 12-byte nonce ‖ ciphertext ‖ tag>`. A value
//! starting with `{` is plain JSON written by a Herald before sealing: the store seals such
//! rows when it opens, but only while no row is sealed yet (the one-time migration); after
//! that a value in the clear is refused, since only someone without the key put it there.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

/// The prefix of a sealed value.
const PREFIX: &str = "sealed:v1:";

/// How every sealed value starts.
pub const SEALED_PREFIX: &str = PREFIX;
/// The file a generated key is kept in, beside an SQLite database.
const KEY_FILE: &str = "herald-encryption.key";

/// Why a key ring could not be made or a value opened.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// A configured key is not `id:base64`.
    #[error("encryption key #{position}: {problem} (expected `ID:BASE64` of 32 random bytes; `herald keys encryption` prints one)")]
    BadKey {
        /// Its position in the list, from 1.
        position: usize,
        /// What is wrong.
        problem: String,
    },
    /// Two keys share an id.
    #[error("two encryption keys have the id \"{0}\"; every key needs its own id")]
    DuplicateId(String),
    /// PostgreSQL needs configured keys: every instance must share them.
    #[error("no encryption key is configured: with PostgreSQL every instance needs the same keys, so Herald does not make one up; set HERALD_ENCRYPTION_KEYS (or encryption_keys) to the line `herald keys encryption` prints")]
    Missing,
    /// A value was sealed with a key that is not configured.
    #[error("sealed with encryption key \"{0}\", which is not configured: add that key to HERALD_ENCRYPTION_KEYS (encryption_keys), after the current one")]
    UnknownKey(String),
    /// A value is in the clear although the store's rows are sealed: not written by Herald.
    #[error("stored in the clear although the store is sealed, so not written by Herald; recreate the endpoint (or restore it from a backup)")]
    Unsealed,
    /// A value does not open: altered, moved from another row, or not a sealed value.
    #[error(
        "a sealed value does not open (altered, moved from another row, or not written by Herald)"
    )]
    Tampered,
    /// The generated key file could not be read or written.
    #[error("the encryption key file {path}: {source}")]
    KeyFile {
        /// Which file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One key: an id (stored beside every value it seals) and 32 bytes.
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured keys, the first being the one that seals.
pub struct KeyRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing").field("ids", &ids).finish()
    }
}

impl KeyRing {
    /// Keys from their `id:base64` lines; the first seals.
    pub fn parse(lines: &[String]) -> Result<Self, SealingError> {
        let mut keys: Vec<Key> = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let bad = |problem: &str| SealingError::BadKey {
                position: i + 1,
                problem: problem.to_owned(),
            };
            let (id, material) = line.trim().split_once(':').ok_or_else(|| bad("no `:`"))?;
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad(
                    "the id must be 1 to 64 letters, digits, `-`, `_` or `.`",
                ));
            }
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(material.trim())
                    .map_err(|_| bad("the key is not base64"))?,
            );
            if bytes.len() != 32 {
                return Err(bad(&format!("the key is {} bytes, not 32", bytes.len())));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(SealingError::DuplicateId(id.to_owned()));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad("not a key"))?;
            keys.push(Key {
                id: id.to_owned(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err(SealingError::Missing);
        }
        Ok(Self { keys })
    }

    /// A new key line (`id:base64`), its id made of today's date and random digits.
    pub fn generate_line() -> String {
        let today = time::OffsetDateTime::now_utc().date();
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        format!(
            "k{:04}{:02}{:02}-{:04x}:{}",
            today.year(),
            u8::from(today.month()),
            today.day(),
            rand::random::<u16>(),
            STANDARD.encode(key.as_slice())
        )
    }

    /// The configured keys if there are any; else, for an SQLite database at `db`, the key in
    /// the file beside it, made on first use (and its path, to say where it is).
    pub fn resolve(
        configured: &[String],
        db: Option<&Path>,
    ) -> Result<(Self, Option<PathBuf>), SealingError> {
        if !configured.is_empty() {
            return Ok((Self::parse(configured)?, None));
        }
        let Some(db) = db else {
            return Err(SealingError::Missing);
        };
        let path = key_file(db);
        let io = |source| SealingError::KeyFile {
            path: path.clone(),
            source,
        };
        let line = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let line = Self::generate_line();
                write_private(&path, &line).map_err(io)?;
                tracing::warn!(path = %path.display(), "generated an encryption key for endpoint settings; keep it apart from database backups, or configure HERALD_ENCRYPTION_KEYS instead");
                line
            }
            Err(e) => return Err(io(e)),
        };
        let lines: Vec<String> = line
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        Ok((Self::parse(&lines)?, Some(path)))
    }

    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        &self.keys[0].id
    }

    /// `plain` sealed under the current key, bound to `context` (the row it belongs to).
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> String {
        let key = &self.keys[0];
        let nonce: [u8; 12] = rand::random();
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .expect("AES-GCM seals any message shorter than 64 GiB");
        let mut bytes = Vec::with_capacity(12 + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", key.id, STANDARD.encode(bytes))
    }

    /// Whether `stored` is in the clear (JSON written by a Herald before sealing).
    pub fn is_plain(stored: &str) -> bool {
        stored.starts_with('{')
    }

    /// The plain text of `stored`, also when it was written in the clear before sealing (only
    /// the one-time sealing of a store with no sealed row yet reads such values).
    pub fn open_or_plain(
        &self,
        stored: &str,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealingError> {
        if Self::is_plain(stored) {
            return Ok(Zeroizing::new(stored.as_bytes().to_vec()));
        }
        self.open(stored, context)
    }

    /// The plain text of `stored` (sealed for `context`). A value in the clear is refused:
    /// once the store is sealed, one can only have been put there by someone without the key.
    pub fn open(&self, stored: &str, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealingError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Err(if Self::is_plain(stored) {
                SealingError::Unsealed
            } else {
                SealingError::Tampered
            });
        };
        let (id, data) = rest.split_once(':').ok_or(SealingError::Tampered)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealingError::UnknownKey(id.to_owned()))?;
        let bytes = STANDARD.decode(data).map_err(|_| SealingError::Tampered)?;
        if bytes.len() < 12 + 16 {
            return Err(SealingError::Tampered);
        }
        let (nonce, sealed) = bytes.split_at(12);
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealingError::Tampered)
    }

    /// Whether `stored` needs sealing again: plain, or sealed under another key than the current.
    pub fn is_stale(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_none_or(|(id, _)| id != self.current())
    }
}

/// Where the key of an SQLite database at `db` is kept when none is configured: beside it.
pub fn key_file(db: &Path) -> PathBuf {
    db.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(KEY_FILE)
}

/// Writes `line` to a new file at `path` that only its owner may read.
fn write_private(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(
        file,
        "# Herald's key for endpoint settings at rest (id:base64). Keep it apart from backups."
    )?;
    writeln!(file, "{line}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(lines: &[&str]) -> KeyRing {
        KeyRing::parse(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_row() {
        let line = KeyRing::generate_line();
        let keys = ring(&[&line]);
        let sealed = keys.seal(br#"{"secret":"whsec_abc"}"#, b"ep_1");
        assert!(sealed.starts_with(&format!("sealed:v1:{}:", keys.current())));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(
            keys.open(&sealed, b"ep_1").unwrap().as_slice(),
            br#"{"secret":"whsec_abc"}"#
        );
        assert!(matches!(
            keys.open(&sealed, b"ep_2"),
            Err(SealingError::Tampered)
        ));
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.open(&altered, b"ep_1").is_err());
        // Two seals of one value differ (fresh nonces).
        assert_ne!(keys.seal(b"x", b"c"), keys.seal(b"x", b"c"));
    }

    #[test]
    fn a_rotated_ring_opens_old_values_and_seals_with_the_new_key() {
        let (old, new) = (KeyRing::generate_line(), KeyRing::generate_line());
        let before = ring(&[&old]);
        let sealed = before.seal(b"v", b"c");
        let after = ring(&[&new, &old]);
        assert!(after.is_stale(&sealed));
        assert_eq!(after.open(&sealed, b"c").unwrap().as_slice(), b"v");
        assert!(!after.is_stale(&after.seal(b"v", b"c")));
        let only_new = ring(&[&new]);
        let id = old.split(':').next().unwrap();
        match only_new.open(&sealed, b"c") {
            Err(SealingError::UnknownKey(k)) => assert_eq!(k, id),
            other => panic!("{other:?}"),
        }
        assert!(after.is_stale(r#"{"plain":true}"#));
        assert_eq!(
            after.open_or_plain(r#"{"a":1}"#, b"c").unwrap().as_slice(),
            br#"{"a":1}"#
        );
        assert!(matches!(
            after.open(r#"{"a":1}"#, b"c"),
            Err(SealingError::Unsealed)
        ));
    }

    #[test]
    fn bad_keys_are_refused_with_what_is_wrong() {
        let parse = |l: &str| KeyRing::parse(&[l.to_owned()]).unwrap_err().to_string();
        assert!(parse("nocolon").contains("no `:`"));
        assert!(parse("k1:!!!").contains("not base64"));
        assert!(parse("k1:AAAA").contains("3 bytes, not 32"));
        assert!(parse("bad id:AAAA").contains("the id must be"));
        let line = KeyRing::generate_line();
        let dup = KeyRing::parse(&[line.clone(), line]).unwrap_err();
        assert!(matches!(dup, SealingError::DuplicateId(_)));
        assert!(matches!(KeyRing::parse(&[]), Err(SealingError::Missing)));
        assert!(!format!("{:?}", ring(&[&KeyRing::generate_line()])).contains("=="));
    }

    #[test]
    fn an_sqlite_store_without_configured_keys_gets_one_generated_beside_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data").join("herald.db");
        let (first, path) = KeyRing::resolve(&[], Some(&db)).unwrap();
        let path = path.unwrap();
        assert_eq!(path, dir.path().join("data").join(KEY_FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner reads the key file");
        }
        let (again, _) = KeyRing::resolve(&[], Some(&db)).unwrap();
        assert_eq!(first.current(), again.current());
        assert!(matches!(
            KeyRing::resolve(&[], None),
            Err(SealingError::Missing)
        ));
    }
}
