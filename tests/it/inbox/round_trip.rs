//! The round trip of a page: machine A sends `--urgent` (Twilio mocked by Prism on Twilio's own spec), the
//! person answers the SMS, Twilio posts the signed answer to the bus, and A's next `sync` shows it as a
//! reply in the thread of A's urgent message.

use super::*;
use crate::support::prism::Prism;
use crate::support::twilio_stub::{ACCOUNT_SID, AUTH_TOKEN};
use crate::support::{Env, OutputExt, run};

#[test]
fn a_page_answered_by_sms_comes_back_to_the_paging_machine_in_its_thread() {
    let bus = webhook_bus();
    let prism = Prism::start();
    let mut env = Env::new();
    bus.write_env_file(&env);
    env.write_config(&format!("[sms]\nfrom = \"{TWILIO_NUMBER}\"\nto = [\"{ALICE}\"]\nbase_url = \"{}\"\n", prism.url));
    env.var("TWILIO_SID", ACCOUNT_SID).var("TWILIO_TOKEN", AUTH_TOKEN);

    let mut c = env.handoff("mac-studio");
    c.args(["--json", "send", "--urgent", "--to", "linux-box", "prod deploy stuck\nmigration 17 hangs"]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    assert!(prism.requests_received() >= 1, "the page went to (mocked) Twilio");
    assert!(prism.violations().is_empty(), "Prism found our request off-spec: {:?}", prism.violations());
    let urgent = all_messages(&bus).into_iter().find(|m| m["from"] == "mac-studio").expect("the urgent message");
    let urgent_id = id_of(&urgent);
    let tags = tags_of(&urgent);
    assert!(tags.contains(&"urgent".to_string()), "{tags:?}");
    assert!(tags.contains(&handoff_channels::bus::tags::paged_tag(ALICE)), "the page record: {tags:?}");

    // the person texts back; Twilio posts it, signed
    let params = inbound("SM0000000000000000000000000000dd01", ALICE, "rolling back now, hold deploys");
    let (status, body) = post_sms(&bus, &params, Some(&twilio_sign(&webhook_url(&bus), &params)));
    assert_eq!(status, 200, "{body}");

    let mut c = env.handoff("mac-studio");
    c.args(["--json", "sync"]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let msgs = j["sync"]["messages"].as_array().expect("sync lists messages");
    let reply = msgs.iter().find(|m| m["from"] == "human").unwrap_or_else(|| panic!("the reply reached A: {j:#}"));
    assert_eq!(reply["body"], "rolling back now, hold deploys");
    assert_eq!(reply["to"], "mac-studio");
    let tags = tags_of(reply);
    assert!(tags.contains(&format!("re:{urgent_id}")), "in the thread of the urgent message: {tags:?}");
    assert!(tags.contains(&"sms-reply".to_string()), "{tags:?}");
}
