//! Results: a table on stdout, a TSV file per target under `target/`, and the side-by-side
//! comparison (`LOFT_BENCH_TARGET=compare`) with the Loft/Dovecot ratio, as Markdown.
//!
//! This module knows nothing about IMAP.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

pub struct Row {
    pub key: String,
    pub label: String,
    pub value: f64,
    pub unit: String,
}

#[derive(Default)]
pub struct Results {
    pub rows: Vec<Row>,
    /// Wrong answers and errors seen while measuring.
    pub problems: Vec<String>,
}

impl Results {
    pub fn ms(&mut self, key: &str, label: &str, d: Duration) {
        let v = d.as_secs_f64() * 1000.0;
        eprintln!("  {label}: {v:.1} ms");
        self.info(key, label, v, "ms");
    }

    pub fn info(&mut self, key: &str, label: &str, value: f64, unit: &str) {
        self.rows.push(Row {
            key: key.into(),
            label: label.into(),
            value,
            unit: unit.into(),
        });
    }

    pub fn print(&self, title: &str) {
        println!("\n{title}");
        println!("{:<78} {:>14} unit", "measurement", "value");
        for r in &self.rows {
            println!("{:<78} {:>14} {}", r.label, fmt(r.value), r.unit);
        }
        for p in &self.problems {
            println!("PROBLEM: {p}");
        }
    }

    pub fn write_tsv(&self, path: &Path) -> std::io::Result<()> {
        let mut s = String::new();
        for r in &self.rows {
            let _ = writeln!(s, "{}\t{}\t{}\t{}", r.key, r.value, r.unit, r.label);
        }
        for p in &self.problems {
            let _ = writeln!(s, "!problem\t0\t\t{p}");
        }
        std::fs::write(path, s)
    }

    fn read_tsv(path: &Path) -> std::io::Result<Results> {
        let text = std::fs::read_to_string(path)?;
        let mut r = Results::default();
        for line in text.lines() {
            let f: Vec<&str> = line.splitn(4, '\t').collect();
            if f.len() < 4 {
                continue;
            }
            if f[0] == "!problem" {
                r.problems.push(f[3].into());
                continue;
            }
            r.info(f[0], f[3], f[1].parse().unwrap_or(f64::NAN), f[2]);
        }
        Ok(r)
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Markdown table of both result files, in Loft's row order.
pub fn compare(loft: &Path, dovecot: &Path) -> std::io::Result<String> {
    let l = Results::read_tsv(loft)?;
    let d = Results::read_tsv(dovecot)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| measurement | unit | Loft | Dovecot | Loft / Dovecot |"
    );
    let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: |");
    for r in &l.rows {
        let other = d.rows.iter().find(|x| x.key == r.key).map(|x| x.value);
        let ratio = match other {
            Some(o) if o != 0.0 && !o.is_nan() && !r.value.is_nan() => {
                format!("{:.2}", r.value / o)
            }
            _ => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.label.replace('|', "\\|"),
            r.unit,
            fmt(r.value),
            other.map(fmt).unwrap_or_else(|| "—".into()),
            ratio
        );
    }
    for x in &d.rows {
        if !l.rows.iter().any(|r| r.key == x.key) {
            let _ = writeln!(s, "| {} | {} | — | {} | — |", x.label, x.unit, fmt(x.value));
        }
    }
    for p in &l.problems {
        let _ = writeln!(s, "\nLoft problem: {p}");
    }
    for p in &d.problems {
        let _ = writeln!(s, "\nDovecot problem: {p}");
    }
    Ok(s)
}
