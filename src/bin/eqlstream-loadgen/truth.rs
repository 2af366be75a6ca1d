//! The truth file: one JSON line per sequence the seed rule must find, in the order
//! Elasticsearch returns them (by the completing event's `@timestamp`, then arrival; §1.2 of
//! eql-semantics.md). Written from the generator's own construction; read back by `score`.
//! Never derives anything from an EQL engine.
//!
//! With `--realtime` each line also carries `completed_written_unix_ns`: the wall-clock time
//! (ns since the Unix epoch) at which the line that completes the sequence was written (see
//! `sink.rs`). Readers accept lines with or without it.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::event::event_uuid;
use crate::scenario::TruthSeq;
use crate::world::World;

/// The seed rule's `rule_id`.
pub const SEED_RULE_ID: &str = "1dc56174-5d02-4ca4-af92-e391f096fb21";

/// One truth line: `{"rule_id":..,"join_keys":[container.id,user.id,name],"event_ids":[..3]}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TruthLine {
    /// The rule that must fire.
    pub rule_id: String,
    /// `[container.id, user.id, file.name]` as strings.
    pub join_keys: Vec<String>,
    /// `event.id` of the creation, exec and deletion, in stage order.
    pub event_ids: Vec<String>,
}

impl TruthLine {
    /// The line for a generated sequence.
    pub fn from_seq(world: &World, seed: u64, t: &TruthSeq) -> TruthLine {
        let id = |n: u64| String::from_utf8_lossy(&event_uuid(seed, n)).into_owned();
        TruthLine {
            rule_id: SEED_RULE_ID.to_string(),
            join_keys: vec![world.containers[t.container].id.clone(), world.users[t.user].clone(), t.name.clone()],
            event_ids: t.ns.iter().map(|&n| id(n)).collect(),
        }
    }
}

/// A truth line as stored: the sequence plus, with `--realtime`, when its completing line was
/// written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRecord {
    /// The sequence.
    #[serde(flatten)]
    pub seq: TruthLine,
    /// Wall clock (ns since the Unix epoch) right after the line completing the sequence was
    /// handed to the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_written_unix_ns: Option<u64>,
}

/// Appends `rec` as one JSON line (without a time: the bytes of the bare [`TruthLine`]).
pub fn write_record(out: &mut impl Write, rec: &TruthRecord) -> io::Result<()> {
    serde_json::to_writer(&mut *out, rec)?;
    out.write_all(b"\n")
}

/// Reads a truth file: every non-empty line must be a [`TruthLine`] (extra fields such as
/// `completed_written_unix_ns` are ignored).
pub fn read_all(input: impl BufRead) -> anyhow::Result<Vec<TruthLine>> {
    Ok(read_records(input)?.into_iter().map(|r| r.seq).collect())
}

/// Reads a truth file with the optional write times.
pub fn read_records(input: impl BufRead) -> anyhow::Result<Vec<TruthRecord>> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let t: TruthRecord = serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("truth line {}: {e}", i + 1))?;
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq() -> TruthLine {
        TruthLine {
            rule_id: SEED_RULE_ID.into(),
            join_keys: vec!["c".into(), "0".into(), "x1".into()],
            event_ids: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    #[test]
    fn records_with_and_without_write_time_round_trip() {
        let mut plain = serde_json::to_vec(&seq()).expect("serialise");
        plain.push(b'\n');
        let mut rec = Vec::new();
        write_record(&mut rec, &TruthRecord { seq: seq(), completed_written_unix_ns: None }).expect("write");
        assert_eq!(plain, rec, "no time: the bytes of a plain truth line");
        let mut timed = Vec::new();
        let r = TruthRecord { seq: seq(), completed_written_unix_ns: Some(1_772_704_800_123_456_789) };
        write_record(&mut timed, &r).expect("write");
        assert!(timed.ends_with(b",\"completed_written_unix_ns\":1772704800123456789}\n"));
        let both = [plain, timed].concat();
        assert_eq!(read_all(&both[..]).expect("read"), vec![seq(), seq()]);
        let recs = read_records(&both[..]).expect("read");
        assert_eq!(recs[0].completed_written_unix_ns, None);
        assert_eq!(recs[1], r);
        assert!(read_all(&b"{\"rule_id\":1}\n"[..]).is_err());
    }
}
