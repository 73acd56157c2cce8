//! `strait tap`: a live stream of the requests this proxy sees.
//!
//! Each finished request becomes one [`Event`] (direction, method,
//! authority, path, route, backend, status, latency, TLS peer identity),
//! but only while someone taps: [`Taps::active`] is one atomic load, and
//! nothing is captured or built otherwise. Events go out through a bounded
//! broadcast channel: a tap that reads too slowly loses the oldest events
//! (and is told how many, [`Line::Lost`]) while requests never wait for it,
//! and at most [`MAX_TAPS`] taps are open at once. Each tap's [`Filter`]
//! runs on the tap's own task, not on the request path.
//!
//! The admin listener serves taps only to loopback clients
//! ([`crate::admin`]): request paths and authorities can carry secrets,
//! and the admin port is reachable from the pod network. In a cluster,
//! `strait tap` reaches a pod's loopback through a port-forward, which the
//! Kubernetes API server authorizes (`pods/portforward`).

use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

/// Events a tap may fall behind by before it loses the oldest.
pub const BACKLOG: usize = 1024;

/// Taps open at once; more are refused (`503`).
pub const MAX_TAPS: usize = 8;

/// One finished request, as a tap sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `outbound` or `inbound`.
    pub direction: &'static str,
    /// The method.
    pub method: String,
    /// The authority asked for (`:authority` or `Host`).
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// The rule that matched (`trafficroute/rule`, `default`, or empty).
    pub route: String,
    /// The backend the split chose (outbound), or the app's address.
    pub backend: String,
    /// The status sent to the client.
    pub status: u16,
    /// From the request's arrival to its response head, ms.
    pub latency_ms: f64,
    /// The other proxy's identity when the hop was mesh TLS: the
    /// endpoint's (outbound) or the client's (inbound).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "shared_str")]
    pub tls_peer: Option<Arc<str>>,
}

fn shared_str<S: serde::Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v),
        None => s.serialize_none(),
    }
}

/// What a tap's stream carries, one JSON object per line: an [`Event`],
/// or `{"lost": N}` when N events were dropped because the tap read too
/// slowly.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A request.
    Event(Arc<Event>),
    /// This many events were dropped.
    Lost {
        /// How many.
        lost: u64,
    },
}

impl Serialize for Line {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Line::Event(e) => e.as_ref().serialize(s),
            Line::Lost { lost } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("lost", lost)?;
                m.end()
            }
        }
    }
}

/// The proxy's taps.
pub struct Taps {
    tx: broadcast::Sender<Arc<Event>>,
    open: AtomicUsize,
}

impl Default for Taps {
    fn default() -> Self {
        Taps {
            tx: broadcast::channel(BACKLOG).0,
            open: AtomicUsize::new(0),
        }
    }
}

impl Taps {
    /// Whether anyone is tapping: the only cost a request pays otherwise.
    pub fn active(&self) -> bool {
        // Not `receiver_count`, which takes the channel's lock.
        self.open.load(Ordering::Relaxed) > 0
    }

    /// Hands `event` to every tap; never waits.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(Arc::new(event));
    }

    /// Opens a tap, unless [`MAX_TAPS`] are open.
    pub fn open(self: &Arc<Self>) -> Option<Tap> {
        let mut n = self.open.load(Ordering::Acquire);
        loop {
            if n >= MAX_TAPS {
                return None;
            }
            match self
                .open
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        Some(Tap {
            rx: self.tx.subscribe(),
            taps: self.clone(),
        })
    }
}

/// One open tap; closing it (dropping) frees its place.
pub struct Tap {
    rx: broadcast::Receiver<Arc<Event>>,
    taps: Arc<Taps>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.taps.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Tap {
    /// The next line that passes `filter`; `None` once the proxy stops.
    pub async fn next(&mut self, filter: &Filter) -> Option<Line> {
        loop {
            match self.rx.recv().await {
                Ok(e) if filter.matches(&e) => return Some(Line::Event(e)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(lost)) => return Some(Line::Lost { lost }),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Which requests a tap shows: every field given must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// `outbound` or `inbound`.
    pub direction: Option<String>,
    /// The method, exactly (case-insensitive).
    pub method: Option<String>,
    /// The authority, exactly (case-insensitive).
    pub authority: Option<String>,
    /// A prefix of the path.
    pub path: Option<String>,
    /// The route label, exactly.
    pub route: Option<String>,
    /// The backend label, exactly.
    pub backend: Option<String>,
    /// A status (`503`) or a class (`5xx`).
    pub status: Option<Status>,
}

/// A status filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    /// One code.
    Code(u16),
    /// A class: `5` for `5xx`.
    Class(u16),
}

/// A filter parameter that does not parse.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FilterError {
    /// Not a known parameter.
    #[error(
        "unknown filter `{0}` (known: direction, method, authority, path, route, backend, status)"
    )]
    Unknown(String),
    /// A bad `status`.
    #[error("status `{0}`: want a code such as 503 or a class such as 5xx")]
    Status(String),
    /// A bad `direction`.
    #[error("direction `{0}`: want outbound or inbound")]
    Direction(String),
}

impl Filter {
    /// From a URL query (`method=GET&path=/api&status=5xx`).
    pub fn from_query(query: &str) -> Result<Self, FilterError> {
        let mut f = Filter::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "direction" if v == "outbound" || v == "inbound" => f.direction = Some(v),
                "direction" => return Err(FilterError::Direction(v)),
                "method" => f.method = Some(v),
                "authority" => f.authority = Some(v),
                "path" => f.path = Some(v),
                "route" => f.route = Some(v),
                "backend" => f.backend = Some(v),
                "status" => f.status = Some(parse_status(&v)?),
                other => return Err(FilterError::Unknown(other.to_string())),
            }
        }
        Ok(f)
    }

    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        let eq = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        let eq_ci = |want: &Option<String>, got: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(got))
        };
        eq(&self.direction, e.direction)
            && eq_ci(&self.method, &e.method)
            && eq_ci(&self.authority, &e.authority)
            && self.path.as_deref().is_none_or(|p| e.path.starts_with(p))
            && eq(&self.route, &e.route)
            && eq(&self.backend, &e.backend)
            && self.status.is_none_or(|s| match s {
                Status::Code(c) => e.status == c,
                Status::Class(c) => e.status / 100 == c,
            })
    }
}

fn parse_status(v: &str) -> Result<Status, FilterError> {
    let bad = || FilterError::Status(v.to_string());
    if let Some(class) = v.strip_suffix("xx").or_else(|| v.strip_suffix("XX")) {
        return match class.parse::<u16>() {
            Ok(c @ 1..=5) => Ok(Status::Class(c)),
            _ => Err(bad()),
        };
    }
    match v.parse::<u16>() {
        Ok(c @ 100..=599) => Ok(Status::Code(c)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
