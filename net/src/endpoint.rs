//! Relay base URLs: parsing and normalising `http://`, `https://` and `unix:` URLs, and the
//! handle-to-URL rule (`nick@domain` → where to resolve it).

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use crate::error::NetError;

/// Where the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// TCP to `host` (a name or an address, IPv6 without brackets), optionally under TLS.
    Tcp { host: String, port: u16, tls: bool },
    /// HTTP over a Unix domain socket.
    Unix { path: PathBuf },
}

/// A parsed, normalised relay base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Normalised: scheme and host lower-cased, no trailing `/`.
    pub base_url: String,
    pub target: Target,
    /// The `Host` header: `host[:port]` as written (lower-cased), `localhost` for Unix sockets.
    pub authority: String,
    /// A path prefix the relay is served under (`""` or `/something`), prepended to every route.
    pub path_prefix: String,
    /// The URL's `host[:port]` (PROTOCOL.md §18), `None` for Unix sockets.
    pub domain: Option<String>,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, NetError> {
        let bad = |why: &str| NetError::BadUrl(format!("{url:?} is not a relay URL: {why}"));
        let url_trimmed = url.trim();
        if url_trimmed.contains(['?', '#']) {
            return Err(bad("a relay URL has no query or fragment"));
        }
        let (scheme, rest) = url_trimmed
            .split_once(':')
            .ok_or_else(|| bad("it has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let tls = match scheme.as_str() {
            "unix" => return parse_unix(rest).map_err(|why| bad(&why)),
            "http" => false,
            "https" => true,
            _ => return Err(bad("the scheme must be http, https or unix")),
        };
        let rest = rest
            .strip_prefix("//")
            .ok_or_else(|| bad("expected :// after the scheme"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = authority.to_ascii_lowercase();
        let (host, port) = split_authority(&authority).map_err(|why| bad(&why))?;
        let path = path.trim_end_matches('/');
        if !path.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad("the path has spaces or characters outside ASCII"));
        }
        wire_log::card::check_domain(&authority).map_err(|why| bad(&why))?;
        let default_port = if tls { 443 } else { 80 };
        Ok(Endpoint {
            base_url: format!("{scheme}://{authority}{path}"),
            target: Target::Tcp {
                host,
                port: port.unwrap_or(default_port),
                tls,
            },
            authority: authority.clone(),
            path_prefix: path.to_owned(),
            domain: Some(authority),
        })
    }
}

fn parse_unix(rest: &str) -> Result<Endpoint, String> {
    // `unix:/run/relay.sock`, and the `unix:///run/relay.sock` spelling of the same.
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if !path.starts_with('/') || path.len() < 2 {
        return Err(
            "a unix: URL names an absolute socket path, like unix:/run/wire/relay.sock".into(),
        );
    }
    if path.contains('\0') {
        return Err("the socket path has a NUL byte".into());
    }
    Ok(Endpoint {
        base_url: format!("unix:{path}"),
        target: Target::Unix {
            path: PathBuf::from(path),
        },
        authority: "localhost".into(),
        path_prefix: String::new(),
        domain: None,
    })
}

/// `host[:port]` (lower-cased) → (host without brackets, port).
fn split_authority(authority: &str) -> Result<(String, Option<u16>), String> {
    if authority.is_empty() {
        return Err("it has no host".into());
    }
    if authority.contains('@') {
        return Err("a relay URL carries no user name or password".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| "an IPv6 address needs its closing ']'".to_owned())?;
        addr.parse::<Ipv6Addr>()
            .map_err(|_| format!("[{addr}] is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| "expected :port after the IPv6 address".to_owned())?,
            ),
        };
        (addr.to_owned(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        check_host_name(host)?;
        (host.to_owned(), port)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("{p:?} is not a port (1-65535)")),
        },
    };
    Ok((host, port))
}

/// An IPv4 address or a DNS name: labels of letters, digits and `-`, not starting or ending
/// with `-`.
fn check_host_name(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is not a host name or address"))
    }
}

/// `nick@domain` → (nick, the base URL of the relay to resolve it at).
///
/// A loopback domain with a port (`127.0.0.1:PORT`, `[::1]:PORT`, `localhost:PORT`) is reached
/// over plain `http://`; every other domain over `https://`, so a handle on a public relay is
/// never resolved over an unauthenticated connection.
pub fn resolver_url(handle: &str) -> Result<(String, String), NetError> {
    let bad = |why: String| {
        NetError::BadInput(format!(
            "{handle:?} is not a handle: {why}; a handle looks like alice@relay.example"
        ))
    };
    let (nick, domain) = handle
        .split_once('@')
        .ok_or_else(|| bad("it has no '@domain'".into()))?;
    wire_log::identity::check_handle(nick).map_err(bad)?;
    wire_log::card::check_domain(domain).map_err(bad)?;
    let domain = domain.to_ascii_lowercase();
    let (host, port) = split_authority(&domain).map_err(bad)?;
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let scheme = if loopback && port.is_some() {
        "http"
    } else {
        "https"
    };
    let endpoint = Endpoint::parse(&format!("{scheme}://{domain}"))?;
    Ok((nick.to_owned(), endpoint.base_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_normalise() {
        let e = Endpoint::parse("HTTP://Relay.Example:8771/").expect("parse");
        assert_eq!(e.base_url, "http://relay.example:8771");
        assert_eq!(e.domain.as_deref(), Some("relay.example:8771"));
        assert_eq!(
            e.target,
            Target::Tcp {
                host: "relay.example".into(),
                port: 8771,
                tls: false
            }
        );
        let e = Endpoint::parse("https://relay.example/wire/").expect("parse");
        assert_eq!(e.base_url, "https://relay.example/wire");
        assert_eq!(e.path_prefix, "/wire");
        assert!(matches!(
            e.target,
            Target::Tcp {
                port: 443,
                tls: true,
                ..
            }
        ));
        let e = Endpoint::parse("http://[::1]:8771").expect("parse");
        assert_eq!(e.authority, "[::1]:8771");
        assert!(matches!(&e.target, Target::Tcp { host, .. } if host == "::1"));
        let e = Endpoint::parse("unix:///run/wire/relay.sock").expect("parse");
        assert_eq!(e.base_url, "unix:/run/wire/relay.sock");
        assert_eq!(e.domain, None);
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for url in [
            "",
            "relay.example",
            "ftp://relay.example",
            "http://",
            "http:relay.example",
            "http://user@relay.example",
            "http://relay.example:0",
            "http://relay.example:99999",
            "http://relay.example:+1",
            "http://[::1",
            "http://[nope]:1",
            "http://relay_example",
            "http://relay.example/?x=1",
            "http://relay.example/a b",
            "unix:relative.sock",
            "unix:/",
        ] {
            assert!(
                matches!(Endpoint::parse(url), Err(NetError::BadUrl(_))),
                "{url:?} was accepted"
            );
        }
    }
}
