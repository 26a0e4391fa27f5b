//! Rewrites stopped at every step and killed at random moments: the file always ends up
//! exactly as before or exactly as planned, never in between, and mail another program
//! appended after the interruption is kept.

use super::*;
use crate::mailbox::mbox::scan::scan_all;
use crate::mailbox::mbox::visible;
use std::path::{Path, PathBuf};

pub(super) struct Mbox {
    _tmp: Option<tempfile::TempDir>,
    pub(super) dir: OwnedFd,
    pub(super) path: PathBuf,
}

fn mbox_at(dir: &Path, content: &[u8]) -> Mbox {
    let path = dir.join("box");
    std::fs::write(&path, content).unwrap();
    let fd = OwnedFd::from(File::open(dir).unwrap());
    Mbox {
        _tmp: None,
        dir: fd,
        path,
    }
}

pub(super) fn mbox(content: &[u8]) -> Mbox {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = mbox_at(tmp.path(), content);
    m._tmp = Some(tmp);
    m
}

pub(super) fn rw(m: &Mbox) -> File {
    File::options()
        .read(true)
        .write(true)
        .open(&m.path)
        .unwrap()
}

pub(super) fn name() -> &'static OsStr {
    OsStr::new("box")
}

/// The file's content after `plan`.
pub(super) fn planned(old: &[u8], plan: &Plan) -> Vec<u8> {
    let mut out = old[..plan.offset as usize].to_vec();
    for p in &plan.pieces {
        match p {
            Piece::Keep(r) => out.extend_from_slice(&old[r.start as usize..r.end as usize]),
            Piece::Bytes(b) => out.extend_from_slice(b),
        }
    }
    if let Some(r) = plan.rest {
        out.extend_from_slice(&old[r as usize..]);
    }
    out
}

pub(super) fn leftovers(m: &Mbox) -> Vec<String> {
    let dir = m.path.parent().unwrap();
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "box")
        .collect();
    v.sort();
    v
}

/// An mbox of `n` messages of many sizes (1 byte to about 1 MiB bodies).
pub(super) fn corpus(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = match i % 4 {
            0 => (x % 64) as usize,
            1 => (x % 4096) as usize,
            2 => (x % 65536) as usize,
            _ => (x % (1 << 20)) as usize,
        };
        let body: String = (0..size)
            .map(|k| (b'a' + ((k as u64 ^ x) % 26) as u8) as char)
            .collect();
        out.extend_from_slice(
            format!(
                "From bob Mon Dec  7 16:49:14 2026\nSubject: m{i}\nX-UID: {}\n\n{body}\n\n",
                i + 1
            )
            .as_bytes(),
        );
    }
    out
}

/// A plan that expunges every third message from the second on, and rewrites the
/// `X-UID` field of every fourth (longer) and fifth (shorter).
pub(super) fn plan_for(file: &[u8]) -> Plan {
    let mails = scan_all(file, file.len() as u64).unwrap();
    let offset = mails[1].from;
    let mut pieces = Vec::new();
    for (i, m) in mails.iter().enumerate().skip(1) {
        let next = m.next.unwrap_or(file.len() as u64);
        if i % 3 == 1 {
            continue;
        }
        let Some(uid) = m.hidden.first().cloned() else {
            pieces.push(Piece::Keep(m.from..next));
            continue;
        };
        if i % 4 == 0 {
            pieces.push(Piece::Keep(m.from..uid.start));
            pieces.push(Piece::Bytes(
                format!("X-UID: {}{}\n", i + 1, " ".repeat(40)).into_bytes(),
            ));
            pieces.push(Piece::Keep(uid.end..next));
        } else if i % 5 == 0 {
            pieces.push(Piece::Keep(m.from..uid.start));
            pieces.push(Piece::Bytes(b"X-UID:1\n".to_vec()));
            pieces.push(Piece::Keep(uid.end..next));
        } else {
            pieces.push(Piece::Keep(m.from..next));
        }
    }
    Plan {
        offset,
        pieces,
        rest: None,
        lazy: false,
    }
}

