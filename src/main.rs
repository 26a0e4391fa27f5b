//! The `loft` command line: `serve`, `check-config`, `pw`, `user` (passwd-file and
//! app-password administration), `index` (rebuild/verify/show a user's index files) and
//! `convert` (a user's mail between Maildir and mbox). Parses arguments, sets up logging
//! and the runtime, and hands over to the library; holds no daemon logic.
#![deny(unsafe_code)]

use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use loft::auth::scheme::HashError;
use loft::auth::FileError;
use loft::auth::{app_passwords, hash_password, passwd_file, useradmin, Scheme, Service};
use loft::config::{self, Config, Diagnostic};

mod privilege;

/// "s" after a count that is not 1.
fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Why a subcommand failed; `main` prints it as `loft: <text>` (the details, such as
/// each configuration problem, were printed before).
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{n} problem{} in {}", plural(*.n), .path.display())]
    Config { n: usize, path: PathBuf },
    #[error("{0} problem(s) found")]
    IndexProblems(usize),
    #[error("{} problem{} found", .0, plural(*.0))]
    CheckProblems(usize),
    /// The configured service account cannot be used (`FILE:LINE:COL: ...`).
    #[error("{0}")]
    Account(Diagnostic),
    #[error("the service account {user}: {err}")]
    Anchor {
        user: String,
        err: privilege::anchor::AnchorError,
    },
    #[error("{0}")]
    Drop(privilege::DropError),
    #[error(transparent)]
    Prepare(#[from] privilege::PrepareError),
    #[error("bad RUST_LOG {value:?}: {err}")]
    RustLog {
        value: String,
        err: tracing_subscriber::filter::ParseError,
    },
    #[error("bad [log] level: {0}")]
    LogLevel(tracing_subscriber::filter::ParseError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Serve(#[from] loft::server::StartError),
    #[error(transparent)]
    Mailbox(#[from] loft::mailbox::Error),
    #[error(transparent)]
    User(#[from] useradmin::Error),
    #[error(transparent)]
    AppPassword(#[from] app_passwords::Error),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("no user {name:?} in {}", .file.display())]
    NoUser { name: String, file: PathBuf },
    #[error("{user} has no app password named {name:?}")]
    NoAppPassword { user: String, name: String },
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Convert(#[from] loft::mailbox::convert::ConvertError),
}

/// Why no new password was read.
#[derive(Debug, thiserror::Error)]
enum PasswordError {
    #[error("the passwords do not match")]
    Mismatch,
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
    #[error("the password is not valid UTF-8")]
    NotUtf8,
    #[error("the password contains a line break")]
    LineBreak,
    #[error("empty password")]
    Empty,
    #[error("{call}: {err}")]
    Terminal {
        call: &'static str,
        err: std::io::Error,
    },
    #[error("cannot read the password: {0}")]
    Prompt(std::io::Error),
}

#[derive(Parser)]
#[command(
    name = "loft",
    version,
    about = "Loft: an IMAP4rev1 and POP3 mail store daemon on Maildir and mbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM or SIGINT.
    Serve {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/loft.toml")]
        config: PathBuf,
    },
    /// Check the configuration, the passwd-file and the TLS pair, then exit.
    CheckConfig {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/loft.toml")]
        config: PathBuf,
    },
    /// Hash a password for the passwd-file (read from stdin, or prompted for twice).
    Pw {
        /// ARGON2ID, ARGON2I, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, PLAIN, SCRAM-SHA-256 or
        /// CRAM-MD5 (the last two also enable the SASL mechanisms of that name).
        #[arg(long, short, default_value = "ARGON2ID")]
        scheme: Scheme,
    },
    /// Manage users in the passwd-file and their app passwords.
    User {
        /// Configuration file (names the passwd-file).
        #[arg(long, short, default_value = "conf/loft.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Rebuild, verify or show the index files of a user's mailboxes.
    Index {
        /// Configuration file (names the storage location and the passwd-file).
        #[arg(long, short, default_value = "conf/loft.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: IndexCmd,
    },
    /// Copy a user's mail into a new store of the other format, keeping UIDVALIDITY,
    /// UIDs, flags, keywords, dates, subscriptions and special-use mailboxes. Refuses
    /// while the user has sessions; logins wait until it is done. The source stays as it
    /// was: switch `[storage]` to the new store and restart, then remove the old one.
    Convert {
        /// Configuration file (names the current store and the passwd-file).
        #[arg(long, short, default_value = "conf/loft.toml")]
        config: PathBuf,
        user: String,
        /// The new store's format.
        #[arg(long)]
        to: FormatArg,
        /// The new store's `location` (`%u`, `%h` as in the config); must be empty.
        #[arg(long)]
        location: String,
        /// mbox: the new store's `inbox` file (`/var/mail/%u`); default `<location>/INBOX`.
        #[arg(long)]
        inbox: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Maildir,
    Mbox,
}

#[derive(Subcommand)]
enum IndexCmd {
    /// Rebuild from the mail files, keeping every UID (all mailboxes, or one).
    Rebuild {
        user: String,
        mailbox: Option<String>,
    },
    /// Check the index files and that they match the mail files; exit 1 on any problem.
    Verify {
        user: String,
        mailbox: Option<String>,
    },
    /// Print the header, counts, each cache field's decision and last use, and sizes.
    Show { user: String, mailbox: String },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user; the password is read from stdin or prompted for twice.
    Add {
        user: String,
        #[arg(long, short, default_value = "ARGON2ID")]
        scheme: Scheme,
    },
    /// Change a user's password, keeping the line's other fields.
    Passwd {
        user: String,
        #[arg(long, short, default_value = "ARGON2ID")]
        scheme: Scheme,
    },
    /// Delete a user (and their app passwords). Mail is left on disk.
    Del { user: String },
    /// List users and their password schemes.
    List,
    /// Application-specific passwords.
    #[command(name = "app-password", subcommand)]
    AppPassword(AppCmd),
}

#[derive(Subcommand)]
enum AppCmd {
    /// Create an app password; it is printed once and only its hash is kept.
    Add {
        user: String,
        #[arg(long)]
        name: String,
        /// Comma-separated: imap, pop3, smtp.
        #[arg(long, value_delimiter = ',', default_value = "imap,pop3,smtp")]
        services: Vec<Service>,
    },
    /// List app passwords (all users, or one).
    List { user: Option<String> },
    /// Revoke an app password by name; effective for the next login.
    Revoke {
        user: String,
        #[arg(long)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Pw { scheme } => pw(scheme),
        Command::User { config, action } => user(&config, action),
        Command::Index { config, action } => index(&config, action),
        Command::Convert {
            config,
            user,
            to,
            location,
            inbox,
        } => convert(&config, &user, to, location, inbox),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loft: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the config for a mail command and, run as root, becomes the service account
/// (files made as root in its mail would lock it out); folders it cannot reach by name
/// are held open first, as `serve` does. Returns the config and what is held.
fn as_service_account(
    config: &Path,
) -> Result<(Config, Option<privilege::anchor::Anchors>), CliError> {
    let mut cfg = load(config)?;
    let mut held = None;
    if let Ok(privilege::Plan::Drop(a)) = privilege::plan(&cfg.server, privilege::current_ids()) {
        let (h, _) = privilege::anchor::hold_closed(&mut cfg, &a, false).map_err(|err| {
            CliError::Anchor {
                user: a.user.clone(),
                err,
            }
        })?;
        held = Some(h);
        privilege::drop_to(&a).map_err(CliError::Drop)?;
    }
    Ok((cfg, held))
}

/// The home directory (for `%h`) of `user` in the passwd-file, when listed.
fn home_of(cfg: &Config, user: &str) -> Option<PathBuf> {
    passwd_file::read(&cfg.auth.passwd_file)
        .ok()
        .and_then(|(t, _)| t.get(user).and_then(|e| e.home.clone()))
}

/// `loft convert USER --to FORMAT --location L [--inbox I]`.
fn convert(
    config: &Path,
    user: &str,
    to: FormatArg,
    location: String,
    inbox: Option<String>,
) -> Result<(), CliError> {
    let (cfg, _held) = as_service_account(config)?;
    let home = home_of(&cfg, user);
    let mut target = cfg.storage.clone();
    target.format = match to {
        FormatArg::Maildir => config::StorageFormat::Maildir,
        FormatArg::Mbox => config::StorageFormat::Mbox,
    };
    target.location = location;
    target.inbox = inbox;
    let job = loft::mailbox::convert::Job {
        user,
        home: home.as_deref(),
        source: &cfg.storage,
        target: &target,
    };
    let report = loft::mailbox::convert::run(&job)?;
    for m in &report.mailboxes {
        let mut line = format!(
            "{}: {} message{}, {} octets, UIDVALIDITY {}, UIDNEXT {}",
            m.name,
            m.messages,
            plural(m.messages as usize),
            m.bytes,
            m.uid_validity,
            m.uid_next
        );
        if m.quoted > 0 {
            line.push_str(&format!(
                ", {} with `From ` lines quoted as `>From `",
                m.quoted
            ));
        }
        if m.vanished > 0 {
            line.push_str(&format!(
                ", {} removed by another program meanwhile",
                m.vanished
            ));
        }
        println!("{line}");
    }
    for p in &report.parents {
        println!("{p}: empty, with sub-mailboxes: now a \\Noselect parent (an mbox directory)");
    }
    println!(
        "converted {} mailbox{} and {} subscription{} of {user} into {}; the old store is unchanged.\n\
         Next: set [storage] format = \"{}\" and location = {:?}{} in {}, restart, then remove the old store.",
        report.mailboxes.len(),
        if report.mailboxes.len() == 1 { "" } else { "es" },
        report.subscriptions,
        plural(report.subscriptions),
        target.location,
        match to {
            FormatArg::Maildir => "maildir",
            FormatArg::Mbox => "mbox",
        },
        target.location,
        target.inbox.as_ref().map(|i| format!(" and inbox = {i:?}")).unwrap_or_default(),
        config.display()
    );
    Ok(())
}

/// `loft index ...`: the user's home (for `%h`) comes from the passwd-file when listed.
fn index(config: &Path, action: IndexCmd) -> Result<(), CliError> {
    let (cfg, _held) = as_service_account(config)?;
    let home = |user: &str| home_of(&cfg, user);
    match action {
        IndexCmd::Rebuild { user, mailbox } => {
            let h = home(&user);
            for line in
                loft::mailbox::index_rebuild(&cfg.storage, &user, h.as_deref(), mailbox.as_deref())?
            {
                println!("{line}");
            }
            Ok(())
        }
        IndexCmd::Verify { user, mailbox } => {
            let h = home(&user);
            let problems =
                loft::mailbox::index_verify(&cfg.storage, &user, h.as_deref(), mailbox.as_deref())?;
            if problems.is_empty() {
                println!("index OK");
                return Ok(());
            }
            for p in &problems {
                println!("{p}");
            }
            Err(CliError::IndexProblems(problems.len()))
        }
        IndexCmd::Show { user, mailbox } => {
            let h = home(&user);
            let text = loft::mailbox::index_show(&cfg.storage, &user, h.as_deref(), &mailbox)?;
            print!("{text}");
            Ok(())
        }
    }
}

/// Loads the config, printing every diagnostic on failure.
fn load(path: &Path) -> Result<Config, CliError> {
    config::load(path).map_err(|diags| {
        for d in &diags {
            eprintln!("{d}");
        }
        CliError::Config {
            n: diags.len(),
            path: path.to_path_buf(),
        }
    })
}

fn serve(path: &Path) -> Result<(), CliError> {
    let mut cfg = load(path)?;
    let plan = privilege::plan(&cfg.server, privilege::current_ids())
        .map_err(|e| CliError::Account(e.diagnostic(&cfg)))?;
    // RUST_LOG, when set, wins over [log] level.
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => tracing_subscriber::EnvFilter::builder()
            .parse(&v)
            .map_err(|err| CliError::RustLog {
                value: v.clone(),
                err,
            })?,
        _ => tracing_subscriber::EnvFilter::builder()
            .parse(&cfg.log.level)
            .map_err(CliError::LogLevel)?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Folders the service account cannot reach by name (a checkout under /root) are held
    // open now, as root; the configuration then names them through those descriptors.
    let held = match &plan {
        privilege::Plan::Drop(a) => hold_closed(&mut cfg, a)?,
        _ => privilege::anchor::Anchors::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    // Privileges are dropped (or kept, per the plan) once everything is bound and before
    // the first connection is accepted.
    let hook_cfg = cfg.clone();
    let enter = move || privilege::enter(&hook_cfg, &plan);
    let result = runtime.block_on(loft::server::serve_with(cfg, enter));
    drop(held); // the descriptors live as long as the server
    Ok(result?)
}

/// `serve`'s [`privilege::anchor::hold_closed`], logged.
fn hold_closed(
    cfg: &mut Config,
    a: &privilege::Account,
) -> Result<privilege::anchor::Anchors, CliError> {
    let (held, done) =
        privilege::anchor::hold_closed(cfg, a, true).map_err(|err| CliError::Anchor {
            user: a.user.clone(),
            err,
        })?;
    for line in done {
        tracing::info!("{line}");
    }
    for h in &held.0 {
        tracing::info!("{}", h.log_line(a));
    }
    Ok(held)
}

fn join_addrs(a: &[std::net::SocketAddr]) -> String {
    a.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// `check-config`'s view of the service account's access (from owners and mode bits, as
/// `serve` would find it after the switch); returns how many problems it printed.
fn check_service_access(cfg: &Config, a: &privilege::Account) -> usize {
    let mut problems = 0;
    let apps = app_passwords::path_for(&cfg.auth.passwd_file);
    for f in [&cfg.auth.passwd_file, &apps] {
        let Some(why) = privilege::denied(f, a, false) else {
            continue;
        };
        if !f.exists() {
            continue;
        }
        let fixable = privilege::is_default_passwd(cfg)
            && std::fs::metadata(f).is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            && privilege::unreachable(f, a).is_none();
        let d = cfg.positions.diagnostic(
            &cfg.path,
            "auth",
            "passwd_file",
            format!(
                "the service account {} cannot read {}: {why}",
                a.user,
                privilege::anchor::real_path(f).display()
            ),
        );
        if fixable {
            eprintln!("{d} (serve gives group {} read access to it)", a.group);
        } else {
            eprintln!("{d}");
            problems += 1;
        }
    }
    if let Some(root) = privilege::mail_root(&cfg.storage.location) {
        // A missing mail root is created by serve; when a folder above it is closed to
        // the account, serve holds it open too (see privilege::anchor).
        let closed = privilege::anchor::closed_ancestor(&root, a);
        let probe = match (root.exists(), closed) {
            (true, _) => privilege::denied(&root, a, true),
            (false, Some(why)) => {
                println!(
                    "{}: {} does not exist yet: serve creates it for {} and reaches it \
                     through a descriptor opened by root before the switch ({why})",
                    cfg.path.display(),
                    root.display(),
                    a.user
                );
                None
            }
            (false, None) => privilege::unreachable(&root, a),
        };
        if let Some(why) = probe {
            let msg = format!(
                "the service account {} cannot write in the mail root {}: {why}",
                a.user,
                privilege::anchor::real_path(&root).display()
            );
            eprintln!(
                "{}",
                cfg.positions
                    .diagnostic(&cfg.path, "storage", "location", msg)
            );
            problems += 1;
        }
    }
    problems + check_spool_access(cfg, a)
}

/// mbox with `inbox` in a spool directory (`/var/mail/%u`): the service account must
/// write there (the spool files, and dotlocks beside them); serve never creates it.
fn check_spool_access(cfg: &Config, a: &privilege::Account) -> usize {
    let spool = match (&cfg.storage.format, &cfg.storage.inbox) {
        (config::StorageFormat::Mbox, Some(t)) => privilege::mail_root(t),
        _ => None,
    };
    let Some(dir) = spool else { return 0 };
    let why = match dir.is_dir() {
        false => Some("it does not exist (serve does not create a spool directory)".to_string()),
        true => privilege::denied(&dir, a, true).map(|why| {
            // A group-writable spool (Debian's /var/mail: root:mail 2775) is the group's.
            let group = std::fs::metadata(&dir)
                .ok()
                .filter(|m| m.mode() & 0o020 != 0)
                .map(|m| m.gid());
            match group.and_then(privilege::group_name) {
                Some(g) if g != a.group => format!(
                    "{why}; its group is {g}: `[server] group = \"{g}\"` gives it (Debian's /var/mail is root:mail 2775)"
                ),
                _ => why,
            }
        }),
    };
    let Some(why) = why else { return 0 };
    let msg = format!(
        "the service account {} cannot write in the spool directory {} (spool files and their dotlocks): {why}",
        a.user,
        dir.display()
    );
    eprintln!(
        "{}",
        cfg.positions.diagnostic(&cfg.path, "storage", "inbox", msg)
    );
    1
}

/// `check-config`: holds open what serve would (closed when check-config ends), so that
/// what follows judges the folders themselves, and explains each; `None` (printed) when
/// a folder cannot be held.
fn explain_held(cfg: &mut Config, a: &privilege::Account) -> Option<privilege::anchor::Anchors> {
    let path = cfg.path.clone();
    match privilege::anchor::hold_closed(cfg, a, false) {
        Ok((held, _)) => {
            for h in &held.0 {
                println!("{}: {}", path.display(), h.explain());
            }
            Some(held)
        }
        Err(e) => {
            eprintln!("{}: the service account {}: {e}", path.display(), a.user);
            None
        }
    }
}

fn check_config(path: &Path) -> Result<(), CliError> {
    let mut cfg = load(path)?;
    let mut problems = 0usize;
    let plan = match privilege::plan(&cfg.server, privilege::current_ids()) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("{}", e.diagnostic(&cfg));
            problems += 1;
            None
        }
    };
    let mut _held = None;
    if let Some(privilege::Plan::Drop(a)) = &plan {
        _held = explain_held(&mut cfg, a).or_else(|| {
            problems += 1;
            None
        });
        problems += check_service_access(&cfg, a);
    }

    let users = if cfg.auth.passwd_file.exists() {
        match passwd_file::read(&cfg.auth.passwd_file) {
            Ok((table, found)) => {
                for p in &found {
                    eprintln!(
                        "{}:{}:1: {}",
                        privilege::anchor::real_path(&cfg.auth.passwd_file).display(),
                        p.line,
                        p.message
                    );
                }
                problems += found.len();
                if let Some(p) = &plan {
                    let (uid, gid) = p.service_ids();
                    for f in table.foreign_ids(uid, gid) {
                        eprintln!(
                            "{}:{}:{}: warning: {f}",
                            privilege::anchor::real_path(&cfg.auth.passwd_file).display(),
                            f.line,
                            f.col
                        );
                    }
                }
                table.len()
            }
            Err(e) => {
                eprintln!("{e}");
                problems += 1;
                0
            }
        }
    } else {
        0 // the default file, created empty on start
    };
    if let Err(e) = loft::tls::check(&cfg.tls) {
        eprintln!("{}: [tls] {e}", path.display());
        problems += 1;
    }
    if problems > 0 {
        return Err(CliError::CheckProblems(problems));
    }

    let mut parts = Vec::new();
    if !cfg.imap.listen.is_empty() {
        parts.push(format!("imap on {}", join_addrs(&cfg.imap.listen)));
    }
    if !cfg.imap.listen_tls.is_empty() {
        parts.push(format!("imaps on {}", join_addrs(&cfg.imap.listen_tls)));
    }
    if !cfg.pop3.listen.is_empty() {
        parts.push(format!("pop3 on {}", join_addrs(&cfg.pop3.listen)));
    }
    if !cfg.pop3.listen_tls.is_empty() {
        parts.push(format!("pop3s on {}", join_addrs(&cfg.pop3.listen_tls)));
    }
    if let Some(socket) = &cfg.auth.socket {
        parts.push(format!("auth socket {}", socket.display()));
    }
    parts.push(format!("{users} user{}", if users == 1 { "" } else { "s" }));
    if let Some(p) = &plan {
        println!("{}: {}", path.display(), p.explain());
    }
    println!("{}: OK ({})", path.display(), parts.join(", "));
    Ok(())
}

fn user(config: &Path, action: UserCmd) -> Result<(), CliError> {
    let cfg = load(config)?;
    let file = &cfg.auth.passwd_file;
    let apps = app_passwords::path_for(file);
    let service = match privilege::plan(&cfg.server, privilege::current_ids()) {
        Ok(privilege::Plan::Drop(a)) => Some(a),
        _ => None,
    };
    let groups_before = [file, &apps].map(|f| std::fs::metadata(f).ok().map(|m| m.gid()));
    user_action(file, &apps, action)?;
    // Run as root, an edit replaces the file with one of root's group: give the service
    // account back the read access it had (or, for the shipped file, needs).
    let Some(a) = service else {
        return Ok(());
    };
    let passwd_shared = groups_before[0] == Some(a.gid);
    for (f, before) in [file, &apps].into_iter().zip(groups_before) {
        let was_shared = before == Some(a.gid) || (before.is_none() && passwd_shared);
        let shared = if was_shared || privilege::is_default_passwd(&cfg) {
            privilege::share_with_group(f, &a)?
        } else {
            None
        };
        if let Some(what) = shared {
            eprintln!("{what}");
        }
    }
    Ok(())
}

fn user_action(file: &Path, apps: &Path, action: UserCmd) -> Result<(), CliError> {
    let apps = apps.to_path_buf();
    let known = |name: &str| -> Result<(), CliError> {
        let (table, _) = passwd_file::read(file)?;
        match table.get(name) {
            Some(_) => Ok(()),
            None => Err(CliError::NoUser {
                name: name.to_string(),
                file: file.to_path_buf(),
            }),
        }
    };
    match action {
        UserCmd::Add { user, scheme } => {
            useradmin::valid_user_name(&user)?;
            let stored = hash_password(scheme, &read_password()?)?;
            useradmin::add(file, &user, &stored)?;
            eprintln!("added {user} to {}", file.display());
        }
        UserCmd::Passwd { user, scheme } => {
            known(&user)?;
            let stored = hash_password(scheme, &read_password()?)?;
            useradmin::set_password(file, &user, &stored)?;
            eprintln!("password of {user} changed");
        }
        UserCmd::Del { user } => {
            useradmin::delete(file, &user)?;
            let n = app_passwords::remove_user(&apps, &user)?;
            eprintln!(
                "deleted {user} ({n} app password{})",
                if n == 1 { "" } else { "s" }
            );
        }
        UserCmd::List => {
            for u in useradmin::list(file)? {
                println!("{}\t{}\t{}", u.name, u.scheme, u.home.unwrap_or_default());
            }
        }
        UserCmd::AppPassword(AppCmd::Add {
            user,
            name,
            services,
        }) => {
            known(&user)?;
            let pw = app_passwords::add(&apps, &user, &name, &services)?;
            let list: Vec<&str> = services.iter().map(|s| s.name()).collect();
            eprintln!(
                "app password {name:?} for {user} ({}); it is shown only now:",
                list.join(",")
            );
            println!("{pw}");
        }
        UserCmd::AppPassword(AppCmd::List { user }) => {
            let (all, bad) = app_passwords::read(&apps)?;
            for (n, m) in bad {
                eprintln!("{}:{n}: {m}", apps.display());
            }
            for e in all
                .iter()
                .filter(|e| user.as_ref().is_none_or(|u| *u == e.user))
            {
                let svc: Vec<&str> = e.services.iter().map(|s| s.name()).collect();
                println!(
                    "{}\t{}\t{}\tcreated {}\tlast used {}",
                    e.user,
                    e.name,
                    svc.join(","),
                    app_passwords::display_time(Some(e.created)),
                    app_passwords::display_time(e.last_used)
                );
            }
        }
        UserCmd::AppPassword(AppCmd::Revoke { user, name }) => {
            if !app_passwords::revoke(&apps, &user, &name)? {
                return Err(CliError::NoAppPassword { user, name });
            }
            eprintln!("revoked app password {name:?} of {user}");
        }
    }
    Ok(())
}

fn pw(scheme: Scheme) -> Result<(), CliError> {
    println!("{}", hash_password(scheme, &read_password()?)?);
    Ok(())
}

/// A new password: from stdin when it is not a terminal (one line), otherwise prompted
/// for twice without echo.
fn read_password() -> Result<String, PasswordError> {
    let password = if std::io::stdin().is_terminal() {
        let first = prompt("Password: ")?;
        let second = prompt("Retype password: ")?;
        if first != second {
            return Err(PasswordError::Mismatch);
        }
        first
    } else {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(PasswordError::Stdin)?;
        let s = String::from_utf8(buf).map_err(|_| PasswordError::NotUtf8)?;
        let s = s.strip_suffix('\n').unwrap_or(&s);
        let s = s.strip_suffix('\r').unwrap_or(s);
        if s.contains(['\n', '\r']) {
            return Err(PasswordError::LineBreak);
        }
        s.to_string()
    };
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    Ok(password)
}

/// Terminal echo control for password prompts (termios).
#[allow(unsafe_code)] // termios calls; each block has a SAFETY comment
mod echo {
    use super::PasswordError;

    /// Turns terminal echo off on stdin for its lifetime (newlines still echo).
    pub(super) struct EchoOff {
        saved: libc::termios,
    }

    impl EchoOff {
        pub(super) fn new() -> Result<EchoOff, PasswordError> {
            let failed = |call| PasswordError::Terminal {
                call,
                err: std::io::Error::last_os_error(),
            };
            // SAFETY: termios is plain data; tcgetattr fills it or fails, checked below.
            let mut saved: libc::termios = unsafe { std::mem::zeroed() };
            if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
                return Err(failed("tcgetattr"));
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            quiet.c_lflag |= libc::ECHONL;
            // SAFETY: `quiet` is a valid termios derived from the current settings.
            if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &quiet) } != 0 {
                return Err(failed("tcsetattr"));
            }
            Ok(EchoOff { saved })
        }
    }

    impl Drop for EchoOff {
        fn drop(&mut self) {
            // SAFETY: restores the settings read in `new`.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
        }
    }
}
use echo::EchoOff;

fn prompt(text: &str) -> Result<String, PasswordError> {
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let _echo = EchoOff::new()?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(PasswordError::Prompt)?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
}
