//! HAR 1.2 export (<http://www.softwareishard.com/blog/har-12-spec/>), typed.
//!
//! Every field HAR 1.2 requires is always written. Cookies are always empty lists: the
//! headers that carry them are redacted. Bodies appear as `postData.text` and
//! `content.text` only when they were captured; a response body that is not UTF-8 is written
//! in base64 with `encoding: "base64"`, and a request body that is not UTF-8 likewise with the
//! custom field `_encoding` (HAR's postData has no encoding field). An exchange without a
//! response is exported with status 0 and a comment, as browsers export failed requests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

use crate::exchange::{Exchange, Message};
use crate::replay::absolute_url;

/// A HAR document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Har {
    /// The root object.
    pub log: Log,
}

/// `log`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Log {
    /// Always `1.2`.
    pub version: String,
    /// Who wrote the file.
    pub creator: Creator,
    /// One per exchange, in the order given.
    pub entries: Vec<Entry>,
}

/// `log.creator`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Creator {
    /// `Ferry`.
    pub name: String,
    /// Ferry's version.
    pub version: String,
}

/// `log.entries[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// ISO 8601, UTC, milliseconds.
    pub started_date_time: String,
    /// Milliseconds, the sum of `timings`.
    pub time: f64,
    /// The request.
    pub request: Request,
    /// The response.
    pub response: Response,
    /// Always empty: nothing is cached here.
    pub cache: Cache,
    /// Where the time went.
    pub timings: Timings,
    /// Why the entry is partial, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `entries[].request`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The method.
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub http_version: String,
    /// Always empty (cookies are redacted).
    pub cookies: Vec<NameValue>,
    /// Header fields, secrets redacted.
    pub headers: Vec<NameValue>,
    /// The query's parameters, decoded.
    pub query_string: Vec<NameValue>,
    /// The body, when it was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_data: Option<PostData>,
    /// Bytes of the head.
    pub headers_size: i64,
    /// Bytes of the body on the wire.
    pub body_size: i64,
}

/// `request.postData`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    /// The Content-Type, or empty.
    pub mime_type: String,
    /// Always empty; the body is in `text`.
    pub params: Vec<NameValue>,
    /// The captured body (base64 when `_encoding` says so).
    pub text: String,
    /// `base64` when the body is not UTF-8.
    #[serde(rename = "_encoding", default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Set when the text is only the body's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `entries[].response`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The status, 0 when none was seen.
    pub status: u16,
    /// The reason phrase.
    pub status_text: String,
    /// `HTTP/1.1`, `HTTP/1.0`, or empty when no response was seen.
    pub http_version: String,
    /// Always empty (cookies are redacted).
    pub cookies: Vec<NameValue>,
    /// Header fields, secrets redacted.
    pub headers: Vec<NameValue>,
    /// The body.
    pub content: Content,
    /// The Location header, or empty.
    #[serde(rename = "redirectURL")]
    pub redirect_url: String,
    /// Bytes of the head, -1 when no response was seen.
    pub headers_size: i64,
    /// Bytes of the body on the wire, -1 when no response was seen.
    pub body_size: i64,
}

/// `response.content`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Bytes of the payload (de-chunked, still content-encoded).
    pub size: i64,
    /// The Content-Type, or empty.
    pub mime_type: String,
    /// The captured body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `base64` when `text` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Set when the text is only the body's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `entries[].cache`: empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cache {}

/// `entries[].timings`, in milliseconds; none is ever -1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Sending the request.
    pub send: f64,
    /// Waiting for the response's first byte.
    pub wait: f64,
    /// Receiving the response.
    pub receive: f64,
}

/// A `{name, value}` pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameValue {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// Exports exchanges as a HAR 1.2 document. `base_url` is where the requests went, e.g. the
/// forward's `http://127.0.0.1:18080`; it makes request targets absolute.
pub fn to_har<'a>(
    exchanges: impl IntoIterator<Item = &'a Exchange>,
    creator_version: &str,
    base_url: &str,
) -> Har {
    Har {
        log: Log {
            version: "1.2".to_owned(),
            creator: Creator {
                name: "Ferry".to_owned(),
                version: creator_version.to_owned(),
            },
            entries: exchanges
                .into_iter()
                .map(|exchange| entry(exchange, base_url))
                .collect(),
        },
    }
}

