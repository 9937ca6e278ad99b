//! The detectors: one regular expression (plus a few plausibility checks) per kind of secret.

use regex::Regex;
use std::sync::LazyLock;

/// A detector: a kind name and a pattern; `check` rejects lookalikes of a match.
pub(super) struct Rule {
    pub kind: &'static str,
    pub re: Regex,
    pub check: fn(&regex::Captures<'_>, &str) -> bool,
}

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
    let r = |kind, pat: &str, check| Rule { kind, re: Regex::new(pat).expect("valid secret pattern"), check };
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
    ]
});

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
        // a dotted identifier (`cfg.bus.password`) is a reference to a value, not one
        || DOTTED.is_match(v)
}

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
