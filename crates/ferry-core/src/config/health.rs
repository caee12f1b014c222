//! A forward's health-check spec, as the config writes it:
//!
//! ```yaml
//! health:
//!   kind: tunnel          # tunnel | tcp | http | none   (tunnel)
//!   interval: 5s          # steady-state period          (5s)
//!   fast_interval: 1s     # while counting towards a change (1s)
//!   down_interval: 10s    # while Down                   (interval)
//!   idle_interval: 30s    # while Up and unused for a minute (30s; at least interval)
//!   timeout: 2s           #                              (2s)
//!   rise: 2               # consecutive passes to go Up  (2)
//!   fall: 3               # consecutive failures to go Down (3)
//!   http: {path: /healthz, expect_status: "200-399", body_regex: null, host: null}
//!   max_idle: null        # recycle local connections idle longer than this
//!   max_age: null         # recycle connections older than this
//! ```
//!
//! Durations are written `500ms`, `5s`, `1m`, `1h 30m`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::Problem;

/// How a forward is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Open a port-forward stream straight to the current pod port (no local socket).
    #[default]
    Tunnel,
    /// Connect to the forward's own local listener.
    Tcp,
    /// Send an HTTP request through the tunnel and check the answer.
    Http,
    /// No checks: a resolved forward is active.
    None,
}

/// An inclusive range of HTTP status codes, written `200-399` or `204`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRange {
    pub min: u16,
    pub max: u16,
}

impl StatusRange {
    pub fn contains(&self, code: u16) -> bool {
        (self.min..=self.max).contains(&code)
    }
}

impl Default for StatusRange {
    fn default() -> Self {
        Self { min: 200, max: 399 }
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl std::str::FromStr for StatusRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a status range; write e.g. 200-399 or 204");
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let min: u16 = a.trim().parse().map_err(|_| bad())?;
        let max: u16 = b.trim().parse().map_err(|_| bad())?;
        if !(100..=599).contains(&min) || !(100..=599).contains(&max) || min > max {
            return Err(bad());
        }
        Ok(Self { min, max })
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Code(c) => c.to_string().parse(),
            Raw::Text(t) => t.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// What an `http` check sends and expects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// The request path (`/healthz`).
    #[serde(default = "default_path")]
    pub path: String,
    /// The status codes that pass (`200-399`).
    #[serde(default)]
    #[ts(type = "string")]
    pub expect_status: StatusRange,
    /// A regular expression the body must match, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_regex: Option<String>,
    /// The `Host` header; the target's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

fn default_path() -> String {
    "/healthz".into()
}

impl Default for HttpCheck {
    fn default() -> Self {
        Self {
            path: default_path(),
            expect_status: StatusRange::default(),
            body_regex: None,
            host: None,
        }
    }
}

/// A forward's health checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    #[serde(default)]
    pub kind: ProbeKind,
    /// The steady-state period.
    #[serde(default = "d5s", with = "human")]
    #[ts(type = "string")]
    pub interval: Duration,
    /// The period while counting towards a change.
    #[serde(default = "d1s", with = "human")]
    #[ts(type = "string")]
    pub fast_interval: Duration,
    /// The period while Down; `interval` when unset.
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    #[ts(as = "Option<String>")]
    pub down_interval: Option<Duration>,
    /// The period while Up and the forward has carried no connection for a minute
    /// (`crate::health::IDLE_AFTER`); never shorter than `interval`. Idle forwards still
    /// see pod changes at once (the resolver watches them); this spares the API server a
    /// tunnel every few seconds for forwards nobody uses.
    #[serde(
        default = "d30s",
        with = "human",
        skip_serializing_if = "is_default_idle"
    )]
    #[ts(type = "string")]
    pub idle_interval: Duration,
    /// How long one probe may take.
    #[serde(default = "d2s", with = "human")]
    #[ts(type = "string")]
    pub timeout: Duration,
    /// Consecutive passes to go Up.
    #[serde(default = "two")]
    pub rise: u32,
    /// Consecutive failures to go Down.
    #[serde(default = "three")]
    pub fall: u32,
    #[serde(default)]
    pub http: HttpCheck,
    /// Close local connections idle longer than this.
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    #[ts(as = "Option<String>")]
    pub max_idle: Option<Duration>,
    /// Close local connections older than this.
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    #[ts(as = "Option<String>")]
    pub max_age: Option<Duration>,
}

