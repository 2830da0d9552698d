//! Logging, metrics and the admin HTTP server.
