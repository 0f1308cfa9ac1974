//! Passwords for the web console: the policy, and argon2id hashes stored as
//! PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), which carry
//! their own parameters, so stronger ones can come later without a
//! migration. The password itself is never stored or logged.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::error::{Error, Result};

/// Shortest password accepted, in characters.
pub const MIN_CHARS: usize = 10;
/// Longest password accepted, in characters (hashing cost is bounded).
pub const MAX_CHARS: usize = 1024;

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks `password` against the policy: length, and not the user name.
pub fn check_policy(password: &str, username: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_CHARS} characters (it has {chars})"),
        ));
    }
    if chars > MAX_CHARS {
        return Err(Error::invalid(
            "password",
            format!("must be at most {MAX_CHARS} characters"),
        ));
    }
    if password.trim().eq_ignore_ascii_case(username.trim()) {
        return Err(Error::invalid("password", "must not be the user name"));
    }
    Ok(())
}

/// The PHC string of a fresh argon2id hash of `password`.
pub fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| Error::Internal(format!("argon2 salt: {e}")))?;
    Ok(hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::Internal(format!("argon2: {e}")))?
        .to_string())
}

/// Whether `password` matches the stored PHC string. A stored value that
/// does not parse matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let Ok(hasher) = hasher() else {
        return false;
    };
    hasher.verify_password(password.as_bytes(), &parsed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_carries_its_parameters() {
        let stored = hash("correct horse battery").expect("hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(!stored.contains("correct horse"));
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterY", &stored));
        assert!(!verify("", &stored));
        // Salted: the same password hashes differently each time.
        assert_ne!(stored, hash("correct horse battery").expect("hash"));
        assert!(!verify("anything", "not a phc string"));
        assert!(!verify("anything", ""));
    }

    #[test]
    fn the_policy_names_what_is_wrong() {
        assert!(check_policy("long enough pass", "alice").is_ok());
        let short = check_policy("short", "alice").expect_err("short");
        assert!(short.to_string().contains("at least 10"), "{short}");
        let same = check_policy("AliceAlice", "alicealice").expect_err("same");
        assert!(same.to_string().contains("user name"), "{same}");
        let long = "x".repeat(MAX_CHARS + 1);
        assert!(check_policy(&long, "alice").is_err());
        // Characters, not bytes.
        assert!(check_policy("ééééééééé", "alice").is_err());
        assert!(check_policy("éééééééééé", "alice").is_ok());
    }
}
