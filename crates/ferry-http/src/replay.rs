//! Sending an exchange's request again: as a `curl` command line through the local port, or as
//! the raw bytes a later change will write through the forward.
//!
//! Both leave out what cannot or should not be repeated: redacted headers (their values were
//! never kept), and the headers that belong to the original connection rather than the request
//! (Connection, Keep-Alive, Transfer-Encoding, Content-Length, TE, Trailer, Upgrade, Expect).
//! The body is sent whole and de-chunked, so both refuse a request whose body was not kept in
//! full.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::exchange::{Exchange, Header, Version};

/// Why a request cannot be sent again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The body was not kept whole: capture was off or smaller than the body.
    #[error(
        "the request body was not captured in full ({captured} of {size} bytes); raise the body capture limit to replay it"
    )]
    BodyNotCaptured {
        /// Bytes kept.
        captured: u64,
        /// Bytes in the body.
        size: u64,
    },
    /// The connection ended before the request did.
    #[error("the request was not seen to its end")]
    RequestIncomplete,
}

/// Headers of the connection, not of the request.
const CONNECTION_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Joins a base URL (`http://127.0.0.1:18080`) and a request target (`/a?b`) into an absolute
/// URL. An absolute-form target is returned as it is.
pub fn absolute_url(base_url: &str, target: &str) -> String {
    if target.contains("://") {
        return target.to_owned();
    }
    let base = base_url.trim_end_matches('/');
    if target.starts_with('/') {
        format!("{base}{target}")
    } else {
        format!("{base}/{target}")
    }
}

impl Exchange {
    /// A `curl` command line that sends this request again to `base_url` (the forward's local
    /// address, e.g. `http://127.0.0.1:18080`). Every argument is shell-quoted; a body that is
    /// not UTF-8 is piped in through `base64 -d`.
    pub fn curl(&self, base_url: &str) -> Result<String, ReplayError> {
        let body = self.replay_body()?;
        let mut args: Vec<String> = vec!["curl".into()];
        if self.request.version == Version::Http10 {
            args.push("--http1.0".into());
        }
        match self.method.as_str() {
            "GET" if body.is_empty() => {}
            "HEAD" => args.push("--head".into()),
            method => args.extend(["-X".into(), method.to_owned()]),
        }
        if self.target.contains(['[', ']', '{', '}']) {
            args.push("--globoff".into());
        }
        if has_dot_segments(&self.target) {
            args.push("--path-as-is".into());
        }
        args.push(absolute_url(base_url, &self.target));
        for header in self.replayed_headers() {
            // `-H 'Name:'` would remove a header; `-H 'Name;'` sends it empty.
            let line = if header.value.is_empty() {
                format!("{};", header.name)
            } else {
                format!("{}: {}", header.name, header.value)
            };
            args.extend(["-H".into(), line]);
        }
        let mut pipe = String::new();
        if !body.is_empty() {
            if self.request.header("content-type").is_none() {
                // Otherwise curl adds a form content type the original did not have.
                args.extend(["-H".into(), "Content-Type:".into()]);
            }
            match std::str::from_utf8(body) {
                Ok(text) => args.extend(["--data-binary".into(), text.to_owned()]),
                Err(_) => {
                    pipe = format!("printf %s {} | base64 -d | ", STANDARD.encode(body));
                    args.extend(["--data-binary".into(), "@-".into()]);
                }
            }
        }
        let quoted: Vec<_> = args.iter().map(|arg| shell_words::quote(arg)).collect();
        Ok(pipe + &quoted.join(" "))
    }

    /// The request as raw HTTP/1.1 bytes, ready to write to a new connection through the
    /// forward: same method, target and headers (less those described in the [module
    /// docs](self)), `Content-Length` for the de-chunked body, and `Connection: close`.
    /// A request without a Host header (HTTP/1.0) gets `Host: localhost`.
    pub fn replay_request_bytes(&self) -> Result<Vec<u8>, ReplayError> {
        let body = self.replay_body()?;
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        let mut has_host = false;
        for header in self.replayed_headers() {
            has_host |= header.name.eq_ignore_ascii_case("host");
            // Writing to a String cannot fail.
            let _ = write!(head, "{}: {}\r\n", header.name, header.value);
        }
        if !has_host {
            head.push_str("Host: localhost\r\n");
        }
        if !body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        Ok(bytes)
    }

