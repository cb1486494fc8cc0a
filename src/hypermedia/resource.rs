//! The HAL resource builder and its response.
//!
//! A [`Resource`] is serialised straight into the response body: its links
//! and templates are typed, so rendering a step is one pass of `serde_json`
//! over them, with no intermediate `serde_json::Value` tree to build and
//! drop (a turn renders one on every request, DESIGN §9).

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::HAL_JSON;

/// A HAL-FORMS property of a template.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    pub name: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Cow<'static, str>>,
    pub required: bool,
    /// An HTML input type hint: `text`, `number`, `url`...
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
}

/// HAL-FORMS inline options: the values a property allows.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    pub inline: Vec<Choice>,
    pub max_items: u32,
}

/// One allowed value, with the prompt a form shows for it.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub prompt: Cow<'static, str>,
    pub value: Cow<'static, str>,
}

impl Property {
    pub fn text(name: impl Into<Cow<'static, str>>) -> Self {
        Property {
            name: name.into(),
            kind: "text",
            ..Default::default()
        }
    }

    pub fn number(name: impl Into<Cow<'static, str>>, min: i64, max: i64) -> Self {
        Property {
            name: name.into(),
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

    pub fn prompt(mut self, prompt: impl Into<Cow<'static, str>>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    pub fn value(mut self, value: impl Serialize) -> Self {
        self.value = serde_json::to_value(value).ok();
        self
    }

    pub fn regex(mut self, regex: impl Into<Cow<'static, str>>) -> Self {
        self.regex = Some(regex.into());
        self
    }

    /// The allowed values, as HAL-FORMS inline options (`{prompt, value}` pairs).
    pub fn one_of<P, V>(mut self, options: impl IntoIterator<Item = (P, V)>) -> Self
    where
        P: Into<Cow<'static, str>>,
        V: Into<Cow<'static, str>>,
    {
        let inline = options
            .into_iter()
            .map(|(prompt, value)| Choice {
                prompt: prompt.into(),
                value: value.into(),
            })
            .collect();
        self.options = Some(Options {
            inline,
            max_items: 1,
        });
        self
    }
}

/// A HAL link.
#[derive(Clone, Debug)]
struct Link {
    rel: String,
    href: String,
    title: Option<String>,
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut link = s.serialize_struct("Link", 2)?;
        link.serialize_field("href", &self.href)?;
        if let Some(title) = &self.title {
            link.serialize_field("title", title)?;
        }
        link.end()
    }
}

/// A HAL-FORMS template: how to take one step. Its `target` is the href of
/// the link of the same name, kept once in the builder.
#[derive(Clone, Debug)]
struct Template {
    /// The index of the step's link in [`Resource::links`].
    link: usize,
    properties: Vec<Property>,
}

/// A template with its link, as serialised.
struct TemplateOf<'a>(&'a Template, &'a Link);

impl Serialize for TemplateOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let TemplateOf(template, link) = self;
        let mut t = s.serialize_struct("Template", 5)?;
        t.serialize_field("title", link.title.as_deref().unwrap_or_default())?;
        t.serialize_field("method", "POST")?;
        t.serialize_field("target", &link.href)?;
        t.serialize_field("contentType", "application/json")?;
        t.serialize_field("properties", &template.properties)?;
        t.end()
    }
}

/// A HAL resource under construction.
#[derive(Clone, Debug, Default)]
pub struct Resource {
    fields: Map<String, Value>,
    links: Vec<Link>,
    /// Relations with several links told apart by `name` (HAL arrays).
    named: Vec<(String, Value)>,
    templates: Vec<Template>,
    embedded: Vec<(String, Vec<Resource>)>,
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

    fn push_link(&mut self, rel: &str, href: String, title: Option<&str>) -> usize {
        let link = Link {
            rel: rel.to_owned(),
            href,
            title: title.map(str::to_owned),
        };
        match self.links.iter().position(|l| l.rel == rel) {
            Some(at) => {
                self.links[at] = link;
                at
            }
            None => {
                self.links.push(link);
                self.links.len() - 1
            }
        }
    }

    /// A link to read something (GET).
    pub fn link(mut self, rel: &str, href: impl Into<String>) -> Self {
        self.push_link(rel, href.into(), None);
        self
    }

    /// A link with a title, for humans and generic clients.
    pub fn titled_link(mut self, rel: &str, href: impl Into<String>, title: &str) -> Self {
        self.push_link(rel, href.into(), Some(title));
        self
    }

    /// An action step: a link plus a HAL-FORMS template (POST, JSON or form
    /// body). A resource lists its main next step first: that one is
    /// mirrored in the `Link` header beside `self`.
    pub fn action(
        mut self,
        rel: &str,
        href: impl Into<String>,
        title: &str,
        properties: Vec<Property>,
    ) -> Self {
        let link = self.push_link(rel, href.into(), Some(title));
        self.templates.retain(|t| t.link != link);
        self.templates.push(Template { link, properties });
        self
    }

    /// Embeds a list of resources under `rel`.
    pub fn embed(mut self, rel: &str, items: Vec<Resource>) -> Self {
        match self.embedded.iter_mut().find(|(r, _)| r == rel) {
            Some((_, existing)) => *existing = items,
            None => self.embedded.push((rel.to_owned(), items)),
        }
        self
    }

    /// The hrefs of the links, by relation.
    pub fn links(&self) -> impl Iterator<Item = (&str, &str)> {
        self.links.iter().map(|l| (l.rel.as_str(), l.href.as_str()))
    }