fn entry(exchange: &Exchange, base_url: &str) -> Entry {
    let started = i64::try_from(exchange.started_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default();
    let timings = exchange.timings.unwrap_or_default();
    let timings = Timings {
        send: timings.send_ms,
        wait: timings.wait_ms,
        receive: timings.receive_ms,
    };
    let comment = match (&exchange.upgrade, exchange.incomplete) {
        (Some(protocol), _) => Some(format!(
            "switched to {protocol}; later traffic not recorded"
        )),
        (None, true) => Some("incomplete: the connection ended before the exchange did".to_owned()),
        (None, false) => None,
    };
    Entry {
        started_date_time: started.to_rfc3339_opts(SecondsFormat::Millis, true),
        time: timings.send + timings.wait + timings.receive,
        request: request(exchange, base_url),
        response: response(exchange),
        cache: Cache {},
        timings,
        comment,
    }
}

fn request(exchange: &Exchange, base_url: &str) -> Request {
    let message = &exchange.request;
    let post_data = (!message.body.is_empty()).then(|| {
        let (text, encoding) = text_of(&message.body);
        PostData {
            mime_type: message
                .header("content-type")
                .unwrap_or_default()
                .to_owned(),
            params: Vec::new(),
            text,
            encoding,
            comment: truncation(message),
        }
    });
    Request {
        method: exchange.method.clone(),
        url: absolute_url(base_url, &exchange.target),
        http_version: message.version.to_string(),
        cookies: Vec::new(),
        headers: name_values(message),
        query_string: query_string(&exchange.target),
        post_data,
        headers_size: size(message.head_size),
        body_size: size(message.body_size),
    }
}

fn response(exchange: &Exchange) -> Response {
    let Some(message) = &exchange.response else {
        return Response {
            status: 0,
            status_text: String::new(),
            http_version: String::new(),
            cookies: Vec::new(),
            headers: Vec::new(),
            content: Content {
                size: 0,
                mime_type: String::new(),
                text: None,
                encoding: None,
                comment: None,
            },
            redirect_url: String::new(),
            headers_size: -1,
            body_size: -1,
        };
    };
    let (text, encoding) = if message.body.is_empty() {
        (None, None)
    } else {
        let (text, encoding) = text_of(&message.body);
        (Some(text), encoding)
    };
    Response {
        status: exchange.status.unwrap_or_default(),
        status_text: exchange.reason.clone().unwrap_or_default(),
        http_version: message.version.to_string(),
        cookies: Vec::new(),
        headers: name_values(message),
        content: Content {
            size: size(message.content_size),
            mime_type: message
                .header("content-type")
                .unwrap_or_default()
                .to_owned(),
            text,
            encoding,
            comment: truncation(message),
        },
        redirect_url: message.header("location").unwrap_or_default().to_owned(),
        headers_size: size(message.head_size),
        body_size: size(message.body_size),
    }
}

/// The body as UTF-8 text, or as base64 with the encoding named.
fn text_of(body: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (STANDARD.encode(body), Some("base64".to_owned())),
    }
}

fn truncation(message: &Message) -> Option<String> {
    message.truncated.then(|| {
        format!(
            "first {} of {} bytes",
            message.body.len(),
            message.content_size
        )
    })
}

fn name_values(message: &Message) -> Vec<NameValue> {
    message
        .headers
        .iter()
        .map(|h| NameValue {
            name: h.name.clone(),
            value: h.value.clone(),
        })
        .collect()
}

fn query_string(target: &str) -> Vec<NameValue> {
    let Some((_, query)) = target.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| NameValue {
            name: name.into_owned(),
            value: value.into_owned(),
        })
        .collect()
}

