//! Storage for a sequence machine's per-key state: every join key (or its fingerprint) is stored
//! once, in a slab, and found through a hashbrown `HashTable` of slab indices; an expiry queue in
//! creation order lets garbage collection and the global cap touch only the entries they remove.
//!
//! Memory: a slot is the key plus the value, nothing else (the hash is recomputed when the index
//! grows, which is rare); the index costs 4 bytes plus one control byte per bucket, in
//! [`INDEX_SHARDS`] tables so that a table that doubles holds its old and new buckets for a
//! 64th of the keys only; an expiry entry is 8 bytes. Knows nothing of stages or EQL: the
//! machine decides what a slot holds.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};

use hashbrown::hash_table::{Entry, HashTable};
use hashbrown::DefaultHashBuilder;

/// Index of a key's slot in a [`KeyTable`]; stable while the slot is live.
pub(crate) type SlotId = u32;

struct Slot<K, V> {
    key: K,
    value: V,
}

/// A slab entry: a live slot, or a free one holding the next free slot's id (the free list runs
/// through the slab itself, so freeing 10^6 keys allocates nothing).
enum SlotEntry<K, V> {
    Live(Slot<K, V>),
    Free { next: SlotId },
}

impl<K, V> SlotEntry<K, V> {
    fn live(&self) -> Option<&Slot<K, V>> {
        match self {
            SlotEntry::Live(s) => Some(s),
            SlotEntry::Free { .. } => None,
        }
    }

    fn live_mut(&mut self) -> Option<&mut Slot<K, V>> {
        match self {
            SlotEntry::Live(s) => Some(s),
            SlotEntry::Free { .. } => None,
        }
    }
}

/// End of the free list.
const NO_SLOT: SlotId = SlotId::MAX;

/// Slots per chunk of a [`Chunked`] array.
const CHUNK: usize = 4096;

/// A growable array in fixed chunks of [`CHUNK`] entries: growing never moves or copies
/// entries, and never holds an old and a new copy of the array at once (a `Vec` of 10^6 slots
/// would), so the memory it takes follows its length.
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Chunked<T> {
    fn new() -> Self {
        Chunked { chunks: Vec::new(), len: 0 }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, v: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(v),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(v);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }
}

impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> std::ops::IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

/// Number of hash tables the index of a [`KeyTable`] is split into (by 6 bits of the key's
/// hash). A hashbrown table grows by allocating twice its buckets and moving every entry while
/// the old buckets are still held: with one table of 2^20 buckets, that is a transient 5 MiB
/// on top of the 10 MiB the new table keeps; split, each table grows on its own, 64 times less.
pub(crate) const INDEX_SHARDS: usize = 64;

/// The index shard of a hash: bits 32..38, which neither hashbrown's bucket index (the low
/// bits, for tables below 2^32 buckets) nor its control byte (the top 7 bits) uses, so that
/// keys within a shard still spread over all buckets and control bytes.
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % INDEX_SHARDS
}

/// Join key -> state, with each key stored once. Freed slots are reused.
pub(crate) struct KeyTable<K, V> {
    index: Box<[HashTable<SlotId>]>,
    slots: Chunked<SlotEntry<K, V>>,
    /// First free slot ([`NO_SLOT`] if none); the list continues in the free entries.
    free_head: SlotId,
    hasher: DefaultHashBuilder,
}

