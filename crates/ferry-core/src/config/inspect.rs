//! `inspect`: a forward whose HTTP/1.x traffic Ferry records as it passes (see the
//! `ferry-http` crate). Off unless the config says `inspect: http`.
//!
//! ```yaml
//! inspect: http                  # requests and responses, headers, no bodies
//! inspect: {body_kib: 16, redact: [x-api-key]}   # also the first 16 KiB of bodies
//! ```
//!
//! Secrets are never kept: `Authorization`, `Cookie`, `Set-Cookie` and
//! `Proxy-Authorization` are always redacted, and `redact` names more headers.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// How much of a body is kept at most: 1 MiB (`ferry_http::MAX_BODY_CAPTURE`).
pub const MAX_BODY_KIB: u32 = 1024;

/// What an inspected forward records besides requests, responses and their headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, ts_rs::TS)]
pub struct Inspect {
    /// The first KiB of each request and response body kept; 0 (the default) keeps none.
    pub body_kib: u32,
    /// More header names to redact (case does not matter), besides the four always
    /// redacted.
    pub redact: Vec<String>,
}

impl Inspect {
    /// The inspector's settings for this spec.
    pub fn http_config(&self) -> ferry_http::Config {
        ferry_http::Config::default()
            .with_body_capture(self.body_kib as usize * 1024)
            .with_redacted(self.redact.iter().cloned())
    }
}

impl Serialize for Inspect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if *self == Inspect::default() {
            return s.serialize_str("http");
        }
        let mut map = s.serialize_map(None)?;
        if self.body_kib != 0 {
            map.serialize_entry("body_kib", &self.body_kib)?;
        }
        if !self.redact.is_empty() {
            map.serialize_entry("redact", &self.redact)?;
        }
        map.end()
    }
}

/// Reads `inspect:` — `http`, `off` (or null: no inspection), or a map of [`Inspect`]'s
/// fields.
pub(crate) fn deserialize_inspect<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Inspect>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Inspect>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("`http`, `off`, or a map with body_kib and redact")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v {
                "http" => Ok(Some(Inspect::default())),
                "off" => Ok(None),
                other => Err(E::custom(format!(
                    "{other:?} is not an inspection: use `http` or `off`"
                ))),
            }
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            // YAML 1.1 reads a bare `off` as false.
            Ok(v.then(Inspect::default))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut spec = Inspect::default();
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "body_kib" => spec.body_kib = map.next_value()?,
                    "redact" => spec.redact = map.next_value()?,
                    // The long form of `inspect: http`.
                    "mode" => {
                        let mode: String = map.next_value()?;
                        if mode != "http" {
                            return Err(de::Error::custom(format!(
                                "mode: {mode:?} is not an inspection mode: use `http`"
                            )));
                        }
                    }
                    other => {
                        return Err(de::Error::unknown_field(
                            other,
                            &["mode", "body_kib", "redact"],
                        ));
                    }
                }
            }
            Ok(Some(spec))
        }
    }
    d.deserialize_any(V)
}

/// Whether `name` is a header name (an HTTP token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl<'de> Deserialize<'de> for Inspect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(deserialize_inspect(d)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Inspect};

    fn parse(inspect: &str) -> Result<Config, String> {
        Config::from_yaml(&format!(
            "version: 1\nforwards:\n  - {{name: web, target: service/web, port: 80, local_port: 0, inspect: {inspect}}}\n"
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn inspect_reads_its_short_and_long_forms_and_writes_the_short_one_back() {
        let short = parse("http").expect("http");
        assert_eq!(short.forwards[0].inspect, Some(Inspect::default()));
        assert!(short.to_yaml().expect("yaml").contains("inspect: http"));
        assert_eq!(parse("off").expect("off").forwards[0].inspect, None);
        let long = parse("{body_kib: 16, redact: [x-api-key]}").expect("long");
        let want = Inspect {
            body_kib: 16,
            redact: vec!["x-api-key".into()],
        };
        assert_eq!(long.forwards[0].inspect, Some(want.clone()));
        let again = Config::from_yaml(&long.to_yaml().expect("yaml")).expect("round trip");
        assert_eq!(again.forwards[0].inspect, Some(want));
        assert_eq!(
            parse("{mode: http}").expect("mode").forwards[0].inspect,
            Some(Inspect::default())
        );
    }

    #[test]
    fn bad_inspect_values_name_the_field() {
        let e = parse("{body_kib: 4096}").expect_err("too big");
        assert!(e.contains("forwards[0].inspect.body_kib"), "{e}");
        let e = parse("{redact: [\"x api key\"]}").expect_err("not a header");
        assert!(e.contains("forwards[0].inspect.redact[0]"), "{e}");
        let e = parse("tcp").expect_err("not a mode");
        assert!(e.contains("\"tcp\" is not an inspection"), "{e}");
        let e = parse("{bodies: 1}").expect_err("unknown field");
        assert!(e.contains("bodies"), "{e}");
    }
}
