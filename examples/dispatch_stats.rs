//! What rule dispatch does on a stream: reads NDJSON on stdin, rules from the paths given
//! (files or directories), and prints on stdout, per event on average, the stages dispatch
//! makes candidates and how many of them match, next to the stages brute force evaluates; then
//! the stages most often evaluated without matching (where a sharper requirement would pay).
//!
//!     cargo run --release --example dispatch_stats -- tests/data/production/cloud_defend < events.ndjson

use std::io::BufRead;
use std::path::PathBuf;

use eqlstream::dispatch::Scratch;
use eqlstream::event::Decoder;
use eqlstream::ruleset::{RuleSet, StageRef};

fn main() {
    let paths: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let loaded = match eqlstream::rules::load_paths(&paths) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dispatch_stats: {e}");
            std::process::exit(66);
        }
    };
    let mut set = match RuleSet::compile(loaded.rules) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{}", eqlstream::ruleset::render_errors(&e));
            std::process::exit(65);
        }
    };
    let mut brute = match RuleSet::compile(set.rules.iter().map(|r| r.spec.clone()).collect()) {
        Ok(s) => s,
        Err(_) => std::process::exit(65),
    };
    brute.configure_dispatch(None, false);
    set.configure_dispatch(None, true);
    let (entries, fields, terms, clauses, always) = set.dispatch.shape();
    println!(
        "rules {} entries {entries} fields read {fields} terms {terms} clauses {clauses} always {always}",
        set.rules.len()
    );
    let mut dec = Decoder::new(&set.fields);
    let mut dec_b = Decoder::new(&brute.fields);
    let (mut scratch, mut scratch_b) = (Scratch::default(), Scratch::default());
    let mut wasted = vec![0u64; entries];
    let (mut events, mut cands, mut brute_cands, mut matched) = (0u64, 0u64, 0u64, 0u64);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(ev) = dec.decode(line.as_bytes()) else { continue };
        events += 1;
        let c = set.dispatch.candidates(&ev, &mut scratch).to_vec();
        cands += c.len() as u64;
        for e in c {
            let at = set.dispatch.entries()[e as usize].at;
            if set.stage(at).is_some_and(|s| s.matches(&ev)) && set.dispatch.selects(e, &ev, &mut scratch) {
                matched += 1;
            } else {
                wasted[e as usize] += 1;
            }
        }
        if let Ok(ev_b) = dec_b.decode(line.as_bytes()) {
            brute_cands += brute.dispatch.candidates(&ev_b, &mut scratch_b).len() as u64;
        }
    }
    let per = |n: u64| n as f64 / events.max(1) as f64;
    println!(
        "events {events} candidates/event {:.2} matches/event {:.3} brute-force stages/event {:.2}",
        per(cands),
        per(matched),
        per(brute_cands)
    );
    let mut worst: Vec<(u64, usize)> =
        wasted.iter().enumerate().map(|(i, n)| (*n, i)).filter(|(n, _)| *n > 0).collect();
    worst.sort_unstable_by(|a, b| b.cmp(a));
    for (n, e) in worst.into_iter().take(15) {
        let at = set.dispatch.entries()[e].at;
        let rule = &set.rules[at.rule as usize];
        let stage = if at.stage == StageRef::UNTIL { "until".to_string() } else { at.stage.to_string() };
        println!("{:>8.4}/event without a match: {} stage {stage}", per(n), rule.spec.path.display());
    }
}
