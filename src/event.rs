//! Events as EQL sees them: interned field paths and the scalar values found under them.
//!
//! Shared vocabulary between the EQL evaluator (`eql`), the sequence engine (`sequence`) and the
//! pipeline. The decoder over simd-json (a parsed line plus field lookup) lives here too.

use hashbrown::HashMap;

/// An interned dotted field path (`process.parent.name`). Indices into a [`FieldTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u32);

/// Every field path referenced by the loaded rules (plus the timestamp/tiebreaker fields),
/// interned once at start-up so that evaluation never handles names.
#[derive(Clone, Debug, Default)]
pub struct FieldTable {
    paths: Vec<Box<str>>,
    index: HashMap<Box<str>, FieldId>,
}

impl FieldTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `path`, adding it if it is new.
    pub fn intern(&mut self, path: &str) -> FieldId {
        if let Some(id) = self.index.get(path) {
            return *id;
        }
        let id = FieldId(u32::try_from(self.paths.len()).expect("fewer than 2^32 distinct fields"));
        self.paths.push(path.into());
        self.index.insert(path.into(), id);
        id
    }

    /// The id of `path`, if interned.
    pub fn get(&self, path: &str) -> Option<FieldId> {
        self.index.get(path).copied()
    }

    /// The dotted path of `id`.
    pub fn path(&self, id: FieldId) -> &str {
        &self.paths[id.0 as usize]
    }

    /// Number of interned fields.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// All `(id, path)` pairs in id order.
    pub fn iter(&self) -> impl Iterator<Item = (FieldId, &str)> {
        self.paths.iter().enumerate().map(|(i, p)| (FieldId(i as u32), &**p))
    }
}

/// One non-null leaf value of a field, borrowed from the parsed event.
///
/// Arrays are flattened by the lookup (each element is its own `Scalar`); JSON `null` and empty
/// arrays are never produced: they count as missing (eql-semantics.md section 6.3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// A JSON string (already unescaped).
    Str(&'a str),
    /// A JSON integer that fits i64.
    I64(i64),
    /// A JSON integer above i64::MAX.
    U64(u64),
    /// A JSON float.
    F64(f64),
    /// A JSON boolean.
    Bool(bool),
}

// ---------------------------------------------------------------------------------------------
// Decoder: one NDJSON line -> simd-json tape -> field lookups.
//
// Field resolution (eql-semantics.md 6.4, 6.5): a path `a.b.c` is found under nested objects
// (`{"a":{"b":{"c":1}}}`), dotted keys (`{"a.b.c":1}`) and any mix (`{"a":{"b.c":1}}`); all
// spellings present in one document are merged, as Elasticsearch merges them into one field.
// Arrays are flattened at every level (`{"a":[{"b":1},{"b":[2,3]}]}` gives 1, 2, 3 for `a.b`);
// `null` elements and empty arrays give nothing.
//
// Duplicate keys (`{"id":"a","id":"b"}`): simd-json keeps both; we visit both, i.e. a duplicated
// key behaves like an array of its values. Elasticsearch rejects such documents at index time
// (strict duplicate detection), so there is no parity target; merging is the policy that agrees
// with how dotted and nested spellings of one field are merged.
// ---------------------------------------------------------------------------------------------

use simd_json::{Node, StaticNode, Tape};

/// Why a line could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not UTF-8.
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// The text is not JSON (or nests deeper than simd-json's limit of 1024).
    #[error("line is not valid JSON")]
    InvalidJson,
    /// Valid JSON, but not an object.
    #[error("line is not a JSON object")]
    NotObject,
}

/// The interned field paths as a trie of dotted segments, so that one walk over a document
/// finds every referenced field (nested objects, dotted keys and mixes alike).
#[derive(Debug, Default)]
struct PathTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Default)]
struct TrieNode {
    /// The field whose path ends here.
    field: Option<FieldId>,
    /// Child segments; looked up linearly when few, by hash when many.
    children: Vec<(Box<str>, u32)>,
    map: Option<HashMap<Box<str>, u32>>,
    /// Bit set of the first bytes of the children: most keys of a document are rejected by
    /// one lookup here.
    first_bytes: [u64; 4],
}

