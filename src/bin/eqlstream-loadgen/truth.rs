//! The truth file: one JSON line per sequence the seed rule must find, in the order
//! Elasticsearch returns them (by the completing event's `@timestamp`, then arrival; §1.2 of
//! eql-semantics.md). Written from the generator's own construction; read back by `score`.
//! Never derives anything from an EQL engine.

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

/// Appends `line` as one JSON line.
pub fn write_line(out: &mut impl Write, line: &TruthLine) -> io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// Reads a truth file: every non-empty line must be a [`TruthLine`].
pub fn read_all(input: impl BufRead) -> anyhow::Result<Vec<TruthLine>> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let t: TruthLine = serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("truth line {}: {e}", i + 1))?;
        out.push(t);
    }
    Ok(out)
}
