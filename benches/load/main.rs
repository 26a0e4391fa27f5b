//! Load benchmark: Loft (in-process) or an external IMAP server (Dovecot) on the same
//! generated Maildir corpus, driven by one blocking raw-TCP client. See
//! `docs/performance.md` for results and how to read them.
//!
//! ```text
//! cargo bench --bench load                              # Loft, N = 100,000
//! LOFT_BENCH_TARGET=dovecot cargo bench --bench load    # Dovecot via benches/dovecot.sh
//! LOFT_BENCH_TARGET=compare cargo bench --bench load    # Markdown table of both
//! ```
//!
//! Environment (all optional):
//! `LOFT_BENCH_MESSAGES` (100000), `LOFT_BENCH_TARGET` (loft | dovecot | compare),
//! `LOFT_BENCH_ADDR` (host:port of an already running server: no start/stop),
//! `LOFT_BENCH_SERVER_PID` (its master PID, for memory), `LOFT_BENCH_PORT` (11430, for
//! the Dovecot the bench starts), `LOFT_BENCH_USER`/`LOFT_BENCH_PASS` (bench/bench),
//! `LOFT_BENCH_CLIENTS` (50), `LOFT_BENCH_SECS` (20), `LOFT_BENCH_IDLE` (1000),
//! `LOFT_BENCH_IDLE_SECS` (300), `LOFT_BENCH_IDLE_RSS_CAP_MB` (8000),
//! `LOFT_BENCH_FSYNC` (always: the shipped `[storage] fsync`; optimized | never),
//! `LOFT_BENCH_PHASES` (single,mixed,idle; also select: the first SELECT repeated
//! `LOFT_BENCH_SELECT_REPEAT` (7) times with the index files removed before each), `LOFT_BENCH_DIR` (the cargo target folder),
//! `LOFT_BENCH_PHASES` may also name `session` (one client's work, then the server's
//! RSS with that client still logged in),
//! `LOFT_BENCH_NAMES` (dovecot: names with `W=`; mta: as delivery agents name files, `S=`
//! but no `W=`, 10 % with neither; a corpus of its own).

mod client;
mod corpus;
mod idle;
mod mixed;
mod procfs;
mod report;
mod session;
mod single;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use report::Results;

/// The server under test.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    pub user: String,
    pub pass: String,
    /// `None`: Loft in this process. `Some`: master PID of an external server.
    pub server_pid: Option<u32>,
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => match v.trim().parse() {
            Ok(x) => x,
            Err(_) => {
                eprintln!("{key}={v:?} is not valid; using the default");
                default
            }
        },
        Err(_) => default,
    }
}

fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a libtest-style filter means nothing here.
    let target_dir: PathBuf = std::env::var_os("LOFT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let which: String = env_or("LOFT_BENCH_TARGET", "loft".to_string());
    if which == "compare" {
        let md = report::compare(
            &target_dir.join("bench-results-loft.tsv"),
            &target_dir.join("bench-results-dovecot.tsv"),
        );
        match md {
            Ok(md) => {
                println!("{md}");
                let _ = std::fs::write(target_dir.join("bench-compare.md"), md);
            }
            Err(e) => {
                eprintln!("run both targets first: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    raise_fd_limit();
    let n: u64 = env_or("LOFT_BENCH_MESSAGES", 100_000);
    let phases: String = env_or("LOFT_BENCH_PHASES", "single,mixed,idle".to_string());
    let user: String = env_or("LOFT_BENCH_USER", "bench".to_string());
    let pass: String = env_or("LOFT_BENCH_PASS", "bench".to_string());

    let names = match corpus::Names::from_env() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cdir = corpus::corpus_dir(&target_dir, n, names);
    eprintln!("corpus: {} ({n} messages)", cdir.display());
    let t0 = Instant::now();
    let manifest = match corpus::ensure(&cdir, n, names) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot generate the corpus: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "corpus ready in {:.1} s: {} messages, {:.0} MB, {} with attachments, FROM {} hits, BODY {} hits",
        t0.elapsed().as_secs_f64(),
        manifest.messages,
        manifest.bytes as f64 / 1e6,
        manifest.attachments,
        manifest.from_matches,
        manifest.body_matches
    );

    let mut r = Results::default();
    r.info(
        "corpus_messages",
        "corpus: messages",
        manifest.messages as f64,
        "",
    );
    r.info(
        "corpus_mb",
        "corpus: size on disk (sum of files)",
        manifest.bytes as f64 / 1e6,
        "MB",
    );

    let (target, guard) = match which.as_str() {
        "loft" => start_loft(&target_dir, &cdir, &user, &pass),
        other => start_external(other, &target_dir, &cdir, &user, &pass),
    };
    eprintln!("target: {} at {}", target.name, target.addr);
    // The run's Maildir was linked a moment ago. Both servers treat a directory changed
    // within the last second or two as possibly still changing ("racy") and list it again
    // on the next command; a mailbox opened for the first time has normally been quiet
    // for longer than that, so let it settle before measuring.
    std::thread::sleep(std::time::Duration::from_millis(2500));

    let mut max_uid = manifest.messages;
    if phases.contains("single") {
        eprintln!("single-client measurements...");
        match single::run(&target, &manifest, &mut r) {
            Ok(m) => max_uid = m,
            Err(e) => {
                eprintln!("single-client phase failed: {e}");
                r.problems.push(format!("single-client phase failed: {e}"));
            }
        }
        index_size(&which, &target_dir, &user, manifest.bytes, &mut r);
    }
    if phases.contains("select") {
        let repeat = env_or("LOFT_BENCH_SELECT_REPEAT", 7usize);
        eprintln!("first SELECT, {repeat} times with the index files removed...");
        if let Err(e) = select_again(
            &which,
            &target_dir,
            &target,
            manifest.messages,
            repeat,
            &mut r,
        ) {
            eprintln!("first-SELECT phase failed: {e}");
            r.problems.push(format!("first-SELECT phase failed: {e}"));
        }
    }
    if phases.contains("session") {
        eprintln!("one session's work, then the server's memory...");
        if let Err(e) = session::run(&target, &mut r) {
            eprintln!("session phase failed: {e}");
            r.problems.push(format!("session phase failed: {e}"));
        }
    }
    if phases.contains("mixed") {
        let clients = env_or("LOFT_BENCH_CLIENTS", 50usize);
        let secs = env_or("LOFT_BENCH_SECS", 20u64);
        eprintln!("mixed workload: {clients} clients for {secs} s...");
        mixed::run(&target, max_uid, clients, secs, &mut r);
    }
    if phases.contains("idle") {
        let want = env_or("LOFT_BENCH_IDLE", 1000usize);
        let secs = env_or("LOFT_BENCH_IDLE_SECS", 300u64);
        let cap = env_or("LOFT_BENCH_IDLE_RSS_CAP_MB", 8000u64) << 20;
        eprintln!("idle connections: {want}...");
        idle::run(&target, want, Duration::from_secs(secs), cap, &mut r);
    }

    r.print(&format!("Results: {} (N = {n})", target.name));
    let out = target_dir.join(format!("bench-results-{}.tsv", target.name));
    if let Err(e) = r.write_tsv(&out) {
        eprintln!("cannot write {}: {e}", out.display());
    } else {
        eprintln!("written {}", out.display());
    }
    guard.stop();
}

/// Where the server under test keeps INBOX's index files, and which names count: Loft's
/// `loft.index*` in the Maildir++ root, Dovecot's `dovecot.index*` and `dovecot-uidlist`
/// in the Maildir `benches/dovecot.sh` makes. `None` for a server started elsewhere.
fn index_files(
    which: &str,
    target_dir: &Path,
    user: &str,
) -> Option<(PathBuf, &'static [&'static str])> {
    if std::env::var_os("LOFT_BENCH_ADDR").is_some() {
        return None;
    }
    match which {
        "loft" => Some((
            target_dir.join("bench-loft-run").join("mail").join(user),
            &["loft.index"],
        )),
        "dovecot" => Some((
            (target_dir.join("bench-dovecot-run").join("home").join(user)).join("Maildir"),
            &["dovecot.index", "dovecot-uidlist"],
        )),
        _ => None,
    }
}

/// The first SELECT (index build) again, `repeat` times: before each, every index file of
/// the server is removed and the server is given 3 s to drop what it keeps of the
/// mailbox in memory. One first SELECT varies by a third between runs on a busy 2-core
/// machine; the median and the minimum of several say more.
fn select_again(
    which: &str,
    target_dir: &Path,
    t: &Target,
    messages: u64,
    repeat: usize,
    r: &mut Results,
) -> std::io::Result<()> {
    let Some((dir, _)) = index_files(which, target_dir, &t.user) else {
        return Err(std::io::Error::other("needs a server this bench started"));
    };
    let extra: &[&str] = match which {
        "loft" => &["loft.index", "loft-uidlist"],
        _ => &["dovecot.index", "dovecot-uidlist"],
    };
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..repeat.max(1) {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name();
            if extra.iter().any(|p| name.to_string_lossy().starts_with(p)) {
                std::fs::remove_file(e.path())?;
            }
        }
        std::thread::sleep(Duration::from_secs(3));
        let mut c = client::Client::connect(t.addr, Duration::from_secs(600))?;
        c.login(&t.user, &t.pass)?;
        let mut n = 0;
        let cpu0 = procfs::server_cpu_seconds(t.server_pid);
        let t0 = Instant::now();
        c.run_ok("SELECT INBOX", |u| n = client::exists(u).unwrap_or(n))?;
        wall.push(t0.elapsed());
        cpu.push(procfs::server_cpu_seconds(t.server_pid) - cpu0);
        if n != messages {
            r.problems.push(format!(
                "repeated first SELECT said {n} EXISTS, corpus has {messages}"
            ));
        }
        let _ = c.run("LOGOUT", |_| {});
    }
    wall.sort();
    cpu.sort_by(f64::total_cmp);
    eprintln!(
        "  first SELECT x{}: {:?}",
        wall.len(),
        wall.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    r.ms(
        "select_first_median",
        "first SELECT INBOX, median of repeated index builds",
        wall[wall.len() / 2],
    );
    r.ms("select_first_min", "  fastest of them", wall[0]);
    r.info(
        "select_first_median_cpu",
        "  server CPU time (median)",
        cpu[cpu.len() / 2] * 1000.0,
        "ms",
    );
    Ok(())
}

/// Bytes of the regular files directly in `dir` whose names start with one of `prefixes`.
fn sum_files(dir: &Path, prefixes: &[&str]) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if prefixes.iter().any(|p| name.starts_with(p)) {
            let md = e.metadata()?;
            if md.is_file() {
                total += md.len();
            }
        }
    }
    Ok(total)
}

