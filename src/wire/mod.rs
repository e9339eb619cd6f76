//! placeholder
pub mod frame;
