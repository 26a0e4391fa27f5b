//! The benchmark corpus: a deterministic Maildir of N realistic messages.
//!
//! Mostly 2–20 KB plain-text mails, 5% multipart/mixed with a 50–500 KB base64
//! attachment, varied From/Subject/Date headers. Files are written with LF line ends (as an
//! MTA delivers them) straight into `cur/`, named `<time>.M<i>P1Q<i>.benchhost,S=<bytes>,
//! W=<crlf bytes>:2,<flags>` (or as MTAs name them, without `W=`: [`Names`]) with the
//! message date as mtime (INTERNALDATE). The corpus is cached in
//! `target/bench-corpus-N/` (`target/bench-corpus-N-mta/`) and reused; `manifest.txt`, written last, marks it
//! complete and records what the SEARCH measurements must find.
//!
//! This module knows nothing about IMAP servers.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;

/// About 1% of messages come from this person: `UID SEARCH FROM "zephyrine"`.
pub const RARE_SENDER: &str = "zephyrine";
/// About 0.1% of bodies contain this word: `UID SEARCH BODY "xylophonist"`.
pub const RARE_WORD: &str = "xylophonist";

/// splitmix64: tiny, fast, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1000 < per_mille
    }
}

const FIRST: &[&str] = &[
    "Alice", "Bruno", "Chen", "Dana", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi",
    "Lena", "Marek", "Nadia", "Oscar", "Priya", "Rosa", "Sven", "Tariq", "Ulla", "Viktor", "Wen",
    "Yara", "Zoltan",
];
const LAST: &[&str] = &[
    "Andersen",
    "Baptiste",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Horvat",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Urquhart",
    "Varga",
    "Weber",
    "Yilmaz",
];
const DOMAINS: &[&str] = &[
    "example.org",
    "example.net",
    "mail.example.com",
    "lists.example.org",
    "corp.example",
    "university.example.edu",
    "shop.example",
    "news.example.net",
];
const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "meeting",
    "report",
    "budget",
    "quarter",
    "release",
    "server",
    "mailbox",
    "invoice",
    "schedule",
    "project",
    "review",
    "draft",
    "contract",
    "travel",
    "weekend",
    "dinner",
    "update",
    "question",
    "answer",
    "deadline",
    "customer",
    "support",
    "ticket",
    "feature",
    "design",
    "garden",
    "recipe",
    "holiday",
    "train",
    "flight",
    "hotel",
    "concert",
    "library",
    "minutes",
    "agenda",
    "proposal",
    "estimate",
    "delivery",
    "warehouse",
    "pipeline",
    "benchmark",
    "performance",
    "latency",
    "throughput",
    "database",
    "backup",
    "network",
];
const SUBJECT_WORDS: &[&str] = &[
    "Meeting",
    "Report",
    "Budget",
    "Release",
    "Invoice",
    "Schedule",
    "Project",
    "Review",
    "Draft",
    "Contract",
    "Travel",
    "Dinner",
    "Update",
    "Question",
    "Deadline",
    "Ticket",
    "Holiday",
    "Proposal",
    "Delivery",
    "Backup",
    "notes",
    "plans",
    "status",
    "follow-up",
    "tomorrow",
    "next week",
    "Q3",
    "urgent",
    "photos",
    "minutes",
    "feedback",
];
const ZONES: &[&str] = &[
    "+0000", "+0100", "+0200", "-0500", "-0800", "+0530", "+0900",
];
const DAYS: &[&str] = &["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// What the generated corpus contains: the answers the SEARCH measurements must give.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    pub messages: u64,
    pub bytes: u64,
    pub from_matches: u64,
    pub body_matches: u64,
    pub attachments: u64,
}

impl Manifest {
    fn to_text(&self) -> String {
        format!(
            "messages {}\nbytes {}\nfrom_matches {}\nbody_matches {}\nattachments {}\n",
            self.messages, self.bytes, self.from_matches, self.body_matches, self.attachments
        )
    }
    fn parse(text: &str) -> Option<Manifest> {
        let mut m = Manifest::default();
        for line in text.lines() {
            let (k, v) = line.split_once(' ')?;
            let v: u64 = v.trim().parse().ok()?;
            match k {
                "messages" => m.messages = v,
                "bytes" => m.bytes = v,
                "from_matches" => m.from_matches = v,
                "body_matches" => m.body_matches = v,
                "attachments" => m.attachments = v,
                _ => return None,
            }
        }
        (m.messages > 0).then_some(m)
    }
}

