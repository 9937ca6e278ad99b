//! The outgoing-content secret scanner (SPEC §7): everything `handoff send` is about to hand to a channel —
//! the text, a document, the title, tags, text files — is scanned before anything is written to the
//! outbox. A hit refuses the send, naming the kind of secret and where it is (never the value);
//! `--allow-secret` overrides knowingly.
//!
//! What it finds: private keys (PEM, OpenSSH, the `\n`-escaped form in GCP service-account JSON), AWS,
//! GCP, GitHub, GitLab, Slack, Twilio, Stripe, npm and PyPI tokens, JWTs, passwords in URLs,
//! `password = ...`-style assignments, high-entropy values in `key = value` lines, and the exact values
//! of every secret handoff itself loaded (the bus password, the Twilio token, rclone passwords).
//! Also OpenAI, Anthropic, Slack app, Hugging Face, SendGrid, DigitalOcean, Databricks, Shopify, Mailgun,
//! Telegram and Discord tokens, `Authorization: Bearer`/`Basic` headers, passwords on `curl -u`, `mysql -p`
//! and `sshpass -p` command lines; known values are matched in any case and URL-encoded. Files are read as
//! UTF-8 or UTF-16 text, `.zip` and `.tar.gz` member by member ([`files`] has the limits); other binary
//! files are skipped. The corpus in `tests/fixtures/secrets/` measures it.

mod files;
pub mod known;
mod rules;

pub use files::{MAX_MEMBERS, MAX_UNPACKED, MAX_UTF16};

/// One secret found: what kind, where. Never holds the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What was found (`"AWS access key id"`, `"the bus password (BUS_PASS)"`, ...).
    pub kind: String,
    /// Where: `"the message text"`, `"--file notes.txt"`, ...
    pub source: String,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}: {}", self.source, self.line, self.kind)
    }
}

/// A secret value handoff loaded, with a label that names it without showing it.
#[derive(Clone)]
pub struct KnownSecret {
    /// The value (never printed).
    pub value: String,
    /// E.g. `"the bus password (BUS_PASS)"`.
    pub label: String,
}

impl std::fmt::Debug for KnownSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnownSecret({}, <redacted>)", self.label)
    }
}

/// What URL encoders leave as it is (RFC 3986's unreserved characters); everything else is encoded.
const URL_UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Values shorter than this are not looked for (a 3-letter password would match ordinary words).
pub const MIN_KNOWN_LEN: usize = 6;

/// The scanner: the built-in detectors plus the secret values this process loaded.
#[derive(Debug, Default, Clone)]
pub struct Scanner {
    known: Vec<KnownSecret>,
    /// For each known value: the forms looked for, lower-cased (the value itself and its percent-encoded
    /// form), so a password is caught in any case and URL-encoded too.
    known_forms: Vec<Vec<String>>,
}

/// The result of scanning a file.
#[derive(Debug, PartialEq, Eq)]
pub enum FileScan {
    /// Text, scanned: the findings (empty = clean).
    Text(Vec<Finding>),
    /// Binary (a NUL byte in its first 8 KiB, and not UTF-16 text or a .zip/.tar.gz archive): not scanned.
    Binary,
}

impl Scanner {
    /// A scanner that also looks for `known` values (shorter than [`MIN_KNOWN_LEN`] ones are ignored).
    pub fn new(known: Vec<KnownSecret>) -> Self {
        let mut known: Vec<KnownSecret> = known.into_iter().filter(|k| k.value.trim().len() >= MIN_KNOWN_LEN).collect();
        known.dedup_by(|a, b| a.value == b.value);
        let known_forms = known
            .iter()
            .map(|k| {
                let encode = |set| percent_encoding::utf8_percent_encode(&k.value, set).to_string().to_lowercase();
                let mut forms =
                    vec![k.value.to_lowercase(), encode(URL_UNRESERVED), encode(percent_encoding::NON_ALPHANUMERIC)];
                forms.dedup();
                forms
            })
            .collect();
        Self { known, known_forms }
    }

