//! The index cache as a client sees it (issue 3): what a client fetches decides what is
//! cached, and cached answers are served without reading the message again.

use crate::util::*;

fn show(srv: &TestServer) -> String {
    loft::mailbox::index_show(&srv.cfg.storage, USER, None, "INBOX").expect("index show")
}

fn decision_line(report: &str, field: &str) -> String {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(field))
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_pattern_drives_caching_decisions() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 1..=3 {
        let m = sample_message(i);
        c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
            .await;
        c.collect("x").await;
    }
    c.ok("SELECT INBOX").await;
    assert_eq!(
        decision_line(&show(&srv), "imap.envelope"),
        "",
        "nothing decided before use"
    );

    // A client that fetches ENVELOPE of new mail only: the field becomes "temp".
    let first = c.ok("UID FETCH 3 ENVELOPE").await;
    let line = decision_line(&show(&srv), "imap.envelope");
    assert!(line.contains("temp"), "{line}");
    assert!(
        decision_line(&show(&srv), "imap.bodystructure").is_empty(),
        "unused fields stay undecided"
    );

    // The cached ENVELOPE is what answers now: change the file behind Loft's back (never
    // done to a real Maildir) and the answer stays the cached one.
    let cur = srv.maildir(USER).join("cur");
    let file = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("Message number 3")
        })
        .expect("message 3 on disk");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("Message number 3", "Changed subject!");
    std::fs::write(&file, text).unwrap();
    let again = c.ok("UID FETCH 3 ENVELOPE").await;
    assert_eq!(again, first, "served from the cache");

    // Fetching it for an older message makes the decision permanent ("yes").
    c.ok("UID FETCH 1 ENVELOPE").await;
    let line = decision_line(&show(&srv), "imap.envelope");
    assert!(line.contains("yes"), "{line}");
}
