//! Sequence engine throughput (issue 3): events/s through one rule's [`SequenceMachine`] with
//! 100,000 live join keys of the seed rule's shape (64-hex container id, user id, file name;
//! eql-semantics.md section 10), and through the per-line [`RuleStream`] driver with
//! out-of-order input (reorder buffer + machine).
//!
//! Included from `benches/engine/main.rs` as `mod sequence;` with `sequence::benches` in its
//! `criterion_group!`.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use eqlstream::sequence::key::{Key, KeyValue};
use eqlstream::sequence::spec::{SequenceSpec, StageKind};
use eqlstream::sequence::{HitKind, Ordinal, RuleStream, SequenceMachine, StreamConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const KEYS: usize = 100_000;
const BATCH: usize = 10_000;
const S: i64 = 1_000_000_000;

fn seed_key(i: usize) -> Key {
    [
        KeyValue::Str(format!("{:064x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)).into()),
        KeyValue::Str(format!("{}", i % 7 * 1000).into()),
        KeyValue::Str(format!("xmrig{}", i % 1000).into()),
    ]
    .into_iter()
    .collect()
}

fn seed_spec() -> SequenceSpec {
    SequenceSpec {
        stages: vec![StageKind::Positive; 3],
        maxspan_ns: Some(10 * S as u64),
        has_until: false,
        key_arity: 3,
    }
}

/// (key index, stage) of a pseudo-random event stream, fixed seed: uniform keys; stages 0, 1, 2
/// in proportions 2:1:1, so that most keys hold a partial at any time.
fn pattern(n: usize) -> Vec<(u32, u16)> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..n)
        .map(|_| {
            let stage = [0, 0, 1, 2][rng.random_range(0..4usize)];
            (rng.random_range(0..KEYS as u32), stage)
        })
        .collect()
}

/// Machine only: keys already extracted, one stage hit per event, 1 µs apart (no expiry).
fn machine_100k_keys(c: &mut Criterion) {
    let mut hits: Vec<(HitKind, Key)> = (0..KEYS).map(|i| (HitKind::Stage(0), seed_key(i))).collect();
    let events = pattern(1 << 20);
    let mut machine: SequenceMachine<u64> = SequenceMachine::new(&seed_spec(), 1_000_000);
    let mut out = Vec::new();
    let mut n: u64 = 0;
    let mut step = |machine: &mut SequenceMachine<u64>, out: &mut Vec<_>, count: usize| {
        for _ in 0..count {
            let (k, s) = events[(n as usize) & ((1 << 20) - 1)];
            let hit = &mut hits[k as usize];
            hit.0 = HitKind::Stage(s);
            let ord = Ordinal::new(n as i64 * 1_000, n);
            machine.on_event(&ord, &n, std::slice::from_ref(hit), out);
            n += 1;
        }
        out.clear();
    };
    // Warm up to a steady state: every key seen several times.
    step(&mut machine, &mut out, 5 * KEYS);
    eprintln!("sequence machine: {} live keys, {} live partials after warm-up", machine.keys(), machine.partials());
    let mut group = c.benchmark_group("sequence/machine");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("on_event_100k_keys", |b| {
        b.iter(|| step(&mut machine, &mut out, BATCH));
    });
    group.finish();
    black_box(machine.partials());
}

/// Reorder buffer + machine: events up to 100 ms out of order, key tuples built per event (as the
/// EQL compiler does), watermark advanced per line.
fn stream_100k_keys(c: &mut Criterion) {
    let keys: Vec<Key> = (0..KEYS).map(seed_key).collect();
    let events = pattern(1 << 20);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Up to 100 ms out of order (2,000 lines at 50 µs apart).
    let jitter: Vec<i64> = (0..1 << 16).map(|_| rng.random_range(0..S / 10)).collect();
    let mut stream: RuleStream<u64> = RuleStream::new(&seed_spec(), StreamConfig::default());
    let mut out = Vec::new();
    let mut n: u64 = 0;
    let mut step = |stream: &mut RuleStream<u64>, out: &mut Vec<_>, count: usize| {
        for _ in 0..count {
            let (k, s) = events[(n as usize) & ((1 << 20) - 1)];
            // 50 µs apart: 200,000 lines per maxspan, so ~100,000 keys stay live; the
            // reorder buffer holds 2 s = 40,000 lines.
            let ts = n as i64 * 50_000 - jitter[(n as usize) & 0xffff];
            let hits = vec![(HitKind::Stage(s), keys[k as usize].clone())];
            stream.line(Some(ts), None, n, hits, out);
            n += 1;
        }
        out.clear();
    };
    step(&mut stream, &mut out, 5 * KEYS);
    eprintln!(
        "sequence stream: {} live partials, {} buffered lines after warm-up",
        stream.partials(),
        stream.buffered()
    );
    let mut group = c.benchmark_group("sequence/stream");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("line_100k_keys_out_of_order", |b| {
        b.iter(|| step(&mut stream, &mut out, BATCH));
    });
    group.finish();
    black_box(stream.partials());
}

/// Every sequence-engine bench.
pub fn benches(c: &mut Criterion) {
    machine_100k_keys(c);
    stream_100k_keys(c);
}
