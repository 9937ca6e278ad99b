//! A `local` remote (or an alias of a local path) is a directory on this machine, often on a disk or a
//! share that comes and goes: a USB disk, a NAS under `/Volumes` or `/media`. The drive channel creates
//! its configured folder on first send, as it does on every remote, but never the directory that holds
//! it: when that is missing, the disk is not mounted, and creating it would quietly fill the local disk
//! with payloads the other machines never see. That is an outage (transient: the send queues and a later
//! flush delivers), as it is for the `folder` channel.

use super::services::OpendalPlan;
use crate::ChannelError;
use std::path::{Path, PathBuf};

/// The configured folder's path on this machine when `plan` (the plan for the folder itself) goes to
/// opendal's `fs` service, else `None` (a remote elsewhere).
pub fn folder_on_this_machine(plan: &OpendalPlan) -> Option<PathBuf> {
    if plan.scheme != "fs" {
        return None;
    }
    Some(Path::new(plan.options.get("root").unwrap_or("/")).join(&plan.path))
}

/// Ok when the directory holding `folder` is there; a transient error naming it otherwise.
pub fn check_mounted(remote: &str, folder: &Path) -> Result<(), ChannelError> {
    let Some(parent) = folder.parent().filter(|p| !p.as_os_str().is_empty()) else { return Ok(()) };
    if parent.is_dir() {
        return Ok(());
    }
    Err(ChannelError::transient(format!(
        "{} is not there, so the [drive] folder {} of local remote {remote} cannot be reached (is its disk \
         mounted?); handoff creates the folder but never the directory holding it: mount the disk, or create {} \
         if the folder is meant to live there",
        parent.display(),
        folder.display(),
        parent.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::services::Options;

    fn fs_plan(path: &str) -> OpendalPlan {
        OpendalPlan {
            scheme: "fs",
            options: Options(vec![("root".into(), "/".into())]),
            path: path.into(),
            one_shot: false,
        }
    }

    #[test]
    fn only_fs_plans_are_on_this_machine() {
        assert_eq!(folder_on_this_machine(&fs_plan("data/x/h")), Some(PathBuf::from("/data/x/h")));
        let s3 = OpendalPlan { scheme: "s3", ..fs_plan("h") };
        assert_eq!(folder_on_this_machine(&s3), None);
    }

    #[test]
    fn a_missing_parent_is_an_outage_and_nothing_is_created() {
        let d = tempfile::tempdir().unwrap();
        check_mounted("usb", &d.path().join("handoffs")).unwrap();
        let gone = d.path().join("unmounted-disk");
        let e = check_mounted("usb", &gone.join("handoffs")).unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.message.contains("mounted") && e.message.contains(&gone.display().to_string()), "{e}");
        assert!(!gone.exists());
        // a file where the directory should be is no mounted disk either
        std::fs::write(&gone, b"").unwrap();
        assert!(check_mounted("usb", &gone.join("handoffs")).unwrap_err().is_transient());
        // the root and a bare relative name have nothing to check
        check_mounted("usb", Path::new("/")).unwrap();
        check_mounted("usb", Path::new("handoffs")).unwrap();
    }
}
