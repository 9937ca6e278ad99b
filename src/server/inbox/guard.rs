//! The inbox's defences in the browser: a strict Content-Security-Policy and friends on every answer, and
//! cross-site request forgery checks on every form post (the browser re-sends basic-auth credentials to
//! any site that posts to us, so a post must prove it came from our own page: its `Origin` (or, lacking
//! one, `Referer`) is this server, and it carries the form token only our pages hold).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The Content-Security-Policy of every inbox page: only this server's own script and style, no inline
/// code, no framing, forms only to ourselves.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Adds the security headers to every inbox answer.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null`, which we refuse
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    r
}

/// The form token: an HMAC of a fixed label keyed by the server's credentials. Whoever can read our pages
/// (who knows the password) can have it; another site cannot. Stable across restarts and replicas.
pub fn form_token(user: &str, password: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(format!("{user}\0{password}").as_bytes()).expect("any key length");
    mac.update(b"handoff inbox form token v1");
    hex::encode(mac.finalize().into_bytes())
}

/// Why a form post was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Forgery {
    /// Neither `Origin` nor `Referer` says where it came from.
    NoOrigin,
    /// It came from another site.
    OtherOrigin(String),
    /// The form token is missing or wrong.
    BadToken,
}

impl std::fmt::Display for Forgery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Forgery::NoOrigin => f.write_str("refused: the request does not say which page sent it (no Origin)"),
            Forgery::OtherOrigin(o) => {
                write!(
                    f,
                    "refused: a form from another site ({}) may not post here",
                    handoff_channels::untrusted::inline(o)
                )
            }
            Forgery::BadToken => f.write_str("refused: the form token is missing or out of date; reload the page"),
        }
    }
}

/// `scheme://host[:port]` of a URL, lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let o = u.origin();
    o.is_tuple().then(|| o.ascii_serialization().to_ascii_lowercase())
}

/// Checks a form post: it comes from `public_url`'s origin or from the host it was sent to (`Host`), and
/// carries `token`.
pub fn check_post(headers: &HeaderMap, public_url: Option<&str>, token: &str, given: &str) -> Result<(), Forgery> {
    let value = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    let from = match (value(header::ORIGIN), value(header::REFERER)) {
        (Some(o), _) if o != "null" => origin_of(o).ok_or_else(|| Forgery::OtherOrigin(o.to_string()))?,
        (Some(o), _) => return Err(Forgery::OtherOrigin(o.to_string())),
        (None, Some(r)) => origin_of(r).ok_or_else(|| Forgery::OtherOrigin(r.to_string()))?,
        (None, None) => return Err(Forgery::NoOrigin),
    };
    let host = value(header::HOST).map(str::to_ascii_lowercase);
    let ours = public_url.and_then(origin_of).is_some_and(|p| p == from)
        || host.is_some_and(|h| from == format!("http://{h}") || from == format!("https://{h}"));
    if !ours {
        return Err(Forgery::OtherOrigin(from));
    }
    if !bool::from(token.as_bytes().ct_eq(given.as_bytes())) {
        return Err(Forgery::BadToken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn posts_from_our_own_pages_pass_and_everything_else_is_refused() {
        let t = form_token("claude", "pw");
        assert_eq!(t, form_token("claude", "pw"));
        assert_ne!(t, form_token("claude", "other"));
        let ours = headers(&[("host", "127.0.0.1:8765"), ("origin", "http://127.0.0.1:8765")]);
        assert_eq!(check_post(&ours, None, &t, &t), Ok(()));
        assert_eq!(check_post(&ours, None, &t, "nope"), Err(Forgery::BadToken));
        assert_eq!(check_post(&ours, None, &t, ""), Err(Forgery::BadToken));
        let evil = headers(&[("host", "127.0.0.1:8765"), ("origin", "http://127.0.0.1:9999")]);
        assert!(matches!(check_post(&evil, None, &t, &t), Err(Forgery::OtherOrigin(_))));
        let null = headers(&[("host", "127.0.0.1:8765"), ("origin", "null")]);
        assert!(matches!(check_post(&null, None, &t, &t), Err(Forgery::OtherOrigin(_))));
        let none = headers(&[("host", "127.0.0.1:8765")]);
        assert_eq!(check_post(&none, None, &t, &t), Err(Forgery::NoOrigin));
        let referer = headers(&[("host", "127.0.0.1:8765"), ("referer", "http://127.0.0.1:8765/inbox/t/3")]);
        assert_eq!(check_post(&referer, None, &t, &t), Ok(()));
        // behind nginx: the public URL's origin is ours, the Host nginx forwards may differ
        let proxied = headers(&[("host", "127.0.0.1:8765"), ("origin", "https://bus.example.com")]);
        assert_eq!(check_post(&proxied, Some("https://bus.example.com/"), &t, &t), Ok(()));
        assert!(check_post(&proxied, None, &t, &t).is_err());
    }
}
