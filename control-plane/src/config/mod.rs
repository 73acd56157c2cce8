//! The config server: what proxies are told, and how.
//!
//! * [`store`] validates the objects from the source and turns changes into
//!   versioned deltas (pure);
//! * [`server`] streams them to every proxy and records ACKs and NACKs;
//! * [`local`] is the directory source (`--local DIR`).

pub mod local;
pub mod server;
pub mod store;
