//! Which proxy a context's client goes through, as kubectl (client-go) decides it: the
//! kubeconfig cluster's `proxy-url` when it has one; otherwise `HTTPS_PROXY` (for an
//! `https://` server; `HTTP_PROXY` for `http://`), upper or lower case, unless `NO_PROXY`
//! names the server. `NO_PROXY` is a comma-separated list of host names (matching the
//! name and every name under it; a leading `.` or `*.` changes nothing), IP addresses,
//! CIDR ranges, any of them with `:port`, or `*` for every server.
//!
//! kube-rs reads the same variables, but checks `NO_PROXY` against the proxy's address
//! instead of the server's, so Ferry decides itself and hands kube the result.

use std::net::IpAddr;

use http::Uri;

/// The proxy for `server`: `explicit` (the cluster's `proxy-url`) if set, else the
/// environment's, read through `env`. An unreadable URL is an error naming where it came
/// from.
pub(crate) fn choose(
    explicit: Option<&str>,
    server: &Uri,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Uri>, String> {
    let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    if let Some(url) = explicit.map(str::trim).filter(|u| !u.is_empty()) {
        return parse(url, "the cluster's proxy-url").map(Some);
    }
    let (upper, lower) = if server.scheme_str() == Some("http") {
        ("HTTP_PROXY", "http_proxy")
    } else {
        ("HTTPS_PROXY", "https_proxy")
    };
    let Some((url, from)) = nonempty(env(upper))
        .map(|u| (u, upper))
        .or_else(|| nonempty(env(lower)).map(|u| (u, lower)))
    else {
        return Ok(None);
    };
    let no_proxy = nonempty(env("NO_PROXY")).or_else(|| nonempty(env("no_proxy")));
    if no_proxy.is_some_and(|list| excluded(&list, server)) {
        return Ok(None);
    }
    parse(url.trim(), from).map(Some)
}

fn parse(url: &str, from: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{from} `{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "socks5" | "socks5h") => Ok(uri),
        _ => Err(format!(
            "{from} `{url}`: Ferry speaks to proxies over http:// (CONNECT) or socks5://"
        )),
    }
}

/// Whether the `NO_PROXY` list names `server`.
fn excluded(list: &str, server: &Uri) -> bool {
    let Some(host) = server.host() else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = server
        .port_u16()
        .unwrap_or(if server.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    let ip = host.parse::<IpAddr>().ok();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Ok(net) = entry.parse::<ipnet::IpNet>() {
                return ip.is_some_and(|ip| net.contains(&ip));
            }
            let (name, want_port) = split_port(&entry);
            if want_port.is_some_and(|p| p != port) {
                return false;
            }
            if let Ok(entry_ip) = name.parse::<IpAddr>() {
                return ip == Some(entry_ip);
            }
            let name = name.trim_start_matches("*.").trim_start_matches('.');
            !name.is_empty() && (host == name || host.ends_with(&format!(".{name}")))
        })
}

/// `host:port` into its parts; a bare IPv6 address or a name without a port is whole.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        // [v6]:port
        if let Some((addr, port)) = rest.split_once("]:") {
            return (addr, port.parse().ok());
        }
        return (rest.trim_end_matches(']'), None);
    }
    match entry.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(p) => (name, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn server(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    fn chosen(explicit: Option<&str>, srv: &str, vars: &[(&str, &str)]) -> Option<String> {
        choose(explicit, &server(srv), env(vars))
            .expect("chooses")
            .map(|u| u.to_string())
    }

    #[test]
    fn the_clusters_proxy_url_wins_over_the_environment() {
        let vars = [("HTTPS_PROXY", "http://env:3128"), ("NO_PROXY", "*")];
        assert_eq!(
            chosen(Some("socks5://own:1080"), "https://api.example.com", &vars).as_deref(),
            Some("socks5://own:1080/")
        );
    }

    #[test]
    fn the_environment_applies_unless_no_proxy_names_the_server() {
        let srv = "https://api.corp.example.com:6443";
        let with = |no: &str| {
            chosen(
                None,
                srv,
                &[("https_proxy", "http://proxy:3128"), ("no_proxy", no)],
            )
        };
        assert_eq!(with("").as_deref(), Some("http://proxy:3128/"));
        for names_it in [
            "*",
            "corp.example.com",
            ".example.com",
            "*.example.com",
            "api.corp.example.com:6443",
            "localhost, api.corp.example.com",
        ] {
            assert_eq!(with(names_it), None, "NO_PROXY={names_it}");
        }
        for misses in [
            "example.org",
            "corp.example.com:443",
            "pi.corp.example.com",
            "proxy",
        ] {
            assert!(with(misses).is_some(), "NO_PROXY={misses}");
        }
        // An http:// server reads HTTP_PROXY.
        assert_eq!(
            chosen(
                None,
                "http://10.0.0.5:8080",
                &[("HTTPS_PROXY", "http://p:1")]
            ),
            None
        );
        assert_eq!(
            chosen(
                None,
                "http://10.0.0.5:8080",
                &[("HTTP_PROXY", "http://p:1")]
            )
            .as_deref(),
            Some("http://p:1/")
        );
    }

    #[test]
    fn no_proxy_takes_addresses_and_ranges() {
        let vars = |no: &'static str| [("HTTPS_PROXY", "http://proxy:3128"), ("NO_PROXY", no)];
        let srv = "https://10.1.2.3:6443";
        assert_eq!(chosen(None, srv, &vars("10.0.0.0/8")), None);
        assert_eq!(chosen(None, srv, &vars("10.1.2.3")), None);
        assert_eq!(chosen(None, srv, &vars("10.1.2.3:6443")), None);
        assert!(chosen(None, srv, &vars("10.1.2.4,192.168.0.0/16")).is_some());
        assert_eq!(chosen(None, "https://[::1]:6443", &vars("::1")), None);
        assert_eq!(chosen(None, "https://[::1]:6443", &vars("::/0")), None);
    }

    #[test]
    fn an_unusable_proxy_url_is_an_error_naming_its_source() {
        let e = choose(
            None,
            &server("https://a"),
            env(&[("HTTPS_PROXY", "ftp://p:21")]),
        )
        .expect_err("ftp is no proxy");
        assert!(e.contains("HTTPS_PROXY") && e.contains("ftp://p:21"), "{e}");
        let e =
            choose(Some("http://bad host"), &server("https://a"), env(&[])).expect_err("not a URL");
        assert!(e.contains("proxy-url"), "{e}");
    }
}
