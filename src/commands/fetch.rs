//! `handoff fetch`: download what a pointer points to, verify sha256, never overwrite or escape.

use super::Session;
use crate::cli::FetchArgs;
use crate::config::Settings;
use crate::exit;
use handoff_channels::Pointer;
use handoff_channels::bus::MessageQuery;
use handoff_channels::names::safe_file_name;
use handoff_channels::untrusted;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One downloaded item.
#[derive(Debug, Serialize)]
pub struct FetchedFile {
    /// Item name.
    pub name: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Size.
    pub size: u64,
    /// Verified sha256.
    pub sha256: String,
}

/// Most items one pointer may name: far more than a send makes, few enough that a crafted pointer cannot
/// make a receiver write the same payload hundreds of times.
pub const MAX_ITEMS: usize = 64;

/// Where a pointer came from, named in every refusal (`message 42 from mac-studio`).
#[derive(Debug, Clone)]
pub struct Origin {
    /// The bus message id, when the pointer came from the bus.
    pub id: Option<String>,
    /// Its sender.
    pub from: Option<String>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.id, &self.from) {
            (Some(id), Some(from)) => write!(f, "message {} from {}", untrusted::inline(id), untrusted::inline(from)),
            (Some(id), None) => write!(f, "message {}", untrusted::inline(id)),
            _ => f.write_str("the pointer given on the command line"),
        }
    }
}

/// Finds the pointer: a pointer body given directly, or a message id looked up locally then on the bus.
pub async fn resolve_pointer(s: &Session, target: &str) -> anyhow::Result<(Pointer, Origin)> {
    let given = Origin { id: None, from: None };
    if let Some(p) = Pointer::from_body(target) {
        return Ok((p, given));
    }
    if let Ok(p) = serde_json::from_str::<Pointer>(target) {
        return Ok((p, given));
    }
    let state = crate::state::State::open(&s.settings.dirs.data)?;
    let msg = match state.find(&s.settings.machine, target)? {
        Some(m) => Some(m),
        None => {
            // the original API has no get-by-id: page through what is addressed to us
            let mut since: Option<String> = None;
            let mut found = None;
            for _ in 0..200 {
                let q = MessageQuery {
                    since: since.clone(),
                    to: Some(s.settings.machine.clone()),
                    limit: Some(500),
                    ..Default::default()
                };
                let page = s.reg.bus.messages(&q).await?;
                if let Some(m) = page.iter().find(|m| m.id.as_str() == target) {
                    found = Some(m.clone());
                    break;
                }
                match page.last() {
                    Some(last) if page.len() == 500 => since = Some(last.id.0.clone()),
                    _ => break,
                }
            }
            found
        }
    };
    let msg = msg.ok_or_else(|| {
        exit::with_code(
            exit::DATA,
            anyhow::anyhow!("no message {} addressed to {} was found", untrusted::inline(target), s.settings.machine),
        )
    })?;
    let origin = Origin { id: Some(msg.id.0.clone()), from: Some(msg.from.clone()) };
    let body = if crate::crypto::is_sealed_text(&msg.body) {
        let id = crate::crypto::keys::require_identity(&s.settings.dirs.data)?;
        crate::crypto::open_text(&msg.body, &id).map_err(|e| {
            exit::with_code(exit::DATA, anyhow::anyhow!("encrypted {origin} could not be decrypted: {e}"))
        })?
    } else {
        msg.body.clone()
    };
    let p = Pointer::from_body(&body).ok_or_else(|| {
        exit::with_code(
            exit::DATA,
            anyhow::anyhow!(
                "{origin} is not a pointer; it says: {}",
                untrusted::inline(&crate::executor::truncate_chars(&body, 200))
            ),
        )
    })?;
    Ok((p, origin))
}