    /// The key links, mirrored in the `Link` header: `self` and the main
    /// next step (the first action), so `curl -i` shows where the
    /// conversation goes without repeating every href (each carries the
    /// token) a second time.
    pub fn key_links(&self) -> impl Iterator<Item = (&str, &str)> {
        let main = self.templates.first().map(|t| t.link);
        self.links
            .iter()
            .enumerate()
            .filter(move |(at, l)| l.rel == "self" || Some(*at) == main)
            .map(|(_, l)| (l.rel.as_str(), l.href.as_str()))
    }

    /// The document as a JSON value (for tests and callers that edit it).
    pub fn into_json(self) -> Value {
        serde_json::to_value(&self).expect("HAL serialises")
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
            .map(|(name, href, title)| serde_json::json!({ "name": name, "href": href, "title": title }))
            .collect();
        self.named.push((rel.to_owned(), Value::Array(links)));
        self
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut doc = s.serialize_map(None)?;
        for (name, value) in &self.fields {
            let replaced = match name.as_str() {
                "_links" => !self.links.is_empty() || !self.named.is_empty(),
                "_templates" => !self.templates.is_empty(),
                "_embedded" => !self.embedded.is_empty(),
                _ => false,
            };
            if !replaced {
                doc.serialize_entry(name, value)?;
            }
        }
        if !self.links.is_empty() || !self.named.is_empty() {
            doc.serialize_entry("_links", &Links(self))?;
        }
        if !self.templates.is_empty() {
            doc.serialize_entry("_templates", &Templates(self))?;
        }
        if !self.embedded.is_empty() {
            doc.serialize_entry("_embedded", &Embedded(&self.embedded))?;
        }
        doc.end()
    }
}

struct Links<'a>(&'a Resource);

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Resource { links, named, .. } = self.0;
        let mut map = s.serialize_map(Some(links.len() + named.len()))?;
        for link in links {
            map.serialize_entry(&link.rel, link)?;
        }
        for (rel, group) in named {
            map.serialize_entry(rel, group)?;
        }
        map.end()
    }
}

struct Templates<'a>(&'a Resource);

impl Serialize for Templates<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.templates.len()))?;
        for template in &self.0.templates {
            let link = &self.0.links[template.link];
            map.serialize_entry(&link.rel, &TemplateOf(template, link))?;
        }
        map.end()
    }
}

struct Embedded<'a>(&'a [(String, Vec<Resource>)]);

impl Serialize for Embedded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (rel, items) in self.0 {
            map.serialize_entry(rel, items)?;
        }
        map.end()
    }
}

/// A HAL response: status, `application/hal+json`, and the key links
/// (`self` and the main next step) mirrored in a `Link` header.
pub struct Hal(pub StatusCode, pub Resource);

impl Hal {
    pub fn ok(resource: Resource) -> Self {
        Hal(StatusCode::OK, resource)
    }
}

/// A first guess at a document's size, so most bodies are written without
/// growing their buffer.
const BODY_CAPACITY: usize = 4096;

impl IntoResponse for Hal {
    fn into_response(self) -> Response {
        let Hal(status, resource) = self;
        let link = link_header(resource.key_links());
        let mut body = Vec::with_capacity(BODY_CAPACITY);
        serde_json::to_writer(&mut body, &resource).expect("HAL serialises");
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
    let mut value = String::new();
    for (rel, href) in links.into_iter().filter(|(rel, _)| *rel != "curies") {
        if !value.is_empty() {
            value.push_str(", ");
        }
        value.push('<');
        value.push_str(href);
        value.push_str(">; rel=\"");
        value.push_str(rel);
        value.push('"');
    }
    if value.is_empty() {
        None
    } else {
        HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basket() -> Resource {
        Resource::new()
            .field("status", "open")
            .link("self", "/b/view?state=t")
            .action(
                "add-item",
                "/b/add-item?state=t",
                "Add an item",
                vec![
                    Property::text("sku")
                        .required()
                        .one_of([("Pizza", "pizza")]),
                ],
            )
            .action("cancel", "/b/cancel?state=t", "Cancel", vec![])
            .link("menu", "/menu")
    }

    #[test]
    fn a_template_targets_its_link_and_serialises_as_before() {
        let doc = basket().into_json();
        assert_eq!(
            doc,
            serde_json::json!({
                "status": "open",
                "_links": {
                    "self": { "href": "/b/view?state=t" },
                    "add-item": { "href": "/b/add-item?state=t", "title": "Add an item" },
                    "cancel": { "href": "/b/cancel?state=t", "title": "Cancel" },
                    "menu": { "href": "/menu" }
                },
                "_templates": {
                    "add-item": {
                        "title": "Add an item",
                        "method": "POST",
                        "target": "/b/add-item?state=t",
                        "contentType": "application/json",
                        "properties": [{
                            "name": "sku", "required": true, "type": "text",
                            "options": { "inline": [{ "prompt": "Pizza", "value": "pizza" }], "maxItems": 1 }
                        }]
                    },
                    "cancel": {
                        "title": "Cancel",
                        "method": "POST",
                        "target": "/b/cancel?state=t",
                        "contentType": "application/json",
                        "properties": []
                    }
                }
            })
        );
    }

    #[test]
    fn the_link_header_mirrors_self_and_the_main_step_only() {
        let header = link_header(basket().key_links()).unwrap();
        assert_eq!(
            header.to_str().unwrap(),
            "</b/view?state=t>; rel=\"self\", </b/add-item?state=t>; rel=\"add-item\""
        );
    }

    #[test]
    fn a_relation_given_twice_keeps_its_place_and_the_last_href() {
        let doc = Resource::new()
            .link("self", "/a")
            .link("next", "/b")
            .link("self", "/c")
            .into_json();
        assert_eq!(
            serde_json::to_string(&doc["_links"]).unwrap(),
            r#"{"self":{"href":"/c"},"next":{"href":"/b"}}"#
        );
    }
}