impl TrieNode {
    #[inline]
    fn may_have(&self, key: &str) -> bool {
        match key.as_bytes().first() {
            Some(&b) => self.first_bytes[(b >> 6) as usize] & (1u64 << (b & 63)) != 0,
            None => self.children.iter().any(|(k, _)| k.is_empty()),
        }
    }
}

/// Above this many children a trie node gets a hash map.
const TRIE_LINEAR_MAX: usize = 8;

impl PathTrie {
    fn new(fields: &FieldTable) -> PathTrie {
        let mut t = PathTrie { nodes: vec![TrieNode::default()] };
        for (id, path) in fields.iter() {
            let mut n = 0usize;
            for seg in path.split('.') {
                n = match t.child(n, seg) {
                    Some(c) => c,
                    None => {
                        let c = t.nodes.len();
                        t.nodes.push(TrieNode::default());
                        let c32 = u32::try_from(c).expect("fewer than 2^32 trie nodes");
                        t.nodes[n].children.push((seg.into(), c32));
                        c
                    }
                };
            }
            t.nodes[n].field = Some(id);
        }
        for node in &mut t.nodes {
            for (k, _) in &node.children {
                if let Some(&b) = k.as_bytes().first() {
                    node.first_bytes[(b >> 6) as usize] |= 1u64 << (b & 63);
                }
            }
            if node.children.len() > TRIE_LINEAR_MAX {
                node.map = Some(node.children.iter().cloned().collect());
            }
        }
        t
    }

    #[inline]
    fn child(&self, n: usize, seg: &str) -> Option<usize> {
        let node = self.nodes.get(n)?;
        if let Some(m) = &node.map {
            return m.get(seg).map(|c| *c as usize);
        }
        let sb = seg.as_bytes();
        node.children
            .iter()
            .find(|(k, _)| k.len() == sb.len() && k.as_bytes().first() == sb.first() && **k == *seg)
            .map(|(_, c)| *c as usize)
    }

    /// The trie node reached from `n` by the dotted `key` (`a.b.c` follows three segments).
    #[inline]
    fn follow(&self, mut n: usize, key: &str) -> Option<usize> {
        if !self.nodes.get(n)?.may_have(key) {
            return None;
        }
        if let Some(c) = self.child(n, key) {
            return Some(c);
        }
        if !key.as_bytes().contains(&b'.') {
            return None;
        }
        for seg in key.split('.') {
            n = self.child(n, seg)?;
        }
        Some(n)
    }
}

/// Per-event positions of every referenced field's values in the tape: a linked list of tape
/// indices per field, in document order. Reused between events (generation-stamped, so that
/// nothing is cleared per field).
#[derive(Debug, Default)]
struct FieldIndex {
    gen: u32,
    /// Per field: generation of `first`/`last`.
    stamp: Vec<u32>,
    first: Vec<u32>,
    last: Vec<u32>,
    /// (tape index of a value, next entry or `NONE`)
    entries: Vec<(u32, u32)>,
}

const NONE: u32 = u32::MAX;

impl FieldIndex {
    fn new(fields: usize) -> FieldIndex {
        FieldIndex {
            gen: 0,
            stamp: vec![0; fields],
            first: vec![NONE; fields],
            last: vec![NONE; fields],
            entries: Vec::with_capacity(64),
        }
    }

    fn reset(&mut self) {
        self.entries.clear();
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.gen = 1;
        }
    }

    fn record(&mut self, field: FieldId, node: usize) {
        let f = field.0 as usize;
        let (Ok(node), Ok(e)) = (u32::try_from(node), u32::try_from(self.entries.len())) else {
            return;
        };
        if f >= self.stamp.len() {
            return;
        }
        self.entries.push((node, NONE));
        if self.stamp[f] != self.gen {
            self.stamp[f] = self.gen;
            self.first[f] = e;
        } else if let Some(prev) = self.entries.get_mut(self.last[f] as usize) {
            prev.1 = e;
        }
        self.last[f] = e;
    }

    /// Tape indices of the values recorded for `field`, in document order.
    fn values(&self, field: FieldId) -> impl Iterator<Item = usize> + '_ {
        let f = field.0 as usize;
        let mut e = if self.stamp.get(f) == Some(&self.gen) { self.first[f] } else { NONE };
        std::iter::from_fn(move || {
            let (node, next) = *self.entries.get(e as usize)?;
            e = next;
            Some(node as usize)
        })
    }
}

