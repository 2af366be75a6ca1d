//! The sequence engine: Elasticsearch's sequence state machine, in event time.
//!
//! Layout:
//! * [`ordinal`]: the event order (timestamp, tiebreaker, arrival; eql-semantics.md section 3);
//! * [`watermark`]: event time per input source and the pipeline's watermark, robust to
//!   interleaved senders and lying clocks;
//! * [`reorder`]: the event-time reorder buffer that puts out-of-order input back in order
//!   before detection (section 3);
//! * [`machine`]: one rule's state machine per join key (sections 0-2, 4, 7);
//! * `state` (private): the per-key storage and expiry queue behind it;
//! * [`partition`]: routing join keys to partitions, and a driver that runs one rule's machine
//!   over several partitions with deterministic output;
//! * [`stream`]: a per-line reference driver (reorder buffer + partitioned machine);
//! * [`key`], [`spec`]: the shared vocabulary with the EQL compiler;
//! * `siphash` (private): keyed SipHash for the join-key fingerprints.
//!
//! Nothing here parses JSON or evaluates EQL: events are opaque handles plus the (stage, key)
//! hits the compiler found in them.

pub mod key;
pub(crate) mod machine;
pub(crate) mod ordinal;
pub(crate) mod partition;
pub(crate) mod reorder;
mod siphash;
pub mod spec;
mod state;
pub(crate) mod stream;
pub mod watermark;

pub use machine::{Completed, HitKind, MachineCounters, SequenceMachine};
pub use ordinal::{Ordinal, TieBreaker};
pub use partition::{partition_of, PartitionedMachine};
pub use reorder::{IdleTimer, Late, ReorderBuffer};
pub use stream::{LineOutcome, RuleStream, StreamConfig};
pub use watermark::{ClockConfig, SourceId, Verdict, Watermarks};
