//! Dashboard pages (being built).
