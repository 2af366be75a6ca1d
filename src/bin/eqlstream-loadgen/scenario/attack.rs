//! Attack variants of the seed rule: each schedules one complete sequence and its truth record.
//! Never produces anything the rule must not find (the extra events of the double/overwrite
//! variants are consumed or superseded exactly as eql-semantics.md §1.3 says).

use rand::Rng;

use super::*;

/// Attack variants: every one produces exactly one truth sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// Downloader creates, shell execs, payload (or a helper) deletes. (seed P1, P5)
    Direct,
    /// `busybox`/shell with a downloader in `process.args` creates. (seed P2)
    ShellBranch,
    /// Deletion exactly `MAXSPAN_MS` after creation (inclusive bound). (seed P3)
    Boundary,
    /// Two creations of the same name; the newer one is used. (seed P4, §1.3)
    Overwrite,
    /// Deletion event without `process.name` (`not in` is true when missing). (seed P6, §6.3)
    NoDeleterName,
    /// Two execs; the first extends the creation, the second finds nothing (§1.3).
    DoubleExec,
    /// Two deletions; the first completes, the second finds nothing (§1.3).
    DoubleDelete,
    /// Creation and exec in the same millisecond, in that emission order (§3 ties).
    SameMillisecond,
}

pub(super) const ATTACKS: &[(Attack, u32)] = &[
    (Attack::Direct, 50),
    (Attack::ShellBranch, 15),
    (Attack::Boundary, 5),
    (Attack::Overwrite, 8),
    (Attack::NoDeleterName, 5),
    (Attack::DoubleExec, 7),
    (Attack::DoubleDelete, 7),
    (Attack::SameMillisecond, 3),
];

/// Number of events of an attack variant.
fn len_of(kind: Attack) -> u64 {
    match kind {
        Attack::Overwrite | Attack::DoubleExec | Attack::DoubleDelete => 4,
        _ => 3,
    }
}

/// Mean number of events of an attack (weighted by [`ATTACKS`]).
pub(super) fn mean_len() -> f64 {
    let total: u32 = ATTACKS.iter().map(|a| a.1).sum();
    ATTACKS.iter().map(|&(a, w)| len_of(a) as f64 * f64::from(w)).sum::<f64>() / f64::from(total)
}

impl Generator<'_> {
    /// Picks the attack variant and schedules its events from `t0`; returns the number of events
    /// (0 if the budget is too small: nothing is scheduled).
    pub(super) fn schedule_attack(&mut self, t0: u64, budget: u64) -> u64 {
        let total_w: u32 = ATTACKS.iter().map(|a| a.1).sum();
        let mut r = self.rng.random_range(0..total_w);
        let mut kind = Attack::Direct;
        for (a, w) in ATTACKS {
            if r < *w {
                kind = *a;
                break;
            }
            r -= w;
        }
        let len = len_of(kind);
        if budget < len {
            return 0;
        }
        self.stats.attacks += 1;
        let c = self.rng.random_range(0..self.world.containers.len());
        let u = self.user_idx();
        let name = self.fresh_name();
        let mut dir = self.pick(RULE_DIRS).to_string();
        if self.rng.random_range(0..10) == 0 {
            // `/home/*/*` (seed P5).
            dir = format!("/home/{}/", self.pick(&["app", "deploy", "ubuntu", "node"]));
        }
        let path = format!("{dir}{name}");
        // Offsets (ms after t0) of exec and deletion; total span <= MAXSPAN_MS.
        let span = match kind {
            Attack::Boundary => MAXSPAN_MS,
            _ => self.rng.random_range(20..=MAXSPAN_MS - 10),
        };
        let d_exec = match kind {
            Attack::SameMillisecond => 0,
            // Room for a second creation before the exec / a second exec before the deletion.
            Attack::Overwrite => self.rng.random_range(2..span),
            Attack::DoubleExec => self.rng.random_range(1..span - 1),
            _ => self.rng.random_range(1..span),
        };
        let o = Origin::Attack;
        let create = if kind == Attack::ShellBranch {
            self.shell_branch_creation(t0, c, u, &dir, &name)
        } else {
            self.downloader_creation(t0, c, Some(u), &dir, &name)
        };
        let mut first_n = create.n;
        self.push(t0, create, None, o);
        if kind == Attack::Overwrite {
            // A second creation strictly between the first and the exec supersedes the first.
            let d = self.rng.random_range(1..d_exec);
            let again = self.downloader_creation(t0 + d, c, Some(u), &dir, &name);
            first_n = again.n;
            self.push(t0 + d, again, None, o);
        }
        let ex = self.exec(t0 + d_exec, Kind::ProcExec, (c, Some(u)), &path, &name, true);
        let exec_n = ex.n;
        self.push(t0 + d_exec, ex, None, o);
        if kind == Attack::DoubleExec {
            // A second exec strictly between the first and the deletion finds no stage-1
            // partial (the first exec consumed it), so it starts nothing.
            let d2 = self.rng.random_range(d_exec + 1..span);
            let ex2 = self.exec(t0 + d2, Kind::ProcExec, (c, Some(u)), &path, &name, true);
            self.push(t0 + d2, ex2, None, o);
        }
        let deleter = if kind == Attack::NoDeleterName { None } else { Some(self.ok_deleter(&name)) };
        let del = self.deletion(t0 + span, c, Some(u), &path, &name, deleter.as_deref());
        let truth = TruthSeq { container: c, user: u, name: name.clone(), ns: [first_n, exec_n, del.n] };
        self.push(t0 + span, del, Some(truth), o);
        if kind == Attack::DoubleDelete {
            // A second deletion after completion finds no stage-2 partial.
            let d = self.rng.random_range(1..2_000);
            let del2 = self.deletion(t0 + span + d, c, Some(u), &path, &name, Some("sh"));
            self.push(t0 + span + d, del2, None, o);
        }
        len
    }
}
