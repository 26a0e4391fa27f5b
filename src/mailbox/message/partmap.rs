//! The part map: a compact, versioned binary encoding of a message's MIME structure with
//! byte offsets (the `mime.parts` cache value), and resolving FETCH body sections
//! (RFC 3501 §6.4.5) to byte ranges with it, without the message.
//!
//! Offsets index the message as served (CRLF line ends: the bytes of
//! `Mailbox::fetch_message`). The layout is documented in docs/index-format.md
//! ("`mime.parts`"). [`PartMap::decode`] reads bytes that come from a file: it checks every
//! bound, limits depth and part count and answers `None` on anything wrong, never panics.
//!
//! Resolution mirrors [`super::section()`] exactly; the tests compare the two on many
//! messages. This module knows nothing about IMAP encoding or where the bytes live.

use std::ops::Range;

use super::mime::{Body, Part, MAX_DEPTH};
use super::{Section, SectionText};

/// The encoding version written as the first byte.
pub const VERSION: u8 = 1;

/// Messages with more parts than this get no part map (every part costs at least five
/// bytes, so a map stays well below the cache's 1 MiB value limit).
pub const MAX_PARTS: usize = 100_000;

const LEAF: u8 = 0;
const MULTIPART: u8 = 1;
const MESSAGE: u8 = 2;

/// One part: where its header and body are, its body line count and what it contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The header including the empty line that ends it.
    pub header: Range<u64>,
    /// The body (starts where the header ends).
    pub body: Range<u64>,
    /// LF count of the body, as [`Part::body_lines`].
    pub body_lines: u64,
    pub kind: NodeKind,
}

/// What a [`Node`]'s body contains; children are indexes into the map's nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Leaf,
    Multipart(Vec<u32>),
    /// The encapsulated message of a message/rfc822 (or message/global) part.
    Message(u32),
}

/// A decoded part map. Node 0 is the whole message; nodes are in tree (pre-)order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartMap {
    size: u64,
    nodes: Vec<Node>,
}

/// Where a section's octets are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Located<'s> {
    /// Exactly these bytes of the message.
    Range(Range<u64>),
    /// The fields of the header in `header` that are (`keep`) or are not (`!keep`) named
    /// in `names`: apply [`super::section::header_fields`] to those bytes.
    Fields {
        header: Range<u64>,
        names: &'s [String],
        keep: bool,
    },
}

impl PartMap {
    /// Encodes the structure of `root`, parsed from `size` octets. `None` when the tree
    /// is not one [`super::parse`] makes (ranges out of order or beyond `size`), too deep
    /// or has more than [`MAX_PARTS`] parts: such messages are simply not mapped.
    pub fn encode(root: &Part, size: u64) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(32);
        out.push(VERSION);
        put_varint(&mut out, size);
        let mut enc = Encoder {
            out,
            cursor: 0,
            count: 0,
            size,
        };
        enc.part(root, 0)?;
        Some(enc.out)
    }

    /// Decodes an encoded map; `None` for any other version, truncated or trailing bytes,
    /// ranges that do not nest, or limits exceeded.
    pub fn decode(bytes: &[u8]) -> Option<PartMap> {
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION {
            return None;
        }
        let mut d = Decoder {
            buf: rest,
            cursor: 0,
            nodes: Vec::new(),
        };
        let size = d.varint()?;
        d.node(0, 0..size)?;
        if !d.buf.is_empty() {
            return None;
        }
        Some(PartMap {
            size,
            nodes: d.nodes,
        })
    }

    /// The length of the message the map describes (RFC822.SIZE when it was made).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// All parts in tree order; `nodes()[0]` is the message.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn node(&self, i: u32) -> Option<&Node> {
        self.nodes.get(i as usize)
    }

    /// Part `n` (1-based) of the message at node `msg`, as [`super::find_part`].
    fn sub_of_message(&self, msg: u32, n: u32) -> Option<u32> {
        match &self.node(msg)?.kind {
            NodeKind::Multipart(ch) => ch.get((n as usize).checked_sub(1)?).copied(),
            _ if n == 1 => Some(msg),
            _ => None,
        }
    }

    /// The node a part path names (RFC 3501 §6.4.5 part numbering); `None` if absent or
    /// the path is empty.
    pub fn find(&self, path: &[u32]) -> Option<&Node> {
        let (&first, rest) = path.split_first()?;
        let mut cur = self.sub_of_message(0, first)?;
        // Whether `cur` was reached as a child of a multipart (see `section::find_part`).
        let mut child = matches!(self.node(0)?.kind, NodeKind::Multipart(_));
        for &n in rest {
            (cur, child) = match &self.node(cur)?.kind {
                NodeKind::Multipart(ch) => (*ch.get((n as usize).checked_sub(1)?)?, true),
                NodeKind::Message(inner) => (
                    self.sub_of_message(*inner, n)?,
                    matches!(self.node(*inner)?.kind, NodeKind::Multipart(_)),
                ),
                // A leaf child of a multipart has a part 1, itself, once.
                NodeKind::Leaf if n == 1 && child => (cur, false),
                NodeKind::Leaf => return None,
            };
        }
        self.node(cur)
    }

    /// Where the octets of section `s` are; `None` when the message has no such section
    /// (the same cases as [`super::section()`]).
    pub fn locate<'s>(&self, s: &'s Section) -> Option<Located<'s>> {
        let root = self.node(0)?;
        let (target, msg) = if s.part.is_empty() {
            (root, Some(root))
        } else {
            let p = self.find(&s.part)?;
            let m = match p.kind {
                NodeKind::Message(inner) => Some(self.node(inner)?),
                _ => None,
            };
            (p, m)
        };
        let range = match &s.text {
            None if s.part.is_empty() => target.header.start..target.body.end,
            None => target.body.clone(),
            Some(SectionText::Mime) if !s.part.is_empty() => target.header.clone(),
            Some(SectionText::Mime) => return None,
            Some(SectionText::Header) => msg?.header.clone(),
            Some(SectionText::Text) => msg?.body.clone(),
            Some(SectionText::HeaderFields(names)) => {
                return Some(Located::Fields {
                    header: msg?.header.clone(),
                    names,
                    keep: true,
                })
            }
            Some(SectionText::HeaderFieldsNot(names)) => {
                return Some(Located::Fields {
                    header: msg?.header.clone(),
                    names,
                    keep: false,
                })
            }
        };
        Some(Located::Range(range))
    }
}