/// Walks the object at `nodes[obj]` along the trie, recording every field value found.
fn index_object(nodes: &[Node<'_>], obj: usize, trie: &PathTrie, t: usize, idx: &mut FieldIndex) {
    let Some(&Node::Object { len, .. }) = nodes.get(obj) else {
        return;
    };
    let mut i = obj + 1;
    for _ in 0..len {
        let Some(Node::String(key)) = nodes.get(i) else {
            return;
        };
        i += 1;
        let Some(first) = nodes.get(i) else {
            return;
        };
        let n = node_len(first);
        if let Some(c) = trie.follow(t, key) {
            if let Some(f) = trie.nodes[c].field {
                idx.record(f, i);
            }
            if !trie.nodes[c].children.is_empty() {
                index_value(nodes, i, trie, c, idx);
            }
        }
        i += n;
    }
}

/// Descends into an object, or into every element of an array (arrays of objects).
fn index_value(nodes: &[Node<'_>], at: usize, trie: &PathTrie, t: usize, idx: &mut FieldIndex) {
    match nodes.get(at) {
        Some(Node::Object { .. }) => index_object(nodes, at, trie, t, idx),
        Some(&Node::Array { len, .. }) => {
            let mut i = at + 1;
            for _ in 0..len {
                let Some(first) = nodes.get(i) else {
                    return;
                };
                index_value(nodes, i, trie, t, idx);
                i += node_len(first);
            }
        }
        _ => {}
    }
}

/// Parses lines with reused simd-json buffers. One per decode thread.
///
/// After parsing, one walk over the tape (guided by a trie of the interned paths, skipping
/// every subtree no rule references) records where each field's values are, so that field
/// lookups during evaluation cost no search.
pub struct Decoder {
    fields: usize,
    trie: PathTrie,
    index: FieldIndex,
    input: Vec<u8>,
    buffers: simd_json::Buffers,
    /// The tape's allocation, kept between lines (empty, lifetime-erased by `Tape::reset`).
    nodes: Vec<Node<'static>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("fields", &self.fields).finish()
    }
}

impl Decoder {
    /// A decoder that can look up every field of `fields` (fields interned later are missing).
    pub fn new(fields: &FieldTable) -> Decoder {
        Decoder {
            fields: fields.len(),
            trie: PathTrie::new(fields),
            index: FieldIndex::new(fields.len()),
            input: Vec::with_capacity(4096),
            buffers: simd_json::Buffers::new(4096),
            nodes: Vec::with_capacity(512),
        }
    }

    /// Copies `line` into an internal padded buffer (the caller's bytes are never modified) and
    /// parses it.
    pub fn decode(&mut self, line: &[u8]) -> Result<Event<'_>, DecodeError> {
        let len = line.len();
        self.input.clear();
        self.input.extend_from_slice(line);
        self.input.resize(len + simd_json::INPUT_PADDING, b' ');
        let Decoder { fields: _, trie, index, input, buffers, nodes } = self;
        parse_padded(input, len, (trie, index, buffers, nodes))
    }

    /// Parses the first `len` bytes of `buf` where they are, without copying them: `buf` must
    /// extend at least [`simd_json::INPUT_PADDING`] bytes past the line (any bytes; they are
    /// read, never changed). The line's bytes are left unchanged **only if it has no
    /// backslash** (simd-json unescapes strings in place): the caller checks that, or uses
    /// [`Decoder::decode`]. Falls back to a copy when the padding is short.
    pub fn decode_in_place<'a>(&'a mut self, buf: &'a mut [u8], len: usize) -> Result<Event<'a>, DecodeError> {
        if buf.len().saturating_sub(len) < simd_json::INPUT_PADDING {
            return self.decode(&buf[..len.min(buf.len())]);
        }
        let Decoder { fields: _, trie, index, input: _, buffers, nodes } = self;
        parse_padded(buf, len, (trie, index, buffers, nodes))
    }
}

type DecoderParts<'a> = (&'a PathTrie, &'a mut FieldIndex, &'a mut simd_json::Buffers, &'a mut Vec<Node<'static>>);

