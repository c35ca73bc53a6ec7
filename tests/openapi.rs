//! The OpenAPI document describes exactly the `/api/v1` routes of the route table: every route
//! has its operation (same path, same method) and no operation describes a route that is not
//! there; operation IDs are unique, and every operation documents its 401.

use std::collections::BTreeSet;

use dirsync::http::{Surface, openapi, route_specs};

fn documented() -> serde_json::Value {
    serde_json::to_value(openapi::document()).expect("the document serializes")
}

#[test]
fn every_api_route_is_described_and_nothing_else() {
    let doc = documented();
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = route_specs()
        .into_iter()
        .filter(|r| r.surface == Surface::Api && r.path.starts_with("/api/v1/"))
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&described).collect();
    let unrouted: Vec<_> = described.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an OpenAPI operation: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "OpenAPI operations without a route: {unrouted:?}"
    );
}

#[test]
fn operation_ids_are_unique_and_every_operation_answers_401_with_the_error_schema() {
    let doc = documented();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            let unauthorized = &operation["responses"]["401"]["content"]["application/json"];
            assert_eq!(
                unauthorized["schema"]["$ref"], "#/components/schemas/ErrorBody",
                "{method} {path} does not document its 401"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["api_token"].is_object());
    assert_eq!(doc["openapi"], "3.1.0");
}
