//! The same documents, rendered for a browser.
//!
//! A middleware, so handlers only ever build HAL: when a request prefers
//! `text/html`, a HAL or problem document is rendered as a page whose links
//! are anchors and whose templates are forms (posting form bodies, which the
//! steps accept). When it asks for HAL-FORMS, the same JSON is labelled so.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde_json::Value;

use super::{HAL_FORMS_JSON, HAL_JSON};
use crate::fault::PROBLEM_JSON;

/// Renders HAL and problem documents as HTML for clients that prefer it.
pub async fn negotiate(req: Request, next: Next) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let wants_html = prefers_html(&accept);
    let wants_forms = accept.contains(HAL_FORMS_JSON);
    let response = next.run(req).await;
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let is_hal = content_type.starts_with(HAL_JSON);
    if wants_forms && is_hal {
        let mut response = response;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(HAL_FORMS_JSON),
        );
        return response;
    }
    if !(wants_html && (is_hal || content_type.starts_with(PROBLEM_JSON))) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, 4 * 1024 * 1024).await else {
        return http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(render(&doc)))
}

/// Whether the Accept header ranks `text/html` above JSON (browsers do).
fn prefers_html(accept: &str) -> bool {
    let position = |needle: &str| accept.find(needle);
    match (position("text/html"), position("json")) {
        (Some(html), Some(json)) => html < json,
        (Some(_), None) => true,
        _ => false,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render(doc: &Value) -> String {
    let title = doc["title"]
        .as_str()
        .or(doc["status"].as_str())
        .unwrap_or("conversant");
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;max-width:50rem;margin:2rem auto}}\
         pre{{background:#f4f4f4;padding:1rem;overflow:auto}}form{{margin:1rem 0;padding:.5rem;border:1px solid #ccc}}</style>\
         </head><body><h1>{}</h1>",
        escape(title),
        escape(title)
    );
    let mut shown = doc.clone();
    if let Value::Object(map) = &mut shown {
        map.remove("_links");
        map.remove("_templates");
    }
    page.push_str(&format!(
        "<pre>{}</pre>",
        escape(&serde_json::to_string_pretty(&shown).unwrap_or_default())
    ));
    let templates = doc["_templates"].as_object();
    if let Some(links) = doc["_links"].as_object() {
        page.push_str("<h2>Next</h2><ul>");
        for (rel, link) in links {
            if templates.is_some_and(|t| t.contains_key(rel)) {
                continue;
            }
            let href = link["href"].as_str().unwrap_or_default();
            page.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(href),
                escape(rel)
            ));
        }
        page.push_str("</ul>");
    }
    for (rel, template) in templates.into_iter().flatten() {
        let target = template["target"].as_str().unwrap_or_default();
        page.push_str(&format!(
            "<form method=\"post\" action=\"{}\" enctype=\"application/x-www-form-urlencoded\"><strong>{}</strong><br>",
            escape(target),
            escape(template["title"].as_str().unwrap_or(rel))
        ));
        for property in template["properties"].as_array().into_iter().flatten() {
            let name = property["name"].as_str().unwrap_or_default();
            let kind = property["type"].as_str().unwrap_or("text");
            let value = property["value"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| property["value"].as_i64().map(|n| n.to_string()));
            if let Some(options) = property["options"]["inline"].as_array() {
                page.push_str(&format!(
                    "<label>{} <select name=\"{}\">",
                    escape(name),
                    escape(name)
                ));
                for option in options {
                    let v = option["value"].as_str().unwrap_or_default();
                    let p = option["prompt"].as_str().unwrap_or(v);
                    page.push_str(&format!(
                        "<option value=\"{}\">{}</option>",
                        escape(v),
                        escape(p)
                    ));
                }
                page.push_str("</select></label> ");
            } else {
                page.push_str(&format!(
                    "<label>{} <input name=\"{}\" type=\"{}\" value=\"{}\"{}></label> ",
                    escape(name),
                    escape(name),
                    escape(kind),
                    escape(&value.unwrap_or_default()),
                    if property["required"] == true {
                        " required"
                    } else {
                        ""
                    }
                ));
            }
        }
        page.push_str(&format!("<button>{}</button></form>", escape(rel)));
    }
    page.push_str("</body></html>");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_and_api_clients_get_json() {
        assert!(prefers_html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!prefers_html("application/hal+json"));
        assert!(!prefers_html("*/*"));
        assert!(!prefers_html("application/json, text/html"));
    }
}