#[test]
fn a_rewrite_gives_the_planned_file_and_leaves_nothing_behind() {
    let old = corpus(30);
    let m = mbox(&old);
    let plan = plan_for(&old);
    let want = planned(&old, &plan);
    apply(&m.dir, name(), &rw(&m), &plan).unwrap();
    assert_eq!(std::fs::read(&m.path).unwrap(), want);
    assert!(leftovers(&m).is_empty(), "{:?}", leftovers(&m));
    // Growing too: a longer header on the first message only.
    let old = want;
    let first = &scan_all(&old[..], old.len() as u64).unwrap()[0];
    let plan = Plan {
        offset: first.header,
        pieces: vec![
            Piece::Bytes(b"X-Added: a header that makes the file longer\n".to_vec()),
            Piece::Keep(first.header..old.len() as u64),
        ],
        rest: None,
        lazy: false,
    };
    let want = planned(&old, &plan);
    apply(&m.dir, name(), &rw(&m), &plan).unwrap();
    assert_eq!(std::fs::read(&m.path).unwrap(), want);
    assert!(matches!(
        apply(
            &m.dir,
            name(),
            &rw(&m),
            &Plan {
                offset: 1 << 40,
                pieces: vec![],
                rest: None,
                lazy: false,
            }
        ),
        Err(RewriteError::BadPlan)
    ));
}

/// A plan that moves nothing: the `X-UID` field of every other message rewritten with
/// as many bytes (patches).
fn plan_in_place(file: &[u8]) -> Plan {
    let mails = scan_all(file, file.len() as u64).unwrap();
    let offset = mails[1].hidden[0].start;
    let mut pieces = Vec::new();
    let mut at = offset;
    for (i, m) in mails.iter().enumerate().skip(1).step_by(2) {
        let Some(uid) = m.hidden.first().cloned() else {
            continue;
        };
        if uid.start > at {
            pieces.push(Piece::Keep(at..uid.start));
        }
        let mut line = format!("X-UID: {}", 1000 + i).into_bytes();
        line.resize((uid.end - uid.start) as usize - 1, b' ');
        line.push(b'\n');
        pieces.push(Piece::Bytes(line));
        at = uid.end;
    }
    Plan {
        offset,
        pieces,
        rest: Some(at),
        lazy: false,
    }
}

#[test]
fn stopped_at_any_step_the_next_opener_completes_it() {
    let old = corpus(12);
    stopped_at_any_step(&old, &plan_for(&old));
    stopped_at_any_step(&old, &plan_in_place(&old));
    // Patches not forced to disk (`fsync` other than `always`): the same, kill by kill.
    let lazy = Plan {
        lazy: true,
        ..plan_in_place(&old)
    };
    stopped_at_any_step(&old, &lazy);
    let m = mbox(&old);
    apply(&m.dir, name(), &rw(&m), &lazy).unwrap();
    assert_eq!(std::fs::read(&m.path).unwrap(), planned(&old, &lazy));
    assert!(leftovers(&m).is_empty());
}

fn stopped_at_any_step(old: &[u8], plan: &Plan) {
    let old = old.to_vec();
    let plan = plan.clone();
    let want = planned(&old, &plan);
    let steps = [
        Stop::AfterTemp,
        Stop::AfterJournal,
        Stop::Copied(0),
        Stop::Copied(1),
        Stop::Copied(want.len() as u64 / 3),
        Stop::BeforeCut,
        Stop::AfterCut,
    ];
    for stop in steps {
        let m = mbox(&old);
        run(&m.dir, name(), &rw(&m), &plan, stop).unwrap();
        let got = recover(&m.dir, name(), &rw(&m)).unwrap();
        let now = std::fs::read(&m.path).unwrap();
        if stop == Stop::AfterTemp {
            assert_eq!(got, Recovered::Nothing);
            assert_eq!(
                now, old,
                "{stop:?}: the mbox was touched before the journal"
            );
        } else {
            assert_eq!(got, Recovered::Completed { kept: 0 }, "{stop:?}");
            assert_eq!(now, want, "{stop:?}");
        }
        assert!(leftovers(&m).is_empty(), "{stop:?}: {:?}", leftovers(&m));
        assert_eq!(
            recover(&m.dir, name(), &rw(&m)).unwrap(),
            Recovered::Nothing
        );
    }
}