fn parse_padded<'a>(
    input: &'a mut [u8],
    len: usize,
    (trie, index, buffers, nodes): DecoderParts<'a>,
) -> Result<Event<'a>, DecodeError> {
    let mut tape = Tape(std::mem::take(nodes)).reset();
    let res = simd_json::fill_tape_padded(input, len, buffers, &mut tape);
    index.reset();
    if res.is_ok() {
        index_object(&tape.0, 0, trie, 0, index);
    }
    let ev = Event { nodes: tape.0, slot: nodes, index };
    match res {
        Err(e) => Err(match e.error() {
            simd_json::ErrorType::InvalidUtf8 => DecodeError::InvalidUtf8,
            _ => DecodeError::InvalidJson,
        }),
        Ok(()) if !matches!(ev.nodes.first(), Some(Node::Object { .. })) => Err(DecodeError::NotObject),
        Ok(()) => Ok(ev),
    }
}

/// One parsed event: the simd-json tape of the line plus where each field's values are.
///
/// Strings are borrowed from the decoder's buffer, never copied. Dropping the event gives the
/// tape's allocation back to the decoder.
pub struct Event<'a> {
    nodes: Vec<Node<'a>>,
    slot: &'a mut Vec<Node<'static>>,
    index: &'a FieldIndex,
}

impl Drop for Event<'_> {
    fn drop(&mut self) {
        *self.slot = Tape(std::mem::take(&mut self.nodes)).reset().0;
    }
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event").field("nodes", &self.nodes.len()).finish()
    }
}

/// Number of tape nodes the value starting at `n` occupies.
#[inline]
fn node_len(n: &Node<'_>) -> usize {
    match n {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

impl<'a> Event<'a> {
    /// Visits every non-null scalar under `field` (arrays flattened, arrays of objects
    /// descended, nested objects and dotted keys both resolved, all matches merged); stops and
    /// returns true as soon as `f` returns true.
    ///
    /// The callback may keep borrowed strings for as long as the event is borrowed.
    pub fn any<'s>(&'s self, field: FieldId, mut f: impl FnMut(Scalar<'s>) -> bool) -> bool {
        for at in self.index.values(field) {
            let Some(first) = self.nodes.get(at) else {
                continue;
            };
            // A single string (most values) without the general, dynamically called visit.
            if let Node::String(s) = first {
                if f(Scalar::Str(s)) {
                    return true;
                }
                continue;
            }
            if let Some(val) = self.nodes.get(at..at + node_len(first)) {
                if visit_leaf(val, &mut f) {
                    return true;
                }
            }
        }
        false
    }

    /// True when some non-null value is present (eql-semantics.md 4.2, 6.2 `!= null`).
    pub fn exists(&self, field: FieldId) -> bool {
        self.any(field, |_| true)
    }

    /// The first non-null value, in document order.
    pub fn first<'s>(&'s self, field: FieldId) -> Option<Scalar<'s>> {
        let mut out = None;
        self.any(field, |s| {
            out = Some(s);
            true
        });
        out
    }
}

