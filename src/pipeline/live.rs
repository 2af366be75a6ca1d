//! Rule-set versions: how the rules of a running pipeline are replaced (SIGHUP, `--watch`) at
//! one point of the input stream, atomically, keeping the partial sequences of the rules that
//! did not change.
//!
//! # Design
//!
//! The decode workers run in parallel, each on its own batch, so "switch the rules now" has no
//! meaning for them: two workers would see the switch at different lines. The switch is
//! therefore made a property of the *input*: every batch carries the rule-set version it must
//! be evaluated with, and every stage acts on the version of the batch in hand.
//!
//! 1. **Publish.** A reload loads and compiles the new rules off the hot path (the reload thread,
//!    [`crate::catalog::reload`]); nothing changes while it runs. A set that fails to load is
//!    refused there and never reaches the pipeline. A good one becomes a [`RuleVersion`] (its
//!    number, the compiled rules, the decode stage's constants with their prefilter, the metric
//!    handles of its rules, built by [`LiveRules::replace`]) and is *published*: stored as the
//!    current version, its number in an atomic.
//! 2. **Stamp.** The feeder (the one thread that numbers batches in stream order,
//!    [`super::source::Feeder`]) stamps each batch it hands over with the current version
//!    ([`Stamp`]: one atomic load per batch, a lock only when the number changed). So a new
//!    version takes effect from the next batch the reader hands over: the switch point is a
//!    batch boundary, the same for every stage, whatever the number of workers.
//! 3. **Decode.** A decode worker evaluates a batch with the rules and field table of the
//!    batch's version (it rebuilds its decoder and per-rule counters when the version changes).
//!    Rule indices in the hits it produces are positions in *that* version.
//! 4. **Sequence.** The sequencer handles batches in stream order. At the first batch of a new
//!    version, before any line of it, it switches: it matches the rules of the two versions by
//!    `rule_id`, query text and `event_category_override` ([`RuleVersion::carried_from`]; a rule
//!    whose query changed is a new rule), renumbers the hits of the events waiting in its reorder
//!    buffer (hits of rules that are gone are dropped: an event read before the switch was
//!    evaluated by the old rules, and stays so), and queues a `Switch` work item to every
//!    partition, after the items of the old version.
//! 5. **Partitions.** A partition worker meets the `Switch` item in its work order, after every
//!    item of the old version: it moves the machine (and partial sequences) of each carried rule
//!    to its new position, drops the machines of removed or changed rules (their partials gauge
//!    goes back to zero), and starts empty machines for new rules. Alerts rendered before the
//!    item use the old rules' metadata, after it the new ones'.
//!
//! Hence: a sequence of an unchanged rule that started before the reload completes after it; an
//! event is never evaluated by a mix of versions; output stays independent of `--workers`,
//! `--partitions` and `--batch-size` (the switch point depends only on what the reader had read
//! when the version was published). Per-rule metric series are those of the version in effect
//! where each count is made ([`crate::metrics::Metrics::rule_handles`]); series of new rules
//! exist from the publication. A version nobody uses any more (no batch, no stage) is freed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::decode::DecodeContext;
use super::{prefilter, rawscan};
use crate::config::Settings;
use crate::metrics::{Handles, Metrics};
use crate::ruleset::{Rule, RuleSet};
use crate::sequence::spec::StageKind;
use crate::store::{EventStore, StoreConfig};
use crate::time::Precision;

/// One version of the rule set, with everything the stages derive from it.
pub struct RuleVersion {
    /// 0 for the rules the run started with, then one more per accepted reload.
    pub number: u64,
    /// The compiled rules (with the timestamp fields interned).
    pub rules: Arc<RuleSet>,
    /// The decode stage's constants for these rules (field ids, prefilter).
    pub(crate) decode: Arc<DecodeContext>,
    /// Metric handles with the per-rule series of these rules.
    pub(crate) handles: Handles,
    /// For each rule: true for an event (non-sequence) query.
    pub(crate) event_rule: Vec<bool>,
    /// Some rule has a missing-event stage: the sequencer tells the partitions every watermark
    /// move (else once per batch).
    pub(crate) advance_per_line: bool,
}

impl std::fmt::Debug for RuleVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleVersion").field("number", &self.number).field("rules", &self.rules.rules.len()).finish()
    }
}

/// What must be equal for a rule's partial sequences to carry over a reload.
fn same_rule(a: &Rule, b: &Rule) -> bool {
    a.spec.rule_id == b.spec.rule_id
        && a.spec.query == b.spec.query
        && a.spec.event_category_override == b.spec.event_category_override
}

