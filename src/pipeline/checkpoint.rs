//! Checkpoints: which input lines the pipeline still needs, so that a Kafka consumer can commit
//! offsets that are safe to restart from (see [`crate::kafka`]).
//!
//! A source asks for a checkpoint in band ([`SourceMarker::Checkpoint`](super::frame::SourceMarker)).
//! The sequencer notes the lines of the events in its reorder buffer and asks every partition
//! worker, after the work of all earlier lines, for the lines of the events its sequence machines
//! still hold (partial sequences, candidates waiting for a missing-event window). The writer
//! merges the answers once every earlier line has been written and sends the result back on the
//! channel the source gave ([`super::sink::Outputs::checkpoints`]). A line older than every line
//! a checkpoint names for its source, and written, is no longer needed: a new pipeline started
//! after it rebuilds the same state and alerts (at least once).

use hashbrown::HashMap;

use crate::sequence::watermark::SourceId;
use crate::store::{Origin, StoredEvent};

/// Per source, the smallest input line still held somewhere in the pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needed {
    /// Source -> smallest global line number still needed.
    pub min_line: HashMap<SourceId, u64>,
    /// Held events whose line could not be read back (a spill-file error): the checkpoint must
    /// not be trusted.
    pub unknown: u64,
}

impl Needed {
    /// Notes that `origin`'s line is still needed.
    pub fn note(&mut self, origin: Origin) {
        let e = self.min_line.entry(origin.source).or_insert(origin.line);
        *e = (*e).min(origin.line);
    }

    /// Notes a held event's line.
    pub fn note_event(&mut self, event: &StoredEvent) {
        match event.origin() {
            Ok(o) => self.note(o),
            Err(_) => self.unknown += 1,
        }
    }

    /// Adds what `other` needs.
    pub fn merge(&mut self, other: &Needed) {
        for (&source, &line) in &other.min_line {
            self.note(Origin { source, line });
        }
        self.unknown += other.unknown;
    }
}

/// A finished checkpoint, as the writer reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointDone {
    /// The id the source gave.
    pub id: u64,
    /// What the pipeline still holds.
    pub needed: Needed,
    /// True when every line before the checkpoint was written and flushed, and no alert waits
    /// in the writer; a checkpoint that is not complete commits nothing.
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_smallest_line_per_source() {
        let mut a = Needed::default();
        a.note(Origin { source: 1, line: 9 });
        a.note(Origin { source: 1, line: 4 });
        a.note(Origin { source: 2, line: 7 });
        let mut b = Needed::default();
        b.note(Origin { source: 2, line: 3 });
        b.note(Origin { source: 3, line: 30 });
        a.merge(&b);
        assert_eq!(a.min_line.get(&1), Some(&4));
        assert_eq!(a.min_line.get(&2), Some(&3));
        assert_eq!(a.min_line.get(&3), Some(&30));
    }
}