impl<'a> Event<'a> {
    /// Visits the values of the fields `{parent}.{child}` for each of `children` (`f(i, value)` for
    /// `children[i]`) by walking the parsed tape, whether or not they are in the field table:
    /// the values [`Event::any`] gives for each (nested objects, dotted keys and mixes, arrays
    /// flattened). For fields read for a few events only (rule dispatch's index name), which
    /// interned would make the decoder walk them in every event.
    ///
    /// Fast when the top level has `parent` once, as an object, and no dotted key under it
    /// (`{"data_stream":{"type":..}}`); otherwise a general walk.
    pub fn each_child<'s>(&'s self, parent: &str, children: &[&str], mut f: impl FnMut(usize, Scalar<'s>)) {
        let Some(&Node::Object { len, .. }) = self.nodes.first() else {
            return;
        };
        let pb = parent.as_bytes();
        let mut found: Option<(usize, usize)> = None;
        let mut idx = 1;
        for _ in 0..len {
            let Some(Node::String(key)) = self.nodes.get(idx) else {
                return;
            };
            let at = idx + 1;
            let Some(first) = self.nodes.get(at) else {
                return;
            };
            let end = at + node_len(first);
            let kb = key.as_bytes();
            if kb.len() >= pb.len() && kb.first() == pb.first() && kb.starts_with(pb) {
                if kb.len() == pb.len() && found.is_none() && matches!(first, Node::Object { .. }) {
                    found = Some((at, end));
                } else if kb.len() == pb.len() || kb[pb.len()] == b'.' {
                    // A second `parent`, a dotted `parent.x` key, or not an object.
                    let paths: smallvec::SmallVec<[String; 4]> =
                        children.iter().map(|c| format!("{parent}.{c}")).collect();
                    let paths: smallvec::SmallVec<[(usize, &str); 4]> =
                        paths.iter().map(String::as_str).enumerate().collect();
                    walk_paths(&self.nodes, &paths, &mut f);
                    return;
                }
            }
            idx = end;
        }
        let Some(obj) = found.and_then(|(at, end)| self.nodes.get(at..end)) else {
            return;
        };
        let Some(&Node::Object { len, .. }) = obj.first() else {
            return;
        };
        let mut idx = 1;
        for _ in 0..len {
            let Some(Node::String(key)) = obj.get(idx) else {
                return;
            };
            let at = idx + 1;
            let Some(first) = obj.get(at) else {
                return;
            };
            let end = at + node_len(first);
            if let Some(i) = children.iter().position(|c| *c == &**key) {
                if let Some(val) = obj.get(at..end) {
                    visit_leaf(val, &mut |s| {
                        f(i, s);
                        false
                    });
                }
            }
            idx = end;
        }
    }
}

/// `nodes[0]` is an object header: visits the values under each `(i, path)` of `paths` in it
/// (the general walk of [`Event::each_child`]).
fn walk_paths<'a>(nodes: &[Node<'a>], paths: &[(usize, &str)], f: &mut dyn FnMut(usize, Scalar<'a>)) {
    let Some(&Node::Object { len, .. }) = nodes.first() else {
        return;
    };
    let mut idx = 1;
    for _ in 0..len {
        let Some(Node::String(key)) = nodes.get(idx) else {
            return;
        };
        let at = idx + 1;
        let Some(first) = nodes.get(at) else {
            return;
        };
        idx = at + node_len(first);
        let kb = key.as_bytes();
        // The paths this key leads into: it is the whole path, or a prefix of it at a `.`.
        let mut inner: smallvec::SmallVec<[(usize, &str); 4]> = smallvec::SmallVec::new();
        for &(i, path) in paths {
            let pb = path.as_bytes();
            if !pb.starts_with(kb) {
                continue;
            }
            if pb.len() == kb.len() {
                if let Some(val) = nodes.get(at..idx) {
                    visit_leaf(val, &mut |s| {
                        f(i, s);
                        false
                    });
                }
            } else if pb[kb.len()] == b'.' {
                inner.push((i, &path[kb.len() + 1..]));
            }
        }
        if !inner.is_empty() {
            if let Some(val) = nodes.get(at..idx) {
                walk_inner(val, &inner, f);
            }
        }
    }
}

/// Descends into an object, or into every object of an array, looking for `paths`.
fn walk_inner<'a>(val: &[Node<'a>], paths: &[(usize, &str)], f: &mut dyn FnMut(usize, Scalar<'a>)) {
    match val.first() {
        Some(Node::Object { .. }) => walk_paths(val, paths, f),
        Some(&Node::Array { len, .. }) => {
            any_element(val, len, |el| {
                walk_inner(el, paths, f);
                false
            });
        }
        _ => {}
    }
}

/// Calls `f` on the tape slice of each of the `len` elements of the array at `val[0]`, stopping
/// at the first `true`.
fn any_element<'v, 'a>(val: &'v [Node<'a>], len: usize, mut f: impl FnMut(&'v [Node<'a>]) -> bool) -> bool {
    let mut idx = 1;
    for _ in 0..len {
        let Some(first) = val.get(idx) else {
            return false;
        };
        let n = node_len(first);
        if val.get(idx..idx + n).is_some_and(&mut f) {
            return true;
        }
        idx += n;
    }
    false
}

