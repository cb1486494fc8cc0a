//! Where we are willing to send: callback and webhook URLs are checked, never
//! blindly fetched.
//!
//! A subscriber's callback URL (and any reply-to it names) is accepted only
//! if it points at a participant this deployment knows, or at a host the
//! operator allowed (`--callback-allow host[:port],...`). Everything else —
//! and in particular every loopback, private, link-local or unspecified
//! address not allowed explicitly — is refused, so a subscription cannot
//! turn the service into a proxy into its own network (SSRF).

use std::net::IpAddr;

use reqwest::Url;

/// Why a callback URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback URL is not a valid http(s) URL")]
    Malformed,
    #[error("callback URLs may not carry credentials")]
    Credentials,
    #[error("{0} is a private, loopback or link-local address that is not allowed explicitly")]
    Private(String),
    #[error("{0} is neither a known participant nor an allowed callback host")]
    NotAllowed(String),
}

/// The operator's allow-list plus the known participants' origins.
#[derive(Clone, Debug, Default)]
pub struct CallbackPolicy {
    allowed: Vec<(String, Option<u16>)>,
    known_origins: Vec<String>,
}

impl CallbackPolicy {
    /// `allow`: `host` or `host:port` entries; `known`: base URLs of participants.
    pub fn new<'a>(
        allow: impl IntoIterator<Item = &'a str>,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let allowed = allow
            .into_iter()
            .filter(|a| !a.is_empty())
            .map(parse_allowed)
            .collect();
        let known_origins = known
            .into_iter()
            .filter_map(|base| Url::parse(base).ok())
            .map(|u| u.origin().ascii_serialization())
            .collect();
        CallbackPolicy {
            allowed,
            known_origins,
        }
    }

    /// Checks `url`, returning it parsed when it may be called.
    pub fn check(&self, url: &str) -> Result<Url, CallbackError> {
        let parsed = Url::parse(url).map_err(|_| CallbackError::Malformed)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CallbackError::Malformed);
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(CallbackError::Credentials);
        }
        let host = parsed
            .host_str()
            .ok_or(CallbackError::Malformed)?
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = parsed.port_or_known_default();
        if self
            .known_origins
            .contains(&parsed.origin().ascii_serialization())
        {
            return Ok(parsed);
        }
        if self
            .allowed
            .iter()
            .any(|(h, p)| *h == host && p.is_none_or(|p| Some(p) == port))
        {
            return Ok(parsed);
        }
        let local_name =
            host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local");
        match host.parse::<IpAddr>() {
            Ok(ip) if is_private(ip) => Err(CallbackError::Private(host)),
            _ if local_name => Err(CallbackError::Private(host)),
            _ => Err(CallbackError::NotAllowed(host)),
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_allowed(entry: &str) -> (String, Option<u16>) {
    if let Some((host, tail)) = entry
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
    {
        return (
            host.to_ascii_lowercase(),
            tail.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => {
            (host.to_ascii_lowercase(), port.parse().ok())
        }
        _ => (entry.to_ascii_lowercase(), None),
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CallbackPolicy {
        CallbackPolicy::new(
            ["hooks.example.org", "127.0.0.1:9999"],
            ["http://127.0.0.1:8080"],
        )
    }

    #[test]
    fn known_participants_and_allowed_hosts_pass() {
        assert!(
            policy()
                .check("http://127.0.0.1:8080/couriers/c1/solicitations")
                .is_ok()
        );
        assert!(policy().check("https://hooks.example.org/orders").is_ok());
        assert!(policy().check("http://127.0.0.1:9999/hook").is_ok());
    }

    #[test]
    fn private_and_unknown_addresses_are_refused() {
        let p = policy();
        for private in [
            "http://127.0.0.1:9998/hook",
            "http://10.0.0.7/hook",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://[::ffff:10.0.0.1]/",
            "http://localhost:3000/",
            "http://0.0.0.0/",
        ] {
            assert!(
                matches!(p.check(private), Err(CallbackError::Private(_))),
                "{private}"
            );
        }
        assert!(matches!(
            p.check("https://evil.example.com/"),
            Err(CallbackError::NotAllowed(_))
        ));
        assert_eq!(
            p.check("ftp://hooks.example.org/"),
            Err(CallbackError::Malformed)
        );
        assert_eq!(p.check("not a url"), Err(CallbackError::Malformed));
        assert_eq!(
            p.check("https://u:p@hooks.example.org/"),
            Err(CallbackError::Credentials)
        );
    }
}
