//! Header blocks (RFC 5322 §2.2): where the header ends, iteration over its fields with
//! folding kept intact, unfolding (§2.2.3) and a small tokenizer for MIME structured fields
//! (RFC 2045 §5.1 tokens, quoted strings and comments).
//!
//! Works on raw bytes; tolerant of bare LF line ends and of garbage. It knows nothing about
//! MIME structure or IMAP.

/// Offset of the first body octet: just past the empty line that ends the header. When there
/// is no empty line the whole input is header and the body is empty.
pub fn body_start(data: &[u8]) -> usize {
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.starts_with(b"\r\n") {
            return pos + 2;
        }
        if rest.starts_with(b"\n") {
            return pos + 1;
        }
        match memchr::memchr(b'\n', rest) {
            Some(i) => pos += i + 1,
            None => return data.len(),
        }
    }
    data.len()
}

/// One header field. `raw` is the whole field including folded continuation lines and the
/// final line end; `value` is what follows the colon (also raw, still folded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

/// Iterator over the fields of a header block; stops at the empty line.
pub struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
}

/// The fields of `header` (which may include the terminating empty line and even the body).
pub fn fields(header: &[u8]) -> Fields<'_> {
    Fields {
        data: header,
        pos: 0,
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let data = self.data;
        let start = self.pos;
        let rest = data.get(start..)?;
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        // A field runs to the end of a line not followed by whitespace (RFC 5322 §2.2.3).
        let mut end = start;
        loop {
            end = match memchr::memchr(b'\n', &data[end..]) {
                Some(i) => end + i + 1,
                None => data.len(),
            };
            match data.get(end) {
                Some(b' ') | Some(b'\t') => continue,
                _ => break,
            }
        }
        self.pos = end;
        let raw = &data[start..end];
        let first_line_len = memchr::memchr(b'\n', raw).unwrap_or(raw.len());
        let (name, value) = match memchr::memchr(b':', &raw[..first_line_len]) {
            Some(c) => (trim_end(&raw[..c]), &raw[c + 1..]),
            None => (&raw[..0], raw),
        };
        Some(Field { name, value, raw })
    }
}

/// The raw value of the first field called `name` (case-insensitive).
pub fn first<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    fields(header)
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.value)
}

/// Unfolds a field value: drops every CR and LF (RFC 5322 §2.2.3 unfolding removes the CRLF
/// before whitespace; stray ones are dropped too) and trims surrounding whitespace.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let v: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&c| c != b'\r' && c != b'\n')
        .collect();
    trim(&v).to_vec()
}

pub fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

pub fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &s[n..]
}

pub fn trim_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    &s[..s.len() - n]
}

/// Tokenizer for MIME structured fields (Content-Type, Content-Disposition, ...).
pub struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

/// RFC 2045 §5.1 tspecials.
fn is_tspecial(c: u8) -> bool {
    matches!(
        c,
        b'(' | b')'
            | b'<'
            | b'>'
            | b'@'
            | b','
            | b';'
            | b':'
            | b'\\'
            | b'"'
            | b'/'
            | b'['
            | b']'
            | b'?'
            | b'='
    )
}

impl<'a> Lexer<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Lexer { s, i: 0 }
    }

    pub fn at_end(&mut self) -> bool {
        self.skip_cfws();
        self.i >= self.s.len()
    }

    /// Skips whitespace, line ends and (nested) comments.
    pub fn skip_cfws(&mut self) {
        let mut depth = 0usize;
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b'(' => depth += 1,
                b')' if depth > 0 => depth -= 1,
                b'\\' if depth > 0 => self.i += 1,
                _ if depth > 0 => {}
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => return,
            }
            self.i += 1;
        }
    }

    /// Consumes `c` (after optional CFWS) if it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        self.skip_cfws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A run of token characters (RFC 2045 §5.1).
    pub fn token(&mut self) -> Option<&'a [u8]> {
        self.skip_cfws();
        let start = self.i;
        while let Some(&c) = self.s.get(self.i) {
            if c <= b' ' || c == 0x7f || is_tspecial(c) {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// A quoted string without its quotes, escapes resolved; tolerates a missing end quote.
    pub fn quoted(&mut self) -> Option<Vec<u8>> {
        self.skip_cfws();
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                b'"' => return Some(out),
                b'\\' => {
                    if let Some(&n) = self.s.get(self.i) {
                        out.push(n);
                        self.i += 1;
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(c),
            }
        }
        Some(out)
    }

    /// A parameter value: token or quoted string.
    pub fn value(&mut self) -> Option<Vec<u8>> {
        self.quoted().or_else(|| self.token().map(|t| t.to_vec()))
    }

    /// Skips to just past the next `c` (error recovery).
    pub fn skip_past(&mut self, c: u8) {
        match memchr::memchr(c, self.s.get(self.i..).unwrap_or(&[])) {
            Some(n) => self.i += n + 1,
            None => self.i = self.s.len(),
        }
    }

    /// `*(";" attribute "=" value)` as in Content-Type / Content-Disposition.
    pub fn params(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            if self.at_end() {
                break;
            }
            if !self.eat(b';') {
                self.skip_past(b';');
            }
            let Some(name) = self.token() else { continue };
            if !self.eat(b'=') {
                continue;
            }
            let value = self.value().unwrap_or_default();
            out.push((name.to_vec(), value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_iterates() {
        let m = b"A: 1\r\nB: two\r\n  folded\r\nC:3\r\n\r\nbody";
        assert_eq!(body_start(m), m.len() - 4);
        let f: Vec<_> = fields(m).collect();
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].name, b"B");
        assert_eq!(f[1].raw, b"B: two\r\n  folded\r\n");
        assert_eq!(unfold(f[1].value), b"two  folded");
        assert_eq!(first(m, "c"), Some(&b"3\r\n"[..]));
        assert_eq!(body_start(b"\r\nx"), 2);
        assert_eq!(body_start(b"A: 1\nB: 2"), 9);
        assert_eq!(body_start(b"A: 1\n\nB"), 6);
    }

    #[test]
    fn lexes_params() {
        let mut l = Lexer::new(b" text/plain (c) ; charset=\"utf\\-8\"; format = flowed;;x");
        assert_eq!(l.token(), Some(&b"text"[..]));
        assert!(l.eat(b'/'));
        assert_eq!(l.token(), Some(&b"plain"[..]));
        let p = l.params();
        assert_eq!(
            p,
            vec![
                (b"charset".to_vec(), b"utf-8".to_vec()),
                (b"format".to_vec(), b"flowed".to_vec())
            ]
        );
    }
}
