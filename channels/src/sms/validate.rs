//! Checks done before anything reaches Twilio: phone numbers, SIDs, base URL and page length.

use crate::ChannelError;

/// Twilio's limit on a message body, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// Checks an E.164 number (`+` then 8 to 15 digits, no leading zero) and returns it unchanged.
/// `what` names the setting in the error, e.g. `[sms] to`.
pub fn e164(what: &str, number: &str) -> Result<String, ChannelError> {
    let digits = number.strip_prefix('+').unwrap_or("");
    let ok = number.starts_with('+')
        && (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(number.to_string())
    } else {
        Err(ChannelError::permanent(format!(
            "{what}: {number:?} is not an E.164 phone number; write it as + then country code and number, \
             digits only, e.g. \"+15552223333\""
        )))
    }
}

/// Checks a Twilio SID: a two-letter prefix from `prefixes` followed by 32 hex digits.
pub fn sid(what: &str, value: &str, prefixes: &[&str]) -> Result<(), ChannelError> {
    let ok = value.len() == 34
        && prefixes.iter().any(|p| value.starts_with(p))
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(ChannelError::permanent(format!(
            "{what} does not look like a Twilio SID: expected {} followed by 32 hex digits, got {} characters",
            prefixes.join(" or "),
            value.chars().count()
        )))
    }
}

/// Checks the API base URL: https, or plain http only to a loopback host (tests, local proxies), so the
/// credentials never cross a network in the clear. Returns it without a trailing slash.
pub fn base_url(url: &str) -> Result<String, ChannelError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        ChannelError::permanent(format!("[sms] base_url {url:?} is not a URL ({e}); e.g. \"https://api.twilio.com\""))
    })?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"));
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(ChannelError::permanent(format!(
                "[sms] base_url {url:?} must use https (plain http is allowed only for localhost), \
                 so the Twilio credentials are never sent in the clear"
            )));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.query().is_some() {
        return Err(ChannelError::permanent(
            "[sms] base_url must not hold credentials or a query; credentials come from TWILIO_SID / TWILIO_TOKEN",
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Checks a page body: not empty, at most [`MAX_BODY_CHARS`] characters (counted as Twilio does, in UTF-16
/// units, so an emoji counts twice).
pub fn body(text: &str) -> Result<(), ChannelError> {
    if text.trim().is_empty() {
        return Err(ChannelError::permanent("an SMS page needs some text; it is empty"));
    }
    let n = text.encode_utf16().count();
    if n > MAX_BODY_CHARS {
        return Err(ChannelError::permanent(format!(
            "an SMS page is {n} characters, over Twilio's limit of {MAX_BODY_CHARS}; keep pages to one line and \
             put the details in a bus message (handoff send --urgent does this)"
        )));
    }
    Ok(())
}

/// A number shortened for display: country code and last four digits (`+1…3333`).
pub fn mask(number: &str) -> String {
    let n = number.len();
    if n <= 7 { number.to_string() } else { format!("{}…{}", &number[..2], &number[n - 4..]) }
}

/// A SID shortened for display: prefix and last four characters (`AC…a1b2`).
pub fn mask_sid(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "…".into();
    }
    format!("{}…{}", chars[..2].iter().collect::<String>(), chars[chars.len() - 4..].iter().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_real_numbers_and_rejects_the_rest() {
        for good in ["+15552223333", "+447700900123", "+4912345678"] {
            assert_eq!(e164("to", good).unwrap(), good);
        }
        for bad in [
            "15552223333",
            "+1 555 222 3333",
            "+1-555-222-3333",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "",
            "+",
        ] {
            let e = e164("[sms] to", bad).unwrap_err();
            assert!(e.message.contains("[sms] to") && e.message.contains("E.164"), "{bad}: {e}");
        }
    }

    #[test]
    fn sids_need_prefix_and_32_hex_digits() {
        let ac = format!("AC{}", "0123456789abcdef".repeat(2));
        sid("account", &ac, &["AC"]).unwrap();
        sid("key", &ac.replacen("AC", "SK", 1), &["AC", "SK"]).unwrap();
        assert!(sid("account", &ac.replacen("AC", "SK", 1), &["AC"]).is_err());
        assert!(sid("account", &format!("{ac}0"), &["AC"]).is_err());
        assert!(sid("account", &ac.replace('a', "g"), &["AC"]).is_err());
        let e = sid("TWILIO_SID", "ACsecretish", &["AC"]).unwrap_err();
        assert!(!e.message.contains("ACsecretish"), "a malformed SID is not echoed: {e}");
    }

    #[test]
    fn base_url_must_be_https_except_loopback() {
        assert_eq!(base_url("https://api.twilio.com/").unwrap(), "https://api.twilio.com");
        assert_eq!(base_url("http://127.0.0.1:4010").unwrap(), "http://127.0.0.1:4010");
        assert!(base_url("http://api.twilio.com").unwrap_err().message.contains("https"));
        assert!(base_url("https://u:p@api.twilio.com").is_err());
        assert!(base_url("api.twilio.com").is_err());
    }

    #[test]
    fn body_limit_counts_utf16_units() {
        body(&"a".repeat(1600)).unwrap();
        assert!(body(&"a".repeat(1601)).unwrap_err().message.contains("1601"));
        assert!(body(&"😀".repeat(801)).is_err(), "emoji count as two units");
        assert!(body("  ").is_err());
    }

    #[test]
    fn masks_keep_little() {
        assert_eq!(mask("+15552223333"), "+1…3333");
        assert_eq!(mask_sid(&format!("AC{}", "0".repeat(28) + "a1b2")), "AC…a1b2");
    }
}