impl RuleVersion {
    /// For each rule of `self`, its position in `old` when it is the same rule there (same
    /// `rule_id`, query text and `event_category_override`): its sequence state carries over.
    /// `None` for a new rule, or one whose query changed.
    pub fn carried_from(&self, old: &RuleVersion) -> Vec<Option<u32>> {
        let by_id: hashbrown::HashMap<&str, usize> =
            old.rules.rules.iter().enumerate().map(|(i, r)| (r.spec.rule_id.as_str(), i)).collect();
        self.rules
            .rules
            .iter()
            .map(|r| {
                let i = *by_id.get(r.spec.rule_id.as_str())?;
                same_rule(r, &old.rules.rules[i]).then_some(i as u32)
            })
            .collect()
    }
}

/// The fixed inputs of a version besides its rules.
struct Builder {
    timestamp_field: String,
    tiebreaker_field: Option<String>,
    precision: Precision,
    max_line_bytes: usize,
    prefilter: bool,
    /// `index_field` (`None`: the data stream name; `""`: off).
    index_field: Option<String>,
    /// Rule dispatch on (off: `--no-dispatch`, every stage evaluated, for comparisons).
    dispatch: bool,
    max_key_combinations: usize,
    metrics: Arc<Metrics>,
    store: Arc<EventStore>,
    /// One for the run: the counts go on across reloads.
    wrappers: Arc<super::wrapped::WrapperWatch>,
}

impl Builder {
    fn build(&self, number: u64, mut rules: RuleSet) -> RuleVersion {
        let timestamp_field = rules.fields.intern(&self.timestamp_field);
        let tiebreaker_field = self.tiebreaker_field.as_deref().map(|t| rules.fields.intern(t));
        // Before any decoder is built from the field table: the index may intern fields.
        rules.configure_dispatch(self.index_field.as_deref(), self.dispatch);
        let labels = rules.labels();
        let handles = self.metrics.rule_handles(&labels);
        rules.set_max_key_combinations(self.max_key_combinations);
        rules.count_into(&handles);
        let rules = Arc::new(rules);
        let prefilter = if self.prefilter {
            match prefilter::Prefilter::build(&rules, &self.timestamp_field, self.precision) {
                Ok(p) => {
                    tracing::info!(literals = p.pattern_count(), "Prefilter on.");
                    Some(Arc::new(p))
                }
                Err(why) => {
                    tracing::info!(reason = %why, "Prefilter off: every line is parsed.");
                    None
                }
            }
        } else {
            None
        };
        let decode = Arc::new(DecodeContext {
            rules: rules.clone(),
            timestamp_field,
            tiebreaker_field,
            precision: self.precision,
            max_line_bytes: self.max_line_bytes,
            leading_time: (!self.timestamp_field.contains('.'))
                .then(|| rawscan::LeadingTime::new(&self.timestamp_field, self.precision)),
            prefilter,
            wrappers: self.wrappers.clone(),
            store: self.store.clone(),
        });
        RuleVersion {
            number,
            event_rule: rules.rules.iter().map(|r| r.query.sequence.is_none()).collect(),
            advance_per_line: rules
                .rules
                .iter()
                .any(|r| r.query.sequence.as_ref().is_some_and(|s| s.stages.contains(&StageKind::Missing))),
            decode,
            handles,
            rules,
        }
    }
}

/// The rule set of a running pipeline: the current [`RuleVersion`], and the way to replace it.
/// Cheap to clone; every clone sees the same versions.
#[derive(Clone)]
pub struct LiveRules {
    inner: Arc<Inner>,
}

struct Inner {
    /// The current version's number (read without the lock, once per batch).
    number: AtomicU64,
    /// The current version; replaced whole.
    current: Mutex<Arc<RuleVersion>>,
    /// Serialises replacements, so numbers grow in publication order.
    replacing: Mutex<()>,
    builder: Builder,
}

impl LiveRules {
    /// Version 0 from `rules` (compiled, not yet prepared: the timestamp fields are interned
    /// here), for a run with `settings`, counting into `metrics` (made for these rules by
    /// [`Metrics::for_run`]). Creates the run's event store.
    pub fn new(rules: RuleSet, settings: &Settings, metrics: Arc<Metrics>) -> LiveRules {
        let store = Arc::new(EventStore::new(StoreConfig {
            memory_bytes: settings.event_store_memory,
            spill_dir: settings.spill_dir.clone(),
        }));
        let builder = Builder {
            timestamp_field: settings.timestamp_field.clone(),
            tiebreaker_field: settings.tiebreaker_field.clone(),
            precision: settings.timestamp_precision,
            max_line_bytes: settings.max_line_bytes,
            prefilter: settings.prefilter,
            index_field: settings.index_field.clone(),
            dispatch: settings.dispatch,
            max_key_combinations: settings.max_key_combinations,
            metrics,
            store,
            wrappers: Arc::new(super::wrapped::WrapperWatch::new(&settings.timestamp_field)),
        };
        let first = Arc::new(builder.build(0, rules));
        builder.metrics.handles().set_rules_loaded(first.rules.rules.len());
        LiveRules {
            inner: Arc::new(Inner {
                number: AtomicU64::new(0),
                current: Mutex::new(first),
                replacing: Mutex::new(()),
                builder,
            }),
        }
    }

