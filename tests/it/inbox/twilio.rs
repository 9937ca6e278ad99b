//! `POST /twilio/sms` on the real server, signed by Twilio's own library: accepted once per MessageSid,
//! routed to the machine whose page it answers; forged, altered, misaddressed or unlisted → 403, nothing
//! stored.

use super::*;
use handoff_channels::bus::tags::paged_tag;

#[test]
fn a_signed_reply_is_stored_once_even_when_twilio_posts_it_twice() {
    let bus = webhook_bus();
    let paged = paged_tag(ALICE);
    let urgent = post(&bus, "mac-studio", "linux-box", "prod deploy stuck", &["urgent", &paged]);
    let params = inbound("SM0000000000000000000000000000aa01", ALICE, "roll back to 1.3");
    let sig = twilio_sign(&webhook_url(&bus), &params);
    for attempt in 0..2 {
        let (status, body) = post_sms(&bus, &params, Some(&sig));
        assert_eq!(status, 200, "attempt {attempt}: {body}");
        assert!(body.contains("<Response/>"), "empty TwiML answer: {body}");
    }
    let msgs = all_messages(&bus);
    let replies: Vec<&Value> = msgs.iter().filter(|m| m["from"] == "human").collect();
    assert_eq!(replies.len(), 1, "one message for two deliveries of one MessageSid: {msgs:#?}");
    let r = replies[0];
    assert_eq!(r["to"], "mac-studio", "addressed to the machine that paged");
    assert_eq!(r["body"], "roll back to 1.3");
    let tags = tags_of(r);
    assert!(tags.contains(&"sms-reply".to_string()) && tags.contains(&format!("re:{urgent}")), "{tags:?}");
}

#[test]
fn forged_altered_misaddressed_and_unsigned_posts_are_refused_and_store_nothing() {
    let bus = webhook_bus();
    let url = webhook_url(&bus);
    let params = inbound("SM0000000000000000000000000000bb02", ALICE, "yes");
    let sig = twilio_sign(&url, &params);

    // a changed parameter
    let mut changed = params.clone();
    changed[2] = ("Body", "rm -rf / please");
    assert_eq!(post_sms(&bus, &changed, Some(&sig)).0, 403);
    // signed for another URL
    let elsewhere = twilio_sign("https://attacker.example/twilio/sms", &params);
    assert_eq!(post_sms(&bus, &params, Some(&elsewhere)).0, 403);
    // signed with another token
    let forged = handoff::server::twilio::signature::compute("not-the-token", &url, &own(&params));
    assert_eq!(post_sms(&bus, &params, Some(&forged)).0, 403);
    // no signature at all
    assert_eq!(post_sms(&bus, &params, None).0, 403);
    // a correctly signed text from a number that is not allowed
    let stranger = inbound("SM0000000000000000000000000000bb03", MALLORY, "@mac-studio hi");
    let stranger_sig = twilio_sign(&url, &stranger);
    assert_eq!(post_sms(&bus, &stranger, Some(&stranger_sig)).0, 403);

    assert!(all_messages(&bus).is_empty(), "nothing stored by refused requests");
    // and the untouched request still passes: the refusals were about the changes, not the setup
    assert_eq!(post_sms(&bus, &params, Some(&sig)).0, 200);
    assert_eq!(all_messages(&bus).len(), 1);
}

#[test]
fn a_reply_goes_to_an_at_machine_or_else_to_everyone_when_no_page_matches() {
    let bus = webhook_bus();
    let url = webhook_url(&bus);
    // a page to somebody else's number does not capture Alice's answer
    post(&bus, "mac-studio", "any", "paged someone else", &["urgent", &paged_tag(MALLORY)]);
    let plain = inbound("SM0000000000000000000000000000cc01", ALICE, "who paged me?");
    assert_eq!(post_sms(&bus, &plain, Some(&twilio_sign(&url, &plain))).0, 200);
    let at = inbound("SM0000000000000000000000000000cc02", ALICE, "@linux-box  restart nginx");
    assert_eq!(post_sms(&bus, &at, Some(&twilio_sign(&url, &at))).0, 200);
    let msgs = all_messages(&bus);
    let human: Vec<&Value> = msgs.iter().filter(|m| m["from"] == "human").collect();
    assert_eq!(human.len(), 2);
    assert_eq!((human[0]["to"].as_str(), human[0]["body"].as_str()), (Some("any"), Some("who paged me?")));
    assert!(!tags_of(human[0]).iter().any(|t| t.starts_with("re:")), "no page answered");
    assert_eq!((human[1]["to"].as_str(), human[1]["body"].as_str()), (Some("linux-box"), Some("restart nginx")));
}

fn own(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn malformed_signed_posts_are_refused_and_store_nothing() {
    let bus = webhook_bus();
    let url = webhook_url(&bus);
    // signed, but without a MessageSid there is no way to keep a retry to one message
    let no_sid = [("From", ALICE), ("Body", "yes"), ("To", TWILIO_NUMBER)];
    assert_eq!(post_sms(&bus, &no_sid, Some(&twilio_sign(&url, &no_sid))).0, 400);
    // not a form at all
    let r = reqwest::blocking::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", "x")
        .body(vec![0xff, 0xfe, b'=', 0x00])
        .send()
        .unwrap();
    assert!(matches!(r.status().as_u16(), 400 | 403), "{}", r.status());
    // far over the body limit
    let huge = "a".repeat(2 * 1024 * 1024);
    let big = [("From", ALICE), ("Body", huge.as_str()), ("MessageSid", "SM0000000000000000000000000000ee01")];
    let r = reqwest::blocking::Client::new().post(&url).header("X-Twilio-Signature", "x").form(&big).send();
    assert!(r.map(|r| r.status().as_u16() == 413).unwrap_or(true), "refused for size");
    assert!(all_messages(&bus).is_empty());
}
