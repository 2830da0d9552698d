//! Command-line flags and environment (clap).
