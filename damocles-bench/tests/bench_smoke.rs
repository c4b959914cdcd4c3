//! The benchmarks keep building and running, small and without C2 (the full run is in
//! BENCHMARKS.md): `damocles-bench --smoke` as a test, so that its binary is built with
//! the test build (one feature set, nothing built twice) instead of by a `cargo build` of
//! its own in the test command.

#[test]
fn the_benchmarks_run_small() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_damocles-bench"))
        .arg("--smoke")
        .output()
        .expect("run damocles-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    // Each figure printed its line beside its baseline.
    for figure in ["2 admin", "3 ingest", "4 listing", "5 memory"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(figure)),
            "{figure}: {stdout}"
        );
    }
}
