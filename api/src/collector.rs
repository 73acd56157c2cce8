//! The span settings' rules, one for the controller's flags (the chart's
//! `tracing.*` values) and the proxy's, so a value one accepts the other
//! uses: the collector's address and the sampling share.

/// Why a collector address cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("trace collector {addr:?}: {reason}")]
pub struct AddressError {
    addr: String,
    reason: String,
}

/// The OTLP/HTTP traces URL for a collector address (pure): `host:port`
/// or `http://host:port` (the OTLP/HTTP port is usually 4318), with
/// `/v1/traces` added unless the address already names a path.
pub fn traces_url(addr: &str) -> Result<String, AddressError> {
    let fail = |reason: &str| AddressError {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let with_scheme = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let uri: http::Uri = with_scheme
        .parse()
        .map_err(|_| fail("not host:port or an http:// URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(fail(
            "only http:// is supported (run the collector's OTLP/HTTP receiver in the mesh)",
        ));
    }
    let authority = uri.authority().ok_or_else(|| fail("no host"))?;
    if authority.port_u16().is_none() {
        return Err(fail("no port (OTLP/HTTP listens on 4318)"));
    }
    Ok(match uri.path() {
        "" | "/" => format!("http://{authority}/v1/traces"),
        path => format!("http://{authority}{path}"),
    })
}

/// The share of the traces a proxy starts that are recorded, by default.
pub const DEFAULT_SAMPLING: f64 = 0.01;

/// A sampling share, a number from 0 to 1 (pure).
pub fn parse_sampling(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number from 0 to 1 (0.01 records 1 % of traces)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_a_share() {
        for (s, want) in [
            ("0", Some(0.0)),
            ("1", Some(1.0)),
            ("0.01", Some(0.01)),
            (".5", Some(0.5)),
            ("1.5", None),
            ("-0.1", None),
            ("NaN", None),
            ("1%", None),
            ("", None),
        ] {
            assert_eq!(parse_sampling(s).ok(), want, "{s:?}");
        }
    }

    #[test]
    fn collector_addresses_become_otlp_http_urls() {
        for (addr, want) in [
            ("jaeger:4318", Ok("http://jaeger:4318/v1/traces")),
            (
                "http://otel.observability:4318",
                Ok("http://otel.observability:4318/v1/traces"),
            ),
            (
                "http://127.0.0.1:4318/",
                Ok("http://127.0.0.1:4318/v1/traces"),
            ),
            (
                "http://collector:4318/custom/traces",
                Ok("http://collector:4318/custom/traces"),
            ),
            ("[::1]:4318", Ok("http://[::1]:4318/v1/traces")),
            ("jaeger", Err("no port")),
            ("https://jaeger:4318", Err("only http://")),
            ("grpc://jaeger:4317", Err("only http://")),
            ("", Err("not host:port")),
            ("jae ger:4318", Err("not host:port")),
        ] {
            match (traces_url(addr), want) {
                (Ok(url), Ok(want)) => assert_eq!(url, want, "{addr}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{addr}: {e}"),
                (got, want) => panic!("{addr}: {got:?}, want {want:?}"),
            }
        }
    }
}
