//! Engine benchmarks: one criterion harness (`[[bench]] harness = false`), one module per
//! component, each exposing `pub fn benches(c: &mut Criterion)`. Add a module by declaring it
//! here and listing its function in `criterion_group!`.
//!
//! Run: `cargo bench --bench engine` (or `-- eql/` for one group).

use criterion::{criterion_group, criterion_main};

mod eql;
mod keys;
mod sequence;

criterion_group!(engine, eql::benches, keys::benches, sequence::benches);
criterion_main!(engine);
