//! End-to-end encryption with [age](https://age-encryption.org) X25519 keys: bus bodies and documents as
//! ASCII-armored age messages, payload files as binary age files (streamed, so memory stays flat).
//!
//! Every ciphertext is also encrypted to the sender's own key, so the sender can read what it sent.
//! age authenticates every 64 KiB chunk: a flipped byte anywhere fails decryption, never yields text.

pub mod keys;
pub mod seal;

use age::x25519::{Identity, Recipient};
use handoff_channels::hashing::Hashing;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

/// The tag every encrypted bus message carries (its body is an armored age message).
pub const ENCRYPTED_TAG: &str = "encrypted";
/// The first line of an ASCII-armored age message.
pub const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// Why something could not be decrypted, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not encrypted to any key this machine holds.
    #[error(
        "it is not encrypted to this machine's key (the sender did not have this machine's public key, or this machine's identity changed): ask the sender to `handoff sync` and send again"
    )]
    NotForUs,
    /// The ciphertext was altered or cut short.
    #[error("the ciphertext is damaged or was tampered with (authentication failed); it was rejected")]
    Tampered,
    /// Not an age message at all.
    #[error("it is not a valid age message ({0})")]
    Invalid(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn open_error(e: age::DecryptError) -> OpenError {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys => OpenError::NotForUs,
        D::DecryptionFailed | D::InvalidMac | D::KeyDecryptionFailed => OpenError::Tampered,
        D::InvalidHeader => OpenError::Invalid("invalid header".into()),
        D::UnknownFormat => OpenError::Invalid("unknown age format".into()),
        D::Io(e) => io_error(e),
        other => OpenError::Invalid(other.to_string()),
    }
}

/// age reports a failed chunk authentication (or a truncated stream) as an I/O error while reading.
fn io_error(e: std::io::Error) -> OpenError {
    match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => OpenError::Tampered,
        _ => OpenError::Io(e),
    }
}

/// Parses a public key (`age1...`).
pub fn parse_recipient(s: &str) -> Result<Recipient, String> {
    Recipient::from_str(s.trim()).map_err(|e| format!("`{}` is not an age X25519 public key ({e})", s.trim()))
}

fn encryptor(recipients: &[Recipient]) -> std::io::Result<age::Encryptor> {
    age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| std::io::Error::other(format!("cannot encrypt: {e}")))
}

/// Encrypts text to `recipients` as an ASCII-armored age message.
pub fn seal_text(text: &str, recipients: &[Recipient]) -> std::io::Result<String> {
    use age::armor::{ArmoredWriter, Format};
    let mut out = Vec::with_capacity(text.len() * 4 / 3 + 512);
    let armored = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)?;
    let mut w = encryptor(recipients)?.wrap_output(armored)?;
    w.write_all(text.as_bytes())?;
    w.finish()?.finish()?;
    Ok(String::from_utf8(out).expect("armor is ASCII"))
}

/// [`seal_text`] to keys given as `age1...` strings (as a queued job stores them).
pub fn seal_with_keys(text: &str, keys: &[String]) -> Result<String, String> {
    let recipients = keys.iter().map(|k| parse_recipient(k)).collect::<Result<Vec<_>, _>>()?;
    seal_text(text, &recipients).map_err(|e| format!("encrypting: {e}"))
}

/// True when `body` is an armored age message.
pub fn is_sealed_text(body: &str) -> bool {
    body.trim_start().starts_with(ARMOR_BEGIN)
}

/// Decrypts an armored (or binary) age message held in memory into text.
pub fn open_text(body: &str, identity: &Identity) -> Result<String, OpenError> {
    let mut out = Vec::new();
    open_stream(body.trim_start().as_bytes(), &mut out, identity)?;
    String::from_utf8(out).map_err(|_| OpenError::Invalid("the decrypted message is not UTF-8 text".into()))
}

/// Decrypts `input` (armored or binary age) into `output`, streaming.
pub fn open_stream(input: impl Read, output: &mut impl Write, identity: &Identity) -> Result<u64, OpenError> {
    let reader = age::armor::ArmoredReader::new(BufReader::new(input));
    let dec = age::Decryptor::new(reader).map_err(open_error)?;
    let mut plain = dec.decrypt(std::iter::once(identity as &dyn age::Identity)).map_err(open_error)?;
    std::io::copy(&mut plain, output).map_err(io_error)
}

/// What [`seal_file`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFile {
    /// Plaintext sha256 (hex), hashed while it was read.
    pub plain_sha256: String,
    /// Plaintext size.
    pub plain_size: u64,
    /// Ciphertext sha256 (hex), hashed while it was written.
    pub sha256: String,
    /// Ciphertext size.
    pub size: u64,
}

/// Encrypts the file at `src` into a new file at `dest` (binary age, mode 0600), streaming, hashing the
/// plaintext as it is read and the ciphertext as it is written.
pub fn seal_file(src: &Path, dest: &Path, recipients: &[Recipient]) -> std::io::Result<SealedFile> {
    let mut input = Hashing::new(BufReader::with_capacity(1 << 20, std::fs::File::open(src)?));
    let mut opts = std::fs::File::options();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let out = Hashing::new(std::io::BufWriter::with_capacity(1 << 20, opts.open(dest)?));
    let mut w = encryptor(recipients)?.wrap_output(out)?;
    std::io::copy(&mut input, &mut w)?;
    let (out, size, sha256) = w.finish()?.finish()?;
    let f = out.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    let (_, plain_size, plain_sha256) = input.finish()?;
    Ok(SealedFile { plain_sha256, plain_size, sha256, size })
}

