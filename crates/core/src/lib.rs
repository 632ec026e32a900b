//! Token Router's shared vocabulary: money, prices, usage, clock and the OpenAI error envelope.
//! Nothing here performs I/O; every other crate speaks in these types.

pub mod chat;
pub mod clock;
pub mod error;
pub mod form;
pub mod money;
pub mod usage;

pub use error::{ErrorBody, ErrorEnvelope};
pub use money::{MoneyError, NanoUsd, Price, ToolPrices};
pub use usage::{HostedCalls, Usage};