impl<K: Hash + Eq + Clone, V> KeyTable<K, V> {
    /// An empty table.
    pub(crate) fn new() -> Self {
        KeyTable {
            index: (0..INDEX_SHARDS).map(|_| HashTable::new()).collect(),
            slots: Chunked::new(),
            free_head: NO_SLOT,
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// The slot of `key`, if it has one.
    pub(crate) fn find(&self, key: &K) -> Option<SlotId> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.index[shard_of(hash)].find(hash, |&id| slots[id as usize].live().is_some_and(|s| s.key == *key)).copied()
    }

    /// The slot of `key`, created with `make()` (and a clone of `key`) if absent.
    pub(crate) fn find_or_insert(&mut self, key: &K, make: impl FnOnce() -> V) -> SlotId {
        let hash = self.hasher.hash_one(key);
        let slots = &mut self.slots;
        let hasher = &self.hasher;
        let entry = self.index[shard_of(hash)].entry(
            hash,
            |&id| slots[id as usize].live().is_some_and(|s| s.key == *key),
            |&id| slots[id as usize].live().map_or(0, |s| hasher.hash_one(&s.key)),
        );
        match entry {
            Entry::Occupied(o) => *o.get(),
            Entry::Vacant(v) => {
                let slot = Slot { key: key.clone(), value: make() };
                let reuse = match slots.get(self.free_head as usize) {
                    Some(SlotEntry::Free { next }) => Some((self.free_head, *next)),
                    _ => None,
                };
                let id = if let Some((id, next)) = reuse {
                    slots[id as usize] = SlotEntry::Live(slot);
                    self.free_head = next;
                    id
                } else {
                    let id = SlotId::try_from(slots.len())
                        .ok()
                        .filter(|&id| id != NO_SLOT)
                        .expect("fewer than 2^32 - 1 live join keys per machine");
                    slots.push(SlotEntry::Live(slot));
                    id
                };
                v.insert(id);
                id
            }
        }
    }

    /// The key of a live slot.
    pub(crate) fn key(&self, id: SlotId) -> &K {
        &self.live(id).key
    }

    /// The state of a live slot.
    pub(crate) fn get(&self, id: SlotId) -> &V {
        &self.live(id).value
    }

    /// The state of a slot, if it is live.
    pub(crate) fn try_get(&self, id: SlotId) -> Option<&V> {
        self.slots.get(id as usize)?.live().map(|s| &s.value)
    }

    /// The state of a live slot, mutably.
    pub(crate) fn get_mut(&mut self, id: SlotId) -> &mut V {
        &mut self.slots[id as usize].live_mut().expect("slot ids held by the machine refer to live slots").value
    }

    /// Remove a live slot (its id may then be reused).
    pub(crate) fn remove(&mut self, id: SlotId) {
        let entry = &mut self.slots[id as usize];
        if entry.live().is_none() {
            return;
        }
        let SlotEntry::Live(slot) = std::mem::replace(entry, SlotEntry::Free { next: self.free_head }) else {
            return;
        };
        self.free_head = id;
        let hash = self.hasher.hash_one(&slot.key);
        if let Ok(o) = self.index[shard_of(hash)].find_entry(hash, |&x| x == id) {
            o.remove();
        }
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.index.iter().map(HashTable::len).sum()
    }

    /// Calls `f` with the state of every live key.
    pub(crate) fn for_each_value(&self, mut f: impl FnMut(&V)) {
        for i in 0..self.slots.len {
            if let Some(s) = self.slots[i].live() {
                f(&s.value);
            }
        }
    }

    /// Remove every key.
    pub(crate) fn clear(&mut self) {
        self.index.iter_mut().for_each(HashTable::clear);
        self.slots.clear();
        self.free_head = NO_SLOT;
    }

    fn live(&self, id: SlotId) -> &Slot<K, V> {
        self.slots[id as usize].live().expect("slot ids held by the machine refer to live slots")
    }
}

/// One entry of the expiry queue: the partial's key slot and the low 32 bits of its serial
/// (creation number). The first-event timestamp is read from the partial itself.
///
/// 32 bits suffice to tell a live partial from a stale entry: an entry only names a partial of
/// its own slot, and a stale entry is dropped by compaction or at the front before more than
/// about four times `max_partials` newer entries are pushed, far fewer than 2^32.
pub(crate) type ExpiryEntry = (SlotId, u32);

/// Partials in creation order, which is also (first-event timestamp, serial) order because the
/// machine receives events in increasing ordinal: the oldest partial is always at the front, so
/// expiry (first.ts + maxspan < watermark) and the global cap pop from the front only.
///
/// mini-redis keeps a `BTreeSet<(Instant, key)>` because its expiries arrive in any order; here
/// they arrive sorted, so a FIFO suffices: O(1) per operation, 8 bytes per entry, sequential
/// memory. A partial that ends elsewhere (superseded, completed, killed by `until`) is not
/// searched for: its entry goes stale ([`ExpiryQueue::forget`]), is skipped when it reaches the
/// front, and the queue is compacted when stale entries outnumber live ones.
#[derive(Default)]
pub(crate) struct ExpiryQueue {
    queue: VecDeque<ExpiryEntry>,
    live: usize,
}

impl ExpiryQueue {
    /// Track a new partial (entries must come in increasing order).
    pub(crate) fn push(&mut self, e: ExpiryEntry) {
        self.queue.push_back(e);
        self.live += 1;
    }

