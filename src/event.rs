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
        self.paths
            .iter()
            .enumerate()
            .map(|(i, p)| (FieldId(i as u32), &**p))
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
