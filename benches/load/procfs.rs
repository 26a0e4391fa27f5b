//! Process accounting from `/proc`: memory (VmRSS, Pss from smaps_rollup) and CPU time
//! of this process or of an external server's whole process tree (master + descendants).
//!
//! This module knows nothing about IMAP.

use std::collections::HashMap;

struct Proc {
    pid: u32,
    comm: String,
    /// utime + stime + cutime + cstime, in clock ticks (children that exited and were
    /// reaped still count through their parent's cutime/cstime).
    ticks: u64,
}

/// Parses `/proc/PID/stat`: (comm, ppid, ticks).
fn stat(pid: &str) -> Option<(String, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may contain spaces, so split at the last ')'.
    let close = stat.rfind(')')?;
    let name = stat.get(stat.find('(')? + 1..close)?.to_string();
    let f: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After ')': state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some((name, num(1) as u32, num(11) + num(12) + num(13) + num(14)))
}

/// `root` and all its descendants.
fn tree(root: u32) -> Vec<Proc> {
    let mut all: HashMap<u32, (u32, Proc)> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some((comm, ppid, ticks)) = stat(&pid.to_string()) {
                all.insert(pid, (ppid, Proc { pid, comm, ticks }));
            }
        }
    }
    let inside = |pid: u32| {
        let mut p = pid;
        for _ in 0..64 {
            if p == root {
                return true;
            }
            match all.get(&p) {
                Some((pp, _)) if *pp != 0 => p = *pp,
                _ => return false,
            }
        }
        false
    };
    let keep: Vec<u32> = all.keys().copied().filter(|&p| inside(p)).collect();
    keep.into_iter()
        .filter_map(|p| all.remove(&p).map(|(_, pr)| pr))
        .collect()
}

/// CPU seconds used so far by this process (`None`) or by a server's process tree.
pub fn cpu_seconds(server_pid: Option<u32>) -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks: u64 = match server_pid {
        None => stat("self").map(|s| s.2).unwrap_or(0),
        Some(root) => tree(root).iter().map(|p| p.ticks).sum(),
    };
    ticks as f64 / hz
}

fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the local struct it is given.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// CPU seconds used so far by the server alone, for timing one command from the calling
/// (client) thread. An external server: its process tree, as [`cpu_seconds`]. Loft in this
/// process: the process minus the calling thread, so the client's own work (reading and
/// splitting the responses) is not counted as server time; nanosecond clocks, not ticks.
pub fn server_cpu_seconds(server_pid: Option<u32>) -> f64 {
    match server_pid {
        Some(_) => cpu_seconds(server_pid),
        None => {
            clock_seconds(libc::CLOCK_PROCESS_CPUTIME_ID)
                - clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID)
        }
    }
}

#[derive(Clone, Copy, Default, Debug)]
pub struct Mem {
    pub rss: u64,
    pub pss: u64,
    pub imap_rss: u64,
    pub imap_pss: u64,
    pub imap_procs: u64,
    pub procs: u64,
}

fn status_kb(pid: &str, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Memory of this process (`server_pid == None`) or of a process tree.
pub fn sample(server_pid: Option<u32>) -> Mem {
    let Some(root) = server_pid else {
        return Mem {
            rss: status_kb("self", "status", "VmRSS:"),
            pss: status_kb("self", "smaps_rollup", "Pss:"),
            procs: 1,
            ..Mem::default()
        };
    };
    let mut m = Mem::default();
    for p in tree(root) {
        let ps = p.pid.to_string();
        let rss = status_kb(&ps, "status", "VmRSS:");
        let pss = status_kb(&ps, "smaps_rollup", "Pss:");
        m.rss += rss;
        m.pss += pss;
        m.procs += 1;
        if p.comm == "imap" {
            m.imap_rss += rss;
            m.imap_pss += pss;
            m.imap_procs += 1;
        }
    }
    m
}

/// Bytes of heap in use in this process (glibc's count: not what the allocator keeps of
/// freed memory).
pub fn live_heap() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's counters and returns them by value.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// Gives the allocator's free memory back to the system (to tell live memory from kept).
pub fn trim() {
    // SAFETY: malloc_trim only releases free pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}
