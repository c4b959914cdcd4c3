//! JSON-RPC 2.0 over hyper 1 for damocles-rs: the worker admin API (`VenusWorker.*`) and
//! the manager API (`Venus.*`), servers and clients.
//!
//! **Boundary:** knows HTTP and JSON-RPC, not proofs or table rendering. Arrives with the
//! worker admin and manager issues.
