//! What the sequence engine needs to know about one compiled sequence query.

/// Whether a stage must be present (`[...]`) or absent (`![...]`, eql-semantics.md section 7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// A normal stage that an event must match.
    Positive,
    /// A missing-event stage: no matching event may exist in its window.
    Missing,
}

/// The shape of a sequence query after `with runs=N` expansion (section 7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceSpec {
    /// Stages in query order; `runs=N` stages already repeated N times.
    pub stages: Vec<StageKind>,
    /// `with maxspan=...` in nanoseconds; `None` = unbounded (section 2).
    pub maxspan_ns: Option<u64>,
    /// Whether an `until [...]` clause exists (section 7.1).
    pub has_until: bool,
    /// Number of join-key components every stage produces (section 4.1).
    pub key_arity: usize,
}
