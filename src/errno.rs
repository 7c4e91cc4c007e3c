//! How a failed system call's errno reads in the error log: nginx's `(13: Permission
//! denied)`. Wording only; what an errno means for the response (404, 502, a hint to the
//! operator) is decided where the call was made. Written straight into the line being
//! formatted (no string of its own: a 404's log line is on the allocation budget).

use std::fmt;
use std::io;

use nix::errno::Errno;

/// An errno and its text, shown as `(13: Permission denied)`.
pub struct Described<'e> {
    code: i32,
    text: Text<'e>,
}

enum Text<'e> {
    /// The C library's `strerror` text, as nginx prints it (nix's own table words some
    /// differently: "Try again" for EAGAIN).
    Strerror,
    /// The error's own `Display`.
    Error(&'e io::Error),
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text {
            Text::Strerror => {
                let mut buf = [0u8; 128];
                // SAFETY: the buffer and its length are ours; the XSI strerror_r that libc
                // exports writes a NUL-terminated text into it (or fails and leaves it empty)
                let failed =
                    unsafe { nix::libc::strerror_r(self.code, buf.as_mut_ptr().cast(), buf.len()) } != 0;
                let len = buf.iter().position(|&b| b == 0).unwrap_or(0);
                match std::str::from_utf8(&buf[..len]) {
                    Ok(text) if !failed && !text.is_empty() => write!(f, "({}: {text})", self.code),
                    _ => write!(f, "({}: Unknown error {})", self.code, self.code),
                }
            }
            Text::Error(e) => write!(f, "({}: {e})", self.code),
        }
    }
}

/// `(13: Permission denied)`. An error that carries no errno reads `(0: …)` with its own
/// text.
pub fn describe(e: &io::Error) -> Described<'_> {
    match e.raw_os_error() {
        Some(code) => Described { code, text: Text::Strerror },
        None => Described { code: 0, text: Text::Error(e) },
    }
}

/// [`describe`] for an errno already taken out of its error.
pub fn describe_errno(errno: Errno) -> Described<'static> {
    Described { code: errno as i32, text: Text::Strerror }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_form() {
        assert_eq!(describe(&io::Error::from_raw_os_error(13)).to_string(), "(13: Permission denied)");
        assert_eq!(describe_errno(Errno::ENOENT).to_string(), "(2: No such file or directory)");
        assert_eq!(describe(&io::Error::other("no errno")).to_string(), "(0: no errno)");
        // glibc's words, as nginx's lines have them
        assert_eq!(describe_errno(Errno::EAGAIN).to_string(), "(11: Resource temporarily unavailable)");
        assert_eq!(
            describe(&io::Error::from_raw_os_error(99999)).to_string(),
            "(99999: Unknown error 99999)"
        );
    }
}