/// Visits the scalars of a value: itself, or the elements of an array (flattened).
fn visit_leaf<'a>(val: &[Node<'a>], f: &mut dyn FnMut(Scalar<'a>) -> bool) -> bool {
    match val.first() {
        Some(Node::String(s)) => f(Scalar::Str(s)),
        Some(Node::Static(st)) => match *st {
            StaticNode::I64(i) => f(Scalar::I64(i)),
            // simd-json gives U64 for every non-negative integer; Scalar::U64 is only for
            // values above i64::MAX.
            StaticNode::U64(u) => f(i64::try_from(u).map_or(Scalar::U64(u), Scalar::I64)),
            StaticNode::F64(x) => f(Scalar::F64(x)),
            StaticNode::Bool(b) => f(Scalar::Bool(b)),
            #[allow(unreachable_patterns)]
            _ => false,
        },
        Some(&Node::Array { len, .. }) => any_element(val, len, |el| visit_leaf(el, f)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(json: &str, path: &str) -> Vec<String> {
        let mut t = FieldTable::new();
        let id = t.intern(path);
        let mut d = Decoder::new(&t);
        let ev = d.decode(json.as_bytes()).expect("valid test json");
        let mut out = Vec::new();
        ev.any(id, |s| {
            out.push(format!("{s:?}"));
            false
        });
        out
    }

    #[test]
    fn nested_and_dotted_keys_are_the_same_field() {
        assert_eq!(values(r#"{"process":{"name":"x"}}"#, "process.name"), ["Str(\"x\")"]);
        assert_eq!(values(r#"{"process.name":"x"}"#, "process.name"), ["Str(\"x\")"]);
        assert_eq!(values(r#"{"a":{"b.c":1}}"#, "a.b.c"), ["I64(1)"]);
        assert_eq!(values(r#"{"a.b":{"c":1},"a":{"b":{"c":2}}}"#, "a.b.c"), ["I64(1)", "I64(2)"]);
    }

    #[test]
    fn arrays_are_flattened_and_nulls_skipped() {
        assert_eq!(values(r#"{"a":[{"b":1},{"b":[2,null,[3]]},null,"x"]}"#, "a.b"), ["I64(1)", "I64(2)", "I64(3)"]);
        assert!(values(r#"{"a":null}"#, "a").is_empty());
        assert!(values(r#"{"a":[]}"#, "a").is_empty());
        assert!(values(r#"{"a":{"b":1}}"#, "a").is_empty());
    }

    #[test]
    fn prefix_of_a_key_is_not_a_match() {
        assert!(values(r#"{"process":{"names":"x"}}"#, "process.name").is_empty());
        assert!(values(r#"{"proc":{"name":"x"}}"#, "process.name").is_empty());
    }

    #[test]
    fn fields_sharing_a_prefix_are_all_found() {
        let mut t = FieldTable::new();
        let a = t.intern("a");
        let ab = t.intern("a.b");
        let abc = t.intern("a.b.c");
        let x = t.intern("x.y");
        let mut d = Decoder::new(&t);
        let ev = d.decode(br#"{"a":{"b":{"c":1}},"a.b":2,"x.y":[3,{"z":4}],"a.b.c":5}"#).expect("valid");
        let all = |f| {
            let mut v = Vec::new();
            ev.any(f, |s| {
                v.push(s);
                false
            });
            v
        };
        assert_eq!(all(a), vec![]);
        assert_eq!(all(ab), vec![Scalar::I64(2)]);
        assert_eq!(all(abc), vec![Scalar::I64(1), Scalar::I64(5)]);
        assert_eq!(all(x), vec![Scalar::I64(3)]);
        assert_eq!(ev.first(abc), Some(Scalar::I64(1)));
    }

    #[test]
    fn many_sibling_fields_use_the_hashed_trie() {
        let mut t = FieldTable::new();
        let ids: Vec<FieldId> = (0..40).map(|i| t.intern(&format!("k{i}.v"))).collect();
        let mut d = Decoder::new(&t);
        let json = format!("{{{}}}", (0..40).map(|i| format!("\"k{i}\":{{\"v\":{i}}}")).collect::<Vec<_>>().join(","));
        let ev = d.decode(json.as_bytes()).expect("valid");
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(ev.first(*id), Some(Scalar::I64(i as i64)));
        }
    }

    proptest::proptest! {
        /// The tape walk of [`Event::each_child`] gives what the field table gives, for nested,
        /// dotted and mixed spellings, arrays, duplicates and values of every kind.
        #[test]
        fn each_child_agrees_with_the_field_table(doc in proptest::collection::vec((
                proptest::sample::select(vec!["ds", "ds.t", "ds.d", "x", "d", "dsx"]),
                proptest::collection::vec((proptest::sample::select(vec!["t", "d", "t.x", "n", "d.y"]), 0u8..4), 0..4),
                0u8..5,
            ), 0..5)) {
            let mut text = String::from("{");
            for (i, (key, inner, kind)) in doc.iter().enumerate() {
                let leaf = |k: u8| -> String {
                    match k { 0 => "\"a\"".into(), 1 => "[\"b\",1]".into(), 2 => "7".into(), _ => "null".into() }
                };
                let value = match kind {
                    0 | 1 => format!(
                        "{{{}}}",
                        inner.iter().map(|(k, v)| format!("\"{k}\":{}", leaf(*v))).collect::<Vec<_>>().join(",")
                    ),
                    2 => format!("[{{\"t\":{}}},{{\"d\":\"c\"}}]", leaf(inner.len() as u8 % 4)),
                    k => leaf(*k),
                };
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&format!("\"{key}\":{value}"));
            }
            text.push('}');
            let mut t = FieldTable::new();
            let ids = [t.intern("ds.t"), t.intern("ds.d"), t.intern("ds.n")];
            let mut d = Decoder::new(&t);
            let ev = d.decode(text.as_bytes()).expect("generated JSON");
            let mut walked = vec![Vec::new(); 3];
            ev.each_child("ds", &["t", "d", "n"], |i, s| walked[i].push(s));
            let interned: Vec<Vec<Scalar<'_>>> = ids
                .iter()
                .map(|id| {
                    let mut v = Vec::new();
                    ev.any(*id, |s| {
                        v.push(s);
                        false
                    });
                    v
                })
                .collect();
            proptest::prop_assert_eq!(walked, interned, "{}", text);
        }
    }

    #[test]
    fn duplicate_keys_are_merged() {
        assert_eq!(values(r#"{"id":"a","id":"b"}"#, "id"), ["Str(\"a\")", "Str(\"b\")"]);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        assert_eq!(values(r#"{"a":"x\"y\u0041"}"#, "a"), ["Str(\"x\\\"yA\")"]);
    }

    #[test]
    fn decode_errors_are_classified() {
        let t = FieldTable::new();
        let mut d = Decoder::new(&t);
        assert_eq!(d.decode(b"{").unwrap_err(), DecodeError::InvalidJson);
        assert_eq!(d.decode(b"[1]").unwrap_err(), DecodeError::NotObject);
        assert_eq!(d.decode(b"\"x\"").unwrap_err(), DecodeError::NotObject);
        assert_eq!(d.decode(b"{\"a\":\"\xff\"}").unwrap_err(), DecodeError::InvalidUtf8);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(d.decode(deep.as_bytes()).unwrap_err(), DecodeError::InvalidJson);
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(d.decode(deep.as_bytes()).is_err());
        assert!(d.decode(b"{\"a\":1}").is_ok());
    }

    #[test]
    fn deep_arrays_on_an_indexed_path_do_not_crash() {
        let mut t = FieldTable::new();
        let ab = t.intern("a.b");
        let a = t.intern("a");
        let mut d = Decoder::new(&t);
        let json = format!("{{\"a\":{}{{\"b\":1}}{}}}", "[".repeat(1000), "]".repeat(1000));
        let ev = d.decode(json.as_bytes()).expect("within simd-json's depth limit");
        assert_eq!(ev.first(ab), Some(Scalar::I64(1)));
        assert_eq!(ev.first(a), None);
    }

    #[test]
    fn caller_bytes_are_not_modified_and_decoder_is_reusable() {
        let mut t = FieldTable::new();
        let id = t.intern("a");
        let mut d = Decoder::new(&t);
        let line = br#"{"a":"x\ny"}"#.to_vec();
        let copy = line.clone();
        for _ in 0..3 {
            let ev = d.decode(&line).expect("valid");
            assert_eq!(ev.first(id), Some(Scalar::Str("x\ny")));
            assert!(ev.exists(id));
        }
        assert_eq!(line, copy);
    }
}