struct Encoder {
    out: Vec<u8>,
    /// Where the previous part's header ended or its subtree's body ended.
    cursor: u64,
    count: usize,
    size: u64,
}

impl Encoder {
    fn part(&mut self, p: &Part, depth: usize) -> Option<()> {
        self.count += 1;
        if depth > MAX_DEPTH || self.count > MAX_PARTS {
            return None;
        }
        let (hs, he) = (p.header.start as u64, p.header.end as u64);
        let (bs, be) = (p.body.start as u64, p.body.end as u64);
        if he != bs || hs > he || bs > be || be > self.size {
            return None;
        }
        let gap = hs.checked_sub(self.cursor)?;
        let kind = match &p.kind {
            Body::Single => LEAF,
            Body::Multipart(_) => MULTIPART,
            Body::Message(_) => MESSAGE,
        };
        self.out.push(kind);
        put_varint(&mut self.out, gap);
        put_varint(&mut self.out, he - hs);
        put_varint(&mut self.out, be - bs);
        put_varint(&mut self.out, p.body_lines);
        self.cursor = bs;
        match &p.kind {
            Body::Single => {}
            Body::Multipart(ch) => {
                if ch.is_empty() {
                    return None;
                }
                put_varint(&mut self.out, ch.len() as u64);
                for c in ch {
                    self.part(c, depth + 1)?;
                }
            }
            Body::Message(inner) => self.part(inner, depth + 1)?,
        }
        // Children must lie inside the body, or the decoder would refuse the map.
        if self.cursor > be {
            return None;
        }
        self.cursor = be;
        Some(())
    }
}

struct Decoder<'a> {
    buf: &'a [u8],
    cursor: u64,
    nodes: Vec<Node>,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(b)
    }

    /// LEB128, at most 10 bytes, no overflow.
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// Decodes one part (and its subtree) that must lie within `within`; returns its index.
    fn node(&mut self, depth: usize, within: Range<u64>) -> Option<u32> {
        if depth > MAX_DEPTH || self.nodes.len() >= MAX_PARTS {
            return None;
        }
        let kind = self.byte()?;
        let gap = self.varint()?;
        let hlen = self.varint()?;
        let blen = self.varint()?;
        let body_lines = self.varint()?;
        let hs = self.cursor.checked_add(gap)?;
        let bs = hs.checked_add(hlen)?;
        let be = bs.checked_add(blen)?;
        if hs < within.start || be > within.end {
            return None;
        }
        let index = u32::try_from(self.nodes.len()).ok()?;
        self.nodes.push(Node {
            header: hs..bs,
            body: bs..be,
            body_lines,
            kind: NodeKind::Leaf,
        });
        self.cursor = bs;
        let kind = match kind {
            LEAF => NodeKind::Leaf,
            MULTIPART => {
                let n = self.varint()?;
                // Each child takes at least five bytes: a count beyond that is a lie.
                if n == 0 || n > (self.buf.len() / 5) as u64 {
                    return None;
                }
                let mut children = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    children.push(self.node(depth + 1, bs..be)?);
                }
                NodeKind::Multipart(children)
            }
            MESSAGE => NodeKind::Message(self.node(depth + 1, bs..be)?),
            _ => return None,
        };
        if let Some(n) = self.nodes.get_mut(index as usize) {
            n.kind = kind;
        }
        self.cursor = be;
        Some(index)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
pub(crate) mod tests;
