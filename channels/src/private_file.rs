//! Whether a file that holds secrets (an env file, rclone.conf) can be read by anyone but its user: the one
//! home of that check on every platform.
//!
//! On Unix it is the mode: no bit for group or others (as ssh requires of keys). On Windows it is the
//! file's access list: every ACE that allows reading (and applies to the file itself, not only to children)
//! must name the current user, LocalSystem or the Administrators group — what a file in the user's profile
//! has by default, and what Windows' OpenSSH accepts for private keys. Deny ACEs are not weighed (they
//! could only narrow access), so a file is judged on what its allow entries grant.

use std::io;
use std::path::Path;

/// Who can read a file, as far as its owner's privacy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Only its user (and, on Windows, the system and administrators) can read it.
    pub private: bool,
    /// What was found, for a message: `mode 600`; on Windows `readable only by you, SYSTEM and
    /// Administrators (its ACL)` or `its ACL lets Everyone, BUILTIN\Users read it`.
    pub detail: String,
}

/// Reads who can read `path` (a missing file is an error).
pub fn access(path: &Path) -> io::Result<Access> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok(Access { private: mode & 0o077 == 0, detail: format!("mode {mode:o}") })
    }
    #[cfg(windows)]
    {
        let others = acl::readers_besides_user(path)?;
        Ok(if others.is_empty() {
            Access { private: true, detail: "readable only by you, SYSTEM and Administrators (its ACL)".into() }
        } else {
            Access { private: false, detail: format!("its ACL lets {} read it", others.join(", ")) }
        })
    }
    #[cfg(not(any(unix, windows)))]
    {
        std::fs::metadata(path)?;
        Ok(Access { private: true, detail: "not checked for who may read it on this platform".into() })
    }
}

/// The command that makes `path` readable by its user only: `chmod 600 …`; on Windows `icacls` removing
/// inherited entries and granting the user alone.
pub fn make_private_command(path: &Path) -> String {
    if cfg!(windows) {
        format!("icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%\":F", path.display())
    } else {
        format!("chmod 600 {}", path.display())
    }
}

