//! Fuzzes the auth socket's line parser and SASL steps: any bytes must give a parsed line
//! or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft::auth::socket::{mech, proto};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = proto::readable_id(line);
        let _ = proto::unescape(line);
        if let Ok(proto::ClientLine::Auth(a)) = proto::parse_line(line) {
            if let mech::Step::Cont(_, st) = mech::start(&a.mech, a.resp.as_deref()) {
                let _ = mech::next(st, &String::from_utf8_lossy(line));
            }
        }
    }
});
