//! CREATE, DELETE, RENAME, LIST, LSUB, SUBSCRIBE, STATUS, SELECT/EXAMINE, special-use.

use crate::util::*;

fn names(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            l.rsplit_once(" \"/\" ")
                .map(|(_, n)| n.trim_end().trim_matches('"').to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_use_created_on_first_login() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    let r = c.ok("LIST \"\" \"*\"").await;
    let all = r.join("");
    for (name, attr) in [
        ("Drafts", "\\Drafts"),
        ("Sent", "\\Sent"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
        ("Archive", "\\Archive"),
    ] {
        let line = r
            .iter()
            .find(|l| l.ends_with(&format!("\"{name}\"\r\n")))
            .unwrap_or_else(|| panic!("{name} missing: {all}"));
        assert!(line.contains(attr), "{line}");
    }
    assert!(r.iter().any(|l| l.ends_with("\"INBOX\"\r\n")));
    let r = c.ok("LIST (SPECIAL-USE) \"\" \"*\"").await;
    assert_eq!(r.len(), 5, "{r:?}");
    let r = c.ok("LIST \"\" \"\"").await;
    assert_eq!(r[0], "* LIST (\\Noselect) \"/\" \"\"\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_rename_delete_hierarchy() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    c.ok("CREATE Work/Projects/Loft").await;
    c.ok("CREATE Personal/").await;
    let st = c.status("CREATE Personal").await;
    assert!(st.contains("NO [ALREADYEXISTS]"), "{st}");
    let r = c.ok("LIST \"\" \"%\"").await;
    let n = names(&r);
    assert!(
        n.contains(&"Work".to_string())
            && n.contains(&"Personal".to_string())
            && !n.contains(&"Work/Projects".to_string()),
        "{n:?}"
    );
    let work = r.iter().find(|l| l.ends_with("\"Work\"\r\n")).unwrap();
    assert!(work.contains("\\HasChildren"), "{work}");
    let r = c.ok("LIST Work/ %").await;
    assert_eq!(names(&r), vec!["Work/Projects"]);
    let r = c.ok("LIST \"\" Work/*").await;
    assert_eq!(names(&r), vec!["Work/Projects", "Work/Projects/Loft"]);

    c.ok("RENAME Work Job").await;
    let r = c.ok("LIST \"\" *").await;
    let n = names(&r);
    assert!(
        n.contains(&"Job/Projects/Loft".to_string()) && !n.iter().any(|x| x.starts_with("Work")),
        "{n:?}"
    );
    let st = c.status("RENAME Nope Other").await;
    assert!(st.contains("NO"), "{st}");
    let st = c.status("RENAME Job Personal").await;
    assert!(st.contains("NO [ALREADYEXISTS]"), "{st}");

    c.ok("DELETE Job/Projects/Loft").await;
    let st = c.status("DELETE INBOX").await;
    assert!(st.contains(" NO "), "{st}");
    let st = c.status("DELETE Nonexistent").await;
    assert!(st.contains("NO [NONEXISTENT]"), "{st}");
    let st = c.status("SELECT Nonexistent").await;
    assert!(st.contains("NO [NONEXISTENT]"), "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_inbox_moves_messages() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 0..3 {
        let m = sample_message(i);
        c.send(format!("ap APPEND INBOX {{{}+}}\r\n{}\r\n", m.len(), m).as_bytes())
            .await;
        assert!(c.collect("ap").await.last().unwrap().starts_with("ap OK"));
    }
    c.ok("RENAME INBOX Old").await;
    let r = c.ok("STATUS INBOX (MESSAGES)").await;
    assert!(r[0].contains("(MESSAGES 0)"), "{r:?}");
    let r = c.ok("STATUS Old (MESSAGES)").await;
    assert!(r[0].contains("(MESSAGES 3)"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_and_lsub() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    // The special-use folders created at the first login are subscribed (and INBOX with
    // them); the user's own folders only by SUBSCRIBE.
    let auto = ["Drafts", "Sent", "Trash", "Junk", "Archive"];
    let r = c.ok("LSUB \"\" *").await;
    assert_eq!(
        names(&r),
        vec!["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );
    for name in auto {
        c.ok(&format!("UNSUBSCRIBE {name}")).await;
    }
    c.ok("UNSUBSCRIBE INBOX").await;
    c.ok("CREATE a/b").await;
    let r = c.ok("LSUB \"\" *").await;
    assert!(names(&r).is_empty(), "{r:?}");
    c.ok("SUBSCRIBE a/b").await;
    c.ok("SUBSCRIBE INBOX").await;
    let r = c.ok("LSUB \"\" *").await;
    assert_eq!(names(&r), vec!["INBOX", "a/b"]);
    let r = c.ok("LSUB \"\" %").await;
    let a = r
        .iter()
        .find(|l| l.ends_with("\"a\"\r\n"))
        .expect("parent listed");
    assert!(a.contains("\\Noselect"), "{a}");
    c.ok("UNSUBSCRIBE a/b").await;
    let r = c.ok("LSUB \"\" *").await;
    assert_eq!(names(&r), vec!["INBOX"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf7_names_round_trip() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    // "Entwürfe" and Japanese
    c.ok("CREATE \"Entw&APw-rfe\"").await;
    c.ok("CREATE \"&ZeVnLIqe-\"").await;
    let r = c.ok("LIST \"\" *").await;
    let n = names(&r);
    assert!(
        n.contains(&"Entw&APw-rfe".to_string()) && n.contains(&"&ZeVnLIqe-".to_string()),
        "{n:?}"
    );
    let st = c.status("CREATE \"bad&Jjo\"").await;
    assert!(st.contains(" NO "), "{st}");
    c.ok("SELECT \"Entw&APw-rfe\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_cannot_escape() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for bad in ["\"../x\"", "\"a/../../b\"", "\"/etc\"", "\"a//b\""] {
        let st = c.status(&format!("CREATE {bad}")).await;
        assert!(st.contains(" NO ") || st.contains(" BAD "), "{bad}: {st}");
    }
    assert!(!srv.dir.path().join("x").exists());
    assert!(!srv.dir.path().join("mail").join("b").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_examine_status() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 0..4 {
        srv.deliver(USER, "INBOX", &sample_message(i));
    }
    let r = c
        .ok("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
        .await;
    assert!(
        r[0].starts_with("* STATUS \"INBOX\" (MESSAGES 4 RECENT 4 UIDNEXT "),
        "{r:?}"
    );
    let r = c.cmd("EXAMINE INBOX").await;
    let all = r.join("");
    assert!(
        all.contains("* 4 EXISTS") && all.contains("[UIDVALIDITY ") && all.contains("[UIDNEXT 5]"),
        "{all}"
    );
    assert!(
        all.contains("* 4 RECENT"),
        "EXAMINE reports \\Recent (RFC 3501 §6.3.2) without claiming it: {all}"
    );
    assert!(r.last().unwrap().contains("OK [READ-ONLY]"), "{all}");
    let r = c.cmd("SELECT INBOX").await;
    let all = r.join("");
    assert!(
        all.contains("* 4 RECENT")
            && all.contains("[UNSEEN 1]")
            && all.contains("[PERMANENTFLAGS ("),
        "{all}"
    );
    assert!(r.last().unwrap().contains("OK [READ-WRITE]"), "{all}");
    // a second session does not see them as recent any more
    let mut d = srv.login().await;
    let r = d.cmd("SELECT INBOX").await;
    assert!(r.join("").contains("* 0 RECENT"), "{r:?}");
    let r = d.ok("STATUS INBOX (SIZE)").await;
    assert!(r[0].contains("SIZE "), "{r:?}");
    c.ok("UNSELECT").await;
    let st = c.status("FETCH 1 FLAGS").await;
    assert!(st.contains(" BAD "), "{st}");
}

/// An admin points Loft at a Maildir Dovecot has been serving: UIDVALIDITY, UIDs, UIDNEXT
/// and keywords are adopted, so clients do not download everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_dovecot_uidlist_and_keywords() {
    // Maildir-only: Dovecot's Maildir files (dovecot-uidlist, dovecot-keywords, info
    // letters in file names); the mbox counterpart is mbox::adopts_uids_another_program_wrote.
    if format() != Format::Maildir {
        return;
    }
    let srv = TestServer::start().await;
    let root = srv.maildir(USER);
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let m1 = sample_message(1).replace("\r\n", "\n");
    let m2 = sample_message(2).replace("\r\n", "\n");
    let n1 = "1600000000.M1P1.oldhost";
    let n2 = "1600000001.M2P2.oldhost";
    std::fs::write(root.join("cur").join(format!("{n1}:2,Sb")), &m1).unwrap();
    std::fs::write(root.join("cur").join(format!("{n2}:2,")), &m2).unwrap();
    std::fs::write(root.join("dovecot-keywords"), "0 $Junk\n1 Work\n").unwrap();
    std::fs::write(
        root.join("dovecot-uidlist"),
        format!("3 V1234567 N43 Gfeedface\n17 :{n1}\n41 :{n2}\n"),
    )
    .unwrap();
    let mut c = srv.login().await;
    let r = c.cmd("SELECT INBOX").await.join("");
    assert!(
        r.contains("[UIDVALIDITY 1234567]") && r.contains("[UIDNEXT 43]"),
        "{r}"
    );
    assert!(r.contains("* 2 EXISTS"), "{r}");
    let r = c.ok("UID FETCH 1:* (FLAGS RFC822.SIZE)").await;
    assert!(
        r[0].starts_with("* 1 FETCH (UID 17 FLAGS (\\Seen Work) RFC822.SIZE"),
        "{r:?}"
    );
    assert!(r[1].starts_with("* 2 FETCH (UID 41 FLAGS ()"), "{r:?}");
    // sizes count CRLF line ends although the files use LF
    let size: usize = r[0]
        .split("RFC822.SIZE ")
        .nth(1)
        .unwrap()
        .trim_end_matches(")\r\n")
        .parse()
        .unwrap();
    assert_eq!(size, sample_message(1).len());
    let body = c.ok("UID FETCH 17 BODY.PEEK[]").await;
    assert!(
        body[0].ends_with(&format!("{})\r\n", sample_message(1))),
        "{body:?}"
    );
    let m = sample_message(3);
    c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
        .await;
    let st = c.collect("x").await.pop().unwrap();
    assert!(st.contains("[APPENDUID 1234567 43]"), "{st}");
}
