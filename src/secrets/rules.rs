//! The detectors: one regular expression (plus a few plausibility checks) per kind of secret.

use regex::{Regex, RegexSet};
use std::sync::{LazyLock, OnceLock};

/// A detector: a kind name and a pattern; `check` rejects lookalikes of a match.
pub(super) struct Rule {
    pub kind: &'static str,
    pattern: &'static str,
    /// Compiled on first use: only for a line [`RULE_SET`] says it matches.
    re: OnceLock<Regex>,
    pub check: fn(&regex::Captures<'_>, &str) -> bool,
}

impl Rule {
    /// The rule's compiled pattern.
    pub fn re(&self) -> &Regex {
        self.re.get_or_init(|| Regex::new(self.pattern).expect("valid secret pattern"))
    }
}

/// Every rule's pattern in one set, in [`RULES`]' order: which rules match a line, found in one pass.
/// Compiling the set costs a fraction of compiling each rule, and most text matches none, so a send
/// pays for one compiled set instead of thirty-odd regexes (about 5 ms less per command).
pub(super) static RULE_SET: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(RULES.iter().map(|r| r.pattern)).expect("valid secret patterns"));

fn always(_: &regex::Captures<'_>, _: &str) -> bool {
    true
}

/// Values that documentation uses as stand-ins (AWS's own examples, placeholders).
fn not_an_example(c: &regex::Captures<'_>, _: &str) -> bool {
    let m = c.get(0).map_or("", |m| m.as_str());
    !(m.contains("EXAMPLE")
        || m.contains("example")
        || m.contains("XXXXXXXX")
        || m.contains("xxxxxxxx")
        || m.contains("0000000000"))
}

/// A private key's BEGIN line must be followed by key material (a placeholder `...` is documentation).
fn has_key_material(c: &regex::Captures<'_>, _: &str) -> bool {
    c.name("body").is_some_and(|b| b.as_str().len() >= 40)
}

pub(super) static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let r = |kind, pattern, check| Rule { kind, pattern, re: OnceLock::new(), check };
    vec![
        // one line, including the `\n`-escaped form inside JSON (GCP service-account files)
        r(
            "private key",
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----(?:\\n|\s)*(?:(?:Proc-Type|DEK-Info|Version|Comment)[^\\]*(?:\\n|\s)*)*(?P<body>[A-Za-z0-9+/=]{40,})",
            has_key_material,
        ),
        r("age secret key", r"\bAGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}\b", not_an_example),
        r("AWS access key id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[0-9A-Z]{16}\b", not_an_example),
        r(
            "AWS secret access key",
            r#"(?i)aws.{0,20}(?:secret|private).{0,20}?[=:]\s*["']?[A-Za-z0-9/+]{40}\b"#,
            not_an_example,
        ),
        r("GCP service-account private key", r#""private_key"\s*:\s*"-----BEGIN"#, always),
        r("Google API key", r"\bAIza[0-9A-Za-z_\-]{35}\b", not_an_example),
        r("GitHub token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b", not_an_example),
        r("GitHub fine-grained token", r"\bgithub_pat_[A-Za-z0-9_]{50,}\b", not_an_example),
        r("GitLab token", r"\b(?:glpat|gldt|glrt|glptt)-[A-Za-z0-9_\-]{20,}\b", not_an_example),
        r("Slack token", r"\bxox[abposr]-[0-9A-Za-z\-]{10,}\b", not_an_example),
        r(
            "Slack webhook URL",
            r"hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}",
            not_an_example,
        ),
        r(
            "Discord webhook URL",
            r"(?:discord|discordapp)\.com/api/(?:v\d+/)?webhooks/\d{5,}/[A-Za-z0-9_\-]{30,}",
            not_an_example,
        ),
        r("Twilio API key", r"\bSK[0-9a-f]{32}\b", not_an_example),
        r(
            "Twilio auth token",
            r#"(?i)twilio[a-z_\-]*(?:token|secret)["']?\s*[=:]\s*["']?[0-9a-f]{32}\b"#,
            not_an_example,
        ),
        r("Stripe secret key", r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,}\b", not_an_example),
        r("JSON web token", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}", always),
        r("npm token", r"\bnpm_[A-Za-z0-9]{36}\b", not_an_example),
        r("PyPI token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}", always),
        r("password in a URL", r"\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:(?P<pw>[^\s:/@]{3,})@[^\s/@]+", url_password),
        r("Anthropic API key", r"\bsk-ant-[a-z0-9]{2,12}-[A-Za-z0-9_\-]{32,}", not_an_example),
        r("OpenAI API key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}", openai_key),
        r("Slack app token", r"\bxapp-[0-9]-[A-Za-z0-9\-]{20,}", not_an_example),
        r("Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}\b", mixed_token),
        r("SendGrid API key", r"\bSG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{30,50}", not_an_example),
        r("DigitalOcean token", r"\bdo[opr]_v1_[a-f0-9]{64}\b", not_an_example),
        r("Databricks token", r"\bdapi[a-f0-9]{32}(?:-[0-9]+)?\b", hex_token),
        r("Shopify token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b", hex_token),
        r("Mailgun API key", r"\bkey-[a-f0-9]{32}\b", hex_token),
        r("Telegram bot token", r"\b[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}", not_an_example),
        r("Discord bot token", r"\b[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}", mixed_token),
        r(
            "a bearer token in an Authorization header",
            r"(?i)\bauthorization\s*:\s*bearer\s+(?P<tok>[A-Za-z0-9._~+/\-]{12,}=*)",
            bearer_token,
        ),
        r(
            "credentials in an Authorization: Basic header",
            r"(?i)\bauthorization\s*:\s*basic\s+(?P<b64>[A-Za-z0-9+/]{4,}={0,2})",
            basic_credentials,
        ),
        r(
            "a password on a curl command line",
            r#"\bcurl\b.*?\s(?:-u|--user)(?:\s+|=)["']?[^\s:"']+:(?P<pw>[^\s"']{3,})"#,
            command_password,
        ),
        r(
            "a password on a mysql command line",
            r#"\bmysql(?:dump|admin)?\b.*?\s-p(?P<pw>[^\s"'\-][^\s"']{2,})"#,
            command_password,
        ),
        r(
            "a password on an sshpass command line",
            r#"\bsshpass\b.*?\s-p\s*["']?(?P<pw>[^\s"']{3,})"#,
            command_password,
        ),
    ]
});

