//! Join keys: the positional tuple of `sequence by` + stage `by` values (eql-semantics.md section 4).

use smallvec::SmallVec;

use super::siphash::SipHasher13;
use crate::event::Scalar;
use crate::metrics::RareCounter;

/// Default `max_key_combinations`: the most join-key tuples one event gives one stage.
pub const DEFAULT_MAX_KEY_COMBINATIONS: usize = 64;

/// The cap on the join-key tuples one event gives one stage (`max_key_combinations`), and the
/// counter of stage matches it cut short.
///
/// Multi-valued keys expand to the cartesian product of their distinct values (eql-semantics.md
/// 4.3), which grows with the product of the array lengths: two keys with 300 values each give
/// 90,000 tuples, each a partial sequence. Past the cap eqlstream keeps the first `max` tuples of
/// the product in its enumeration order (each key's distinct values in document order, the first
/// key varying slowest) and drops the rest; Elasticsearch would use them all, so results differ
/// only for events past the cap. Building the tuples costs time linear in the number of values
/// (see `eql::Stage::keys`).
#[derive(Clone, Debug)]
pub struct KeyLimit {
    /// The most tuples per event and stage (at least 1).
    pub max: usize,
    /// Counts the stage matches whose tuples were cut at `max`.
    pub truncated: RareCounter,
}

impl Default for KeyLimit {
    fn default() -> Self {
        KeyLimit { max: DEFAULT_MAX_KEY_COMBINATIONS, truncated: RareCounter::detached() }
    }
}

/// One component of a join key, owned (it outlives the event it came from).
///
/// Compared exactly and type-sensitively, as ES compares `fields` API values with
/// `Arrays.deepEquals` (section 4.1). `Null` only occurs for optional (`?field`) keys (section 4.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    /// Missing or null optional key.
    Null,
    /// Boolean value.
    Bool(bool),
    /// Integer value.
    I64(i64),
    /// Integer above i64::MAX.
    U64(u64),
    /// Float, by its bit pattern (so it can be hashed).
    F64(u64),
    /// String value.
    Str(Box<str>),
}

impl KeyValue {
    /// The owned key component for a scalar.
    pub fn from_scalar(s: Scalar<'_>) -> Self {
        match s {
            Scalar::Str(s) => KeyValue::Str(s.into()),
            Scalar::I64(i) => KeyValue::I64(i),
            Scalar::U64(u) => KeyValue::U64(u),
            Scalar::F64(f) => KeyValue::F64(f.to_bits()),
            Scalar::Bool(b) => KeyValue::Bool(b),
        }
    }

    /// True when `s` is this value (the comparison of `KeyValue::from_scalar(s) == *self`,
    /// without building the owned value).
    pub fn is(&self, s: Scalar<'_>) -> bool {
        match (self, s) {
            (KeyValue::Str(a), Scalar::Str(b)) => **a == *b,
            (KeyValue::I64(a), Scalar::I64(b)) => *a == b,
            (KeyValue::U64(a), Scalar::U64(b)) => *a == b,
            (KeyValue::F64(a), Scalar::F64(b)) => *a == b.to_bits(),
            (KeyValue::Bool(a), Scalar::Bool(b)) => *a == b,
            _ => false,
        }
    }

    /// The value as a JSON value (as Elasticsearch's EQL API returns `join_keys`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            KeyValue::Null => serde_json::Value::Null,
            KeyValue::Bool(b) => serde_json::Value::Bool(*b),
            KeyValue::I64(i) => serde_json::Value::from(*i),
            KeyValue::U64(u) => serde_json::Value::from(*u),
            KeyValue::F64(bits) => serde_json::Value::from(f64::from_bits(*bits)),
            KeyValue::Str(s) => serde_json::Value::String(s.to_string()),
        }
    }
}

/// A join-key tuple: `sequence by` keys followed by the stage's own `by` keys.
pub type Key = SmallVec<[KeyValue; 4]>;

