//! Twilio's request signature (`X-Twilio-Signature`): base64 of HMAC-SHA1, keyed with the account's auth
//! token, over the URL Twilio called followed by every POST parameter's name and value, sorted by name.
//! As Twilio's own validators do, a signature is accepted for the URL with its port removed or with the
//! scheme's default port added, since proxies and Twilio disagree on whether `:443` is written.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The signature Twilio sends for `url` and the POST `params`: parameters sorted by name (then value,
/// duplicates once, as twilio-python does), each name and value appended to the URL, HMAC-SHA1 with
/// `token`, base64.
pub fn compute(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// True when `signature` is Twilio's for `url` (with its port removed, or with the default port added)
/// and `params`. Compared in constant time.
pub fn valid(token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let mut ok = false;
    for candidate in url_variants(url) {
        let expected = compute(token, &candidate, params);
        // evaluate every candidate: the time taken does not depend on which one matched
        ok |= bool::from(expected.as_bytes().ct_eq(signature.as_bytes()));
    }
    ok
}

/// `url` without its port, and `url` with the scheme's default port when it has none (unchanged when it
/// has one), as twilio-python's `remove_port` and `add_port` make them.
fn url_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else { return vec![url.to_string()] };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    // the port is what follows the last ':' after the host (an IPv6 host sits in brackets)
    let host_end = if hostport.starts_with('[') { hostport.find(']').map_or(0, |i| i + 1) } else { 0 };
    let (host, port) = match hostport[host_end..].rfind(':') {
        Some(i) => (&hostport[..host_end + i], Some(&hostport[host_end + i + 1..])),
        None => (hostport, None),
    };
    let build = |port: Option<&str>| match port {
        Some(p) => format!("{scheme}://{userinfo}{host}:{p}{tail}"),
        None => format!("{scheme}://{userinfo}{host}{tail}"),
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => Some("443"),
        "http" => Some("80"),
        _ => None,
    };
    let mut out = vec![build(None), build(port.or(default))];
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published test vectors of twilio-python's RequestValidator (tests/unit/test_request_validator.py),
    // which twilio-node, twilio-java and twilio-ruby share.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn twilio_vector_compute_signature() {
        assert_eq!(compute(TOKEN, URL, &params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    #[test]
    fn twilio_vector_duplicate_parameters_sort_by_value() {
        let p: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(compute(TOKEN, URL, &p), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn twilio_vector_validation() {
        assert!(valid(TOKEN, URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn twilio_vector_removes_port_on_https() {
        let url = URL.replace(".com", ".com:1234");
        assert!(valid(TOKEN, &url, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn twilio_vector_removes_port_on_http() {
        let url = URL.replace(".com", ".com:1234").replace("https", "http");
        assert!(valid(TOKEN, &url, &params(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
    }

    #[test]
    fn twilio_vector_adds_port_on_https() {
        assert!(valid(TOKEN, URL, &params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
    }

    #[test]
    fn twilio_vector_adds_port_on_http() {
        let url = URL.replace("https", "http");
        assert!(valid(TOKEN, &url, &params(), "0ZXoZLH/DfblKGATFgpif+LLRf4="));
    }

    #[test]
    fn forged_or_changed_requests_fail() {
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(!valid("54321", URL, &params(), good), "another token");
        let mut p = params();
        p[1].1 = "9999".into();
        assert!(!valid(TOKEN, URL, &p, good), "a changed parameter");
        let mut p = params();
        p.push(("Body".into(), "extra".into()));
        assert!(!valid(TOKEN, URL, &p, good), "an added parameter");
        assert!(!valid(TOKEN, "https://mycompany.com/other.php?foo=1&bar=2", &params(), good), "another URL");
        assert!(!valid(TOKEN, URL, &params(), ""), "no signature");
        assert!(!valid(TOKEN, URL, &params(), &good[..good.len() - 1]), "a truncated signature");
    }
}
