//! Sync reports, a run's report and the person page.

use crate::http::Route;

pub(super) fn routes() -> Vec<Route> {
    vec![]
}