fn size(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::Config;
    use crate::testing::{Step, one, run};

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Str,
        Num,
        Arr,
        Obj,
    }

    fn check(value: &Value, path: &str, fields: &[(&str, Kind)]) {
        for &(name, kind) in fields {
            let field = value
                .get(name)
                .unwrap_or_else(|| panic!("{path}.{name} missing in {value}"));
            let ok = match kind {
                Kind::Str => field.is_string(),
                Kind::Num => field.is_number(),
                Kind::Arr => field.is_array(),
                Kind::Obj => field.is_object(),
            };
            assert!(ok, "{path}.{name} should be {kind:?}, is {field}");
        }
    }

    fn check_name_values(list: &Value, path: &str) {
        for item in list.as_array().unwrap() {
            check(item, path, &[("name", Kind::Str), ("value", Kind::Str)]);
        }
    }

    /// Every field HAR 1.2 requires, with its JSON type, in every entry.
    fn check_har(har: &Value) {
        use Kind::*;
        check(har, "", &[("log", Obj)]);
        let log = &har["log"];
        check(
            log,
            "log",
            &[("version", Str), ("creator", Obj), ("entries", Arr)],
        );
        assert_eq!(log["version"], "1.2");
        check(
            &log["creator"],
            "log.creator",
            &[("name", Str), ("version", Str)],
        );
        for entry in log["entries"].as_array().unwrap() {
            check(
                entry,
                "entry",
                &[
                    ("startedDateTime", Str),
                    ("time", Num),
                    ("request", Obj),
                    ("response", Obj),
                    ("cache", Obj),
                    ("timings", Obj),
                ],
            );
            let request = &entry["request"];
            check(
                request,
                "request",
                &[
                    ("method", Str),
                    ("url", Str),
                    ("httpVersion", Str),
                    ("cookies", Arr),
                    ("headers", Arr),
                    ("queryString", Arr),
                    ("headersSize", Num),
                    ("bodySize", Num),
                ],
            );
            check_name_values(&request["headers"], "request.headers");
            check_name_values(&request["queryString"], "request.queryString");
            if let Some(post) = request.get("postData") {
                check(
                    post,
                    "request.postData",
                    &[("mimeType", Str), ("params", Arr), ("text", Str)],
                );
            }
            let response = &entry["response"];
            check(
                response,
                "response",
                &[
                    ("status", Num),
                    ("statusText", Str),
                    ("httpVersion", Str),
                    ("cookies", Arr),
                    ("headers", Arr),
                    ("content", Obj),
                    ("redirectURL", Str),
                    ("headersSize", Num),
                    ("bodySize", Num),
                ],
            );
            check_name_values(&response["headers"], "response.headers");
            check(
                &response["content"],
                "response.content",
                &[("size", Num), ("mimeType", Str)],
            );
            let timings = &entry["timings"];
            check(
                timings,
                "timings",
                &[("send", Num), ("wait", Num), ("receive", Num)],
            );
            let parts: f64 = ["send", "wait", "receive"]
                .iter()
                .map(|k| timings[k].as_f64().unwrap())
                .sum();
            assert!(
                ["send", "wait", "receive"]
                    .iter()
                    .all(|k| timings[k].as_f64().unwrap() >= 0.0),
                "{timings}"
            );
            assert!((entry["time"].as_f64().unwrap() - parts).abs() < 1e-9);
        }
    }

    #[test]
    fn har_has_every_required_field_with_its_type() {
        let config = Config::default().with_body_capture(64);
        let post = one(
            config.clone(),
            b"POST /form?a=1&b=x%20y HTTP/1.1\r\nHost: svc\r\nContent-Type: text/plain\r\nCookie: c=1\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Type: application/octet-stream\r\nContent-Length: 2\r\n\r\n\xff\xfe",
        );
        let pending = run(config, &[Step::C(b"GET /never HTTP/1.1\r\n\r\n")]).exchanges;
        let exchanges: Vec<Exchange> = [post].into_iter().chain(pending).collect();
        let har = to_har(&exchanges, "0.1.0", "http://127.0.0.1:18080");
        let json = serde_json::to_value(&har).unwrap();
        check_har(&json);

        let entry = &json["log"]["entries"][0];
        assert_eq!(entry["startedDateTime"], "2024-01-02T03:04:05.678Z");
        assert_eq!(entry["time"], 5.0);
        assert_eq!(
            entry["request"]["url"],
            "http://127.0.0.1:18080/form?a=1&b=x%20y"
        );
        assert_eq!(
            entry["request"]["queryString"][1],
            serde_json::json!({"name": "b", "value": "x y"})
        );
        assert_eq!(entry["request"]["postData"]["text"], "hello");
        assert_eq!(entry["request"]["cookies"], serde_json::json!([]));
        assert_eq!(entry["request"]["headers"][2]["value"], crate::REDACTED);
        assert_eq!(entry["response"]["redirectURL"], "/next");
        assert_eq!(entry["response"]["content"]["text"], "//4=");
        assert_eq!(entry["response"]["content"]["encoding"], "base64");
        assert_eq!(entry["response"]["content"]["size"], 2);
        assert_eq!(
            json["log"]["creator"],
            serde_json::json!({"name": "Ferry", "version": "0.1.0"})
        );

        let never = &json["log"]["entries"][1];
        assert_eq!(never["response"]["status"], 0);
        assert!(never["comment"].as_str().unwrap().starts_with("incomplete"));
    }
}
