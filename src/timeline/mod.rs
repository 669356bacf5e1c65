//! Timing core.