/// Left out when it is the default, so stores stay readable by builds without the field.
fn is_default_idle(d: &Duration) -> bool {
    *d == d30s()
}
fn d30s() -> Duration {
    Duration::from_secs(30)
}
fn d5s() -> Duration {
    Duration::from_secs(5)
}
fn d1s() -> Duration {
    Duration::from_secs(1)
}
fn d2s() -> Duration {
    Duration::from_secs(2)
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            kind: ProbeKind::default(),
            interval: d5s(),
            fast_interval: d1s(),
            down_interval: None,
            idle_interval: d30s(),
            timeout: d2s(),
            rise: two(),
            fall: three(),
            http: HttpCheck::default(),
            max_idle: None,
            max_age: None,
        }
    }
}

impl HealthSpec {
    /// Whether this is the default spec (left out when serializing).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Problems with the spec of `forwards[i]`.
    pub(crate) fn problems(&self, i: usize) -> Vec<Problem> {
        let at = |field: &str| format!("forwards[{i}].health.{field}");
        let mut out = Vec::new();
        for (field, d) in [
            ("interval", Some(self.interval)),
            ("fast_interval", Some(self.fast_interval)),
            ("down_interval", self.down_interval),
            ("idle_interval", Some(self.idle_interval)),
            ("timeout", Some(self.timeout)),
            ("max_idle", self.max_idle),
            ("max_age", self.max_age),
        ] {
            if d.is_some_and(|d| d < Duration::from_millis(10)) {
                out.push(Problem::new(at(field), "must be at least 10ms"));
            } else if d.is_some_and(|d| d > Duration::from_secs(7 * 24 * 3600)) {
                out.push(Problem::new(at(field), "must be at most 7 days"));
            }
        }
        if self.rise == 0 {
            out.push(Problem::new(at("rise"), "must be at least 1"));
        }
        if self.fall == 0 {
            out.push(Problem::new(at("fall"), "must be at least 1"));
        }
        if !self.http.path.starts_with('/') {
            out.push(Problem::new(
                at("http.path"),
                format!("{:?} must start with '/'", self.http.path),
            ));
        }
        if let Some(re) = &self.http.body_regex
            && let Err(e) = regex::Regex::new(re)
        {
            out.push(Problem::new(
                at("http.body_regex"),
                format!("not a valid regular expression: {e}"),
            ));
        }
        out
    }
}

mod human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. 500ms, 5s or 1m"
            ))
        })
    }
}

mod human_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::human::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => humantime::parse_duration(&text).map(Some).map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration ({e}); write e.g. 500ms, 5s or 1m"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_every_field() {
        let spec: HealthSpec = serde_norway::from_str("{}").expect("empty spec parses");
        assert_eq!(spec, HealthSpec::default());
        assert_eq!(spec.kind, ProbeKind::Tunnel);
        assert_eq!(spec.interval, Duration::from_secs(5));
        assert_eq!(spec.fast_interval, Duration::from_secs(1));
        assert_eq!(spec.down_interval, None);
        assert_eq!(spec.timeout, Duration::from_secs(2));
        assert_eq!((spec.rise, spec.fall), (2, 3));
        assert_eq!(spec.http.path, "/healthz");
        assert_eq!(spec.http.expect_status, StatusRange { min: 200, max: 399 });
        assert_eq!((spec.max_idle, spec.max_age), (None, None));
    }

    #[test]
    fn specs_round_trip_and_bad_values_are_named() {
        let text = "kind: http\ninterval: 10s\nfast_interval: 500ms\ndown_interval: 1m\nhttp: {path: /ready, expect_status: 204, body_regex: '^ok'}\nmax_age: 1h\n";
        let spec: HealthSpec = serde_norway::from_str(text).expect("parses");
        assert_eq!(spec.fast_interval, Duration::from_millis(500));
        assert_eq!(spec.http.expect_status, StatusRange { min: 204, max: 204 });
        let again: HealthSpec =
            serde_norway::from_str(&serde_norway::to_string(&spec).expect("serializes"))
                .expect("re-parses");
        assert_eq!(again, spec);
        let err = serde_norway::from_str::<HealthSpec>("interval: fast").expect_err("bad duration");
        assert!(err.to_string().contains("not a duration"), "{err}");
        let err = serde_norway::from_str::<HealthSpec>("http: {expect_status: 700}")
            .expect_err("bad range");
        assert!(err.to_string().contains("status range"), "{err}");
        let bad = HealthSpec {
            rise: 0,
            http: HttpCheck {
                path: "healthz".into(),
                body_regex: Some("(".into()),
                ..HttpCheck::default()
            },
            ..HealthSpec::default()
        };
        let paths: Vec<String> = bad.problems(3).into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "forwards[3].health.rise",
                "forwards[3].health.http.path",
                "forwards[3].health.http.body_regex"
            ]
        );
    }
}