/// Upper case, lower case and a digit: a random token, not a word with a prefix.
fn mixed(v: &str) -> bool {
    v.chars().any(|c| c.is_ascii_uppercase())
        && v.chars().any(|c| c.is_ascii_lowercase())
        && v.chars().any(|c| c.is_ascii_digit())
}

fn mixed_token(c: &regex::Captures<'_>, l: &str) -> bool {
    not_an_example(c, l) && mixed(c.get(0).map_or("", |m| m.as_str()))
}

/// OpenAI keys: `sk-` then a random mixed-case token (not `sk-ant-`, which is Anthropic's, nor
/// `sk-learn-style-names`).
fn openai_key(c: &regex::Captures<'_>, l: &str) -> bool {
    let m = c.get(0).map_or("", |m| m.as_str());
    !m.starts_with("sk-ant-") && mixed_token(c, l)
}

/// Hex tokens: digits and letters both (a run of one is a pattern, not a key).
fn hex_token(c: &regex::Captures<'_>, l: &str) -> bool {
    let m = c.get(0).map_or("", |m| m.as_str());
    let tail = m.rsplit(['_', '-']).find(|t| t.len() >= 32).unwrap_or(m);
    let tail = tail.strip_prefix("dapi").unwrap_or(tail);
    not_an_example(c, l) && tail.chars().any(|c| c.is_ascii_digit()) && tail.chars().any(|c| c.is_ascii_alphabetic())
}

fn bearer_token(c: &regex::Captures<'_>, _: &str) -> bool {
    c.name("tok").is_some_and(|t| {
        let t = t.as_str();
        !is_placeholder(t) && t.chars().any(|c| c.is_ascii_digit()) && t.chars().any(|c| c.is_ascii_alphabetic())
    })
}

/// `Authorization: Basic` followed by base64 that decodes to `user:password`.
fn basic_credentials(c: &regex::Captures<'_>, _: &str) -> bool {
    use base64::Engine;
    c.name("b64")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.as_str()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
        .is_some_and(|(u, p)| !u.is_empty() && p.len() >= 3 && !is_placeholder(&p))
}

/// A password given on a command line: not a variable or placeholder.
fn command_password(c: &regex::Captures<'_>, _: &str) -> bool {
    c.name("pw").is_some_and(|p| !is_placeholder(p.as_str().trim_matches(['"', '\''])))
}

fn url_password(c: &regex::Captures<'_>, _: &str) -> bool {
    c.name("pw").is_some_and(|p| !is_placeholder(p.as_str()))
}

