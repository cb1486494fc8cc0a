//! `openapi/openapi.json` is generated from the code: this test fails when
//! the committed file drifts. Regenerate with
//! `UPDATE_OPENAPI=1 cargo test --test it openapi` (or `conversant openapi`).

use crate::support::spawn_app;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = conversant::openapi::to_pretty_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(std::path::Path::new(COMMITTED).parent().unwrap()).unwrap();
        std::fs::write(COMMITTED, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json has drifted from the code; run `UPDATE_OPENAPI=1 cargo test --test it openapi` and commit the result"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_documents_every_step() {
    let doc: serde_json::Value =
        serde_json::from_str(&conversant::openapi::to_pretty_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/",
        "/patterns",
        "/basket/checkouts",
        "/basket/checkouts/add-item",
        "/basket/checkouts/checkout",
        "/pricing/quotes",
        "/pricing/checkouts/pay",
        "/.well-known/jwks.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test]
async fn the_server_serves_the_same_document() {
    let app = spawn_app().await;
    let served = app.get("/openapi.json").await;
    assert_eq!(served.status, 200);
    let generated: serde_json::Value =
        serde_json::from_str(&conversant::openapi::to_pretty_json()).unwrap();
    assert_eq!(served.body, generated);
}

/// The README's table of fault types is the catalogue's: a type added in
/// the code and not documented (or documented wrongly) fails here.
#[test]
fn the_readme_lists_every_problem_type() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for kind in conversant::fault::types::ALL {
        let row = format!(
            "| `/problems/{}` | {} | {} |",
            kind.slug,
            kind.status.as_u16(),
            kind.title
        );
        assert!(readme.contains(&row), "README.md lacks the row {row}");
    }
}

/// The README's pattern table is the catalogue's: every pattern, its
/// participants and whether it is available.
#[test]
fn the_readme_lists_every_pattern_as_the_catalog_does() {
    use conversant::participants::catalog::patterns::{PATTERNS, Status};
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for p in PATTERNS {
        let participants: Vec<&str> = p.participants.iter().map(|p| p.as_str()).collect();
        let status = if p.status == Status::Available {
            "**available**"
        } else {
            "planned"
        };
        let row = format!(
            "| {} | {} | {} | {status} |",
            p.group,
            p.name,
            participants.join(", ")
        );
        assert!(readme.contains(&row), "README.md lacks the row {row}");
    }
}

/// A parameter documented `in: path` must be in the path: a query
/// parameter documented as a path one makes generated clients wrong.
#[test]
fn every_path_parameter_is_in_its_path() {
    let doc: serde_json::Value =
        serde_json::from_str(&conversant::openapi::to_pretty_json()).unwrap();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().unwrap();
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: `{name}` is documented as a path parameter"
                    );
                }
            }
        }
    }
}
