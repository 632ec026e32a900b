//! The gateway's integration tests: mock and gateway booted on 127.0.0.1:0 in-process;
//! several real replicas on PostgreSQL and Redis (`replicas`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

mod account;
mod billing;
mod chat;
mod cli;
mod cluster;
mod dashboard;
mod dashboard_instances;
mod dashboard_jobs;
mod dashboard_keys;
mod dashboard_playground;
mod dashboard_usage;
mod errors;
mod gemini_inbound;
mod github;
mod harness;
mod hosted_messages;
mod hosted_tools;
mod instances_admin;
mod instances_api;
mod instances_cheats;
mod instances_privacy;
mod instances_probe;
mod instances_routing;
mod isolation;
mod jobs;
mod jobs_cluster;
mod keys;
mod limits;
mod messages_fidelity;
mod metering;
mod metrics;
mod openapi;
mod operations_drain;
mod providers;
mod reload;
mod replicas;
mod responses_chain;
mod routing;
mod secrets;
mod streaming;
mod surfaces;
mod traces;