/// `dir/Maildir` holds the corpus once this returns; generated only when missing.
pub fn ensure(dir: &Path, n: u64, names: Names) -> io::Result<Manifest> {
    let manifest_path = dir.join("manifest.txt");
    if let Ok(text) = fs::read_to_string(&manifest_path) {
        if let Some(m) = Manifest::parse(&text) {
            if m.messages == n {
                return Ok(m);
            }
        }
    }
    let _ = fs::remove_dir_all(dir);
    let maildir = dir.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(maildir.join(sub))?;
    }
    let started = std::time::Instant::now();
    let mut m = Manifest {
        messages: n,
        ..Manifest::default()
    };
    let mut rng = Rng::new(0x4C6F_6674_2D62_656E);
    let mut buf = Vec::with_capacity(1 << 20);
    for i in 0..n {
        buf.clear();
        let date = generate(&mut rng, i, &mut buf, &mut m);
        let lf = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let size = buf.len() as u64;
        m.bytes += size;
        let flags = match rng.next_u64() % 20 {
            0..=11 => "S",
            12 => "RS",
            13 => "FS",
            _ => "",
        };
        let name = names.file_name(i, date, size, size + lf, flags);
        let path = maildir.join("cur").join(name);
        fs::write(&path, &buf)?;
        let f = fs::File::options().write(true).open(&path)?;
        f.set_modified(UNIX_EPOCH + Duration::from_secs(date as u64))?;
        if (i + 1) % 10_000 == 0 {
            eprintln!(
                "  corpus: {} / {n} messages, {:.0} MB, {:.0} s",
                i + 1,
                m.bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
    }
    fs::write(&manifest_path, m.to_text())?;
    Ok(m)
}

/// Appends one message (LF line ends) to `out`; returns its date as a Unix time.
fn generate(rng: &mut Rng, i: u64, out: &mut Vec<u8>, m: &mut Manifest) -> i64 {
    // Dates spread over ~8 years from 2017-01-01, ascending with jitter.
    let date = 1_483_228_800 + (i as i64) * 2400 + rng.range(0, 2000) as i64;
    let zone = rng.pick(ZONES);
    let (from_name, from_addr) = if rng.chance(10) {
        m.from_matches += 1;
        (
            "Quentin Zephyrine".to_string(),
            "q.zephyrine@lists.example.net".to_string(),
        )
    } else {
        let (f, l, d) = (rng.pick(FIRST), rng.pick(LAST), rng.pick(DOMAINS));
        (
            format!("{f} {l}"),
            format!("{}.{}@{d}", f.to_lowercase(), l.to_lowercase()),
        )
    };
    let mut subject = String::new();
    if rng.chance(300) {
        subject.push_str("Re: ");
    }
    for k in 0..rng.range(2, 7) {
        if k > 0 {
            subject.push(' ');
        }
        subject.push_str(rng.pick(SUBJECT_WORDS));
    }
    let mut h = String::with_capacity(1024);
    let _ = writeln!(h, "Return-Path: <{from_addr}>");
    let _ = write!(
        h,
        "Received: from mx{}.example.net (mx.example.net [192.0.2.{}])\n\tby mail.example.com with ESMTPS id {i:x}; {}\n",
        rng.range(1, 9),
        rng.range(1, 254),
        rfc2822_date(date, zone)
    );
    let _ = writeln!(h, "From: \"{from_name}\" <{from_addr}>");
    let _ = writeln!(h, "To: Alice Bench <alice@example.com>");
    if rng.chance(200) {
        let _ = writeln!(h, "Cc: {} <team@example.org>", rng.pick(LAST));
    }
    let _ = writeln!(h, "Subject: {subject}");
    let _ = writeln!(h, "Date: {}", rfc2822_date(date, zone));
    let _ = writeln!(
        h,
        "Message-ID: <{i:08x}.{:x}@{}>",
        rng.next_u64(),
        rng.pick(DOMAINS)
    );
    if subject.starts_with("Re: ") && i > 0 {
        let _ = writeln!(h, "In-Reply-To: <{:08x}.0@example.org>", i - 1);
    }
    h.push_str("MIME-Version: 1.0\n");
    let rare = rng.chance(1);
    if rare {
        m.body_matches += 1;
    }
    let attach = rng.chance(50);
    if attach {
        m.attachments += 1;
        let boundary = format!("=_bench_{i:x}");
        let _ = write!(
            h,
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\n\n"
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"This is a multi-part message in MIME format.\n\n");
        out.extend_from_slice(
            format!("--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n").as_bytes(),
        );
        let target = rng.range(1000, 6000) as usize;
        text_body(rng, out, target, rare);
        let size = rng.range(50_000, 500_000) as usize;
        out.extend_from_slice(
            format!(
                "\n--{boundary}\nContent-Type: application/pdf; name=\"doc{i}.pdf\"\nContent-Disposition: attachment; filename=\"doc{i}.pdf\"\nContent-Transfer-Encoding: base64\n\n"
            )
            .as_bytes(),
        );
        let mut raw = Vec::with_capacity(size);
        while raw.len() < size {
            raw.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        raw.truncate(size);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        for chunk in b64.as_bytes().chunks(76) {
            out.extend_from_slice(chunk);
            out.push(b'\n');
        }
        out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    } else {
        h.push_str("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
        out.extend_from_slice(h.as_bytes());
        let target = rng.range(2000, 20_000) as usize;
        text_body(rng, out, target.saturating_sub(h.len()), rare);
    }
    date
}

/// About `target` bytes of prose in lines of at most ~72 characters; `rare` puts
/// [`RARE_WORD`] once somewhere in the first half.
fn text_body(rng: &mut Rng, out: &mut Vec<u8>, target: usize, rare: bool) {
    let start = out.len();
    let mut rare_at = rare.then(|| rng.range(0, target as u64 / 2) as usize);
    let mut line = 0usize;
    while out.len() - start < target {
        let w = match rare_at {
            Some(at) if out.len() - start >= at => {
                rare_at = None;
                RARE_WORD
            }
            _ => rng.pick(WORDS),
        };
        push_word(out, w, &mut line);
    }
    if rare_at.is_some() {
        push_word(out, RARE_WORD, &mut line);
    }
    out.push(b'\n');
}

fn push_word(out: &mut Vec<u8>, w: &str, line: &mut usize) {
    if *line + w.len() + 1 > 72 {
        out.push(b'\n');
        *line = 0;
    } else if *line > 0 {
        out.push(b' ');
        *line += 1;
    }
    out.extend_from_slice(w.as_bytes());
    *line += w.len();
}

/// RFC 5322 §3.3 date-time in the given zone.
fn rfc2822_date(t: i64, zone: &str) -> String {
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let hh: i64 = zone[1..3].parse().unwrap_or(0);
    let mm: i64 = zone[3..5].parse().unwrap_or(0);
    let local = t + sign * (hh * 3600 + mm * 60);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {zone}",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(mo - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// well-known public-domain algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Makes `dst` a Maildir whose message files are hard links to the corpus's (Maildir
/// message files are never modified in place, so the cached corpus stays pristine).
pub fn link_copy(corpus_maildir: &Path, dst: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        let to = dst.join(sub);
        fs::create_dir_all(&to)?;
        for e in fs::read_dir(corpus_maildir.join(sub))? {
            let e = e?;
            fs::hard_link(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// How the corpus's message files are named (`LOFT_BENCH_NAMES`). The messages are the
/// same either way; only the names differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// `<time>.M<i>P1Q<i>.benchhost,S=<size>,W=<crlf size>:2,<flags>`, as Dovecot writes
    /// them: the RFC822.SIZE is in the name (the default, `dovecot`).
    Dovecot,
    /// As delivery agents write them (Postfix, procmail, maildrop: `mta`):
    /// `<time>.M<usec>P<pid>.<host>,S=<size>:2,<flags>`, about 10 % without `S=` either.
    /// A server must read a file (or remember what it read) to know its RFC822.SIZE.
    Mta,
}

impl Names {
    /// From `LOFT_BENCH_NAMES` (`dovecot`, the default, or `mta`).
    pub fn from_env() -> Result<Names, String> {
        match std::env::var("LOFT_BENCH_NAMES").as_deref() {
            Err(_) | Ok("" | "dovecot") => Ok(Names::Dovecot),
            Ok("mta") => Ok(Names::Mta),
            Ok(other) => Err(format!("LOFT_BENCH_NAMES={other}: dovecot or mta")),
        }
    }

    /// The file name of message `i` (`size`: bytes in the file, `crlf`: RFC822.SIZE).
    fn file_name(self, i: u64, date: i64, size: u64, crlf: u64, flags: &str) -> String {
        match self {
            Names::Dovecot => format!("{date}.M{i}P1Q{i}.benchhost,S={size},W={crlf}:2,{flags}"),
            Names::Mta => {
                // Its own generator: the messages stay those of the Dovecot-named corpus.
                let mut r = Rng::new(i ^ 0x6D74_615F_6E61_6D65);
                // A bijection of 0..10^6 (654321 is prime to 10^6): unique per second.
                let usec = (i * 654_321 + 12_345) % 1_000_000;
                let pid = r.range(1000, 65_000);
                let host = r.pick(&["mx1.example.net", "mx2.example.net", "mail"]);
                if r.chance(100) {
                    format!("{date}.M{usec}P{pid}.{host}:2,{flags}")
                } else {
                    format!("{date}.M{usec}P{pid}.{host},S={size}:2,{flags}")
                }
            }
        }
    }
}

/// Where the corpus of `n` messages named `names` is kept.
pub fn corpus_dir(target_dir: &Path, n: u64, names: Names) -> PathBuf {
    match names {
        Names::Dovecot => target_dir.join(format!("bench-corpus-{n}")),
        Names::Mta => target_dir.join(format!("bench-corpus-{n}-mta")),
    }
}
