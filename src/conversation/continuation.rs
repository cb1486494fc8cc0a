//! Reading the conversation-state token off a request.
//!
//! A next-step link is a capability: its href carries the token as
//! `?state=...`, so a plain HAL client, curl or an HTML form can follow it.
//! Clients that prefer to keep tokens out of URLs send the same token in the
//! `Conversation-State` header instead (as RFC 6750 allows a bearer token in
//! the Authorization header or the query). The header wins when both are given.

use axum::extract::FromRequestParts;
use http::request::Parts;

/// The request header that may carry the token.
pub const HEADER: &str = "conversation-state";
/// The query parameter that carries the token in next-step links.
pub const QUERY_PARAM: &str = "state";

/// The raw token of a request, not yet verified (empty when none was given).
#[derive(Clone, Debug, Default)]
pub struct StateToken(pub String);

impl StateToken {
    pub fn from_parts(parts: &Parts) -> Self {
        if let Some(value) = parts.headers.get(HEADER).and_then(|v| v.to_str().ok()) {
            return StateToken(value.trim().to_owned());
        }
        let token = parts
            .uri
            .query()
            .and_then(token_in_query)
            .unwrap_or_default();
        StateToken(token)
    }
}

impl StateToken {
    /// When the token expires (its `exp`, in Unix seconds), read without
    /// verifying anything: for a sender deciding whether a message is still
    /// worth sending (its receiver would refuse it), never for trusting it.
    pub fn unverified_expiry(&self) -> Option<i64> {
        use base64::Engine as _;
        let payload = self.0.split('.').nth(1)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        #[derive(serde::Deserialize)]
        struct Exp {
            exp: i64,
        }
        serde_json::from_slice::<Exp>(&json).ok().map(|e| e.exp)
    }
}

/// The `state` parameter of a query string. A token is base64url and dots,
/// so it needs no decoding; a value with escapes in it is decoded as a form
/// value would be.
fn token_in_query(query: &str) -> Option<String> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(QUERY_PARAM)?.strip_prefix('='))?;
    if !value.contains(['%', '+']) {
        return Some(value.to_owned());
    }
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("{QUERY_PARAM}={value}"))
        .ok()?
        .pop()
        .map(|(_, v)| v)
}

impl<S: Send + Sync> FromRequestParts<S> for StateToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(StateToken::from_parts(parts))
    }
}

/// A query string that displays with every token redacted (see
/// [`redact_query`]), for log fields: the redaction runs only when the
/// field is written, not on every request whose log line is filtered out.
pub struct Redacted<'a>(pub Option<&'a str>);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(query) => f.write_str(&redact_query(query)),
            None => Ok(()),
        }
    }
}

/// The query string with every token replaced by `REDACTED`, for logs.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k == QUERY_PARAM || k.eq_ignore_ascii_case("token") => {
                format!("{k}=REDACTED")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_query_strings() {
        assert_eq!(
            redact_query("state=eyJhbGc.eyJ.sig&after=5"),
            "state=REDACTED&after=5"
        );
        assert_eq!(redact_query("after=5"), "after=5");
        assert_eq!(
            Redacted(Some("state=eyJ.x.y&token=t")).to_string(),
            "state=REDACTED&token=REDACTED"
        );
        assert_eq!(Redacted(None).to_string(), "");
    }

    #[test]
    fn the_header_wins_over_the_query() {
        let req = http::Request::builder()
            .uri("/basket/checkouts/view?state=from-query")
            .header(HEADER, "from-header")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        assert_eq!(StateToken::from_parts(&parts).0, "from-header");
    }

    #[test]
    fn the_query_parameter_is_found_among_others_and_decoded_if_escaped() {
        assert_eq!(
            token_in_query("a=1&state=x.y.z&b=2").as_deref(),
            Some("x.y.z")
        );
        assert_eq!(token_in_query("states=1&state=t").as_deref(), Some("t"));
        assert_eq!(token_in_query("state=a%2Eb+c").as_deref(), Some("a.b c"));
        assert_eq!(token_in_query("after=5"), None);
    }
}
