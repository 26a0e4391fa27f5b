//! Listeners, connection limits, graceful shutdown.
