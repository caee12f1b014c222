//! Bearer tokens with a lifetime, as exec plugins and token rotation hand them out.
//!
//! The kubeconfig's own token never expires. Tokens issued here are accepted until their
//! expiry and answered with 401 after it, like a real API server answers an expired
//! service-account or OIDC token.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rand::Rng;

/// The issued tokens of one fake cluster.
#[derive(Default)]
pub struct Tokens {
    /// Token → expiry. Expired entries are purged as new tokens are issued.
    issued: Mutex<HashMap<String, SystemTime>>,
}

/// A token and when it stops working.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedToken {
    pub token: String,
    /// RFC 3339, as an `ExecCredential`'s `status.expirationTimestamp`.
    #[serde(rename = "expirationTimestamp")]
    pub expiration_timestamp: String,
}

impl Tokens {
    /// Issues a token valid for `ttl`.
    pub fn issue(&self, ttl: Duration) -> IssuedToken {
        let token: String = {
            let mut rng = rand::rng();
            (0..40)
                .map(|_| {
                    let i = rng.random_range(0..36u8);
                    (if i < 10 { b'0' + i } else { b'a' + i - 10 }) as char
                })
                .collect()
        };
        let expiry = SystemTime::now() + ttl;
        let mut issued = self.issued.lock();
        let now = SystemTime::now();
        issued.retain(|_, exp| *exp > now);
        issued.insert(format!("ttl-{token}"), expiry);
        IssuedToken {
            token: format!("ttl-{token}"),
            expiration_timestamp: chrono::DateTime::<chrono::Utc>::from(expiry)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// Whether `token` was issued here and has not expired.
    pub fn valid(&self, token: &str) -> bool {
        self.issued
            .lock()
            .get(token)
            .is_some_and(|exp| *exp > SystemTime::now())
    }

    /// Makes `token` stop working now.
    pub fn revoke(&self, token: &str) {
        self.issued.lock().remove(token);
    }

    /// Makes every issued token stop working now (the kubeconfig's own token stays).
    pub fn revoke_all(&self) {
        self.issued.lock().clear();
    }
}
