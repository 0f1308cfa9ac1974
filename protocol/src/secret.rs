//! Secrets in configuration files, in the one form both binaries accept.
//!
//! Not a wire type: the agent's `agent.toml` and the server's config file
//! share it so that a password, community, token or database URL may be
//! written in any of three ways, wherever the file takes a secret:
//!
//! ```toml
//! password = "inline"                                   # in the file itself
//! password = { file = "/etc/outpost/smtp-password" }    # the file's contents
//! password = { env = "OUTPOST_SMTP_PASSWORD" }          # an environment variable
//! ```
//!
//! A file's trailing line break is dropped (so `echo secret > file` works);
//! an empty file or variable is refused. The file is read, and the variable
//! looked up, while the configuration is decoded, so a missing one is an
//! error of the configuration that names the key (and, from a TOML file,
//! its line) and the file or variable.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// A secret read from the configuration: its value, wherever it was
/// written. `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret, unwrapped.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = SecretString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, { file = \"PATH\" } or { env = \"NAME\" }")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<SecretString, E> {
        Ok(SecretString(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<SecretString, E> {
        Ok(SecretString(value))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretString, A::Error> {
        let mut source: Option<Source> = None;
        while let Some(key) = map.next_key::<String>()? {
            let next = match key.as_str() {
                "file" => Source::File(map.next_value()?),
                "env" => Source::Env(map.next_value()?),
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key `{other}` in a secret; use {{ file = \"PATH\" }} or {{ env = \"NAME\" }}"
                    )))
                }
            };
            if source.is_some() {
                return Err(de::Error::custom(
                    "a secret takes one of `file` and `env`, not both",
                ));
            }
            source = Some(next);
        }
        let source = source.ok_or_else(|| {
            de::Error::custom(
                "an empty table is no secret; use { file = \"PATH\" } or { env = \"NAME\" }",
            )
        })?;
        source.read().map(SecretString).map_err(de::Error::custom)
    }
}

/// Where a secret written as a table comes from.
enum Source {
    File(PathBuf),
    Env(String),
}

impl Source {
    fn read(self) -> Result<String, String> {
        match self {
            Source::File(path) => {
                let text = std::fs::read_to_string(&path).map_err(|err| {
                    format!("cannot read the secret file {}: {err}", path.display())
                })?;
                let value = text.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    return Err(format!("the secret file {} is empty", path.display()));
                }
                Ok(value.to_owned())
            }
            Source::Env(name) => match std::env::var(&name) {
                Ok(value) if value.is_empty() => {
                    Err(format!("the environment variable {name} is empty"))
                }
                Ok(value) => Ok(value),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("the environment variable {name} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("the environment variable {name} is not UTF-8"))
                }
            },
        }
    }
}

/// For `#[serde(deserialize_with = "...")]` on a `String` field.
pub fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    SecretString::deserialize(deserializer).map(SecretString::into_inner)
}

/// For `#[serde(default, deserialize_with = "...")]` on an `Option<String>`
/// field.
pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    string(deserializer).map(Some)
}

/// For `#[serde(default, deserialize_with = "...")]` on a map whose values
/// are secrets (such as HTTP headers carrying a token).
pub fn map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, SecretString>::deserialize(deserializer)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.into_inner())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Result<String, String> {
        serde_json::from_str::<SecretString>(json)
            .map(SecretString::into_inner)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn inline_file_and_environment() {
        assert_eq!(decode("\"inline\"").as_deref(), Ok("inline"));
        let dir = std::env::temp_dir().join(format!("outpost-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("s");
        std::fs::write(&file, "from file\n").expect("write");
        let json = format!("{{\"file\": {:?}}}", file.display().to_string());
        assert_eq!(decode(&json).as_deref(), Ok("from file"));
        std::fs::write(&file, "\n").expect("write");
        let err = decode(&json).expect_err("empty file");
        assert!(
            err.contains("is empty") && err.contains(&file.display().to_string()),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let err = decode(&json).expect_err("missing file");
        assert!(err.contains("cannot read the secret file"), "{err}");

        // PATH is set in every test environment; an unlikely name is not.
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(decode("{\"env\": \"PATH\"}"), Ok(path));
        let err = decode("{\"env\": \"OUTPOST_TEST_SURELY_UNSET_4711\"}").expect_err("unset");
        assert!(
            err.contains("the environment variable OUTPOST_TEST_SURELY_UNSET_4711 is not set"),
            "{err}"
        );
    }

    #[test]
    fn malformed_tables_are_refused() {
        for (json, needle) in [
            ("{}", "an empty table is no secret"),
            ("{\"path\": \"/x\"}", "unknown key `path` in a secret"),
            ("{\"env\": \"A\", \"file\": \"/x\"}", "not both"),
            ("42", "a string, { file = \"PATH\" } or { env = \"NAME\" }"),
        ] {
            let err = decode(json).expect_err(json);
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", SecretString("hunter2".into())), "***");
    }
}
