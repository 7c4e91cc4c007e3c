//! Counting the frames an HTTP/2 client sends that make the server work without asking
//! for anything: a flood of them is refused before it costs unbounded CPU. Watches the
//! bytes read from the connection (frame headers only: nine bytes per frame) and says
//! when a bound is crossed:
//!
//! - RST_STREAM: more than [`MAX_RESETS`] and more than half the streams the client
//!   opened (the "rapid reset" attack, CVE-2023-44487: open a stream, reset it, again —
//!   each costs a request's start and nothing throttles it). A browser cancels a few.
//! - SETTINGS (not acknowledgements): more than [`MAX_SETTINGS`]; a client sends one or two.
//! - PING (not acknowledgements): more than [`MAX_PINGS`] plus one per stream opened.
//!
//! Pure: fed the bytes as they arrive (in any pieces), it keeps only counts.

/// The client connection preface (RFC 9113 §3.4), before the first frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER: usize = 9;

pub const MAX_RESETS: u64 = 128;
pub const MAX_SETTINGS: u64 = 32;
pub const MAX_PINGS: u64 = 64;

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;

/// Which bound was crossed (the error-log line's words).
#[derive(Debug, PartialEq, Eq)]
pub struct Flood(pub &'static str);

#[derive(Default)]
pub struct FrameCounter {
    preface_seen: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    opened: u64,
    resets: u64,
    settings: u64,
    pings: u64,
}

impl FrameCounter {
    pub fn new() -> FrameCounter {
        FrameCounter::default()
    }

    pub fn observe(&mut self, mut bytes: &[u8]) -> Result<(), Flood> {
        if self.preface_seen < PREFACE_LEN {
            let n = (PREFACE_LEN - self.preface_seen).min(bytes.len());
            self.preface_seen += n;
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(bytes.len());
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == FRAME_HEADER {
                self.header_len = 0;
                self.frame()?;
            }
        }
        Ok(())
    }

    fn frame(&mut self) -> Result<(), Flood> {
        let h = self.header;
        self.skip = u64::from(u32::from_be_bytes([0, h[0], h[1], h[2]]));
        let (kind, flags) = (h[3], h[4]);
        match kind {
            HEADERS => self.opened += 1,
            RST_STREAM => {
                self.resets += 1;
                if self.resets > MAX_RESETS && self.resets * 2 > self.opened {
                    return Err(Flood("client reset too many streams (rapid reset)"));
                }
            }
            SETTINGS if flags & ACK == 0 => {
                self.settings += 1;
                if self.settings > MAX_SETTINGS {
                    return Err(Flood("client sent too many SETTINGS frames"));
                }
            }
            PING if flags & ACK == 0 => {
                self.pings += 1;
                if self.pings > MAX_PINGS + self.opened {
                    return Err(Flood("client sent too many PING frames"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn preface() -> Vec<u8> {
        let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        b.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        b
    }

    #[test]
    fn rapid_reset_is_caught_after_the_bound() {
        let mut c = FrameCounter::new();
        c.observe(&preface()).unwrap();
        let mut caught = None;
        for i in 0..1000u32 {
            let id = 2 * i + 1;
            let mut bytes = frame(HEADERS, 0x5, id, &[0x82, 0x86, 0x84]);
            bytes.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
            if c.observe(&bytes).is_err() {
                caught = Some(i);
                break;
            }
        }
        assert_eq!(caught, Some(MAX_RESETS as u32));
    }

    #[test]
    fn resets_among_many_answered_streams_are_fine() {
        let mut c = FrameCounter::new();
        c.observe(&preface()).unwrap();
        for i in 0..900u32 {
            c.observe(&frame(HEADERS, 0x5, 2 * i + 1, &[0x82])).unwrap();
            if i % 3 == 0 {
                c.observe(&frame(RST_STREAM, 0, 2 * i + 1, &8u32.to_be_bytes())).unwrap();
            }
        }
    }

    #[test]
    fn frames_split_anywhere_are_counted_once() {
        let mut bytes = preface();
        // (the preface holds one: this makes one more than the bound)
        for _ in 0..MAX_SETTINGS {
            bytes.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]));
            // acknowledgements and other frames do not count, and their payloads are skipped
            bytes.extend(frame(SETTINGS, ACK, 0, &[]));
            bytes.extend(frame(0x8, 0, 0, &[0, 0, 0x10, 0]));
        }
        for split in [1, 5, 9, 13] {
            let mut c = FrameCounter::new();
            let r: Result<Vec<()>, Flood> = bytes.chunks(split).map(|p| c.observe(p)).collect();
            assert_eq!(r, Err(Flood("client sent too many SETTINGS frames")), "split {split}");
        }
        let mut c = FrameCounter::new();
        c.observe(&bytes[..bytes.len() - 30]).unwrap();
    }

    #[test]
    fn pings_are_bounded_by_the_streams_opened() {
        let mut c = FrameCounter::new();
        c.observe(&preface()).unwrap();
        for _ in 0..MAX_PINGS {
            c.observe(&frame(PING, 0, 0, &[0; 8])).unwrap();
        }
        c.observe(&frame(HEADERS, 0x5, 1, &[0x82])).unwrap();
        c.observe(&frame(PING, 0, 0, &[0; 8])).unwrap();
        assert!(c.observe(&frame(PING, 0, 0, &[0; 8])).is_err());
    }
}
