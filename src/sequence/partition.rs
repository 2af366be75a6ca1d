//! Routing join keys to partitions, and [`PartitionedMachine`]: one rule's machine split over
//! several partitions with output identical to a single machine's.
//!
//! A sequence only ever joins events with equal keys (eql-semantics.md section 4.1), so the
//! machines of different keys are independent and can live in different partitions (threads).
//! [`partition_of`] uses a fixed hash (FNV-1a over a canonical encoding of the key), never a
//! randomly seeded one, so a key always lands in the same partition, in every run.
//!
//! Determinism: within one *step* (the events released for one input line, then the watermark
//! advance), the set of completed sequences does not depend on the number of partitions; the
//! order does, so the driver sorts each step's output by (completing ordinal, key). A pipeline
//! that merges partition outputs should do the same per input line.

use super::key::{Key, KeyValue};
use super::machine::{Completed, HitKind, MachineCounters, SequenceMachine};
use super::ordinal::Ordinal;
use super::spec::SequenceSpec;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The fixed 64-bit hash of a join key (FNV-1a over each component's type tag and bytes).
pub fn key_hash(key: &Key) -> u64 {
    let mut h = FNV_OFFSET;
    for v in key.iter() {
        h = match v {
            KeyValue::Null => fnv(h, &[0]),
            KeyValue::Bool(b) => fnv(fnv(h, &[1]), &[u8::from(*b)]),
            KeyValue::I64(i) => fnv(fnv(h, &[2]), &i.to_le_bytes()),
            KeyValue::U64(u) => fnv(fnv(h, &[3]), &u.to_le_bytes()),
            KeyValue::F64(bits) => fnv(fnv(h, &[4]), &bits.to_le_bytes()),
            KeyValue::Str(s) => {
                let h = fnv(fnv(h, &[5]), &(s.len() as u64).to_le_bytes());
                fnv(h, s.as_bytes())
            }
        };
    }
    h
}

/// The partition (in `0..partitions`) that owns `key`: the same key always lands in the same
/// partition. `partitions == 0` is treated as 1.
pub fn partition_of(key: &Key, partitions: usize) -> usize {
    let n = partitions.max(1) as u64;
    // Fold the high bits in: FNV's low bits are weak for short keys.
    let h = key_hash(key);
    ((h ^ (h >> 32)) % n) as usize
}

/// One rule's [`SequenceMachine`] over `partitions` partitions, driven on one thread (used by
/// tests and benches; the pipeline runs the partitions on separate threads the same way).
pub struct PartitionedMachine<E> {
    parts: Vec<SequenceMachine<E>>,
    routed: Vec<Vec<(HitKind, Key)>>,
    step: Vec<Completed<E>>,
}

impl<E: Clone> PartitionedMachine<E> {
    /// `partitions` machines for `spec`; the cap `max_partials` is split evenly between them.
    pub fn new(spec: &SequenceSpec, partitions: usize, max_partials: usize) -> Self {
        let n = partitions.max(1);
        let cap = max_partials.div_ceil(n);
        PartitionedMachine {
            parts: (0..n).map(|_| SequenceMachine::new(spec, cap)).collect(),
            routed: vec![Vec::new(); n],
            step: Vec::new(),
        }
    }

    /// Route one released event's hits to the partitions owning their keys.
    pub fn on_event(&mut self, ord: &Ordinal, ev: &E, hits: &[(HitKind, Key)]) {
        let n = self.parts.len();
        if n == 1 {
            self.parts[0].on_event(ord, ev, hits, &mut self.step);
            return;
        }
        for (kind, key) in hits {
            self.routed[partition_of(key, n)].push((*kind, key.clone()));
        }
        for (part, routed) in self.parts.iter_mut().zip(self.routed.iter_mut()) {
            if !routed.is_empty() {
                part.on_event(ord, ev, routed, &mut self.step);
                routed.clear();
            }
        }
    }

    /// End the step for one input line: advance every partition to `watermark_ts` and append
    /// the step's completed sequences to `out`, sorted by (completing ordinal, key).
    pub fn end_step(&mut self, watermark_ts: Option<i64>, out: &mut Vec<Completed<E>>) {
        if let Some(w) = watermark_ts {
            for part in &mut self.parts {
                part.advance(w, &mut self.step);
            }
        }
        self.flush(out);
    }

    /// End of input: finish every partition and append what they emit, sorted.
    pub fn finish(&mut self, out: &mut Vec<Completed<E>>) {
        for part in &mut self.parts {
            part.finish(&mut self.step);
        }
        self.flush(out);
    }

    /// Live partials over all partitions.
    pub fn partials(&self) -> usize {
        self.parts.iter().map(SequenceMachine::partials).sum()
    }

    /// Counters summed over all partitions, reset to zero.
    pub fn take_counters(&mut self) -> MachineCounters {
        let mut c = MachineCounters::default();
        for part in &mut self.parts {
            c += part.take_counters();
        }
        c
    }

    fn flush(&mut self, out: &mut Vec<Completed<E>>) {
        self.step.sort_by(|a, b| a.ordinal.cmp(&b.ordinal).then_with(|| a.key.cmp(&b.key)));
        out.append(&mut self.step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parts: &[&str]) -> Key {
        parts.iter().map(|s| KeyValue::Str((*s).into())).collect()
    }

    #[test]
    fn partition_is_a_fixed_function_of_the_key() {
        let k = key(&["c0ffee", "0", "xmrig"]);
        // Pinned: a change here would move keys between partitions across versions. The value
        // was computed outside this code: FNV-1a 64 over, per string component, the tag byte 5,
        // the length as u64 little-endian, then the bytes.
        assert_eq!(key_hash(&k), 0xd04e_1511_0b99_9308);
        assert_eq!(partition_of(&k, 4), 1);
        assert_eq!(partition_of(&k, 1), 0);
        assert_eq!(partition_of(&k, 0), 0);
    }

    #[test]
    fn fnv_is_the_reference_fnv1a_64() {
        // The published FNV-1a 64 test vectors (offset basis for "", and "a").
        assert_eq!(fnv(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn keys_spread_over_partitions() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[partition_of(&key(&[&format!("{i:064x}"), "0", "sh"]), 4)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn component_boundaries_change_the_hash() {
        assert_ne!(key_hash(&key(&["ab", "c"])), key_hash(&key(&["a", "bc"])));
        let int: Key = [KeyValue::I64(1)].into_iter().collect();
        let string = key(&["1"]);
        assert_ne!(key_hash(&int), key_hash(&string));
    }
}
