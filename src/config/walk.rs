//! Typed reading of spanned TOML values: each getter either returns the value or records
//! a positioned [`Diagnostic`] and returns `None`, so one pass collects every problem.
//! Knows the value shapes Loft uses (durations, sizes, addresses), not which keys exist.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::{line_col, Diagnostic};
use super::units::{parse_duration, parse_size};

pub type Val<'a> = Spanned<DeValue<'a>>;

/// Collects diagnostics for one file.
pub struct Walker<'s> {
    pub file: PathBuf,
    pub src: &'s str,
    /// Folder of the config file: base of relative paths.
    pub dir: PathBuf,
    pub diags: Vec<Diagnostic>,
}

fn article(ty: &str) -> &'static str {
    match ty {
        "integer" | "array" => "an",
        _ => "a",
    }
}

impl<'s> Walker<'s> {
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.src, span.start);
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, key: &str, v: &Val<'_>, expected: &str) {
        let found = v.get_ref().type_str();
        self.error(
            v.span(),
            format!(
                "`{key}` must be {expected}, found {} {found}",
                article(found)
            ),
        );
    }

    pub fn table<'t, 'v>(&mut self, key: &str, v: &'t Val<'v>) -> Option<&'t DeTable<'v>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(key, v, "a table ([section])");
                None
            }
        }
    }

    pub fn string(&mut self, key: &str, v: &Val<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, key: &str, v: &Val<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, v, "true or false");
                None
            }
        }
    }

    /// A non-negative integer no smaller than `min`.
    pub fn uint(&mut self, key: &str, v: &Val<'_>, min: u64) -> Option<u64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(key, v, "an integer");
                return None;
            }
        };
        match n {
            Some(n) if n >= 0 && n as u64 >= min => Some(n as u64),
            Some(0) => {
                self.error(v.span(), format!("`{key}` must not be 0"));
                None
            }
            Some(n) => {
                self.error(v.span(), format!("`{key}` must be at least {min}, not {n}"));
                None
            }
            None => {
                self.error(v.span(), format!("`{key}`: integer out of range"));
                None
            }
        }
    }

    pub fn usize(&mut self, key: &str, v: &Val<'_>, min: u64) -> Option<usize> {
        let n = self.uint(key, v, min)?;
        match usize::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(v.span(), format!("`{key}`: {n} is too large"));
                None
            }
        }
    }

    /// A byte count: an integer, or a string such as "64KiB" or "50M"; at least `min`.
    pub fn size(&mut self, key: &str, v: &Val<'_>, min: u64) -> Option<u64> {
        let n = match v.get_ref() {
            DeValue::Integer(_) => self.uint(key, v, 0)?,
            DeValue::String(s) => match parse_size(s) {
                Ok(n) => n,
                Err(e) => {
                    self.error(v.span(), format!("`{key}`: {e}"));
                    return None;
                }
            },
            _ => {
                self.wrong_type(key, v, "a size (bytes, or a string like \"64KiB\")");
                return None;
            }
        };
        if n < min {
            if n == 0 {
                self.error(v.span(), format!("`{key}` must not be 0"));
            } else {
                self.error(v.span(), format!("`{key}` must be at least {min} bytes"));
            }
            return None;
        }
        Some(n)
    }

    /// A duration: integer seconds, or a string like "2s", "30m", "500ms".
    pub fn duration(&mut self, key: &str, v: &Val<'_>) -> Option<Duration> {
        match v.get_ref() {
            DeValue::Integer(_) => self.uint(key, v, 0).map(Duration::from_secs),
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.error(v.span(), format!("`{key}`: {e}"));
                    None
                }
            },
            _ => {
                self.wrong_type(key, v, "a duration (seconds, or a string like \"30m\")");
                None
            }
        }
    }

    /// Socket addresses: one string or an array of strings, each `IP:PORT`
    /// (`[::1]:143` for IPv6). Port 0 is refused: clients could not find us.
    pub fn addrs(&mut self, key: &str, v: &Val<'_>) -> Option<Vec<(SocketAddr, Range<usize>)>> {
        let items: Vec<&Val<'_>> = match v.get_ref() {
            DeValue::String(_) => vec![v],
            DeValue::Array(a) => a.iter().collect(),
            _ => {
                self.wrong_type(key, v, "an address string or an array of them");
                return None;
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(s) = self.string(key, item) else {
                ok = false;
                continue;
            };
            match s.parse::<SocketAddr>() {
                Ok(a) if a.port() == 0 => {
                    self.error(item.span(), format!("`{key}`: {s:?} has port 0"));
                    ok = false;
                }
                Ok(a) => out.push((a, item.span())),
                Err(_) => {
                    self.error(
                        item.span(),
                        format!(
                            "`{key}`: cannot parse {s:?} as an address \
                             (expected IP:PORT, e.g. \"127.0.0.1:143\" or \"[::]:143\")"
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A path string, relative ones resolved against the config folder.
    pub fn path(&mut self, key: &str, v: &Val<'_>) -> Option<PathBuf> {
        let s = self.string(key, v)?;
        if s.is_empty() {
            self.error(v.span(), format!("`{key}` must not be empty"));
            return None;
        }
        Some(self.resolve(Path::new(&s)))
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}