    /// The current version.
    pub fn current(&self) -> Arc<RuleVersion> {
        // A poisoned lock still holds a whole version: it is only ever replaced whole.
        self.inner.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Publishes `rules` as the next version: it applies from the next batch the reader hands
    /// over. Sets `eqlstream_rules_loaded`; returns the new version.
    pub fn replace(&self, rules: RuleSet) -> Arc<RuleVersion> {
        let _one_at_a_time = self.inner.replacing.lock().unwrap_or_else(|p| p.into_inner());
        let number = self.inner.number.load(Ordering::Acquire) + 1;
        let version = Arc::new(self.inner.builder.build(number, rules));
        *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) = version.clone();
        self.inner.number.store(number, Ordering::Release);
        self.inner.builder.metrics.handles().set_rules_loaded(version.rules.rules.len());
        version
    }

    /// The run's event store (matched events of every version).
    pub fn store(&self) -> &Arc<EventStore> {
        &self.inner.builder.store
    }

    /// A per-thread reader of the current version for stamping batches.
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp { live: self.clone(), cached: self.current() }
    }
}

/// The feeder's view of [`LiveRules`]: the current version for each batch, at the cost of one
/// atomic load unless a new version was published.
pub(crate) struct Stamp {
    live: LiveRules,
    cached: Arc<RuleVersion>,
}

impl Stamp {
    /// The version the next batch is evaluated with.
    pub(crate) fn version(&mut self) -> Arc<RuleVersion> {
        if self.live.inner.number.load(Ordering::Acquire) != self.cached.number {
            self.cached = self.live.current();
        }
        self.cached.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};
    use crate::rules::RuleSpec;

    fn spec(id: &str, query: &str) -> RuleSpec {
        RuleSpec { rule_id: id.into(), name: format!("rule {id}"), query: query.into(), ..RuleSpec::default() }
    }

    fn set(specs: Vec<RuleSpec>) -> RuleSet {
        RuleSet::compile(specs).expect("compiles")
    }

    fn live(specs: Vec<RuleSpec>) -> (LiveRules, Arc<Metrics>) {
        let settings = Settings::build(FileConfig::default(), Overrides::default()).expect("defaults");
        let rules = set(specs);
        let labels = rules.labels();
        let metrics = Arc::new(Metrics::new(&labels).expect("metrics"));
        (LiveRules::new(rules, &settings, metrics.clone()), metrics)
    }

    const SEQ: &str = "sequence by host.id [process where true] [file where true]";

    #[test]
    fn rules_carry_over_by_id_query_and_category_override() {
        let (live, _) = live(vec![spec("a", SEQ), spec("b", SEQ), spec("c", "process where true")]);
        let old = live.current();
        let mut moved = spec("c", "process where true");
        moved.name = "renamed: still the same rule".into();
        let mut overridden = spec("b", SEQ);
        overridden.event_category_override = Some("event.type".into());
        let new = live.replace(set(vec![
            moved,
            spec("d", SEQ),
            spec("a", "sequence by host.id [process where true] [file where false]"),
            overridden,
        ]));
        assert_eq!(new.number, 1);
        assert_eq!(new.carried_from(&old), [Some(2), None, None, None]);
        assert_eq!(new.event_rule, [true, false, false, false]);
        assert!(Arc::ptr_eq(&live.current(), &new));
    }

    #[test]
    fn a_stamp_follows_the_published_version_and_the_gauge_the_rule_count() {
        let (live, metrics) = live(vec![spec("a", SEQ)]);
        let mut stamp = live.stamp();
        assert_eq!(stamp.version().number, 0);
        assert!(metrics.render().contains("eqlstream_rules_loaded 1\n"));
        live.replace(set(vec![spec("a", SEQ), spec("b", SEQ)]));
        live.replace(set(vec![spec("a", SEQ), spec("b", SEQ), spec("c", SEQ)]));
        let v = stamp.version();
        assert_eq!((v.number, v.rules.rules.len()), (2, 3), "a version published while nobody read is skipped");
        assert!(metrics.render().contains("eqlstream_rules_loaded 3\n"));
        let page = metrics.render();
        assert!(page.contains("eqlstream_partial_sequences{rule_id=\"c\"} 0\n"), "new rules' series exist: {page}");
        // The decode constants are those of the version: its own field table and prefilter.
        assert!(v.decode.rules.fields.get("@timestamp").is_some());
        assert!(Arc::ptr_eq(&v.decode.rules, &v.rules));
    }
}
