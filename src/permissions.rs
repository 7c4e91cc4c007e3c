//! Whether a user may reach a path: search (`x`) on every directory above it, then what
//! is needed on the path itself, decided from modes and owners the way the kernel decides
//! (owner bits, else group bits for the user's groups, else other bits; root may do
//! anything but execute). The decision is pure; `reach` only reads the metadata.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The user the server will run as.
#[derive(Clone, Debug)]
pub struct Who {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as `initgroups` will set them.
    pub groups: Vec<u32>,
}

/// Permission bits, as in a mode: read 4, write 2, search/execute 1.
pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const SEARCH: u32 = 1;

/// Whether `who` has `need` on a file of `mode` owned by `uid`:`gid`.
pub fn may(who: &Who, mode: u32, uid: u32, gid: u32, need: u32) -> bool {
    if who.uid == 0 {
        return true;
    }
    let bits = if uid == who.uid {
        (mode >> 6) & 7
    } else if gid == who.gid || who.groups.contains(&gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    bits & need == need
}

/// Where and why a path is out of reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The path that stops it: `path` itself, or a directory above it.
    pub at: PathBuf,
    pub why: Why,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    Missing,
    /// It exists, but `who` lacks these bits; its mode and owner, as `ls -l` shows them.
    Denied {
        need: u32,
        mode: String,
        owner: String,
    },
}

/// Checks that `who` can search every directory above `path` and has `need` on it.
pub fn reach(path: &Path, who: &Who, need: u32) -> Result<(), Blocked> {
    let parents: Vec<&Path> = path.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()).collect();
    for dir in parents.into_iter().rev() {
        check(dir, who, SEARCH)?;
    }
    check(path, who, need)
}

fn check(path: &Path, who: &Who, need: u32) -> Result<(), Blocked> {
    let meta = std::fs::metadata(path).map_err(|_| Blocked { at: path.to_path_buf(), why: Why::Missing })?;
    if may(who, meta.mode(), meta.uid(), meta.gid(), need) {
        return Ok(());
    }
    Err(Blocked {
        at: path.to_path_buf(),
        why: Why::Denied { need, mode: ls_mode(meta.mode()), owner: owner(meta.uid(), meta.gid()) },
    })
}

/// `srw-------`, `drwxr-x---`: the mode as `ls -l` writes it.
pub fn ls_mode(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o140000 => 's',
        0o120000 => 'l',
        0o040000 => 'd',
        0o010000 => 'p',
        0o020000 => 'c',
        0o060000 => 'b',
        _ => '-',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// `www-data:www-data`, or the numbers when the names are unknown.
pub fn owner(uid: u32, gid: u32) -> String {
    let group =
        nix::unistd::Group::from_gid(gid.into()).ok().flatten().map_or_else(|| gid.to_string(), |g| g.name);
    format!("{}:{group}", user_name(uid))
}

/// A user's name, or the number when it has none.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into()).ok().flatten().map_or_else(|| uid.to_string(), |u| u.name)
}

/// What `need` bits are called in a sentence.
pub fn need_words(need: u32) -> &'static str {
    match need {
        SEARCH => "search (x)",
        READ => "read",
        WRITE => "write",
        n if n == READ | SEARCH => "read and search",
        _ => "access",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: u32, gid: u32, groups: &[u32]) -> Who {
        Who { name: "u".into(), uid, gid, groups: groups.to_vec() }
    }

    #[test]
    fn owner_then_group_then_others() {
        let sock = 0o140600;
        assert!(may(&who(33, 33, &[]), sock, 33, 33, WRITE), "the owner");
        assert!(!may(&who(65534, 65534, &[]), sock, 33, 33, WRITE), "anyone else");
        assert!(may(&who(65534, 65534, &[33]), 0o140660, 33, 33, WRITE), "a supplementary group");
        // the owner's bits decide for the owner, even when others may more
        assert!(!may(&who(33, 33, &[]), 0o100077, 33, 33, READ));
        assert!(may(&who(0, 0, &[]), 0o100000, 33, 33, READ), "root");
    }

    #[test]
    fn modes_as_ls_writes_them() {
        assert_eq!(ls_mode(0o140600), "srw-------");
        assert_eq!(ls_mode(0o040750), "drwxr-x---");
        assert_eq!(ls_mode(0o100644), "-rw-r--r--");
    }

    #[test]
    fn a_directory_above_that_cannot_be_searched_blocks() {
        let nobody = who(65534, 65534, &[]);
        // /root is 0700 root:root on Debian
        let blocked = reach(Path::new("/root/anything"), &nobody, READ);
        if let Ok(meta) = std::fs::metadata("/root") {
            if meta.mode() & 1 == 0 {
                assert_eq!(blocked.unwrap_err().at, PathBuf::from("/root"));
            }
        }
        assert_eq!(reach(Path::new("/no/such/dir"), &nobody, READ).unwrap_err().why, Why::Missing);
        assert!(reach(Path::new("/usr/bin"), &nobody, READ | SEARCH).is_ok());
    }
}
