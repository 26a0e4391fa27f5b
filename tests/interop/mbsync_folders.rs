//! mbsync over STARTTLS with hierarchy and restarts: a server-only folder and a
//! local-only folder are created on the other side (`Create Both`), mail delivered by an
//! MTA into the running server's Maildir and a server-side EXPUNGE reach the local copy,
//! and after graceful restarts (SIGTERM) the server keeps UIDVALIDITY and UIDs, so the
//! next sync moves nothing.

use std::path::Path;

use crate::harness::{maildir_of, Loft, PASS, USER};
use crate::imap::Imap;
use crate::mail::{self, normalize, read_maildir};
use crate::mbsync::{assert_box_converged, mbsync, read_state, server_box, write_rc, Transport};
use crate::proc::have_tool;

const INBOX_COUNT: usize = 50;

fn populate(dir: &Path) {
    for i in 1..=INBOX_COUNT {
        let flags = (i % 3 == 0).then_some("S");
        mail::deliver(
            &maildir_of(dir),
            &format!("{}.M{i}P3.folders", 1_700_100_000 + i),
            &mail::sample(i),
            flags,
        );
    }
}

fn note(id: &str, subject: &str) -> String {
    format!(
        "From: Alice <alice@example.com>\nTo: team@example.com\nSubject: {subject}\n\
         Message-ID: <{id}>\n\n{subject}, body.\n"
    )
}

#[test]
fn mbsync_starttls_hierarchy_mta_delivery_and_restarts() {
    if !have_tool("mbsync", "isync") {
        return;
    }
    let mut loft = Loft::start_with(populate);
    let local_root = loft.scratch().join("local");
    let inbox = local_root.join("INBOX");

    // A folder only the server has, two levels deep.
    let mut c = Imap::login(loft.port, USER, PASS);
    c.ok("CREATE Lists/rust");
    for i in 1..=5 {
        let m = mail::crlf(&note(
            &format!("list-{i}@example.net"),
            &format!("list post {i}"),
        ));
        c.append("Lists/rust", "", m.as_bytes());
    }
    c.logout();
    // A folder only the local side has (SubFolders Verbatim: a path inside the root).
    let projects = local_root.join("Projects").join("Loft");
    for i in 1..=2 {
        let name = format!("1800000{i}.M{i}P1.local");
        mail::deliver(
            &projects,
            &name,
            &note(&format!("proj-{i}@example.com"), &format!("plan {i}")),
            None,
        );
    }

    let rc = write_rc(&loft, &local_root, Transport::StartTls);
    let out = mbsync(&loft, &rc, "initial (STARTTLS)");
    assert!(
        out.stdout.contains("Connection is now encrypted"),
        "no STARTTLS:\n{}",
        out.dump()
    );
    assert_box_converged(&loft, "INBOX", &inbox, INBOX_COUNT);
    let lists = local_root.join("Lists").join("rust");
    assert_box_converged(&loft, "Lists/rust", &lists, 5);
    assert_box_converged(&loft, "Projects/Loft", &projects, 2);
    let local_lists = read_maildir(&lists);
    assert_eq!(
        normalize(&local_lists["<list-3@example.net>"].content),
        note("list-3@example.net", "list post 3")
    );

    // An MTA delivers into the running server's INBOX; another client expunges one.
    let mta = note("mta@example.org", "delivered by the MTA");
    mail::deliver(&loft.maildir(), "1800000100.M1P1.mta", &mta, None);
    let mut c = Imap::login(loft.port, USER, PASS);
    c.ok("SELECT INBOX");
    c.ok("UID STORE 4 +FLAGS.SILENT (\\Deleted)");
    c.ok("EXPUNGE");
    c.logout();

    // Restart before syncing: UIDs, UIDVALIDITY and the MTA mail survive it.
    let before = read_state(&inbox);
    loft.restart();
    let rc = write_rc(&loft, &local_root, Transport::StartTls);
    mbsync(&loft, &rc, "after restart");
    assert_box_converged(&loft, "INBOX", &inbox, INBOX_COUNT);
    let local = read_maildir(&inbox);
    assert_eq!(normalize(&local["<mta@example.org>"].content), mta);
    assert!(
        !local.contains_key("<interop-4@example.org>"),
        "server EXPUNGE not propagated"
    );
    let after = read_state(&inbox);
    assert_eq!(
        after.far_validity, before.far_validity,
        "UIDVALIDITY changed across restart"
    );
    for (near, far) in &before.pairs {
        if let Some(now) = after.pairs.get(near) {
            assert_eq!(now, far, "near UID {near} re-paired after restart");
        }
    }

    // Restart again: the next sync is a no-op on both sides.
    let (local_files, server_files) = (
        mail::file_list(&local_root),
        mail::file_list(&loft.maildir()),
    );
    let states: Vec<_> = [&inbox, &lists, &projects]
        .iter()
        .map(|p| read_state(p))
        .collect();
    loft.restart();
    let rc = write_rc(&loft, &local_root, Transport::StartTls);
    mbsync(&loft, &rc, "idle after second restart");
    assert_eq!(
        mail::file_list(&local_root),
        local_files,
        "idle sync changed local files"
    );
    assert_eq!(
        mail::file_list(&loft.maildir()),
        server_files,
        "idle sync changed server files"
    );
    let states_now: Vec<_> = [&inbox, &lists, &projects]
        .iter()
        .map(|p| read_state(p))
        .collect();
    assert_eq!(states_now, states, "idle sync changed UID state");
    assert!(server_box(&loft, "Projects/Loft").contains_key("<proj-2@example.com>"));
    loft.assert_clean_log();
}