/// Checks what a pointer claims before anything is fetched: at most [`MAX_ITEMS`] items, and sizes whose
/// sum does not overflow. Returns the claimed total in bytes.
pub fn claimed_total(p: &Pointer, origin: &Origin) -> anyhow::Result<u64> {
    if p.items.len() > MAX_ITEMS {
        return Err(exit::with_code(
            exit::DATA,
            anyhow::anyhow!(
                "refused {origin}: its pointer names {} items, more than the {MAX_ITEMS} handoff fetches from one pointer; nothing was fetched",
                p.items.len()
            ),
        ));
    }
    p.items.iter().try_fold(0u64, |sum, i| sum.checked_add(i.size)).ok_or_else(|| {
        exit::with_code(
            exit::DATA,
            anyhow::anyhow!(
                "refused {origin}: the sizes its pointer claims add up to more than 2^64 bytes; nothing was fetched"
            ),
        )
    })
}

/// Downloads every item of a pointer into `out`, verifying each sha256. Each channel checks the item's uri
/// against its own configuration and reads no more than the size the pointer claims; a refusal names the
/// message and its sender and leaves nothing of that item behind.
pub async fn fetch_pointer(
    s: &Session,
    p: &Pointer,
    origin: &Origin,
    out: &Path,
    force: bool,
) -> anyhow::Result<Vec<FetchedFile>> {
    claimed_total(p, origin)?;
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let mut done: Vec<FetchedFile> = Vec::new();
    for item in &p.items {
        let mut name = safe_file_name(&item.name);
        // two items of one send may share a name (a/notes.txt, b/notes.txt): the later gets a suffix
        let mut n = 2;
        while done.iter().any(|f| f.path == out.join(&name)) {
            name = match safe_file_name(&item.name).rsplit_once('.') {
                Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
                _ => format!("{} ({n})", safe_file_name(&item.name)),
            };
            n += 1;
        }
        let shown = untrusted::inline(&item.name);
        let dest = out.join(&name);
        if dest.exists() && !force {
            // the same content already there is what was asked for: success, nothing downloaded
            let want = item.plain.as_ref().map(|p| p.sha256.as_str()).unwrap_or(&item.sha256);
            if let Ok((sha, size)) = handoff_channels::hashing::sha256_file(&dest)
                && sha == want
            {
                done.push(FetchedFile { name: item.name.clone(), path: dest, size, sha256: sha });
                continue;
            }
            return Err(exit::with_code(
                exit::DATA,
                anyhow::anyhow!("{} exists with other content; pass --force to overwrite it", dest.display()),
            ));
        }
        let ch = s.reg.get(&item.channel).map_err(|e| {
            exit::with_code(exit::DATA, anyhow::anyhow!("refused {origin}: item {shown}: {e:#}; nothing was fetched"))
        })?;
        let tmp = out.join(format!(".{name}.handoff-part"));
        let got = match ch.fetch(&item.uri, &tmp, item.size).await {
            Ok(got) => got,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                if e.kind == handoff_channels::ErrorKind::Refused {
                    return Err(exit::with_code(
                        exit::DATA,
                        anyhow::anyhow!("refused {origin}: item {shown}: {e}; nothing was written"),
                    ));
                }
                return Err(e.context(format!("fetching {shown} ({origin})")).into());
            }
        };
        // The channel hashed the bytes as it wrote them: no second read of a (possibly huge) file.
        let (sha, size) = (got.sha256, got.size);
        if sha != item.sha256 || size != item.size {
            let _ = std::fs::remove_file(&tmp);
            let what = if item.plain.is_some() {
                "sha256 mismatch: the stored ciphertext does not match the pointer (tampered with or corrupted)"
            } else {
                "sha256 mismatch: the content does not match the size and sha256 the pointer gives"
            };
            // The hash of what was read is not printed: it says nothing useful and could leak a file's hash.
            return Err(exit::with_code(
                exit::DATA,
                anyhow::anyhow!("{shown} ({origin}): {what}; nothing was written"),
            ));
        }
        if let Some(plain) = &item.plain {
            // The ciphertext's sha256 was checked above (hashed while downloading); age authenticates every
            // chunk, and the plaintext's sha256 (from the encrypted pointer, so a substituted ciphertext is
            // caught too) is hashed while decrypting.
            // Decrypted next to the download, verified, and only then given the final name.
            let id = crate::crypto::keys::require_identity(&s.settings.dirs.data)?;
            let opened = out.join(format!(".{name}.handoff-plain"));
            let result = crate::crypto::open_file(&tmp, &opened, &id);
            let _ = std::fs::remove_file(&tmp);
            let (psha, psize) = result.map_err(|e| {
                let _ = std::fs::remove_file(&opened);
                exit::with_code(
                    exit::DATA,
                    anyhow::anyhow!("{shown} ({origin}): cannot decrypt it: {e}; nothing was written"),
                )
            })?;
            if psha != plain.sha256 || psize != plain.size {
                let _ = std::fs::remove_file(&opened);
                return Err(exit::with_code(
                    exit::DATA,
                    anyhow::anyhow!(
                        "{shown} ({origin}): the decrypted content does not match the pointer; nothing was written"
                    ),
                ));
            }
            std::fs::rename(&opened, &dest)?;
            done.push(FetchedFile { name: item.name.clone(), path: dest, size: psize, sha256: psha });
            continue;
        }
        std::fs::rename(&tmp, &dest)?;
        done.push(FetchedFile { name: item.name.clone(), path: dest, size, sha256: sha });
    }
    Ok(done)
}

