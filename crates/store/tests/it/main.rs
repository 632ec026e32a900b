//! The store's test suite, one binary: each test opens its own temporary SQLite file.

mod accounts;
mod connect;
mod fixture;
mod keys;
mod responses;
mod usage;