#[test]
fn mail_appended_after_an_interruption_is_kept() {
    let old = corpus(12);
    let plan = plan_for(&old);
    let want = planned(&old, &plan);
    let late = b"From carol Mon Dec  7 17:00:00 2026\nSubject: late\n\nappended by Postfix\n\n";
    for stop in [
        Stop::AfterJournal,
        Stop::Copied(100),
        Stop::BeforeCut,
        Stop::AfterCut,
    ] {
        let m = mbox(&old);
        run(&m.dir, name(), &rw(&m), &plan, stop).unwrap();
        // Another program broke the dead holder's lock and delivered.
        let mut f = File::options().append(true).open(&m.path).unwrap();
        f.write_all(late).unwrap();
        drop(f);
        let got = recover(&m.dir, name(), &rw(&m)).unwrap();
        assert_eq!(
            got,
            Recovered::Completed {
                kept: late.len() as u64
            },
            "{stop:?}"
        );
        let mut expect = want.clone();
        expect.extend_from_slice(late);
        assert_eq!(std::fs::read(&m.path).unwrap(), expect, "{stop:?}");
    }
}

/// The mail appended after an interruption survives a second kill during the recovery,
/// wherever it falls: after the recovery's cut (the mail then only aside on disk), and
/// after the rewrite completed but before the mail went back; more mail appended between
/// the kills is kept too, nothing twice.
#[test]
fn mail_appended_after_an_interruption_survives_a_second_kill() {
    let old = corpus(12);
    let plan = plan_for(&old);
    let want = planned(&old, &plan);
    let late = b"From carol Mon Dec  7 17:00:00 2026\nSubject: late\n\nappended by Postfix\n\n";
    let later = b"From dave Mon Dec  7 17:01:00 2026\nSubject: later\n\nbetween the kills\n\n";
    let append = |m: &Mbox, b: &[u8]| {
        let mut f = File::options().append(true).open(&m.path).unwrap();
        f.write_all(b).unwrap();
    };
    for first in [Stop::AfterJournal, Stop::BeforeCut, Stop::AfterCut] {
        for second in [Stop::BeforeCut, Stop::AfterCut, Stop::BeforePutBack] {
            let m = mbox(&old);
            run(&m.dir, name(), &rw(&m), &plan, first).unwrap();
            append(&m, late);
            recover_until(&m.dir, name(), &rw(&m), second).unwrap();
            append(&m, later);
            let got = recover(&m.dir, name(), &rw(&m)).unwrap();
            assert!(
                matches!(got, Recovered::Completed { .. }),
                "{first:?} {second:?}: {got:?}"
            );
            let mut expect = want.clone();
            let file = std::fs::read(&m.path).unwrap();
            // `later` went in after the first recovery cut the file (or not): it is kept
            // either way, before or after `late`.
            let mut other = expect.clone();
            expect.extend_from_slice(late);
            expect.extend_from_slice(later);
            other.extend_from_slice(later);
            other.extend_from_slice(late);
            assert!(
                file == expect || file == other,
                "{first:?} {second:?}: {}",
                String::from_utf8_lossy(&file[want.len().min(file.len())..])
            );
            assert!(!aside::exists(&m.dir, name()), "the aside file removed");
            assert_eq!(
                recover(&m.dir, name(), &rw(&m)).unwrap(),
                Recovered::Nothing
            );
        }
    }
}

/// A file of mail kept aside that names another mbox file (planted by someone who may
/// write in the directory, or left from a file since replaced) is removed, never put
/// into this one.
#[test]
fn mail_kept_aside_for_another_file_is_never_put_back() {
    let old = corpus(3);
    let m = mbox(&old);
    let mut planted = b"LOFTAPP1".to_vec();
    for v in [old.len() as u64, old.len() as u64, 0, 0, 0] {
        planted.extend_from_slice(&v.to_le_bytes());
    }
    planted.extend_from_slice(b"From evil Mon Dec  7 17:00:00 2026\n\nplanted\n");
    let aside = m.path.with_file_name(".box.loft-appended");
    std::fs::write(&aside, &planted).unwrap();
    assert!(aside::exists(&m.dir, name()));
    assert_eq!(
        recover(&m.dir, name(), &rw(&m)).unwrap(),
        Recovered::Nothing
    );
    assert_eq!(std::fs::read(&m.path).unwrap(), old);
    assert!(!aside.exists());
}

