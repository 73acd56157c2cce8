//! Reading the server name from a TLS ClientHello, without consuming it
//! (the bytes are replayed to whoever handles the connection: this proxy's
//! TLS acceptor for mesh TLS, the app for its own). Pure, and the part of
//! the inbound path that parses bytes from anyone on the network, so it
//! is fuzzed (`fuzz/fuzz_targets/client_hello.rs`).
//!
//! Only the first record is read: rustls, Go and OpenSSL send a
//! ClientHello in one record, which is at most 16 KiB. A ClientHello split
//! across records is reported as [`Hello::Malformed`], and passes through
//! to the app as TLS that is not the mesh's.

/// What a connection's first bytes say about its server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello<'a> {
    /// The first record is not complete: this many bytes are needed.
    NeedMore(usize),
    /// A ClientHello, with its `server_name` (SNI) if it sent one.
    ServerName(Option<&'a str>),
    /// Not a ClientHello this reader understands.
    Malformed,
}

/// The largest TLS record (2^14 bytes of plaintext and its header).
pub const MAX_RECORD: usize = 5 + (1 << 14);

/// Reads the server name of the ClientHello at the start of `buf`.
pub fn server_name(buf: &[u8]) -> Hello<'_> {
    if buf.len() < 5 {
        return Hello::NeedMore(5);
    }
    if buf[0] != 0x16 || buf[1] != 3 {
        return Hello::Malformed;
    }
    let len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    if len > MAX_RECORD - 5 {
        return Hello::Malformed;
    }
    let Some(record) = buf.get(5..5 + len) else {
        return Hello::NeedMore(5 + len);
    };
    parse(record).unwrap_or(Hello::Malformed)
}

/// A cursor over a byte slice that fails (None) instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }

    /// A length-prefixed vector (`len` bytes of length).
    fn vec(&mut self, len: usize) -> Option<Reader<'a>> {
        let n = match len {
            1 => self.u8()?,
            2 => self.u16()?,
            _ => self.u24()?,
        };
        self.take(n).map(Reader)
    }
}

fn parse(record: &[u8]) -> Option<Hello<'_>> {
    let mut r = Reader(record);
    // Handshake type 1: ClientHello, the whole of it in this record.
    if r.u8()? != 1 {
        return None;
    }
    let mut hello = r.vec(3)?;
    hello.take(2 + 32)?; // legacy_version, random
    hello.vec(1)?; // legacy_session_id
    hello.vec(2)?; // cipher_suites
    hello.vec(1)?; // legacy_compression_methods
    if hello.0.is_empty() {
        return Some(Hello::ServerName(None));
    }
    let mut extensions = hello.vec(2)?;
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vec(2)?;
        if kind != 0 {
            continue;
        }
        // server_name: a list of (type, name); type 0 is a host name.
        let mut list = data.vec(2)?;
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec(2)?.0;
            // An empty host name is no name (RFC 6066 forbids it; the
            // client_hello fuzz target sent one).
            if name_type == 0 {
                return std::str::from_utf8(name)
                    .ok()
                    .map(|n| Hello::ServerName(Some(n).filter(|n| !n.is_empty())));
            }
        }
        return Some(Hello::ServerName(None));
    }
    Some(Hello::ServerName(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The first flight of a real rustls client to `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let roots = Arc::new(rustls::RootCertStore::empty());
        let config = super::super::anonymous_client(roots).unwrap();
        let mut conn =
            rustls::ClientConnection::new(config, name.to_string().try_into().unwrap()).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_the_name_a_real_client_sends() {
        let name = "web.shop.serviceaccount.identity.cluster.local";
        let hello = client_hello(name);
        assert_eq!(server_name(&hello), Hello::ServerName(Some(name)));
        // Every shorter prefix asks for more, never misreads.
        for n in 0..hello.len() {
            assert!(
                matches!(server_name(&hello[..n]), Hello::NeedMore(k) if k > n),
                "prefix of {n}"
            );
        }
        // An IP address is not sent as SNI.
        let by_ip = client_hello("10.0.0.1");
        assert_eq!(server_name(&by_ip), Hello::ServerName(None));
    }

    #[test]
    fn malformed_table() {
        let good = client_hello("a.example");
        let mut not_hello = good.clone();
        not_hello[5] = 2;
        let mut lying_length = good.clone();
        // The handshake claims more than the record holds.
        lying_length[6] = 0xff;
        let mut truncated_ext = good.clone();
        let n = truncated_ext.len();
        truncated_ext[3] = ((n - 5 - 1) >> 8) as u8;
        truncated_ext[4] = (n - 5 - 1) as u8;
        truncated_ext.pop();
        let cases: &[(&str, &[u8])] = &[
            ("HTTP", b"GET / HTTP/1.1\r\n"),
            ("SSLv2-ish", &[0x16, 2, 0, 0, 0]),
            ("oversized record", &[0x16, 3, 1, 0xff, 0xff]),
            ("not a ClientHello", &not_hello),
            ("handshake longer than the record", &lying_length),
            ("cut inside the extensions", &truncated_ext),
        ];
        for (what, bytes) in cases {
            assert_eq!(server_name(bytes), Hello::Malformed, "{what}");
        }
    }
}
