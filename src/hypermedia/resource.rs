//! The HAL resource builder and its response.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::HAL_JSON;

/// A HAL-FORMS property of a template.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub required: bool,
    /// An HTML input type hint: `text`, `number`, `url`...
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

impl Property {
    pub fn text(name: &str) -> Self {
        Property {
            name: name.to_owned(),
            kind: "text",
            ..Default::default()
        }
    }

    pub fn number(name: &str, min: i64, max: i64) -> Self {
        Property {
            name: name.to_owned(),
            kind: "number",
            min: Some(min),
            max: Some(max),
            ..Default::default()
        }
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn prompt(mut self, prompt: &str) -> Self {
        self.prompt = Some(prompt.to_owned());
        self
    }

    pub fn value(mut self, value: impl Serialize) -> Self {
        self.value = serde_json::to_value(value).ok();
        self
    }

    pub fn regex(mut self, regex: &str) -> Self {
        self.regex = Some(regex.to_owned());
        self
    }

    /// The allowed values, as HAL-FORMS inline options (`{prompt, value}` pairs).
    pub fn one_of<'a>(mut self, options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let inline: Vec<Value> = options
            .into_iter()
            .map(|(prompt, value)| json!({ "prompt": prompt, "value": value }))
            .collect();
        self.options = Some(json!({ "inline": inline, "maxItems": 1 }));
        self
    }
}

/// A HAL-FORMS template: how to take one step.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub title: String,
    pub method: &'static str,
    pub target: String,
    pub content_type: &'static str,
    pub properties: Vec<Property>,
}

/// A HAL resource under construction.
#[derive(Clone, Debug, Default)]
pub struct Resource {
    fields: Map<String, Value>,
    links: Vec<(String, Value)>,
    templates: Vec<(String, Template)>,
    embedded: Map<String, Value>,
}

impl Resource {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member of the resource itself.
    pub fn field(mut self, name: &str, value: impl Serialize) -> Self {
        self.fields.insert(
            name.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    /// Merges the members of a serialisable struct into the resource.
    pub fn fields(mut self, value: impl Serialize) -> Self {
        if let Ok(Value::Object(map)) = serde_json::to_value(value) {
            self.fields.extend(map);
        }
        self
    }

    /// A link to read something (GET).
    pub fn link(mut self, rel: &str, href: impl Into<String>) -> Self {
        self.links
            .push((rel.to_owned(), json!({ "href": href.into() })));
        self
    }

    /// A link with a title, for humans and generic clients.
    pub fn titled_link(mut self, rel: &str, href: impl Into<String>, title: &str) -> Self {
        self.links.push((
            rel.to_owned(),
            json!({ "href": href.into(), "title": title }),
        ));
        self
    }

    /// An action step: a link plus a HAL-FORMS template (POST, JSON or form body).
    pub fn action(
        mut self,
        rel: &str,
        href: impl Into<String>,
        title: &str,
        properties: Vec<Property>,
    ) -> Self {
        let href = href.into();
        self.links
            .push((rel.to_owned(), json!({ "href": href, "title": title })));
        self.templates.push((
            rel.to_owned(),
            Template {
                title: title.to_owned(),
                method: "POST",
                target: href,
                content_type: "application/json",
                properties,
            },
        ));
        self
    }

    /// Embeds a list of resources under `rel`.
    pub fn embed(mut self, rel: &str, items: Vec<Resource>) -> Self {
        let items: Vec<Value> = items.into_iter().map(Resource::into_json).collect();
        self.embedded.insert(rel.to_owned(), Value::Array(items));
        self
    }

    /// The hrefs of the links, by relation.
    pub fn links(&self) -> impl Iterator<Item = (&str, &str)> {
        self.links
            .iter()
            .filter_map(|(rel, link)| Some((rel.as_str(), link["href"].as_str()?)))
    }

    pub fn into_json(self) -> Value {
        let mut out = self.fields;
        if !self.links.is_empty() {
            out.insert(
                "_links".into(),
                Value::Object(self.links.into_iter().collect()),
            );
        }
        if !self.templates.is_empty() {
            let templates = self
                .templates
                .into_iter()
                .map(|(rel, t)| (rel, serde_json::to_value(t).expect("template serialises")))
                .collect();
            out.insert("_templates".into(), Value::Object(templates));
        }
        if !self.embedded.is_empty() {
            out.insert("_embedded".into(), Value::Object(self.embedded));
        }
        Value::Object(out)
    }

    /// Several links under one relation, told apart by `name` (HAL's array
    /// of link objects), e.g. one filtered view per value. They are left out
    /// of the `Link` header.
    pub fn named_links<'a>(
        mut self,
        rel: &str,
        links: impl IntoIterator<Item = (&'a str, String, String)>,
    ) -> Self {
        let links = links
            .into_iter()
            .map(|(name, href, title)| json!({ "name": name, "href": href, "title": title }))
            .collect();
        self.links.push((rel.to_owned(), Value::Array(links)));
        self
    }
}

/// A HAL response: status, `application/hal+json`, and the links mirrored
/// in a `Link` header.
pub struct Hal(pub StatusCode, pub Resource);

impl Hal {
    pub fn ok(resource: Resource) -> Self {
        Hal(StatusCode::OK, resource)
    }
}

impl IntoResponse for Hal {
    fn into_response(self) -> Response {
        let Hal(status, resource) = self;
        let link = link_header(resource.links());
        let body = serde_json::to_vec(&resource.into_json()).expect("HAL serialises");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HAL_JSON));
        if let Some(link) = link {
            headers.insert(header::LINK, link);
        }
        response
    }
}

/// An RFC 8288 `Link` header value for `(rel, href)` pairs (`curies` and
/// templated links are left to the body).
pub fn link_header<'a>(links: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<HeaderValue> {
    let value = links
        .into_iter()
        .filter(|(rel, _)| *rel != "curies")
        .map(|(rel, href)| format!("<{href}>; rel=\"{rel}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if value.is_empty() {
        None
    } else {
        HeaderValue::from_str(&value).ok()
    }
}