/// The one default place for fetched files, shared by `fetch` and `sync --fetch`: the data directory's
/// `inbox/<message id>/` (README "Where fetched files go").
pub fn default_dir(settings: &crate::config::Settings, message_id: &str) -> PathBuf {
    settings.dirs.data.join("inbox").join(safe_file_name(message_id))
}

/// One pointer `sync --fetch` may download.
pub struct Pending<'a> {
    /// Where it came from.
    pub origin: Origin,
    /// The pointer.
    pub pointer: &'a Pointer,
}

/// `sync --fetch`: downloads pointers into `base/<message id>/` while the bytes fetched stay within `cap`
/// (`[route] fetch_max`). Every item is read only up to the size its pointer claims, so the claimed sizes
/// bound the real bytes; the claimed sizes of a pointer are summed with checked arithmetic before any of
/// it is fetched. Returns what was fetched and the exit code (65 when a pointer was refused).
pub async fn fetch_for_sync(
    s: &Session,
    pending: &[Pending<'_>],
    base: &Path,
    cap: u64,
    notes: &mut Vec<String>,
) -> (Vec<FetchedFile>, i32) {
    let (mut fetched, mut spent, mut code) = (Vec::new(), 0u64, exit::OK);
    for Pending { origin, pointer } in pending {
        let id = origin.id.as_deref().unwrap_or("pointer");
        let total = match claimed_total(pointer, origin) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("{e:#}"));
                code = exit::worst(code, exit::code_of(&e));
                continue;
            }
        };
        let left = cap.saturating_sub(spent);
        if total > left {
            notes.push(format!(
                "not fetched: {origin} holds {} (over what is left of [route] fetch_max {}); get it with `handoff fetch {}`",
                handoff_channels::pointer::human_size(total),
                handoff_channels::pointer::human_size(cap),
                untrusted::inline(id)
            ));
            continue;
        }
        let dir = base.join(safe_file_name(id));
        match fetch_pointer(s, pointer, origin, &dir, false).await {
            Ok(f) => {
                spent = f.iter().fold(spent, |sum, x| sum.saturating_add(x.size));
                fetched.extend(f);
            }
            Err(e) => {
                notes.push(format!("fetch {}: {e:#}", untrusted::inline(id)));
                code = exit::worst(code, exit::code_of(&e));
            }
        }
    }
    (fetched, code)
}

/// Runs `handoff fetch`.
pub async fn run(settings: Settings, a: FetchArgs, json: bool) -> anyhow::Result<i32> {
    let s = Session::open(settings)?;
    if let Ok(o) = s.flush_outbox().await {
        super::say_trouble(&o.trouble);
    }
    let (p, origin) = resolve_pointer(&s, &a.target).await?;
    let out = match &a.out {
        Some(o) => o.clone(),
        None => default_dir(&s.settings, origin.id.as_deref().unwrap_or("pointer")),
    };
    let got = fetch_pointer(&s, &p, &origin, &out, a.force).await?;
    if json {
        crate::output::json("fetch", exit::OK, serde_json::json!({ "fetched": got }));
    } else {
        for f in &got {
            crate::outln!(
                "✓ {} ({} bytes, sha256 verified) -> {}",
                untrusted::inline(&f.name),
                f.size,
                f.path.display()
            );
        }
    }
    Ok(exit::OK)
}