/// Decrypts the age file at `src` into `dest` (created new, 0600 until renamed by the caller), hashing the
/// plaintext as it is written; returns its (sha256 hex, size). On failure `dest` is removed, so no partial
/// plaintext is left behind.
pub fn open_file(src: &Path, dest: &Path, identity: &Identity) -> Result<(String, u64), OpenError> {
    let result = (|| {
        let input = std::fs::File::open(src)?;
        let mut opts = std::fs::File::options();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut out = Hashing::new(std::io::BufWriter::with_capacity(1 << 20, opts.open(dest)?));
        open_stream(input, &mut out, identity)?;
        let (w, n, sha) = out.finish()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok((sha, n))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

/// Room for the random "grease" stanza age adds to a header (a first line of at most 55 bytes and a
/// body of at most 99 bytes, base64 in 64-column lines: at most 190 bytes).
pub const GREASE_MAX: u64 = 192;

/// Size of the binary age file [`seal_file`] makes from `plain` bytes for `recipients` X25519 keys, at
/// most [`GREASE_MAX`] bytes over the real one (age's header has a random-sized stanza), so the router
/// routes on the size that is actually stored.
pub fn sealed_len(plain: u64, recipients: usize) -> u64 {
    const CHUNK: u64 = 64 * 1024;
    // "age-encryption.org/v1\n", one "-> X25519 <32 B>\n<32 B>\n" stanza per recipient, grease, "--- <MAC>\n"
    let header = 22 + 98 * recipients as u64 + GREASE_MAX + 48;
    let chunks = if plain == 0 { 1 } else { plain.div_ceil(CHUNK) };
    header + 16 + plain + 16 * chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Identity, Recipient) {
        let id = Identity::generate();
        let r = id.to_public();
        (id, r)
    }

    #[test]
    fn text_round_trips_and_a_flipped_byte_is_rejected() {
        let (a, ra) = pair();
        let (b, rb) = pair();
        let sealed = seal_text("the plan: ship it", &[rb.clone(), ra.clone()]).unwrap();
        assert!(is_sealed_text(&sealed), "{sealed}");
        assert!(!sealed.contains("ship it"));
        assert_eq!(open_text(&sealed, &b).unwrap(), "the plan: ship it");
        assert_eq!(open_text(&sealed, &a).unwrap(), "the plan: ship it", "the sender reads its own message");
        let (c, _) = pair();
        assert!(matches!(open_text(&sealed, &c), Err(OpenError::NotForUs)));
        // flip one base64 character in the payload part (the line before the END marker)
        let mut lines: Vec<String> = sealed.lines().map(String::from).collect();
        let n = lines.len() - 2;
        let mut chars: Vec<char> = lines[n].chars().collect();
        chars[2] = if chars[2] == 'A' { 'B' } else { 'A' };
        lines[n] = chars.into_iter().collect();
        let tampered = lines.join("\n");
        assert!(matches!(open_text(&tampered, &b), Err(OpenError::Tampered | OpenError::Invalid(_))));
        assert!(open_text("hello", &b).is_err());
    }

    #[test]
    fn files_round_trip_with_the_predicted_size_and_tampering_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (b, rb) = pair();
        let (_, ra) = pair();
        for (len, recips) in [(0usize, 1usize), (1, 2), (65_536, 2), (65_537, 1), (200_000, 3)] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let src = d.path().join("p");
            std::fs::write(&src, &plain).unwrap();
            let rs: Vec<Recipient> = [rb.clone(), ra.clone(), pair().1].into_iter().take(recips).collect();
            let enc = d.path().join("p.age");
            let sealed = seal_file(&src, &enc, &rs).unwrap();
            let bound = sealed_len(len as u64, recips);
            assert!(sealed.size <= bound && bound - sealed.size <= GREASE_MAX, "len {len}, {recips} recipients");
            assert_eq!((sealed.sha256, sealed.size), handoff_channels::hashing::sha256_file(&enc).unwrap());
            assert_eq!(
                (sealed.plain_sha256, sealed.plain_size),
                (handoff_channels::hashing::sha256_hex(&plain), len as u64)
            );
            let out = d.path().join("out");
            assert_eq!(open_file(&enc, &out, &b).unwrap(), (handoff_channels::hashing::sha256_hex(&plain), len as u64));
            assert_eq!(std::fs::read(&out).unwrap(), plain);
        }
        let enc = d.path().join("p.age");
        let mut bytes = std::fs::read(&enc).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 1;
        std::fs::write(&enc, &bytes).unwrap();
        let out = d.path().join("out2");
        assert!(matches!(open_file(&enc, &out, &b), Err(OpenError::Tampered)));
        assert!(!out.exists(), "no partial plaintext is left");
    }
}
