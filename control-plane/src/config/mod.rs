//! The config server: what proxies are told, and how.
//!
//! * [`store`] validates the objects from the source and turns changes into
//!   versioned [`delta`]s (pure);
//! * [`scope`] decides which published objects each proxy receives (pure);
//! * [`views`] builds each namespace's full set and deltas once, for every
//!   stream in that namespace to share;
//! * [`identity`] holds the Pods the source has seen and checks a proxy's
//!   Hello against them (pure);
//! * [`parts`] cuts a version into bounded messages (pure);
//! * [`shared`] is what the sources write into and the publisher and the
//!   streams read: the store, the Pods, the connected proxies;
//! * [`server`] streams views to every proxy and records ACKs and NACKs;
//! * [`accept`] hands it only connections that start talking in time;
//! * [`local`] is the directory source (`--local DIR`).

pub mod accept;
pub mod delta;
pub mod identity;
pub mod local;
pub mod parts;
pub mod scope;
pub mod server;
pub mod shared;
pub mod store;
pub mod views;