    /// The request body if it was kept whole.
    fn replay_body(&self) -> Result<&[u8], ReplayError> {
        let request = &self.request;
        if !request.complete {
            return Err(ReplayError::RequestIncomplete);
        }
        if request.truncated {
            return Err(ReplayError::BodyNotCaptured {
                captured: request.body.len() as u64,
                size: request.content_size,
            });
        }
        Ok(&request.body)
    }

    fn replayed_headers(&self) -> impl Iterator<Item = &Header> {
        self.request.headers.iter().filter(|header| {
            !header.redacted
                && !CONNECTION_HEADERS
                    .iter()
                    .any(|name| header.name.eq_ignore_ascii_case(name))
        })
    }
}

/// Whether curl would rewrite the path's `.` and `..` segments.
fn has_dot_segments(target: &str) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    path.split('/')
        .any(|segment| segment == "." || segment == "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::testing::one;

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    fn exchange(request: &[u8]) -> Exchange {
        one(
            Config::default()
                .with_body_capture(1024)
                .with_redacted(["x-api-key"]),
            request,
            RESPONSE,
        )
    }

    #[test]
    fn curl_lines_repeat_the_request_without_secrets() {
        let get = exchange(b"GET /items?a=1&b=two%20words HTTP/1.1\r\nHost: localhost:18080\r\nAccept: */*\r\nAuthorization: Bearer t\r\nX-Api-Key: k\r\nConnection: keep-alive\r\nX-Empty:\r\n\r\n");
        assert_eq!(
            get.curl("http://127.0.0.1:18080/").unwrap(),
            "curl 'http://127.0.0.1:18080/items?a=1&b=two%20words' -H 'Host: localhost:18080' -H 'Accept: */*' -H 'X-Empty;'"
        );

        let post = exchange(b"POST /q HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"it's\":[1]}");
        assert_eq!(
            post.curl("http://127.0.0.1:18080").unwrap(),
            r#"curl -X POST http://127.0.0.1:18080/q -H 'Content-Type: application/json' --data-binary '{"it'\''s":[1]}'"#
        );

        let binary =
            exchange(b"PUT /blob/[1]/../x HTTP/1.0\r\nContent-Length: 3\r\n\r\n\xff\x00\x01");
        assert_eq!(
            binary.curl("http://127.0.0.1:18080").unwrap(),
            "printf %s /wAB | base64 -d | curl --http1.0 -X PUT --globoff --path-as-is \
             'http://127.0.0.1:18080/blob/[1]/../x' -H Content-Type: --data-binary @-"
        );

        let head = exchange(b"HEAD / HTTP/1.1\r\n\r\n");
        assert_eq!(
            head.curl("http://127.0.0.1:1").unwrap(),
            "curl --head http://127.0.0.1:1/"
        );
    }

    #[test]
    fn replayed_requests_are_whole_and_close_the_connection() {
        let chunked = exchange(b"POST /up?x=1 HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\nCookie: s=1\r\nExpect: 100-continue\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        let bytes = chunked.replay_request_bytes().unwrap();
        assert_eq!(bytes, b"POST /up?x=1 HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde");

        let old = exchange(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(
            old.replay_request_bytes().unwrap(),
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );

        // The replayed bytes parse back to the same request.
        let again = one(Config::default().with_body_capture(1024), &bytes, RESPONSE);
        assert_eq!(
            (again.method.as_str(), again.target.as_str()),
            ("POST", "/up?x=1")
        );
        assert_eq!(again.request.body, b"abcde");
    }

    #[test]
    fn bodies_not_kept_whole_cannot_be_replayed() {
        let request = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
        let uncaptured = one(Config::default(), request, RESPONSE);
        let error = ReplayError::BodyNotCaptured {
            captured: 0,
            size: 10,
        };
        assert_eq!(uncaptured.replay_request_bytes(), Err(error.clone()));
        assert_eq!(uncaptured.curl("http://h"), Err(error));
        let truncated = one(Config::default().with_body_capture(4), request, RESPONSE);
        assert_eq!(
            truncated.replay_request_bytes(),
            Err(ReplayError::BodyNotCaptured {
                captured: 4,
                size: 10
            })
        );

        let mut cut = crate::testing::run(
            Config::default().with_body_capture(64),
            &[crate::testing::Step::C(
                b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234",
            )],
        );
        assert_eq!(
            cut.exchanges.remove(0).replay_request_bytes(),
            Err(ReplayError::RequestIncomplete)
        );
    }
}
