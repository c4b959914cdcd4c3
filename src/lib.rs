//! The workspace root package: it holds cross-crate integration tests (`tests/`) and the
//! insta snapshots of rendered output (`snapshots/`). It exports nothing.
