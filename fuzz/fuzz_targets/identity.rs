//! What the identity service parses from a caller
//! (`strait_api::identity`): a SPIFFE ID, a ServiceAccount username, a
//! mesh DNS name, and a PEM certificate signing request.
//!
//! Input: the first line is a name (tried as all three forms), the rest a
//! CSR. Checks: never panics; a parsed SPIFFE ID prints back to itself and
//! its DNS form parses back to it; a username's identity is in the trust
//! domain it was asked for; a CSR the development CA would sign for
//! identity X (`declared`) is one the token check accepts for X
//! (`check`), and one `check` accepts for X is `declared` as X.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strait_api::identity::{SpiffeId, csr};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (name, pem) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(id) = SpiffeId::parse(name) {
        assert_eq!(id.to_string(), name);
        assert_eq!(
            SpiffeId::from_dns_name(&id.trust_domain, &id.dns_name()),
            Some(id.clone())
        );
    }
    if let Ok(id) = SpiffeId::from_username("cluster.local", name) {
        assert_eq!(id.trust_domain, "cluster.local");
        assert_eq!(SpiffeId::parse(&id.to_string()), Ok(id));
    }
    if let Some(id) = SpiffeId::from_dns_name("cluster.local", name) {
        assert_eq!(id.dns_name(), name);
    }
    let declared = csr::declared(pem, "cluster.local");
    if let Ok((id, _)) = &declared {
        assert!(csr::check(pem, id).is_ok(), "declared {id} but check refuses it");
    }
    let web = SpiffeId::new("cluster.local", "shop", "web");
    if csr::check(pem, &web).is_ok() {
        assert_eq!(declared.map(|(id, _)| id).ok(), Some(web));
    }
});