/// A 128-bit keyed hash of a join key: what the pipeline's sequence machines store per key
/// instead of the key itself (16 bytes instead of ~100 plus the strings).
///
/// Two keys with equal fingerprints are treated as the same key. The two halves are SipHash-1-3
/// values under two independent random 128-bit keys drawn per run ([`Fingerprinter::new`]), so
/// input cannot be crafted to collide, and the chance that any two of `n` distinct live keys
/// collide is about `n^2 / 2^129` (below 10^-26 at 10^6 live keys). The join-key values an alert
/// reports are recovered from its first event (see `pipeline::worker`).
///
/// The keys are four words from the operating system's random source (`getrandom`), not two std
/// `RandomState`s: `RandomState::new` takes a per-thread key pair and adds 1 to its first word
/// for each new state, so two states made in a row share the second half of their key and differ
/// by one in the first: the halves were not independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Fingerprint(pub [u64; 2]);

/// Computes [`Fingerprint`]s; one per run, shared by every thread (cloning keeps the keys).
#[derive(Clone)]
pub struct Fingerprinter {
    /// The SipHash key of each half: `[k0, k1]`.
    keys: [[u64; 2]; 2],
}

impl std::fmt::Debug for Fingerprinter {
    /// Never shows the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter { .. }")
    }
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprinter {
    /// A fingerprinter with fresh random keys: four independent words.
    pub fn new() -> Self {
        let word = || getrandom::u64().expect("the operating system gives random bytes (getrandom)");
        Fingerprinter::with_keys([[word(), word()], [word(), word()]])
    }

    /// A fingerprinter with the given keys, `[k0, k1]` for each half (reproducible runs, tests).
    pub fn with_keys(keys: [[u64; 2]; 2]) -> Self {
        Fingerprinter { keys }
    }

    /// The fingerprint of `key` (component types and string lengths are part of the hashed
    /// encoding, so `["a", "b"]`, `["ab"]` and `[1]` vs `["1"]` differ).
    pub fn of(&self, key: &[KeyValue]) -> Fingerprint {
        use std::hash::{Hash, Hasher};
        Fingerprint(self.keys.map(|[k0, k1]| {
            let mut h = SipHasher13::new(k0, k1);
            key.hash(&mut h);
            h.finish()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_component_boundaries_and_types_apart() {
        let f = Fingerprinter::new();
        let ab: Key = [KeyValue::Str("a".into()), KeyValue::Str("b".into())].into_iter().collect();
        let a_b: Key = [KeyValue::Str("ab".into())].into_iter().collect();
        let one_i: Key = [KeyValue::I64(1)].into_iter().collect();
        let one_s: Key = [KeyValue::Str("1".into())].into_iter().collect();
        assert_ne!(f.of(&ab), f.of(&a_b));
        assert_ne!(f.of(&one_i), f.of(&one_s));
        assert_eq!(f.of(&ab), f.clone().of(&ab.clone()), "clones share the keys");
        assert_ne!(Fingerprinter::new().of(&ab), f.of(&ab), "each run draws new keys");
    }

    #[test]
    fn the_two_halves_use_independent_keys() {
        // std's RandomState::new() gave the second state the key (k0 + 1, k1) of the first.
        for _ in 0..100 {
            let [[a0, a1], [b0, b1]] = Fingerprinter::new().keys;
            assert_ne!(a1, b1, "the halves share no key word");
            assert_ne!(a0.wrapping_add(1), b0);
            assert_ne!(a0, b0);
        }
        // Each half is SipHash-1-3 of the key's std `Hash` encoding under its own key.
        let key: Key = [KeyValue::Str("c0ffee".into()), KeyValue::I64(0)].into_iter().collect();
        let f = Fingerprinter::with_keys([[1, 2], [3, 4]]);
        let half = |k0, k1| {
            use std::hash::{Hash, Hasher};
            let mut h = SipHasher13::new(k0, k1);
            key[..].hash(&mut h);
            h.finish()
        };
        assert_eq!(f.of(&key), Fingerprint([half(1, 2), half(3, 4)]));
        assert_ne!(half(1, 2), half(2, 2), "a key differing by one gives an unrelated half");
    }
}