    /// A tracked partial ended without being popped: its entry is now stale.
    pub(crate) fn forget(&mut self) {
        self.live -= 1;
    }

    /// The front entry, live or stale.
    pub(crate) fn front(&self) -> Option<ExpiryEntry> {
        self.queue.front().copied()
    }

    /// Remove the front entry (the caller knows whether it was live, and calls
    /// [`Self::forget`] when the partial it names is dropped).
    pub(crate) fn pop_front(&mut self) {
        self.queue.pop_front();
    }

    /// Number of live partials.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// True when no partial is tracked (stale entries may remain).
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Drop stale entries once they outnumber live ones (amortised O(1) per partial).
    pub(crate) fn compact_if_sparse(&mut self, is_live: impl FnMut(&ExpiryEntry) -> bool) {
        if self.queue.len() > 2 * self.live + 64 {
            self.queue.retain(is_live);
            debug_assert_eq!(self.queue.len(), self.live);
        }
    }

    /// Forget everything.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.live = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::key::{Key, KeyValue};

    fn key(s: &str) -> Key {
        let mut k = Key::new();
        k.push(KeyValue::Str(s.into()));
        k
    }

    #[test]
    fn keys_are_stored_once_and_slots_are_reused() {
        let mut t: KeyTable<Key, u32> = KeyTable::new();
        let a = t.find_or_insert(&key("a"), || 1);
        let b = t.find_or_insert(&key("b"), || 2);
        assert_ne!(a, b);
        assert_eq!(t.find_or_insert(&key("a"), || 9), a);
        assert_eq!(*t.get(a), 1);
        assert_eq!(t.len(), 2);
        t.remove(a);
        assert_eq!(t.find(&key("a")), None);
        assert_eq!(t.len(), 1);
        let c = t.find_or_insert(&key("c"), || 3);
        assert_eq!(c, a, "freed slot reused");
        assert_eq!(t.key(c), &key("c"));
        assert_eq!(t.find(&key("b")), Some(b));
    }

    #[test]
    fn the_free_list_through_the_slab_reuses_every_freed_slot() {
        let mut t: KeyTable<Key, u32> = KeyTable::new();
        let ids: Vec<SlotId> = (0..100).map(|i| t.find_or_insert(&key(&i.to_string()), || i)).collect();
        for &id in ids.iter().step_by(3) {
            t.remove(id);
            t.remove(id); // twice: no effect
        }
        assert_eq!(t.len(), 66);
        let mut reused: Vec<SlotId> = (0..34).map(|i| t.find_or_insert(&key(&format!("n{i}")), || 0)).collect();
        reused.sort_unstable();
        assert_eq!(reused, ids.iter().step_by(3).copied().collect::<Vec<_>>(), "freed slots come back first");
        assert_eq!(t.find_or_insert(&key("new"), || 0), 100, "then the slab grows");
        for i in (1..100).filter(|i| i % 3 != 0) {
            assert_eq!(t.try_get(t.find(&key(&i.to_string())).unwrap()), Some(&i));
        }
    }

    #[test]
    fn many_keys_spread_over_the_index_shards() {
        let mut t: KeyTable<u64, u64> = KeyTable::new();
        let ids: Vec<SlotId> = (0..20_000u64).map(|k| t.find_or_insert(&k, || k * 2)).collect();
        assert_eq!(t.len(), 20_000);
        for (k, id) in ids.iter().enumerate() {
            assert_eq!(t.find(&(k as u64)), Some(*id));
            assert_eq!(*t.get(*id), k as u64 * 2);
        }
        let sizes: Vec<usize> = t.index.iter().map(HashTable::len).collect();
        assert!(sizes.iter().all(|&n| n > 200 && n < 450), "{sizes:?}");
        for k in (0..20_000u64).step_by(2) {
            let id = t.find(&k).expect("present");
            t.remove(id);
        }
        assert_eq!(t.len(), 10_000);
        assert_eq!(t.find(&2), None);
        assert!(t.find(&3).is_some());
        t.clear();
        assert_eq!(t.len(), 0);
    }
}
