//! damocles-sealing
