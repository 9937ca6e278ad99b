//! What a file handed to `send --file` holds, as text for the scanner: UTF-8 text line by line (memory
//! flat), UTF-16 text (a byte-order mark, or the NUL-every-other-byte pattern of UTF-16 ASCII) decoded,
//! and `.zip` / `.tar.gz` archives member by member, each member read the same way.
//!
//! Limits: archive members are scanned up to [`MAX_UNPACKED`] bytes in all and [`MAX_MEMBERS`] members;
//! an archive beyond either is refused as unscannable (a finding; `--allow-secret` sends it anyway). A
//! UTF-16 file or member is decoded up to [`MAX_UTF16`] bytes, refused the same way beyond. Archives
//! inside archives and other binary members are not scanned.

use super::{FileScan, Finding, Scanner};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Bytes of archive members scanned at most (unpacked); a larger archive is refused unless `--allow-secret`.
pub const MAX_UNPACKED: u64 = 256 << 20;
/// Members of one archive scanned at most.
pub const MAX_MEMBERS: usize = 10_000;
/// Largest UTF-16 text decoded for scanning.
pub const MAX_UTF16: u64 = 64 << 20;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Text,
    Utf16 { little_endian: bool },
    Zip,
    Gzip,
    Binary,
}

fn sniff(head: &[u8]) -> Sniffed {
    match head {
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => return Sniffed::Zip,
        [0x1f, 0x8b, ..] => return Sniffed::Gzip,
        [0xff, 0xfe, ..] => return Sniffed::Utf16 { little_endian: true },
        [0xfe, 0xff, ..] => return Sniffed::Utf16 { little_endian: false },
        _ => {}
    }
    let head = &head[..head.len().min(8192)];
    if !head.contains(&0) {
        return Sniffed::Text;
    }
    // UTF-16 without a BOM: mostly ASCII text, so one byte of each pair is NUL and the other is not
    let pairs = head.len() / 2;
    let nul_at =
        |odd: bool| head.chunks_exact(2).filter(|p| p[usize::from(odd)] == 0 && p[usize::from(!odd)] != 0).count();
    if pairs >= 2 {
        if nul_at(true) * 10 >= pairs * 9 {
            return Sniffed::Utf16 { little_endian: true };
        }
        if nul_at(false) * 10 >= pairs * 9 {
            return Sniffed::Utf16 { little_endian: false };
        }
    }
    Sniffed::Binary
}

/// A finding for content too large to scan: refused unless the user passes `--allow-secret`.
fn too_large(source: &str, what: String) -> Finding {
    Finding {
        kind: format!("{what}, too large to scan for secrets (pass --allow-secret to send it unscanned)"),
        source: source.to_string(),
        line: 0,
    }
}

/// A reader that counts what passes through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let got = self.inner.read(buf)?;
        self.n += got as u64;
        Ok(got)
    }
}

impl Scanner {
    /// Scans a file: text line by line, UTF-16 decoded, `.zip` and `.tar.gz` member by member; other binary
    /// files are skipped. Invalid UTF-8 is read lossily.
    pub fn scan_file(&self, path: &Path, source: &str) -> std::io::Result<FileScan> {
        let f = std::fs::File::open(path)?;
        let mut r = BufReader::with_capacity(64 * 1024, f);
        let kind = sniff(r.fill_buf()?);
        Ok(match kind {
            Sniffed::Zip => FileScan::Text(self.scan_zip(std::fs::File::open(path)?, source)?),
            Sniffed::Gzip => FileScan::Text(self.scan_tar_gz(r, source)?),
            Sniffed::Binary => FileScan::Binary,
            Sniffed::Text | Sniffed::Utf16 { .. } => FileScan::Text(self.scan_member(r, source, u64::MAX)?.0),
        })
    }

    /// Scans one stream (a file, or an archive member) read up to `budget` bytes: the findings and the
    /// bytes read. Archives and binary data inside are skipped.
    fn scan_member(&self, r: impl Read, source: &str, budget: u64) -> std::io::Result<(Vec<Finding>, u64)> {
        let mut r = BufReader::with_capacity(64 * 1024, Counted { inner: r.take(budget.saturating_add(1)), n: 0 });
        let kind = sniff(r.fill_buf()?);
        let findings = match kind {
            Sniffed::Text => self.scan_lines(&mut r, source)?,
            Sniffed::Utf16 { little_endian } => {
                let mut raw = Vec::new();
                (&mut r).take(MAX_UTF16 + 1).read_to_end(&mut raw)?;
                if raw.len() as u64 > MAX_UTF16 {
                    vec![too_large(source, format!("UTF-16 text over {} MiB", MAX_UTF16 >> 20))]
                } else {
                    let unit = if little_endian { u16::from_le_bytes } else { u16::from_be_bytes };
                    self.scan_text(&decode_utf16(&raw, unit), source)
                }
            }
            Sniffed::Zip | Sniffed::Gzip | Sniffed::Binary => {
                std::io::copy(&mut r, &mut std::io::sink())?;
                Vec::new()
            }
        };
        let read = r.get_ref().n;
        Ok((findings, read))
    }