/// Records INBOX's index size on disk after the single-client phase, in bytes and as a
/// share of the corpus. Servers write some of it when the last session closes, so this
/// waits (up to 5 s) until the size stops changing.
fn index_size(which: &str, target_dir: &Path, user: &str, corpus_bytes: u64, r: &mut Results) {
    let Some((dir, prefixes)) = index_files(which, target_dir, user) else {
        return;
    };
    let mut last = None;
    let started = Instant::now();
    let bytes = loop {
        std::thread::sleep(Duration::from_millis(500));
        match sum_files(&dir, prefixes) {
            Ok(b) if Some(b) == last || started.elapsed() > Duration::from_secs(5) => break b,
            Ok(b) => last = Some(b),
            Err(e) => {
                eprintln!("cannot read {}: {e}", dir.display());
                return;
            }
        }
    };
    eprintln!(
        "  INBOX index on disk: {bytes} B ({:.1}% of the corpus)",
        100.0 * bytes as f64 / corpus_bytes.max(1) as f64
    );
    r.info(
        "index_bytes",
        "INBOX index files on disk after the single-client phase",
        bytes as f64 / 1e6,
        "MB",
    );
    r.info(
        "index_share",
        "  as a share of the corpus size",
        100.0 * bytes as f64 / corpus_bytes.max(1) as f64,
        "%",
    );
}

