//! The console's static files, compiled into the binary (no CDN, no build step) and served with
//! long cache lifetimes: each file's name carries its version, so a new release changes the URL.

use axum::http::{Method, header};
use axum::response::IntoResponse;

use crate::http::{Guard, Route};

pub const STYLESHEET: &str = "/assets/console-1.css";
pub const SCRIPT: &str = "/assets/console-1.js";
pub const HTMX: &str = "/assets/htmx-2.0.11.min.js";

const CSS: &[u8] = include_bytes!("../../../assets/console.css");
const JS: &[u8] = include_bytes!("../../../assets/console.js");
const HTMX_JS: &[u8] = include_bytes!("../../../assets/htmx-2.0.11.min.js");

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::page(Method::GET, STYLESHEET, Guard::Public, || async {
            asset("text/css; charset=utf-8", CSS)
        }),
        Route::page(Method::GET, SCRIPT, Guard::Public, || async {
            asset("text/javascript; charset=utf-8", JS)
        }),
        Route::page(Method::GET, HTMX, Guard::Public, || async {
            asset("text/javascript; charset=utf-8", HTMX_JS)
        }),
    ]
}

fn asset(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
}
