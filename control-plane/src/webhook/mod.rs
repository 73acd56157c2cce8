//! The injection webhook (port 9443): the API server sends every Pod
//! creation in a namespace the webhook configuration selects; the answer
//! carries the JSON patch that meshes it (`strait_api::inject` decides).
//!
//! * [`review`]: AdmissionReview in, AdmissionReview out (pure);
//! * [`certs`]: the webhook's own CA and serving certificate (pure, with the
//!   time as a parameter);
//! * [`tls`]: the certificate the listener serves, swapped in place when it
//!   is renewed;
//! * [`reconcile`]: keeps the certificate in a Secret, renews it before it
//!   expires and keeps the CA in the `caBundle` of its own
//!   MutatingWebhookConfiguration, so a `helm upgrade` never breaks
//!   admission;
//! * [`server`]: the HTTPS listener.

pub mod certs;
pub mod reconcile;
pub mod review;
pub mod server;
pub mod tls;