/// `NAME = value`, `"name": "value"`, `name: value`, `--name value` style assignments.
pub(super) static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?P<key>[A-Za-z_][A-Za-z0-9_.\-]{0,60})["']?\s*(?P<sep>:=|=|:)\s*(?:(?P<q>["'`])(?P<qval>[^"'`]{1,200})["'`]|(?P<val>[^\s"'`,;)\]}]+))"#).expect("valid pattern")
});

/// Key names that say "this value is a secret".
pub(super) fn secret_key_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let k = k.rsplit(['.', '-']).next().unwrap_or(&k);
    [
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "token",
        "apikey",
        "api_key",
        "access_key",
        "private_key",
        "auth",
        "credential",
        "credentials",
    ]
    .iter()
    .any(|w| {
        k == *w || k.ends_with(&format!("_{w}")) || k.starts_with(&format!("{w}_")) || (w.len() >= 6 && k.contains(w))
    }) && !["_file", "_path", "_url", "_env", "_name", "_len", "_length", "_type", "_id", "_hash", "_var", "_field"]
        .iter()
        .any(|s| k.ends_with(s))
}

/// Key names whose values are identifiers or digests, not secrets.
pub(super) fn digest_key_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "sha",
        "hash",
        "digest",
        "checksum",
        "integrity",
        "commit",
        "rev",
        "uuid",
        "etag",
        "oid",
        "tree",
        "parent",
        "_id",
        "id",
        "version",
        "url",
        "path",
        "file",
        "dir",
        "name",
        "nonce",
        "salt",
        "fingerprint",
        "signature",
        "sig",
        "key_id",
        "kid",
        "h1",
    ]
    .iter()
    .any(|w| k == *w || k.ends_with(w) || k.starts_with(&format!("{w}_")))
}

/// Placeholders and references, not values: `<password>`, `${VAR}`, `$VAR`, `***`, `changeme`, `os.environ[...]`.
pub(super) fn is_placeholder(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    let first = v.chars().next().unwrap_or(' ');
    matches!(first, '$' | '<' | '{' | '%' | '(' | '[' | '*' | '@' | '&' | '!')
        || v.contains('(')
        || v.contains('[')
        // `dop_v1_<your token>`, `sk-ant-...`: a stand-in with its prefix kept
        || v.contains('<')
        || v.ends_with("...")
        || v.contains('…')
        || v.contains("{{")
        // a generic type (`Option<String>`), not a value
        || (v.contains('<') && v.ends_with('>'))
        || v.chars().all(|c| c == v.chars().next().unwrap_or(' '))
        || ["changeme", "change-me", "password", "passw0rd", "secret", "yourpassword", "your_password", "example", "redacted", "placeholder", "none", "null", "true", "false", "undefined", "xxx", "todo", "required", "optional", "str", "string", "int", "bool", "bytes", "any", "self", "env", "environ"]
            .iter()
            .any(|p| l == *p)
        || l.contains("example")
        || l.contains("xxxx")
        || l.starts_with("your")
        || l.starts_with("my_")
        || l.starts_with("process.env")
        || l.starts_with("os.")
        || l.starts_with("env.")
        || l.starts_with("settings.")
        || l.starts_with("config.")
        || l.starts_with("self.")
        // a dotted identifier (`cfg.bus.password`) is a reference to a value, not one; a dotted value
        // whose first part is not a plain lower-case name (`Hunter2.Prod`, `k8Ds9f.Ja72kd9s`) is a value
        || (DOTTED.is_match(v) && v.split('.').next().is_some_and(|first| PLAIN_NAME.is_match(first)))
}

static PLAIN_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z_]+[0-9]?$").expect("valid pattern"));

static DOTTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$").expect("valid pattern"));

/// Shannon entropy in bits per character.
pub(super) fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// True for 32+ hex digits, a UUID or a `sha256:`-style digest: identifiers that look random but are not secret.
pub(super) fn looks_like_digest(v: &str) -> bool {
    let v = v
        .split_once(':')
        .filter(|(a, _)| a.starts_with("sha") || a.starts_with("md5") || a.starts_with("blake"))
        .map_or(v, |(_, b)| b);
    let v = v.split_once('-').filter(|(a, _)| a.starts_with("sha")).map_or(v, |(_, b)| b);
    let hex = v.chars().all(|c| c.is_ascii_hexdigit());
    let uuid = v.len() == 36
        && v.chars().enumerate().all(
            |(i, c)| {
                if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() }
            },
        );
    hex || uuid
}
