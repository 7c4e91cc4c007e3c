//! Who serves. Started as root, Portico binds its listeners and opens its logs as root,
//! then becomes the configured `user` and `group` — with the user's supplementary groups,
//! as nginx's workers — before it accepts a connection, on every thread (glibc's setuid
//! applies to the whole process). Root without `user` is refused: an explicit
//! `user = "root"` is the only way to serve as root.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};

use crate::log::writer::Target;

/// The user and group to become.
#[derive(Clone, Debug)]
pub(super) struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// What start-up does about privileges.
pub(super) enum Plan {
    /// Serve as the process already is (not root, or `user = "root"`).
    Stay,
    /// Bind and open as root, then become this identity.
    Become(Identity),
}

/// Decides from the configured `user`/`group` and who started the process; the warning,
/// if any, is for stderr.
pub(super) fn plan(
    user: Option<&str>,
    group: Option<&str>,
    file: &str,
) -> Result<(Plan, Option<String>), String> {
    if !Uid::effective().is_root() {
        // already that user (a unit's User=, with CAP_NET_BIND_SERVICE): nothing to say
        let me = User::from_uid(Uid::effective()).ok().flatten().map(|u| u.name);
        let warning = user.filter(|u| me.as_deref() != Some(*u)).map(|u| {
            format!(
                "`user = \"{u}\"` takes effect only when Portico is started as root; serving as uid {}",
                Uid::effective()
            )
        });
        return Ok((Plan::Stay, warning));
    }
    let Some(name) = user else {
        return Err(format!(
            "started as root without `user`: Portico does not serve as root by accident. Write \
             user = \"www-data\" at the top of {file} (the workers' user, as nginx's `user`), or \
             user = \"root\" to serve as root anyway"
        ));
    };
    if name == "root" && group.is_none_or(|g| g == "root") {
        return Ok((
            Plan::Stay,
            Some("serving as root (`user = \"root\"`): a compromised worker owns the machine".into()),
        ));
    }
    let found = User::from_name(name).map_err(|e| format!("cannot look up user `{name}`: {e}"))?;
    let Some(u) = found else {
        return Err(format!(
            "user `{name}` does not exist on this machine; create it (adduser --system {name}) or set `user`"
        ));
    };
    let gid = match group {
        None => u.gid,
        Some(g) => match Group::from_name(g).map_err(|e| format!("cannot look up group `{g}`: {e}"))? {
            Some(grp) => grp.gid,
            None => {
                return Err(format!(
                    "group `{g}` does not exist on this machine; set `group` or leave it out"
                ))
            }
        },
    };
    Ok((Plan::Become(Identity { name: name.to_string(), uid: u.uid, gid }), None))
}

/// Makes the log files root opened the workers' own, so that reopening them after
/// logrotate (SIGUSR1) keeps working as that user, as nginx does.
pub(super) fn give_logs(targets: &[Target], id: &Identity) -> Result<(), String> {
    for t in targets {
        if let Target::File(path) = t {
            nix::unistd::chown(path, Some(id.uid), Some(id.gid)).map_err(|e| {
                format!("cannot give {} to {}: {}", path.display(), id.name, crate::errno::describe_errno(e))
            })?;
        }
    }
    Ok(())
}

/// Becomes `id`: supplementary groups, group, then user; checks root cannot come back.
pub(super) fn become_user(id: &Identity) -> Result<(), String> {
    let fail = |what: &str, e: nix::Error| {
        format!("cannot {what} for user {}: {}", id.name, crate::errno::describe_errno(e))
    };
    let name =
        CString::new(id.name.as_str()).map_err(|_| format!("user name `{}` has a NUL byte", id.name))?;
    nix::unistd::initgroups(&name, id.gid).map_err(|e| fail("set the supplementary groups", e))?;
    nix::unistd::setgid(id.gid).map_err(|e| fail("set the group", e))?;
    nix::unistd::setuid(id.uid).map_err(|e| fail("set the user", e))?;
    let regained = !id.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok();
    if regained || Uid::effective() != id.uid {
        return Err(format!("still able to act as root after becoming {}: refusing to serve", id.name));
    }
    Ok(())
}
