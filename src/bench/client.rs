//! The load generator's HTTP side: a hypermedia client that follows links.
//!
//! A scenario knows one URL per conversation (where it starts); every other
//! request goes to an href taken from the previous response's `_links`, as a
//! generic HAL client would. Only what a client needs is read from a body:
//! the links and the `status` member. Failures name the method, the path
//! (never the query, which carries a token) and the status.
//!
//! It speaks HTTP/1.1 through hyper's pooled client, not reqwest: the load
//! generator runs on the same cores as the service, so its own cost is in
//! every figure, and reqwest parses each href as a WHATWG URL (then formats
//! and parses it again as an `http::Uri`), which `perf` showed at a fifth of
//! the bench's CPU on a turn, whose hrefs carry a 600-byte token. An href is
//! handed to hyper as it came, parsed once as a `Uri`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// How long one request may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One request that did not get the answer the scenario expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl Failure {
    fn new(method: &str, url: &str, what: impl std::fmt::Display) -> Self {
        let path = url.split('?').next().unwrap_or_default();
        let path = path
            .find("://")
            .and_then(|scheme| {
                path[scheme + 3..]
                    .find('/')
                    .map(|p| &path[scheme + 3 + p..])
            })
            .unwrap_or(path);
        Failure(format!("{method} {path}: {what}"))
    }
}

/// The HTTP client of one bench run, shared by its workers.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

/// What a scenario reads of a response: its links and `status` member.
#[derive(Debug)]
pub struct Doc {
    links: HashMap<String, String>,
    pub state_status: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default, rename = "_links")]
    links: HashMap<String, Link>,
    #[serde(default)]
    status: Option<Value>,
}

/// A link's href; `None` for a link that is not one object with an href (an
/// array of links, say). Read with a visitor, not an untagged enum, which
/// would buffer every link before trying each variant: the load generator's
/// own cost is in every figure.
struct Link(Option<String>);

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Href;

        impl<'de> Visitor<'de> for Href {
            type Value = Link;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a HAL link")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Link, A::Error> {
                #[derive(Deserialize)]
                #[serde(field_identifier, rename_all = "lowercase")]
                enum Key {
                    Href,
                    #[serde(other)]
                    Other,
                }
                let mut href = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Href => href = Some(map.next_value::<String>()?),
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Link(href))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Link, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Link(None))
            }
        }

        d.deserialize_any(Href)
    }
}

impl Doc {
    /// The href of a link the scenario needs.
    pub fn link(&self, rel: &str) -> Result<&str, Failure> {
        self.links
            .get(rel)
            .map(String::as_str)
            .ok_or_else(|| Failure(format!("the response has no `{rel}` link")))
    }

    /// The token a link carries (`?state=`).
    pub fn token(&self, rel: &str) -> Result<&str, Failure> {
        let href = self.link(rel)?;
        href.split_once("state=")
            .map(|(_, token)| token.split('&').next().unwrap_or(token))
            .ok_or_else(|| Failure(format!("the `{rel}` link carries no token")))
    }
}

impl Http {
    /// A client for `target` (`http://host:port`) keeping up to `pool` idle
    /// connections: one per worker, so connections are reused, not reopened.
    /// Plain HTTP only: the bench belongs next to the service it measures.
    pub fn new(target: &str, pool: usize) -> anyhow::Result<Self> {
        let base = target.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .with_context(|| format!("--target {target} is not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            anyhow::bail!(
                "--target must be http://host:port (the load generator speaks plain HTTP), not {target}"
            );
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool.max(1))
            .build(connector);
        Ok(Http { client, base })
    }

    /// An absolute URL for `path` on the target (hrefs pass through).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// `GET`, expecting `expect`.
    pub async fn get(&self, href: &str, expect: u16) -> Result<Doc, Failure> {
        self.send(Method::GET, href, None, &[], expect).await
    }

    /// `DELETE`, expecting a 2xx.
    pub async fn delete(&self, href: &str) -> Result<(), Failure> {
        let url = self.url(href);
        let (status, _) = self.exchange(Method::DELETE, &url, None, &[]).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::new("DELETE", &url, status))
        }
    }

    /// `POST` with an optional JSON body and extra headers, expecting `expect`.
    pub async fn post(
        &self,
        href: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        expect: u16,
    ) -> Result<Doc, Failure> {
        self.send(Method::POST, href, body, headers, expect).await
    }

    async fn send(
        &self,
        method: Method,
        href: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        expect: u16,
    ) -> Result<Doc, Failure> {
        let url = self.url(href);
        let (status, bytes) = self.exchange(method.clone(), &url, body, headers).await?;
        let status = status.as_u16();
        let body: Option<Body> = serde_json::from_slice(&bytes).ok();
        if status != expect {
            let kind = body
                .as_ref()
                .and_then(|_| serde_json::from_slice::<Value>(&bytes).ok())
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(Failure::new(
                method.as_str(),
                &url,
                format!("{status} (expected {expect}) {kind}"),
            ));
        }
        let (links, state_status) = match body {
            Some(body) => (
                body.links
                    .into_iter()
                    .filter_map(|(rel, Link(href))| Some((rel, href?)))
                    .collect(),
                body.status.and_then(|s| s.as_str().map(str::to_owned)),
            ),
            None => (HashMap::new(), None),
        };
        Ok(Doc {
            links,
            state_status,
        })
    }

    /// One request and its whole answer, within [`TIMEOUT`].
    async fn exchange(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), Failure> {
        let fail = |what: &dyn std::fmt::Display| Failure::new(method.as_str(), url, what);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(header::ACCEPT, "application/hal+json");
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(body).map_err(|e| fail(&e))?))
            }
            None => Full::default(),
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).map_err(|e| fail(&e))?;
        let answer = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| fail(&causes(&e)))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| fail(&e))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(TIMEOUT, answer)
            .await
            .unwrap_or_else(|_| Err(fail(&format_args!("no answer within {TIMEOUT:?}"))))
    }
}

/// An error with its causes, `: `-separated ("client error (Connect): tcp
/// connect error: Connection refused"): hyper's own message names only the
/// kind. None of them carries the URL.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_never_show_the_query_or_the_host() {
        let failure = Failure::new("POST", "http://127.0.0.1:9/basket/x?state=secret", "500");
        assert_eq!(failure.0, "POST /basket/x: 500");
    }

    #[test]
    fn the_target_must_be_a_plain_http_url() {
        assert!(Http::new("http://127.0.0.1:8080/", 4).is_ok());
        for target in ["https://127.0.0.1:8443", "127.0.0.1:8080", "not a url"] {
            let error = Http::new(target, 4).err().expect(target).to_string();
            assert!(error.contains("--target"), "{target}: {error}");
        }
    }

    #[test]
    fn links_are_read_by_their_href_and_others_are_skipped() {
        let body: Body = serde_json::from_str(
            r#"{"status":"open","_links":{"self":{"href":"/a","title":"A"},
                "curies":[{"name":"c","href":"/c/{rel}","templated":true}],"odd":{"title":"no href"}},
                "_templates":{"x":{"target":"/x"}}}"#,
        )
        .unwrap();
        assert_eq!(body.links["self"].0.as_deref(), Some("/a"));
        assert_eq!(body.links["curies"].0, None);
        assert_eq!(body.links["odd"].0, None);
        assert_eq!(body.status.unwrap(), "open");
    }
}
