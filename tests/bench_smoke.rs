//! Keeps `cargo bench --bench e2e` from rotting: scenarios (a) and (b) at 1% scale, without
//! latency and in this process, must read Graph in exactly its lower bound of requests, create
//! every user and group, and write nothing to the target when nothing changed.
#![cfg(feature = "emulators")]

#[allow(dead_code)]
#[path = "../benches/e2e.rs"]
mod e2e;

use dirsync::emulator::Latency;

#[test]
fn the_e2e_benchmark_counts_graph_at_its_bound_and_a_no_change_run_writes_nothing() {
    let options = e2e::Options {
        scenarios: vec!['a', 'b'],
        scale: 0.01,
        latency: Latency::NONE,
        max_batch: 1000,
        child_process: false,
        server_url: e2e::server_url(),
        database_prefix: format!("dirsync_bench_smoke_{}", std::process::id()),
        verbose: false,
    };

    let reports = e2e::run(&options).expect("the scenarios run");

    let [initial, again] = reports.as_slice() else {
        panic!("two reports: {reports:?}");
    };
    for report in [initial, again] {
        assert_eq!(report.child.status, "succeeded", "{report:?}");
        assert_eq!(report.graph_requests, report.graph_bound, "{report:?}");
        assert_eq!(
            report.child.graph_requests, report.graph_bound,
            "{report:?}"
        );
    }
    // 1,000 users in 19 internal groups of 52 and a basic group of 400: 19 × 2 + 1 + 1.
    assert_eq!(initial.graph_bound, 40);
    let kind = |r: &e2e::Report, k: &str| r.target_by_kind.get(k).copied().unwrap_or(0);
    assert_eq!(kind(initial, "create_user"), 1000);
    assert_eq!(kind(initial, "create_group"), 20);
    assert!(
        initial.target_counted >= initial.target_bound,
        "{initial:?}"
    );
    assert_eq!(again.child.planned_operations, 0, "{again:?}");
    assert_eq!(again.target_writes, 0, "{again:?}");
    assert_eq!(again.target_bound, 0);
}