#[cfg(windows)]
mod acl {
    use std::ffi::c_void;
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::null_mut;
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
    use windows_sys::Win32::Security::Authorization::{ConvertSidToStringSidW, GetNamedSecurityInfoW, SE_FILE_OBJECT};
    use windows_sys::Win32::Security::{
        ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, DACL_SECURITY_INFORMATION, EqualSid, GetAce, GetTokenInformation,
        INHERIT_ONLY_ACE, IsWellKnownSid, LookupAccountSidW, PSECURITY_DESCRIPTOR, PSID, SID_NAME_USE, TOKEN_QUERY,
        TOKEN_USER, TokenUser, WinBuiltinAdministratorsSid, WinLocalSystemSid,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    /// `ACCESS_ALLOWED_ACE_TYPE`.
    const ALLOWED: u8 = 0;
    /// `FILE_READ_DATA | GENERIC_READ | GENERIC_ALL`: any of them lets the SID read the content.
    const READS: u32 = 0x0000_0001 | 0x8000_0000 | 0x1000_0000;

    /// Frees what the security functions allocated with `LocalAlloc`.
    struct Local(*mut c_void);
    impl Drop for Local {
        fn drop(&mut self) {
            if !self.0.is_null() {
                // SAFETY: the pointer came from GetNamedSecurityInfoW / ConvertSidToStringSidW, which
                // allocate with LocalAlloc, and is freed once.
                unsafe { LocalFree(self.0) };
            }
        }
    }

    /// The names of the accounts and groups, other than this process's user, LocalSystem and
    /// Administrators, that the file's DACL allows to read it.
    pub(super) fn readers_besides_user(path: &Path) -> io::Result<Vec<String>> {
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        let (mut dacl, mut sd): (*mut ACL, PSECURITY_DESCRIPTOR) = (null_mut(), null_mut());
        // SAFETY: `wide` is NUL-terminated; the out-pointers are valid; the descriptor (which holds the
        // DACL) is freed by `_sd` after the last use of `dacl`.
        let err = unsafe {
            GetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                &mut dacl,
                null_mut(),
                &mut sd,
            )
        };
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err as i32));
        }
        let _sd = Local(sd);
        if dacl.is_null() {
            return Ok(vec!["everyone (the file has no access list at all)".into()]);
        }
        let me = current_user()?;
        let mut others = Vec::new();
        // SAFETY: `dacl` points into the descriptor held by `_sd`.
        let count = unsafe { (*dacl).AceCount };
        for i in 0..u32::from(count) {
            let mut ace: *mut c_void = null_mut();
            // SAFETY: `i` is below the ACE count; GetAce points `ace` into the DACL.
            if unsafe { GetAce(dacl, i, &mut ace) } == 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: every ACE starts with an ACE_HEADER; an allowed ACE has the ACCESS_ALLOWED_ACE layout,
            // its SID starting at `SidStart`.
            let header = unsafe { &*(ace as *const ACE_HEADER) };
            if header.AceType != ALLOWED || u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0 {
                continue;
            }
            let allowed = ace as *const ACCESS_ALLOWED_ACE;
            if unsafe { (*allowed).Mask } & READS == 0 {
                continue;
            }
            let sid = unsafe { std::ptr::addr_of!((*allowed).SidStart) } as PSID;
            // SAFETY: both SIDs are valid for the duration of these calls.
            let fine = unsafe {
                EqualSid(sid, me.as_ptr() as PSID) != 0
                    || IsWellKnownSid(sid, WinLocalSystemSid) != 0
                    || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0
            };
            if !fine {
                others.push(name_of(sid));
            }
        }
        Ok(others)
    }

    /// The SID of this process's user, in a buffer that holds the `TOKEN_USER` it points into.
    struct UserSid {
        buf: Vec<u64>,
    }
    impl UserSid {
        fn as_ptr(&self) -> *mut c_void {
            // SAFETY: `buf` holds a TOKEN_USER filled by GetTokenInformation.
            unsafe { (*(self.buf.as_ptr() as *const TOKEN_USER)).User.Sid }
        }
    }

    fn current_user() -> io::Result<UserSid> {
        let mut token: HANDLE = null_mut();
        // SAFETY: GetCurrentProcess returns a pseudo-handle; `token` is closed below.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut needed = 0u32;
        // SAFETY: a size query (null buffer, length 0), then a call with a buffer of that size.
        unsafe { GetTokenInformation(token, TokenUser, null_mut(), 0, &mut needed) };
        let mut buf = vec![0u64; (needed as usize).div_ceil(8).max(1)];
        let ok = unsafe { GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), needed, &mut needed) };
        let err = io::Error::last_os_error();
        // SAFETY: `token` was opened above and is closed once.
        unsafe { CloseHandle(token) };
        if ok == 0 {
            return Err(err);
        }
        Ok(UserSid { buf })
    }

    /// `DOMAIN\name` of a SID, else its `S-1-…` form.
    fn name_of(sid: PSID) -> String {
        let (mut name, mut domain) = ([0u16; 256], [0u16; 256]);
        let (mut n, mut d, mut kind) = (256u32, 256u32, 0 as SID_NAME_USE);
        // SAFETY: buffers and their lengths match; `sid` is valid.
        let found = unsafe {
            LookupAccountSidW(std::ptr::null(), sid, name.as_mut_ptr(), &mut n, domain.as_mut_ptr(), &mut d, &mut kind)
        } != 0;
        if found {
            let (name, domain) =
                (String::from_utf16_lossy(&name[..n as usize]), String::from_utf16_lossy(&domain[..d as usize]));
            return if domain.is_empty() { name } else { format!("{domain}\\{name}") };
        }
        let mut text: *mut u16 = null_mut();
        // SAFETY: ConvertSidToStringSidW allocates `text` (freed by `_text`), NUL-terminated.
        if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
            return "an unknown account".into();
        }
        let _text = Local(text.cast());
        let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
        String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn group_or_other_bits_make_a_file_not_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.env");
        std::fs::write(&p, "A=1").unwrap();
        for (mode, private) in [(0o600, true), (0o400, true), (0o640, false), (0o604, false)] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let a = access(&p).unwrap();
            assert_eq!(a.private, private, "{mode:o}");
            assert_eq!(a.detail, format!("mode {mode:o}"));
        }
        assert!(access(&d.path().join("missing")).is_err());
        assert_eq!(make_private_command(&p), format!("chmod 600 {}", p.display()));
    }
}
