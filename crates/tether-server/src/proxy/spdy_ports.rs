//! The ports of a SPDY/3.1 port-forward, for its audit entry. kubectl names
//! them nowhere in the request: each forwarded connection is a pair of SPDY
//! streams whose `SYN_STREAM` headers carry `port`, zlib-compressed with the
//! SPDY/3 dictionary (one compression context per direction). The sniffer
//! reads only the client's first [`LIMIT`] bytes and only the headers of
//! `SYN_STREAM` frames; data frames are skipped unread, and anything that is
//! not SPDY/3 (a WebSocket session) ends it at once.

use std::collections::BTreeSet;

use flate2::{Decompress, FlushDecompress};

/// How many bytes of the client's side are looked at: kubectl opens the
/// streams of every port before any data flows.
pub const LIMIT: usize = 64 * 1024;
/// A header block inflates to at most this much (a port-forward's is ~60 bytes).
const MAX_HEADERS: usize = 16 * 1024;

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): the
/// length-prefixed words, then a block of plain text.
fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut d = Vec::with_capacity(1500);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
}

/// Reads the client's side of a session; [`PortSniffer::ports`] at the end.
pub struct PortSniffer {
    pending: Vec<u8>,
    /// Bytes of a data frame still to pass unread.
    skip: usize,
    seen: usize,
    inflate: Decompress,
    ports: BTreeSet<u16>,
    done: bool,
}

impl Default for PortSniffer {
    fn default() -> Self {
        PortSniffer {
            pending: Vec::new(),
            skip: 0,
            seen: 0,
            inflate: Decompress::new(true),
            ports: BTreeSet::new(),
            done: false,
        }
    }
}

impl PortSniffer {
    /// The next bytes the client sent.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.done {
            return;
        }
        let take = bytes.len().min(LIMIT - self.seen);
        bytes = &bytes[..take];
        self.seen += take;
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
        }
        self.pending.extend_from_slice(bytes);
        self.frames();
        if self.seen >= LIMIT {
            self.done = true;
            self.pending = Vec::new();
        }
    }

    /// The ports seen, `8080,9000`; `None` when there were none.
    pub fn ports(&self) -> Option<String> {
        (!self.ports.is_empty()).then(|| {
            self.ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    fn frames(&mut self) {
        while !self.done && self.skip == 0 && self.pending.len() >= 8 {
            let h = &self.pending[..8];
            let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
            let control = h[0] & 0x80 != 0;
            if !control {
                // A data frame: pass it unread.
                let have = self.pending.len() - 8;
                if have >= len {
                    self.pending.drain(..8 + len);
                } else {
                    self.skip = len - have;
                    self.pending.clear();
                }
                continue;
            }
            let version = u16::from_be_bytes([h[0] & 0x7f, h[1]]);
            if version != 3 || len > LIMIT {
                self.done = true;
                return;
            }
            if self.pending.len() < 8 + len {
                return;
            }
            let kind = u16::from_be_bytes([h[2], h[3]]);
            let frame: Vec<u8> = self.pending.drain(..8 + len).collect();
            // SYN_STREAM: stream id, associated id, priority, slot, headers.
            if kind == 1 && frame.len() >= 18 && !self.headers(&frame[18..]) {
                self.done = true;
            }
        }
    }

    /// Inflates one header block and keeps its `port`; false when it is
    /// not what SPDY/3 sends.
    fn headers(&mut self, mut block: &[u8]) -> bool {
        let mut out = Vec::with_capacity(1024);
        loop {
            let before = self.inflate.total_in();
            let r = self
                .inflate
                .decompress_vec(block, &mut out, FlushDecompress::Sync);
            let used = (self.inflate.total_in() - before) as usize;
            block = &block[used..];
            match r {
                Ok(_) if block.is_empty() => break,
                Ok(_) if out.len() >= MAX_HEADERS => return false,
                Ok(_) => out.reserve(1024),
                Err(e) if e.needs_dictionary().is_some() => {
                    if self.inflate.set_dictionary(&dictionary()).is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        let mut p = &out[..];
        let next = |p: &mut &[u8]| -> Option<Vec<u8>> {
            let n = u32::from_be_bytes(p.get(..4)?.try_into().ok()?) as usize;
            let v = p.get(4..4 + n)?.to_vec();
            *p = &p[4 + n..];
            Some(v)
        };
        let Some(count) = p
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
        else {
            return false;
        };
        p = &p[4..];
        for _ in 0..count.min(64) {
            let (Some(name), Some(value)) = (next(&mut p), next(&mut p)) else {
                return false;
            };
            if name == b"port" {
                if let Some(port) = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                {
                    self.ports.insert(port);
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// A SYN_STREAM frame as spdystream writes it: headers compressed in
    /// the connection's one context with the SPDY/3 dictionary.
    fn syn_stream(z: &mut Compress, id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            block.extend_from_slice(&(k.len() as u32).to_be_bytes());
            block.extend_from_slice(k.as_bytes());
            block.extend_from_slice(&(v.len() as u32).to_be_bytes());
            block.extend_from_slice(v.as_bytes());
        }
        let mut packed = Vec::with_capacity(block.len() + 64);
        z.compress_vec(&block, &mut packed, FlushCompress::Sync)
            .unwrap();
        let mut f = vec![0x80, 0x03, 0x00, 0x01, 0x00];
        let len = (packed.len() + 10) as u32;
        f.extend_from_slice(&len.to_be_bytes()[1..]);
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&packed);
        f
    }

    fn data(id: u32, len: usize) -> Vec<u8> {
        let mut f = id.to_be_bytes().to_vec();
        f.push(0);
        f.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    fn compressor() -> Compress {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(&dictionary()).unwrap();
        z
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        // Its Adler-32, as a SPDY/3 peer's zlib stream names it (DICTID).
        let d = dictionary();
        let (mut a, mut b) = (1u32, 0u32);
        for x in &d {
            a = (a + u32::from(*x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6a7c2);
    }

    #[test]
    fn reads_the_ports_of_each_stream_pair_byte_by_byte() {
        let mut z = compressor();
        let mut wire = Vec::new();
        for (i, port) in ["8080", "9000"].iter().enumerate() {
            let id = 1 + 4 * i as u32;
            wire.extend(syn_stream(
                &mut z,
                id,
                &[("streamtype", "error"), ("port", port), ("requestid", "0")],
            ));
            wire.extend(syn_stream(
                &mut z,
                id + 2,
                &[("streamtype", "data"), ("port", port), ("requestid", "0")],
            ));
            wire.extend(data(id + 2, 3000));
        }
        wire.extend(syn_stream(&mut z, 21, &[("port", "8080")]));
        let mut s = PortSniffer::default();
        for b in wire.chunks(1) {
            s.feed(b);
        }
        assert_eq!(s.ports().as_deref(), Some("8080,9000"));
    }

    #[test]
    fn a_websocket_session_or_garbage_yields_nothing() {
        let mut s = PortSniffer::default();
        s.feed(&[0x82, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(s.ports(), None);
        assert!(s.done);
        let mut s = PortSniffer::default();
        let mut f = vec![0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x14];
        f.extend([0u8; 10]);
        f.extend([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6]);
        s.feed(&f);
        assert_eq!(s.ports(), None);
    }

    #[test]
    fn looks_no_further_than_the_limit() {
        let mut s = PortSniffer::default();
        s.feed(&data(1, LIMIT));
        let mut z = compressor();
        s.feed(&syn_stream(&mut z, 3, &[("port", "8080")]));
        assert_eq!(s.ports(), None);
    }
}
