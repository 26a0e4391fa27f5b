//! Parser tests, split by concept; shared helpers live here.

mod append;
mod commands;
mod fetch;
mod fuzz;
mod search;

use super::*;
use crate::imap::command::FetchAtt;
use crate::mailbox::date::Date;
use crate::mailbox::search::{NumSet, SearchKey};
use crate::mailbox::{Flags, SysFlags};

pub(super) fn ok(input: &str) -> Command {
    match parse(input.as_bytes()) {
        Ok(r) => r.command,
        Err(e) => panic!("{input:?} failed: {e:?}"),
    }
}

pub(super) fn err(input: &[u8]) -> ParseError {
    match parse(input) {
        Ok(r) => panic!("{:?} parsed as {r:?}", String::from_utf8_lossy(input)),
        Err(e) => e,
    }
}

pub(super) fn set(ranges: &[(u32, u32)]) -> NumSet {
    NumSet {
        ranges: ranges.to_vec(),
    }
}

pub(super) fn flags(sys: &[SysFlags], kws: &[&str]) -> Flags {
    let mut f = Flags::default();
    for s in sys {
        f.sys.insert(*s);
    }
    for k in kws {
        f.add_keyword(k);
    }
    f
}

pub(super) fn search_key(args: &str) -> SearchKey {
    match ok(&format!("t SEARCH {args}")) {
        Command::Search { key, .. } => key,
        other => panic!("{other:?}"),
    }
}

pub(super) fn fetch_atts(args: &str) -> Vec<FetchAtt> {
    match ok(&format!("t FETCH 1 {args}")) {
        Command::Fetch { atts, .. } => atts,
        other => panic!("{other:?}"),
    }
}

pub(super) fn date(y: i32, m: u8, d: u8) -> Date {
    Date::new(y, m, d).unwrap()
}

pub(super) const STAR: u32 = NumSet::STAR;