    /// Scans text; `source` names it in findings.
    pub fn scan_text(&self, text: &str, source: &str) -> Vec<Finding> {
        let mut state = LineState::default();
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            self.scan_line(line, i + 1, source, &mut state, &mut out);
        }
        out
    }

    fn scan_line(&self, line: &str, n: usize, source: &str, state: &mut LineState, out: &mut Vec<Finding>) {
        // a PEM block whose BEGIN line stands alone: the key material is on the next lines
        if let Some(begin) = state.pem_begin {
            let t = line.trim();
            if t.len() >= 40 && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
                out.push(Finding { kind: "private key".into(), source: source.to_string(), line: begin });
                state.pem_begin = None;
            } else if (t.is_empty() || t.contains(':')) && n - begin <= 4 {
                // Proc-Type / DEK-Info headers before the body
            } else {
                state.pem_begin = None;
            }
        }
        let mut found = |kind: String| {
            if !out.iter().any(|f: &Finding| f.line == n && f.kind == kind && f.source == source) {
                out.push(Finding { kind, source: source.to_string(), line: n });
            }
        };
        if !self.known.is_empty() {
            let lower = line.to_lowercase();
            for (k, forms) in self.known.iter().zip(&self.known_forms) {
                if forms.iter().any(|f| lower.contains(f.as_str())) {
                    found(k.label.clone());
                }
            }
        }
        if PEM_BEGIN.is_match(line) {
            state.pem_begin = Some(n);
        }
        for rule in rules::RULE_SET.matches(line).iter().map(|i| &rules::RULES[i]) {
            if let Some(c) = rule.re().captures_iter(line).find(|c| (rule.check)(c, line)) {
                let _ = c;
                found(rule.kind.to_string());
                if rule.kind == "private key" {
                    state.pem_begin = None;
                }
            }
        }
        for c in rules::ASSIGNMENT.captures_iter(line) {
            let key = &c["key"];
            let quoted = c.name("qval").is_some();
            let val = c.name("qval").or_else(|| c.name("val")).map_or("", |m| m.as_str());
            if rules::is_placeholder(val) {
                continue;
            }
            if rules::secret_key_name(key) {
                let has_non_alpha = val.chars().any(|ch| !ch.is_ascii_alphabetic());
                // prose like "password: rotated weekly" is not an assignment
                let prose = &c["sep"] == ":" && !quoted && val.chars().all(|ch| ch.is_ascii_lowercase());
                if !prose && (val.len() >= 8 || (val.len() >= 4 && has_non_alpha)) && !val.contains("//") {
                    found(format!("a secret assigned to `{}`", safe_key(key)));
                }
            } else if !rules::digest_key_name(key)
                && val.len() >= 20
                && !val.contains(' ')
                && !rules::looks_like_digest(val)
                && val.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-'))
                && !val.contains("//")
                && val.chars().any(|ch| ch.is_ascii_uppercase())
                && val.chars().any(|ch| ch.is_ascii_lowercase())
                && val.chars().any(|ch| ch.is_ascii_digit())
                && rules::entropy(val) >= 4.0
            {
                found(format!("a high-entropy value assigned to `{}`", safe_key(key)));
            }
        }
    }
}

/// Key names are shown in findings; keep them short and printable.
fn safe_key(k: &str) -> String {
    k.chars().filter(|c| c.is_ascii_graphic()).take(40).collect()
}

#[derive(Default)]
struct LineState {
    pem_begin: Option<usize>,
}

/// Compiles the detectors on threads of their own, so that a command which scans before anything else
/// (a send) finds them ready instead of paying for them (a few milliseconds) on its way: the set of rules
/// on one, the rest on another, as they take about as long as each other.
pub fn warm_up() {
    std::thread::spawn(|| std::sync::LazyLock::force(&rules::RULE_SET));
    std::thread::spawn(|| {
        std::sync::LazyLock::force(&rules::ASSIGNMENT);
        std::sync::LazyLock::force(&PEM_BEGIN);
    });
}

static PEM_BEGIN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----\s*$")
        .expect("valid pattern")
});

/// The refusal message: every finding, and the two ways forward.
pub fn refusal(findings: &[Finding]) -> String {
    let mut s = String::from("refusing to send: this looks like it holds a secret\n");
    for f in findings.iter().take(20) {
        s.push_str(&format!("  {f}\n"));
    }
    if findings.len() > 20 {
        s.push_str(&format!("  ... and {} more\n", findings.len() - 20));
    }
    s.push_str("remove the secret (or send a reference to where it is kept), or pass --allow-secret if you really mean to send it");
    s
}

#[cfg(test)]
mod tests;
