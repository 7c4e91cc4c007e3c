//! Classic deployment traps read from the files around the configuration: a systemd unit
//! with `PrivateTmp=` (Portico and uWSGI then see different `/tmp`s, and a socket there
//! is missing for one of them), and uWSGI's `buffer-size` smaller than the
//! `uwsgi_buffer_size` Portico assumes (uWSGI drops a bigger request; a visitor sees 502).

use std::path::Path;

/// Units looked at when none is given.
pub const USUAL_UNITS: [&str; 2] =
    ["/etc/systemd/system/portico.service", "/lib/systemd/system/portico.service"];

/// Whether the unit's `[Service]` sets `PrivateTmp=` on.
pub fn private_tmp(unit: &str) -> bool {
    let mut in_service = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if let Some(v) = line.strip_prefix("PrivateTmp=").filter(|_| in_service) {
            return matches!(v.trim().to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1");
        }
    }
    false
}

/// What a uWSGI ini says: its `socket` and `buffer-size` (uWSGI's default 4096).
#[derive(Debug, PartialEq, Eq)]
pub struct UwsgiIni {
    pub socket: Option<String>,
    pub buffer_size: usize,
}

/// Reads the `[uwsgi]` section of an ini (`key = value`, `buffer-size`/`buffer_size`/`b`).
pub fn uwsgi_ini(text: &str) -> UwsgiIni {
    let mut ini = UwsgiIni { socket: None, buffer_size: 4096 };
    let mut in_uwsgi = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_uwsgi = line == "[uwsgi]";
            continue;
        }
        if !in_uwsgi || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (key.trim().replace('_', "-"), value.trim());
        match key.as_str() {
            "socket" | "uwsgi-socket" => ini.socket = Some(value.to_string()),
            "buffer-size" | "b" => ini.buffer_size = value.parse().unwrap_or(ini.buffer_size),
            _ => {}
        }
    }
    ini
}

/// Reads a file for a trap check; a missing one is no finding.
pub fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_tmp_in_the_service_section() {
        assert!(private_tmp(
            "[Unit]\nDescription=x\n[Service]\nExecStart=/usr/sbin/portico run\nPrivateTmp=true\n"
        ));
        assert!(!private_tmp("[Service]\nPrivateTmp=no\n"));
        assert!(!private_tmp("[Install]\nPrivateTmp=yes\n"));
    }

    #[test]
    fn the_seeds_ini() {
        let ini = uwsgi_ini("[uwsgi]\nbase = /srv\nsocket = /tmp/flaskbb.sock\nchmod-socket = 600\n");
        assert_eq!(ini, UwsgiIni { socket: Some("/tmp/flaskbb.sock".into()), buffer_size: 4096 });
        assert_eq!(uwsgi_ini("[uwsgi]\nbuffer-size = 32768\n").buffer_size, 32768);
        assert_eq!(uwsgi_ini("[uwsgi]\nbuffer_size=8192\n").buffer_size, 8192);
    }
}
