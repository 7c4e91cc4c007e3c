//! The client's request body, made ready for uWSGI before a backend is picked: a
//! `Content-Length` body is left to stream as it arrives, a chunked one is read and
//! de-chunked completely first (uWSGI needs `CONTENT_LENGTH`), in memory up to
//! `client_body_buffer_size`, then in an unnamed temporary file. Not for sending it on:
//! that is `send_request`'s job, once the packet is out.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use bytes::{Bytes, BytesMut};

use crate::http1::exchange::{BodyError as ClientBodyError, Exchange as Client};
use crate::http1::request_head::BodyFraming;

/// The request body, as it will be sent.
pub enum RequestBody {
    None,
    /// `Content-Length` bytes, streamed from the client as they arrive.
    Streaming(u64),
    /// A de-chunked body, in memory or in an unnamed temporary file.
    Memory(Bytes),
    File {
        file: File,
        len: u64,
    },
}

impl RequestBody {
    /// `CONTENT_LENGTH` for the packet.
    pub fn content_length(&self) -> Option<u64> {
        match self {
            RequestBody::None => None,
            RequestBody::Streaming(n) => Some(*n),
            RequestBody::Memory(b) => Some(b.len() as u64),
            RequestBody::File { len, .. } => Some(*len),
        }
    }
}

/// Why the client's body could not be read.
pub enum BodyError {
    /// Over `client_max_body_size`: 413.
    TooLarge(u64),
    /// Bad framing (400), the client stopped sending (408) or went away.
    Client(ClientBodyError),
    /// The temporary file could not be made or written: 500.
    TempFile(String),
}

/// Decides how the body will be sent; a chunked body is read and de-chunked completely
/// first (uWSGI needs `CONTENT_LENGTH`), in memory up to `buffer_size`, then in a file.
pub async fn prepare_body(
    client: &mut Client<'_>,
    framing: BodyFraming,
    max_size: u64,
    buffer_size: u64,
    temp_dir: &Path,
) -> Result<RequestBody, BodyError> {
    match framing {
        BodyFraming::None => return Ok(RequestBody::None),
        // `Content-Length: 0` is a body of length 0 (CONTENT_LENGTH "0"), as nginx sends
        BodyFraming::Length(0) => return Ok(RequestBody::Memory(Bytes::new())),
        BodyFraming::Length(n) => return Ok(RequestBody::Streaming(n)),
        BodyFraming::Chunked => {}
    }
    let mut memory = BytesMut::new();
    let mut file: Option<File> = None;
    let mut total: u64 = 0;
    loop {
        let chunk = match client.read_body().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(BodyError::Client(e)),
        };
        total += chunk.len() as u64;
        if max_size > 0 && total > max_size {
            return Err(BodyError::TooLarge(total));
        }
        match &mut file {
            Some(f) => f.write_all(chunk).map_err(|e| BodyError::TempFile(e.to_string()))?,
            None if memory.len() as u64 + chunk.len() as u64 > buffer_size => {
                let mut f = temp_file(temp_dir).map_err(|e| {
                    BodyError::TempFile(format!(
                        "cannot create a temporary file in {}: {e}",
                        temp_dir.display()
                    ))
                })?;
                f.write_all(&memory)
                    .and_then(|_| f.write_all(chunk))
                    .map_err(|e| BodyError::TempFile(e.to_string()))?;
                memory.clear();
                file = Some(f);
            }
            None => memory.extend_from_slice(chunk),
        }
    }
    Ok(match file {
        Some(file) => RequestBody::File { file, len: total },
        None => RequestBody::Memory(memory.freeze()),
    })
}

/// An unnamed file (O_TMPFILE): nothing to clean up, even after a crash.
fn temp_file(dir: &Path) -> io::Result<File> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let fd = open(dir, OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o600))?;
    Ok(File::from(fd))
}
