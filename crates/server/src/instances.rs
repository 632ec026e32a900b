//! Instances: model servers that accounts register and the gateway calls (CONTRACTS.md §7).

pub mod address;
pub mod connector;
pub mod probe;
pub mod routing;
pub mod usage;
