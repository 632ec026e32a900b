//! The store's test suite, one binary: every behaviour runs on SQLite and on PostgreSQL
//! (`sqlite::…` and `postgres::…`), each test on a database of its own.

mod accounts;
mod connect;
mod fixture;
mod holds;
mod instance_flags;
mod instances;
mod jobs;
mod keys;
mod replicas;
mod reports;
mod responses;
mod sessions;
mod usage;
