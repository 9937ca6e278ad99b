//! Encrypting a send: the request the router plans on (text sealed, file sizes as stored), and the job's
//! payloads encrypted into the outbox before anything leaves the machine, so every retry uploads the same
//! ciphertext. The pointer is encrypted when it is built (it names where the payloads are).

use super::keys::{KeyStore, recipients_for, require_identity};
use super::{ENCRYPTED_TAG, seal_file, seal_text, sealed_len};
use crate::config::Settings;
use crate::outbox::{Job, Outbox, Role, SealedItem};
use crate::router::SendRequest;
use age::x25519::Recipient;
use anyhow::Context as _;
use handoff_channels::parcel::FileRef;

/// The neutral title encrypted documents are stored under (the real one travels in the pointer).
pub const SEALED_TITLE: &str = "encrypted handoff";

/// The keys one send is encrypted to.
pub struct Sealing {
    recipients: Vec<Recipient>,
    /// Held-back key changes worth telling the user about.
    pub warnings: Vec<String>,
}

impl Sealing {
    /// The recipients of a send to `to` (its key, every known key for `any`, and this machine's own).
    /// Fails, before anything is sent, when this machine has no key or the recipient's is unknown.
    pub fn prepare(settings: &Settings, to: &str) -> anyhow::Result<Self> {
        let own = require_identity(&settings.dirs.data)?;
        let state = crate::state::State::open(&settings.dirs.data)?;
        let store = KeyStore::new(&state, &settings.machine)?;
        let (recipients, warnings) = recipients_for(&store, &settings.machine, &own, to)?;
        Ok(Self { recipients, warnings })
    }

    /// How many keys it encrypts to.
    pub fn len(&self) -> usize {
        self.recipients.len()
    }

    /// True when there is no key (never: this machine's own is always there).
    pub fn is_empty(&self) -> bool {
        self.recipients.is_empty()
    }

    /// The request as it will travel: the text as an armored age message, files at their encrypted size,
    /// the `encrypted` tag. The router plans on it, so size routing sees what is stored.
    pub fn request(&self, req: &SendRequest) -> anyhow::Result<SendRequest> {
        let mut r = req.clone();
        if let Some(t) = &req.text {
            r.text = Some(seal_text(t, &self.recipients).context("encrypting the message")?);
        }
        for f in &mut r.files {
            f.size = sealed_len(f.size, self.recipients.len());
        }
        if !r.tags.iter().any(|t| t == ENCRYPTED_TAG) {
            r.tags.push(ENCRYPTED_TAG.into());
        }
        Ok(r)
    }

    /// Encrypts the payload files of `job` (built from [`Sealing::request`]) into the outbox's copy of
    /// the job, gives them neutral names, and records what the pointer must say about the plaintext.
    /// `req` is the original (plaintext) request.
    pub fn seal_job(&self, job: &mut Job, req: &SendRequest, outbox: &Outbox) -> anyhow::Result<()> {
        job.sealed_to = Some(self.recipients.iter().map(|r| r.to_string()).collect());
        let dir = outbox.files_dir(&job.id);
        let mut originals = req.files.iter();
        for (i, step) in job.steps.iter_mut().enumerate() {
            match &mut step.role {
                Role::Payload => match step.parcel.file.as_mut() {
                    Some(f) => {
                        let info = originals.next().expect("one payload step per file");
                        crate::config::private_dir(&dir)?;
                        let dest = dir.join(format!("{i}.age"));
                        let sealed = seal_file(&info.path, &dest, &self.recipients)
                            .with_context(|| format!("encrypting {}", info.path.display()))?;
                        if sealed.plain_size != info.size {
                            anyhow::bail!("{} changed size while being read; try again", info.path.display());
                        }
                        step.sealed = Some(SealedItem {
                            name: f.name.clone(),
                            size: sealed.plain_size,
                            sha256: sealed.plain_sha256,
                        });
                        *f = FileRef {
                            path: dest,
                            name: format!("{}.age", &sealed.sha256[..16]),
                            size: sealed.size,
                            sha256: sealed.sha256,
                        };
                    }
                    None => {
                        // a document: its body is the sealed text already
                        let text = req.text.as_deref().unwrap_or_default();
                        let title = step.parcel.title.clone().unwrap_or_else(|| "handoff".into());
                        let name = if title.ends_with(".md") { title } else { format!("{title}.md") };
                        step.sealed = Some(SealedItem {
                            name,
                            size: text.len() as u64,
                            sha256: handoff_channels::hashing::sha256_hex(text.as_bytes()),
                        });
                        step.parcel.title = Some(SEALED_TITLE.into());
                    }
                },
                // the pointer is encrypted as a whole: its note is the plain text
                Role::Pointer { note, .. } => {
                    if note.is_some() {
                        *note = req.text.clone();
                    }
                }
                Role::Page { summary } => {
                    *summary = format!("{SEALED_TITLE} (read it with `handoff sync`)");
                    step.parcel.body = summary.clone();
                }
                Role::Inline => {}
            }
        }
        Ok(())
    }
}