#[test]
fn a_journal_that_does_not_fit_is_left_alone() {
    let old = corpus(6);
    let plan = plan_for(&old);
    // Another file now has the mbox's name (replaced by a program that renames).
    let m = mbox(&old);
    run(&m.dir, name(), &rw(&m), &plan, Stop::AfterJournal).unwrap();
    // (Made before the old one goes, so that it cannot get the same inode number.)
    let other = m.path.with_file_name("other");
    std::fs::write(&other, &old).unwrap();
    std::fs::rename(&other, &m.path).unwrap();
    assert!(matches!(
        recover(&m.dir, name(), &rw(&m)),
        Err(RewriteError::Journal(_))
    ));
    assert_eq!(
        std::fs::read(&m.path).unwrap(),
        old,
        "a foreign file was changed"
    );
    // A damaged temporary file.
    let m = mbox(&old);
    run(&m.dir, name(), &rw(&m), &plan, Stop::AfterJournal).unwrap();
    let temp = m.path.with_file_name(".box.loft-rewrite");
    let mut t = std::fs::read(&temp).unwrap();
    t[0] ^= 1;
    std::fs::write(&temp, t).unwrap();
    let before = std::fs::read(&m.path).unwrap();
    assert!(matches!(
        recover(&m.dir, name(), &rw(&m)),
        Err(RewriteError::Journal(_))
    ));
    assert_eq!(std::fs::read(&m.path).unwrap(), before);
    // And a new rewrite refuses to start over a journal.
    assert!(matches!(
        apply(&m.dir, name(), &rw(&m), &plan),
        Err(RewriteError::Journal(_))
    ));
    assert_eq!(parse_journal("loft-mbox-rewrite 1\ndev x\n"), None);
}

/// The plans the kill test runs, by the name of the directory its file is in: expunges
/// with fields shorter and longer (kept pieces move toward the start), or fields added
/// (toward the end); both moved in place.
fn kill_plan(dir: &Path, old: &[u8]) -> Plan {
    let name = dir.file_name().unwrap().to_string_lossy();
    match name.starts_with("right") {
        true => super::moves::tests::right_plan(old),
        false => plan_for(old),
    }
}

