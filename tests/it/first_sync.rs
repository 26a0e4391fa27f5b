//! A fresh Thunderbird profile's first sync against the shipped defaults (issue 10, "first
//! impressions with real clients").
//!
//! The command sequence is reconstructed from Thunderbird's IMAP protocol logs
//! (`MOZ_LOG=IMAP:5`, as users post them in bug reports and support threads) for a server
//! that offers ID, NAMESPACE and SPECIAL-USE but not LIST-EXTENDED: after login it asks for
//! CAPABILITY, sends ID, NAMESPACE, discovers folders with `LIST (SPECIAL-USE) "" "*"`
//! and `LSUB "" "*"` (subscribed folders only: "show only subscribed folders" is on by
//! default), then `LIST "" "INBOX"`; a special folder it does not find among the
//! subscribed ones (Trash first) it CREATEs and SUBSCRIBEs. Then it selects INBOX.

use crate::util::*;

fn mailbox_names(lines: &[String], verb: &str) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("* {verb} ")))
        .filter_map(|l| {
            l.rsplit_once(" \"/\" ")
                .map(|(_, n)| n.trim_end().trim_matches('"').to_string())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thunderbird_first_sync_sees_every_folder() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    c.ok("capability").await;
    c.ok(&format!("login \"{USER}\" \"{PASS}\"")).await;
    c.ok("capability").await;
    c.ok("ID (\"name\" \"Thunderbird\" \"version\" \"153.0\")")
        .await;
    c.ok("namespace").await;
    let list = c.ok("list (special-use) \"\" \"*\"").await;
    let lsub = c.ok("lsub \"\" \"*\"").await;
    c.ok("list \"\" \"INBOX\"").await;
    let trash = list.iter().find(|l| l.contains("\\Trash")).cloned();
    let subscribed = mailbox_names(&lsub, "LSUB");
    // What Thunderbird would do next when its Trash is not among the subscribed folders.
    if trash.is_none() || !subscribed.iter().any(|n| n == "Trash") {
        panic!("Thunderbird would CREATE \"Trash\" now: LIST {list:?}, LSUB {lsub:?}");
    }
    c.ok("select \"INBOX\"").await;
    c.ok("UID fetch 1:* (FLAGS)").await;
    let all = c.ok("list \"\" \"*\"").await;
    let listed = mailbox_names(&all, "LIST");
    assert_eq!(
        subscribed, listed,
        "every folder is subscribed on a fresh account"
    );
    for name in ["INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"] {
        assert!(
            subscribed.iter().any(|n| n == name),
            "{name} not in LSUB: {lsub:?}"
        );
    }
    // A folder the user creates in Thunderbird: CREATE then SUBSCRIBE, both clean.
    c.ok("create \"Work\"").await;
    c.ok("subscribe \"Work\"").await;
    let lsub = c.ok("lsub \"\" \"*\"").await;
    assert!(
        mailbox_names(&lsub, "LSUB").contains(&"Work".to_string()),
        "{lsub:?}"
    );
    // Unsubscribing is the user's choice: the next login does not subscribe again.
    c.ok("unsubscribe \"Junk\"").await;
    c.ok("logout").await;
    let mut c = srv.login().await;
    let lsub = c.ok("lsub \"\" \"*\"").await;
    let names = mailbox_names(&lsub, "LSUB");
    assert!(!names.contains(&"Junk".to_string()), "{lsub:?}");
    assert!(names.contains(&"Trash".to_string()), "{lsub:?}");
}

/// An account whose special folders were created by an earlier Loft (no subscriptions
/// file at all): the first login afterwards subscribes them, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_account_without_subscriptions_gets_them() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    c.ok("logout").await;
    let subs = srv.store_file(USER, "subscriptions");
    std::fs::remove_file(&subs).expect("the subscriptions file");
    let mut c = srv.login().await;
    let lsub = c.ok("lsub \"\" \"*\"").await;
    let names = mailbox_names(&lsub, "LSUB");
    for name in ["INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not in LSUB: {lsub:?}"
        );
    }
}
