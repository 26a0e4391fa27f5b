//! mbsync while mail keeps arriving: an MTA delivers into the server's Maildir and
//! another IMAP client APPENDs while mbsync is syncing. The sync must succeed, the next
//! one must bring both sides to the same set of messages (none lost, none twice), and the
//! one after must move nothing.

use std::path::Path;
use std::time::Duration;

use crate::harness::{maildir_of, Loft, PASS, USER};
use crate::imap::Imap;
use crate::mail::{self, read_maildir};
use crate::mbsync::{assert_box_converged, mbsync, read_state, write_rc, Transport};
use crate::proc::have_tool;

const START: usize = 200;
const DELIVERED: usize = 100;
const APPENDED: usize = 50;

#[test]
fn mbsync_while_mail_arrives_loses_and_duplicates_nothing() {
    if !have_tool("mbsync", "isync") {
        return;
    }
    let loft = Loft::start_with(|dir: &Path| {
        for i in 1..=START {
            let name = format!("{}.M{i}P5.live", 1_700_200_000 + i);
            mail::deliver(&maildir_of(dir), &name, &mail::sample(i), None);
        }
    });
    let local_root = loft.scratch().join("local");
    let inbox = local_root.join("INBOX");
    let rc = write_rc(&loft, &local_root, Transport::Plain);

    let maildir = loft.maildir();
    let port = loft.port;
    std::thread::scope(|s| {
        let mta = s.spawn(|| {
            for i in 0..DELIVERED {
                let n = 10_000 + i;
                let name = format!("{}.M{n}P6.mta", 1_700_300_000 + n);
                mail::deliver(&maildir, &name, &mail::sample(n), None);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let client = s.spawn(move || {
            let mut c = Imap::login(port, USER, PASS);
            for i in 0..APPENDED {
                let n = 20_000 + i;
                c.append("INBOX", "", mail::crlf(&mail::sample(n)).as_bytes());
                std::thread::sleep(Duration::from_millis(10));
            }
            c.logout();
        });
        mbsync(&loft, &rc, "during deliveries");
        mta.join().expect("MTA thread");
        client.join().expect("APPEND thread");
    });

    let total = START + DELIVERED + APPENDED;
    mbsync(&loft, &rc, "after deliveries");
    assert_box_converged(&loft, "INBOX", &inbox, total);
    let local = read_maildir(&inbox);
    for n in (1..=START)
        .chain(10_000..10_000 + DELIVERED)
        .chain(20_000..20_000 + APPENDED)
    {
        let id = format!("<interop-{n}@example.org>");
        let m = local
            .get(&id)
            .unwrap_or_else(|| panic!("{id} never arrived locally"));
        assert_eq!(
            mail::normalize(&m.content),
            mail::sample(n),
            "content of {id}"
        );
    }

    let (local_files, server_files) = (
        mail::file_list(&local_root),
        mail::file_list(&loft.maildir()),
    );
    let state = read_state(&inbox);
    mbsync(&loft, &rc, "idle");
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
    assert_eq!(read_state(&inbox), state, "idle sync changed the UID state");
    loft.assert_clean_log();
}