enum ServerGuard {
    None,
    Loft(Box<(tokio::runtime::Runtime, loft::server::Server)>),
    Script(PathBuf, PathBuf),
}

impl ServerGuard {
    fn stop(self) {
        match self {
            ServerGuard::None => {}
            ServerGuard::Loft(b) => {
                let (rt, server) = *b;
                rt.block_on(server.shutdown());
                rt.shutdown_timeout(Duration::from_secs(5));
            }
            ServerGuard::Script(script, work) => {
                let _ = Command::new("bash")
                    .arg(script)
                    .arg("stop")
                    .arg(work)
                    .status();
            }
        }
    }
}

fn start_loft(target_dir: &Path, cdir: &Path, user: &str, pass: &str) -> (Target, ServerGuard) {
    let dir = target_dir.join("bench-loft-run");
    let _ = std::fs::remove_dir_all(&dir);
    let setup = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("users"), format!("{user}:{{PLAIN}}{pass}::::::\n"))?;
        corpus::link_copy(&cdir.join("Maildir"), &dir.join("mail").join(user))
    };
    if let Err(e) = setup() {
        eprintln!("cannot prepare {}: {e}", dir.display());
        std::process::exit(1);
    }
    let mut cfg = loft::config::Config::for_tests(&dir);
    cfg.imap.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    cfg.imap.listen_tls = vec![];
    // Daemon defaults where for_tests differs, and limits above the benchmark's load.
    cfg.imap.idle_poll = Duration::from_secs(1);
    cfg.server.max_connections = 5000;
    cfg.server.max_connections_per_ip = 5000;
    cfg.server.max_connections_per_user_ip = 5000;
    // `[storage] fsync` as shipped ("always") unless asked: Dovecot's default,
    // mail_fsync=optimized, does not sync flag changes.
    match std::env::var("LOFT_BENCH_FSYNC").as_deref() {
        Ok("optimized") => cfg.storage.fsync = loft::config::FsyncMode::Optimized,
        Ok("never") => cfg.storage.fsync = loft::config::FsyncMode::Never,
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let server = match rt.block_on(loft::server::start(cfg)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Loft did not start: {e}");
            std::process::exit(1);
        }
    };
    let addr = server.imap_addrs[0];
    let t = Target {
        name: "loft".into(),
        addr,
        user: user.into(),
        pass: pass.into(),
        server_pid: None,
    };
    (t, ServerGuard::Loft(Box::new((rt, server))))
}

fn start_external(
    name: &str,
    target_dir: &Path,
    cdir: &Path,
    user: &str,
    pass: &str,
) -> (Target, ServerGuard) {
    if let Ok(a) = std::env::var("LOFT_BENCH_ADDR") {
        let Ok(addr) = a.parse() else {
            eprintln!("LOFT_BENCH_ADDR={a:?} is not host:port");
            std::process::exit(1);
        };
        let pid = std::env::var("LOFT_BENCH_SERVER_PID")
            .ok()
            .and_then(|p| p.parse().ok());
        let t = Target {
            name: name.into(),
            addr,
            user: user.into(),
            pass: pass.into(),
            server_pid: pid,
        };
        return (t, ServerGuard::None);
    }
    if name != "dovecot" {
        eprintln!("LOFT_BENCH_TARGET={name}: give LOFT_BENCH_ADDR (and LOFT_BENCH_SERVER_PID)");
        std::process::exit(1);
    }
    let port: u16 = env_or("LOFT_BENCH_PORT", 11430);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/dovecot.sh");
    let work = target_dir.join("bench-dovecot-run");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(cdir.join("Maildir"))
        .arg(&work)
        .arg(port.to_string())
        .output();
    let pid = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().parse().ok(),
        Ok(o) => {
            eprintln!(
                "dovecot.sh start failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("cannot run {}: {e}", script.display());
            std::process::exit(1);
        }
    };
    let t = Target {
        name: name.into(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        user: user.into(),
        pass: pass.into(),
        server_pid: pid,
    };
    (t, ServerGuard::Script(script, work))
}
