//! The integration tests of damocles-rpc, one binary (linking the proof stack once): each
//! module is one area.

mod admin_wire;
mod bad_clients;
mod fuzz;
mod manager_wire;
mod no_sectors;
mod piece_store;
mod postgres;
mod tls;
