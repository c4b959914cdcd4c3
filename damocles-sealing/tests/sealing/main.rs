//! The integration tests of damocles-sealing, one binary (linking the proof stack once): each
//! module is one area.

mod builder;
mod common;
mod config;
mod docs_reference;
mod operating;
mod post_faults;
mod resume_matrix;
mod with_params;
mod without_params;