    /// The line-by-line text scan (lines longer than 1 MiB are scanned in 1 MiB pieces).
    fn scan_lines(&self, r: &mut impl BufRead, source: &str) -> std::io::Result<Vec<Finding>> {
        let mut state = super::LineState::default();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut n = 0;
        loop {
            buf.clear();
            let got = r.take(1 << 20).read_until(b'\n', &mut buf)?;
            if got == 0 {
                break;
            }
            n += 1;
            let line = String::from_utf8_lossy(&buf);
            self.scan_line(line.trim_end_matches(['\n', '\r']), n, source, &mut state, &mut out);
        }
        Ok(out)
    }

    fn scan_zip(&self, f: std::fs::File, source: &str) -> std::io::Result<Vec<Finding>> {
        let bad = |e: zip::result::ZipError| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not a readable zip: {e}"))
        };
        let mut zip = zip::ZipArchive::new(BufReader::new(f)).map_err(bad)?;
        if zip.len() > MAX_MEMBERS {
            return Ok(vec![too_large(source, format!("an archive of {} members (over {MAX_MEMBERS})", zip.len()))]);
        }
        let (mut out, mut left) = (Vec::new(), MAX_UNPACKED);
        for i in 0..zip.len() {
            let member = zip.by_index(i).map_err(bad)?;
            if !member.is_file() {
                continue;
            }
            let name = format!(
                "{source} (member {})",
                handoff_channels::untrusted::inline(&member.name().map(|n| n.into_owned()).unwrap_or_default())
            );
            let (found, read) = self.scan_member(member, &name, left)?;
            out.extend(found);
            if read > left {
                out.push(too_large(source, format!("an archive over {} MiB unpacked", MAX_UNPACKED >> 20)));
                break;
            }
            left -= read;
        }
        Ok(out)
    }

    fn scan_tar_gz(&self, r: impl Read, source: &str) -> std::io::Result<Vec<Finding>> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(r));
        let (mut out, mut left, mut members) = (Vec::new(), MAX_UNPACKED, 0usize);
        for entry in tar.entries()? {
            let entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            members += 1;
            if members > MAX_MEMBERS {
                out.push(too_large(source, format!("an archive of over {MAX_MEMBERS} members")));
                break;
            }
            let path = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
            let name = format!("{source} (member {})", handoff_channels::untrusted::inline(&path));
            let (found, read) = self.scan_member(entry, &name, left)?;
            out.extend(found);
            if read > left {
                out.push(too_large(source, format!("an archive over {} MiB unpacked", MAX_UNPACKED >> 20)));
                break;
            }
            left -= read;
        }
        Ok(out)
    }
}

/// UTF-16 bytes (a leading byte-order mark dropped) to text, unpaired surrogates replaced.
fn decode_utf16(raw: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = raw.chunks_exact(2).map(|p| unit([p[0], p[1]]));
    let text: String = char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect();
    text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_tells_text_utf16_archives_and_binary_apart() {
        assert_eq!(sniff(b"plain text\n"), Sniffed::Text);
        assert_eq!(sniff(b"\xff\xfeA\0B\0"), Sniffed::Utf16 { little_endian: true });
        assert_eq!(sniff(b"A\0P\0I\0=\0x\0"), Sniffed::Utf16 { little_endian: true });
        assert_eq!(sniff(b"\0A\0P\0I\0=\0x"), Sniffed::Utf16 { little_endian: false });
        assert_eq!(sniff(b"PK\x03\x04rest"), Sniffed::Zip);
        assert_eq!(sniff(b"\x1f\x8b\x08"), Sniffed::Gzip);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0"), Sniffed::Binary);
        assert_eq!(decode_utf16(b"\xff\xfeh\0i\0", u16::from_le_bytes), "hi");
    }
}