/// The child side of the kill test: rewrites the file named by LOFT_REWRITE_CHILD.
#[test]
#[ignore = "run by killed_at_random_moments_nothing_is_lost in a child process"]
fn rewrite_child() {
    let Ok(dir) = std::env::var("LOFT_REWRITE_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let old = std::fs::read(dir.join("box")).unwrap();
    let dirfd = OwnedFd::from(File::open(&dir).unwrap());
    let f = File::options()
        .read(true)
        .write(true)
        .open(dir.join("box"))
        .unwrap();
    apply(&dirfd, name(), &f, &kill_plan(&dir, &old)).unwrap();
    println!("done");
}

/// A rewrite of a file of messages of many sizes, killed (SIGKILL) at random moments in
/// a child process: after recovery the file is exactly the old one or exactly the
/// planned one, and every message it should hold reads back byte for byte. Both ways
/// kept pieces move in place, 40 kills each.
#[test]
fn killed_at_random_moments_nothing_is_lost() {
    let old = corpus(40);
    for which in ["left", "right"] {
        let dir = || tempfile::Builder::new().prefix(which).tempdir().unwrap();
        let plan = kill_plan(dir().path(), &old);
        killed_at_random_moments(&old, &plan, dir);
    }
}

fn killed_at_random_moments(old: &[u8], plan: &Plan, dir: impl Fn() -> tempfile::TempDir) {
    let want = planned(old, plan);
    let child = |dir: &Path| {
        crate::mailbox::mbox::tests::spawn_child(
            "mailbox::mbox::rewrite::tests::rewrite_child",
            "LOFT_REWRITE_CHILD",
            dir,
        )
    };
    // How long a whole run takes, to spread the kills over it.
    let tmp = dir();
    std::fs::write(tmp.path().join("box"), old).unwrap();
    let t0 = std::time::Instant::now();
    assert!(child(tmp.path()).wait().unwrap().success());
    let whole = t0.elapsed();
    assert!(std::fs::read(tmp.path().join("box")).unwrap() == want);
    let messages = |file: &[u8]| -> Vec<Vec<u8>> {
        let mails = scan_all(file, file.len() as u64).unwrap();
        mails
            .iter()
            .map(|m| visible(file, m.header, m.end, &m.hidden))
            .collect()
    };
    let (old_msgs, new_msgs) = (messages(old), messages(&want));
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let (mut untouched, mut completed, mut recovered) = (0, 0, 0);
    for round in 0..40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let tmp = dir();
        let path = tmp.path().join("box");
        std::fs::write(&path, old).unwrap();
        let mut c = child(tmp.path());
        std::thread::sleep(whole.mul_f64((x % 1000) as f64 / 1000.0 * 1.1));
        let _ = c.kill();
        let _ = c.wait();
        let dir = OwnedFd::from(File::open(tmp.path()).unwrap());
        let f = File::options().read(true).write(true).open(&path).unwrap();
        if let Recovered::Completed { .. } = recover(&dir, name(), &f).unwrap() {
            recovered += 1;
        }
        let now = std::fs::read(&path).unwrap();
        let msgs = messages(&now);
        if now == old {
            assert_eq!(msgs, old_msgs);
            untouched += 1;
        } else {
            assert!(
                now == want,
                "round {round}: neither the old file nor the planned one ({} bytes; old {}, \
                 planned {}; leftovers {:?})",
                now.len(),
                old.len(),
                want.len(),
                std::fs::read_dir(tmp.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect::<Vec<_>>()
            );
            assert_eq!(msgs, new_msgs);
            completed += 1;
        }
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [OsString::from("box")], "round {round}");
    }
    eprintln!(
        "40 kills: {untouched} left the file as it was, {completed} ended as planned \
         ({recovered} of them completed by recovery)"
    );
}

#[test]
fn bytes_written_into_room_leave_the_rest_in_place() {
    let old = corpus(8);
    let m = mbox(&old);
    let second = scan_all(&old[..], old.len() as u64).unwrap()[1].clone();
    let uid = second.hidden[0].clone();
    let len = (uid.end - uid.start) as usize;
    let mut line = b"X-UID: 2".to_vec();
    line.resize(len - 1, b' ');
    line.push(b'\n');
    let plan = Plan {
        offset: uid.start,
        pieces: vec![Piece::Bytes(line.clone())],
        rest: Some(uid.end),
        lazy: false,
    };
    let want = planned(&old, &plan);
    assert_eq!(want.len(), old.len());
    apply(&m.dir, name(), &rw(&m), &plan).unwrap();
    assert_eq!(std::fs::read(&m.path).unwrap(), want);
    // Many patches over the file: the planned file, its length kept.
    let m2 = mbox(&old);
    let many = plan_in_place(&old);
    assert!(many.pieces.len() > 4);
    let want2 = planned(&old, &many);
    apply(&m2.dir, name(), &rw(&m2), &many).unwrap();
    assert_eq!(std::fs::read(&m2.path).unwrap(), want2);
    assert!(leftovers(&m2).is_empty());
    // Stopped after the journal, recovery writes the same bytes and cuts nothing.
    let m = mbox(&old);
    run(&m.dir, name(), &rw(&m), &plan, Stop::AfterJournal).unwrap();
    assert_eq!(
        recover(&m.dir, name(), &rw(&m)).unwrap(),
        Recovered::Completed { kept: 0 }
    );
    assert_eq!(std::fs::read(&m.path).unwrap(), want);
    // The pieces must fill exactly the room they replace.
    let bad = Plan {
        rest: Some(uid.end + 1),
        lazy: false,
        ..plan
    };
    assert!(matches!(
        apply(&m.dir, name(), &rw(&m), &bad),
        Err(RewriteError::BadPlan)
    ));
}
