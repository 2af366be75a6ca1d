//! Bytes per partial sequence (issue item 5), measured with a counting global allocator for the
//! seed rule's key shape (eql-semantics.md section 10: key = (container.id, user.id,
//! file.name | process.name); a 64-hex container id, a short user id, a short file name):
//! * as the pipeline stores it: the key's 128-bit fingerprint and an 8-byte event handle (the
//!   size of `store::StoredEvent`), at 10^6 live keys (the acceptance scenario);
//! * as the reference drivers store it: the whole key and a `u64` handle.
//!
//! Run with `--nocapture` to see the figures.
//!
//! The allocator is the global allocator of the whole integration-test binary, whose other tests
//! run in parallel on other threads: it counts only the bytes of the thread that asks
//! ([`live`]), and each test here measures what its own thread allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use eqlstream::sequence::key::{Fingerprint, Fingerprinter, Key, KeyValue};
use eqlstream::sequence::spec::{SequenceSpec, StageKind};
use eqlstream::sequence::{HitKind, Ordinal, SequenceMachine};

struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread. A `Cell` of an integer with a const
    /// initialiser: using it never allocates and needs no destructor, so the allocator may touch it.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Adds `delta` to this thread's count (nothing while the thread is being torn down).
fn count(delta: isize) {
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

/// The bytes this thread holds from the allocator, as far as this file's tests need: the
/// machines measured are built, filled and dropped on the thread of their test.
fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to `System`; only a byte count is kept on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const N: usize = 100_000;
const S: i64 = 1_000_000_000;

fn seed_key(i: usize) -> Key {
    [
        KeyValue::Str(format!("{:064x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)).into()),
        KeyValue::Str("1000".into()),
        KeyValue::Str(format!("xmrig{}", i % 1000).into()),
    ]
    .into_iter()
    .collect()
}

#[test]
fn bytes_per_partial_for_the_seed_rule_key_shape() {
    let keys: Vec<Key> = (0..N).map(seed_key).collect();
    let spec = SequenceSpec {
        stages: vec![StageKind::Positive; 3],
        maxspan_ns: Some(10 * S as u64),
        has_until: false,
        key_arity: 3,
    };
    let mut machine: SequenceMachine<u64> = SequenceMachine::new(&spec, 1_000_000);
    let mut out = Vec::new();
    let before = live();
    for (i, key) in keys.iter().enumerate() {
        let hits = [(HitKind::Stage(0), key.clone())];
        machine.on_event(&Ordinal::new(i as i64, i as u64), &(i as u64), &hits, &mut out);
    }
    let after_stage0 = live();
    for (i, key) in keys.iter().enumerate().take(N / 2) {
        let hits = [(HitKind::Stage(1), key.clone())];
        let t = (N + i) as i64;
        machine.on_event(&Ordinal::new(t, t as u64), &(t as u64), &hits, &mut out);
    }
    let after_stage1 = live();
    assert!(out.is_empty());
    assert_eq!(machine.partials(), N);
    let per_partial_stage0 = (after_stage0 - before) as f64 / N as f64;
    let per_partial_mixed = (after_stage1 - before) as f64 / N as f64;
    eprintln!(
        "bytes per partial (requested from the allocator, seed key shape, E = u64): \
         {per_partial_stage0:.0} with all {N} at stage 0, {per_partial_mixed:.0} with half at stage 1"
    );
    // Key once (~104 B inline + ~80 B of strings), slot, partials, expiry entry.
    assert!(per_partial_stage0 < 400.0, "{per_partial_stage0}");
    assert!(per_partial_mixed < 500.0, "{per_partial_mixed}");
    // Everything is released when the partials expire.
    machine.advance(i64::MAX, &mut out);
    assert_eq!(machine.partials(), 0);
    assert_eq!(machine.keys(), 0);
}

/// The pipeline's shape: 10^6 live keys, each with one first-stage partial (the acceptance
/// scenario of README "Memory"), stored as fingerprints with an 8-byte event handle.
#[test]
fn bytes_per_partial_as_the_pipeline_stores_them() {
    const LIVE_KEYS: usize = 1_000_000;
    let f = Fingerprinter::new();
    let spec = SequenceSpec {
        stages: vec![StageKind::Positive; 3],
        maxspan_ns: Some(10 * S as u64),
        has_until: false,
        key_arity: 3,
    };
    assert_eq!(std::mem::size_of::<eqlstream::store::StoredEvent>(), 8, "the handle stand-in below is a u64");
    let mut machine: SequenceMachine<u64, Fingerprint> = SequenceMachine::new(&spec, LIVE_KEYS);
    let mut out = Vec::new();
    let fingerprints: Vec<Fingerprint> = (0..LIVE_KEYS).map(|i| f.of(&seed_key(i))).collect();
    let before = live();
    for (i, fp) in fingerprints.iter().enumerate() {
        let hits = [(HitKind::Stage(0), *fp)];
        machine.on_event(&Ordinal::new(i as i64, i as u64), &(i as u64), &hits, &mut out);
    }
    let after = live();
    assert!(out.is_empty());
    assert_eq!(machine.partials(), LIVE_KEYS);
    let per_partial = (after - before) as f64 / LIVE_KEYS as f64;
    eprintln!(
        "bytes per partial (requested from the allocator, fingerprint keys, 8-byte handle, \
         {LIVE_KEYS} live keys): {per_partial:.1}"
    );
    // Slot (16-byte fingerprint + 24-byte inline partial), index (4 B + 1 control byte per
    // bucket, 64 tables of 2^15 buckets), 8-byte expiry entry; the queue rounds its capacity up
    // to 2^20 entries (untouched capacity costs address space, not resident memory).
    assert!(per_partial < 62.0, "{per_partial}");
    machine.advance(i64::MAX, &mut out);
    assert_eq!(machine.partials(), 0);
    assert_eq!(machine.keys(), 0);
}
