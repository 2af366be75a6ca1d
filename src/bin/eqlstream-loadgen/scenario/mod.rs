//! What happens, and when: background noise, complete attack sequences of the seed rule, near-miss
//! decoys and "live key" stage-1 partials, merged into one stream in *logical order* (the order
//! Elasticsearch would sort them in: `@timestamp`, then emission index). The truth comes from this
//! construction alone; it never asks an EQL engine.
//!
//! # Why nothing but an attack can complete a sequence (the namespace argument)
//!
//! The seed rule joins on `(container.id, user.id, name)` where `name` is `file.name` for the
//! creation and deletion and `process.name` for the exec (eql-semantics.md §4.1, §10). Names come
//! from three disjoint sets:
//! * background file names (`background.rs`) always contain a `.` after the first character;
//! * background exec names (`background::BG_EXECS`) are fixed words without a `.`, none ending in five
//!   hex digits;
//! * every attack, decoy and live-key scenario gets a fresh name `<base><5+ hex uid>` (no `.` after
//!   the first character) that no other scenario ever uses.
//!
//! A stage-2 (exec) event can only join a stage-1 creation with the same name, so background
//! creations (dotted names) can never be followed by any exec, and background execs (fixed
//! words) never find a creation. A scenario's name lives only in its own events, so each
//! scenario's outcome depends on its own events only, and is decided by its construction below.
//!
//! Events of one scenario have distinct timestamps (at least 1 ms apart) unless a variant says
//! otherwise; events of different scenarios and background may share a millisecond (harmless:
//! they never share a key).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use hashbrown::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::event::{mix64, Ev, Kind, Proc, Str};
use crate::world::World;

mod attack;
mod background;
mod decoy;

#[cfg(test)]
use background::{bg_file_name, BG_EXECS};
pub use decoy::{Decoy, DECOY_KINDS};

/// The seed rule's maxspan, in ms (inclusive, eql-semantics.md §2).
pub const MAXSPAN_MS: u64 = 10_000;

/// Live-key creations are spread over this many ms (one maxspan window, with margin).
pub const LIVE_WINDOW_MS: u64 = 9_000;

/// Default start of simulated time: 2026-03-05T10:00:00.000Z.
pub const DEFAULT_START_MS: u64 = 1_772_704_800_000;

/// Generation parameters (already validated by the CLI).
#[derive(Clone, Debug)]
pub struct Config {
    /// Seed for everything.
    pub seed: u64,
    /// Total events to emit (live-key, background and scenario events together); `None` means
    /// until [`Generator::stop`] is called.
    pub total: Option<u64>,
    /// Probability that a background slot starts an attack instead.
    pub attack_rate: f64,
    /// Probability that a background slot starts a decoy instead.
    pub decoy_rate: f64,
    /// Number of never-completing stage-1 creations emitted at the start, within one window.
    pub live_keys: u64,
    /// Simulated background events per second (sets the `@timestamp` pace).
    pub sim_eps: f64,
    /// First `@timestamp`, ms since the epoch.
    pub start_ms: u64,
}

/// Mean number of events per slot of the background clock (a slot is a background event or
/// starts an attack or a decoy): `sim_eps` times this is the steady event rate per second of
/// `@timestamp` time.
pub fn events_per_slot(attack_rate: f64, decoy_rate: f64) -> f64 {
    1.0 + attack_rate * (attack::mean_len() - 1.0) + decoy_rate * (decoy::LEN as f64 - 1.0)
}

/// One sequence the seed rule must find: its key and the construction counters of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthSeq {
    /// Index into `world.containers`.
    pub container: usize,
    /// Index into `world.users`.
    pub user: usize,
    /// The joined file / process name.
    pub name: String,
    /// Construction counters ([`Ev::n`]) of the creation, exec and deletion, in stage order.
    pub ns: [u64; 3],
}

/// An event in logical order, plus the truth record if it completes a sequence.
#[derive(Debug)]
pub struct Emitted {
    /// The event.
    pub ev: Ev,
    /// Present on the completing (stage-3) event of an attack.
    pub truth: Option<Box<TruthSeq>>,
    /// What produced the event.
    pub origin: Origin,
}

/// Which part of the scenario an event belongs to (for statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Background noise.
    Background,
    /// An attack (sequence of the seed rule).
    Attack,
    /// A near miss.
    Decoy(Decoy),
    /// A never-completing stage-1 creation (`--live-keys`).
    LiveKey,
}

const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch", "ftp", "sftp", "scp", "rsync", "ld"];
const DL_PREFIXES: &[&str] = &["", "/bin/", "/usr/bin/", "/usr/local/bin/"];
const S1_SHELLS: &[&str] = &["bash", "dash", "sh", "tcsh", "csh", "zsh", "ksh", "fish", "busybox"];
const S2_SHELLS: &[&str] = &["bash", "dash", "ash", "sh", "tcsh", "csh", "zsh", "ksh", "fish", "busybox"];
const NON_SHELL_PARENTS: &[&str] = &["python3", "node", "java", "perl", "runc", "containerd-shim", "sudo", "tini"];
const OK_DELETERS: &[&str] = &["sh", "bash", "python3", "find", "shred", "unlink", "busybox", "perl"];
const RULE_DIRS: &[&str] = &[
    "/tmp/",
    "/dev/shm/",
    "/var/tmp/",
    "/run/",
    "/var/run/",
    "/var/www/html/",
    "/run/shm/",
    "/root/",
    "/opt/",
    "/tmp/.X11-unix/",
    "/opt/app/bin/",
];
const PAYLOADS: &[&str] = &[
    "xmrig",
    "kinsing",
    ".kworker",
    "kdevtmpfsi",
    "dbused",
    "sysupdate",
    "networkservice",
    "x",
    "tsunami",
    "mirai",
    "sshd",
    "payload",
    "agent",
    "bot",
    "pnscan",
    "masscan",
    "zgrab",
    "kthreadd",
    "systemd-worker",
    ".cache-updater",
];
const URL_HOSTS: &[&str] =
    &["203.0.113.7", "198.51.100.23", "192.0.2.44", "cdn.example-mirror.net", "pastebin.example.com"];

#[derive(Debug)]
struct Scheduled {
    ts: u64,
    seq: u64,
    ev: Ev,
    truth: Option<Box<TruthSeq>>,
    origin: Origin,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` pops the smallest `(ts, seq)` first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.ts, other.seq).cmp(&(self.ts, self.seq))
    }
}

/// Counts of what was generated.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Background events.
    pub background: u64,
    /// Attack sequences started (each yields one truth line).
    pub attacks: u64,
    /// Decoy scenarios started, per kind ([`Decoy::index`]).
    pub decoys: [u64; DECOY_KINDS],
    /// Live-key creations.
    pub live_keys: u64,
}

/// Produces events in logical order. Deterministic for a given [`Config`] and [`World`].
pub struct Generator<'w> {
    world: &'w World,
    cfg: Config,
    rng: ChaCha8Rng,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    n: u64,
    uid: u64,
    emitted: u64,
    bg_clock_us: u64,
    bg_mean_us: f64,
    stopping: bool,
    live_done: u64,
    last_ts: u64,
    paths: HashMap<(&'static str, &'static str), &'static str>,
    /// What has been generated so far.
    pub stats: Stats,
}

fn s(v: &'static str) -> Str {
    Cow::Borrowed(v)
}

impl<'w> Generator<'w> {
    /// A generator over `world`.
    pub fn new(world: &'w World, cfg: Config) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(mix64(cfg.seed ^ 0x5ce7_a210));
        let live_span_us = if cfg.live_keys > 0 { (LIVE_WINDOW_MS + 1) * 1000 } else { 0 };
        let bg_mean_us = 1_000_000.0 / cfg.sim_eps.max(1e-3);
        Generator {
            world,
            rng,
            heap: BinaryHeap::new(),
            seq: 0,
            n: 0,
            uid: 0,
            emitted: 0,
            bg_clock_us: cfg.start_ms * 1000 + live_span_us,
            bg_mean_us,
            stopping: false,
            live_done: 0,
            last_ts: cfg.start_ms,
            paths: HashMap::new(),
            stats: Stats::default(),
            cfg,
        }
    }

    /// Stop starting new scenarios; [`Generator::next_event`] then drains scheduled events and ends.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Start no more scenarios, but keep producing background events (also past
    /// [`Config::total`]) until [`Generator::stop`]; scenarios under way complete in order.
    pub fn background_only(&mut self) {
        self.cfg.attack_rate = 0.0;
        self.cfg.decoy_rate = 0.0;
        self.cfg.total = None;
        // The clock may lag behind scheduled events drained at the end of a `total` run.
        self.bg_clock_us = self.bg_clock_us.max(self.last_ts * 1000);
    }

    /// Scenario events scheduled but not emitted yet.
    pub fn scheduled(&self) -> usize {
        self.heap.len()
    }

    /// Events emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// The next event in logical order, or `None` when the run is complete.
    pub fn next_event(&mut self) -> Option<Emitted> {
        let out = self.next_inner()?;
        debug_assert!(out.ev.ts >= self.last_ts, "logical order is by @timestamp");
        self.last_ts = out.ev.ts;
        self.emitted += 1;
        Some(out)
    }

    fn next_inner(&mut self) -> Option<Emitted> {
        if let Some(total) = self.cfg.total {
            if self.emitted >= total {
                return None;
            }
        }
        if self.live_done < self.cfg.live_keys {
            if self.cfg.total.is_some_and(|t| self.emitted >= t) {
                return None;
            }
            let i = self.live_done;
            self.live_done += 1;
            self.stats.live_keys += 1;
            let ts = self.cfg.start_ms + i * LIVE_WINDOW_MS / self.cfg.live_keys.max(1);
            let ev = self.live_key_creation(ts);
            return Some(Emitted { ev, truth: None, origin: Origin::LiveKey });
        }
        loop {
            let budget = match self.cfg.total {
                Some(t) => t.saturating_sub(self.emitted + self.heap.len() as u64),
                None => u64::MAX,
            };
            if budget == 0 || (self.stopping && !self.heap.is_empty()) {
                return self.heap.pop().map(|s| Emitted { ev: s.ev, truth: s.truth, origin: s.origin });
            }
            if self.stopping {
                return None;
            }
            let cand = self.bg_clock_us / 1000;
            if self.heap.peek().is_some_and(|s| s.ts <= cand) {
                return self.heap.pop().map(|s| Emitted { ev: s.ev, truth: s.truth, origin: s.origin });
            }
            // Each slot of the background clock is a background event or starts a scenario;
            // either way the clock advances, so scenario starts never pile up on one instant.
            let roll: f64 = self.rng.random();
            let scheduled = if roll < self.cfg.attack_rate {
                self.schedule_attack(cand, budget)
            } else if roll < self.cfg.attack_rate + self.cfg.decoy_rate {
                self.schedule_decoy(cand, budget)
            } else {
                0
            };
            self.advance_clock();
            if scheduled > 0 {
                continue;
            }
            let ev = self.background(cand);
            self.stats.background += 1;
            return Some(Emitted { ev, truth: None, origin: Origin::Background });
        }
    }

    /// Advances the background clock by an exponential gap (Poisson arrivals at `sim_eps`).
    fn advance_clock(&mut self) {
        let u: f64 = self.rng.random::<f64>().max(1e-12);
        self.bg_clock_us += (-u.ln() * self.bg_mean_us) as u64;
    }

    fn next_n(&mut self) -> u64 {
        let n = self.n;
        self.n += 1;
        n
    }

    fn fresh_name(&mut self) -> String {
        self.uid += 1;
        let base = PAYLOADS[self.rng.random_range(0..PAYLOADS.len())];
        // uid is unique per run; mixing with a bijection keeps it unique and looks random.
        let tag = (self.uid.wrapping_mul(0x9E37_79B9) ^ 0x5a5a5) & 0xff_ffff_ffff;
        format!("{base}{:05x}{:x}", tag & 0xfffff, self.uid)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn pid(&mut self) -> u32 {
        self.rng.random_range(300..4_000_000)
    }

    fn url(&mut self, name: &str) -> String {
        let host = self.pick(URL_HOSTS);
        format!("http://{host}/{}", name.trim_start_matches('.'))
    }

    fn other(&mut self, len: usize, not: usize) -> usize {
        let k = self.rng.random_range(1..len);
        (not + k) % len
    }

    fn user_idx(&mut self) -> usize {
        // Mostly root, as in real containers.
        if self.rng.random_range(0..10) < 6 {
            0
        } else {
            self.rng.random_range(0..self.world.users.len())
        }
    }

    fn push(&mut self, ts: u64, ev: Ev, truth: Option<TruthSeq>, origin: Origin) {
        self.seq += 1;
        self.heap.push(Scheduled { ts, seq: self.seq, ev, truth: truth.map(Box::new), origin });
    }

    /// `dir` + `name` as a `'static` string. The set of (dir, name) pairs is bounded by the
    /// constant tables of this module, so each is built (and leaked) once per run.
    fn path_of(&mut self, dir: &'static str, name: &'static str) -> Str {
        let p = self.paths.entry((dir, name)).or_insert_with(|| Box::leak(format!("{dir}{name}").into_boxed_str()));
        Cow::Borrowed(*p)
    }

    fn shell_parent(&mut self, exe_path: Str) -> (Str, Str, Vec<Str>) {
        let sh = self.pick(S2_SHELLS);
        let exe = self.path_of("/bin/", sh);
        (s(sh), exe, vec![s(sh), s("-c"), exe_path])
    }

    fn entry_parent(&mut self) -> (Str, Str, Vec<Str>) {
        let sh = self.pick(&["sh", "bash", "dash"]);
        let exe = self.path_of("/bin/", sh);
        (s(sh), exe, vec![s(sh), s("-c"), s("/entrypoint.sh")])
    }

    /// A creation by a downloader (name in the rule's list) of `path`.
    fn downloader_creation(&mut self, ts: u64, c: usize, u: Option<usize>, dir: &str, name: &str) -> Ev {
        let dl = self.pick(DOWNLOADERS);
        let path = format!("{dir}{name}");
        let url = self.url(name);
        let args: Vec<Str> = match dl {
            "curl" => vec![s("curl"), s("-sSLo"), path.clone().into(), url.into()],
            "wget" => vec![s("wget"), s("-q"), s("-O"), path.clone().into(), url.into()],
            "fetch" => vec![s("fetch"), s("-o"), path.clone().into(), url.into()],
            "ftp" => vec![s("ftp"), s("-o"), path.clone().into(), url.replace("http:", "ftp:").into()],
            "sftp" => {
                vec![s("sftp"), format!("deploy@{}:/srv/{name}", self.pick(URL_HOSTS)).into(), path.clone().into()]
            }
            "scp" => vec![
                s("scp"),
                s("-q"),
                format!("deploy@{}:/srv/{name}", self.pick(URL_HOSTS)).into(),
                path.clone().into(),
            ],
            "rsync" => vec![
                s("rsync"),
                s("-a"),
                format!("rsync://{}/pub/{name}", self.pick(URL_HOSTS)).into(),
                path.clone().into(),
            ],
            _ => vec![s("ld"), s("-o"), path.clone().into(), s("/tmp/stage0.o")],
        };
        let (pn, pe, pa) = self.entry_parent();
        let pid = self.pid();
        Ev {
            ts,
            n: self.next_n(),
            kind: Kind::FileCreate,
            container: c,
            user: u,
            file_path: path.into(),
            file_name: Some(name.to_string().into()),
            proc: Proc {
                name: Some(s(dl)),
                executable: self.path_of("/usr/bin/", dl),
                args,
                pid,
                parent_name: pn,
                parent_executable: pe,
                parent_args: pa,
            },
        }
    }

    /// A creation by a stage-1 shell whose argv holds a downloader (the rule's second branch).
    fn shell_branch_creation(&mut self, ts: u64, c: usize, u: usize, dir: &str, name: &str) -> Ev {
        let dl = self.pick(&["curl", "wget", "fetch", "ftp", "scp", "rsync"]);
        let prefix = self.pick(DL_PREFIXES);
        let path = format!("{dir}{name}");
        let url = self.url(name);
        let (pname, args): (&'static str, Vec<Str>) = if self.rng.random_bool(0.5) {
            (
                "busybox",
                vec![s("busybox"), Cow::Owned(format!("{prefix}{dl}")), s("-O"), path.clone().into(), url.into()],
            )
        } else {
            let sh = self.pick(S1_SHELLS);
            (sh, vec![s(sh), Cow::Owned(format!("{prefix}{dl}")), s("-o"), path.clone().into(), url.into()])
        };
        let (pn, pe, pa) = self.entry_parent();
        Ev {
            ts,
            n: self.next_n(),
            kind: Kind::FileCreate,
            container: c,
            user: Some(u),
            file_path: path.into(),
            file_name: Some(name.to_string().into()),
            proc: Proc {
                name: Some(s(pname)),
                executable: self.path_of("/bin/", pname),
                args,
                pid: self.pid(),
                parent_name: pn,
                parent_executable: pe,
                parent_args: pa,
            },
        }
    }

    /// A process event of `kind` in container `c` by user `u` running `path` as `name`; the
    /// parent is a stage-2 shell when `shell_parent`, else a non-shell.
    fn exec(
        &mut self,
        ts: u64,
        kind: Kind,
        (c, u): (usize, Option<usize>),
        path: &str,
        name: &str,
        shell_parent: bool,
    ) -> Ev {
        let (pn, pe, pa) = if shell_parent {
            self.shell_parent(Cow::Owned(path.to_string()))
        } else {
            let p = self.pick(NON_SHELL_PARENTS);
            (s(p), self.path_of("/usr/bin/", p), vec![s(p), s("/app/run.py")])
        };
        Ev {
            ts,
            n: self.next_n(),
            kind,
            container: c,
            user: u,
            file_path: s(""),
            file_name: None,
            proc: Proc {
                name: Some(name.to_string().into()),
                executable: path.to_string().into(),
                args: vec![path.to_string().into()],
                pid: self.pid(),
                parent_name: pn,
                parent_executable: pe,
                parent_args: pa,
            },
        }
    }

    fn deletion(&mut self, ts: u64, c: usize, u: Option<usize>, path: &str, name: &str, deleter: Option<&str>) -> Ev {
        let (pname, exe, args): (Option<Str>, Str, Vec<Str>) = match deleter {
            None => (None, path.to_string().into(), vec![path.to_string().into()]),
            Some(d) if d == name => {
                (Some(name.to_string().into()), path.to_string().into(), vec![path.to_string().into()])
            }
            Some(d) => {
                let args: Vec<Str> = match d {
                    "rm" => vec![s("rm"), s("-f"), path.to_string().into()],
                    "find" => vec![s("find"), s("/tmp"), s("-name"), name.to_string().into(), s("-delete")],
                    "shred" => vec![s("shred"), s("-u"), path.to_string().into()],
                    "unlink" => vec![s("unlink"), path.to_string().into()],
                    _ => vec![Cow::Owned(d.to_string()), s("-c"), Cow::Owned(format!("rm -f {path}"))],
                };
                (Some(Cow::Owned(d.to_string())), Cow::Owned(format!("/usr/bin/{d}")), args)
            }
        };
        let (pn, pe, pa) = self.entry_parent();
        Ev {
            ts,
            n: self.next_n(),
            kind: Kind::FileDelete,
            container: c,
            user: u,
            file_path: path.to_string().into(),
            file_name: Some(name.to_string().into()),
            proc: Proc {
                name: pname,
                executable: exe,
                args,
                pid: self.pid(),
                parent_name: pn,
                parent_executable: pe,
                parent_args: pa,
            },
        }
    }

    /// Deleter for a matching deletion: the payload itself, a helper not in the exclusion list.
    fn ok_deleter(&mut self, name: &str) -> String {
        if self.rng.random_bool(0.5) {
            name.to_string()
        } else {
            self.pick(OK_DELETERS).to_string()
        }
    }

    fn live_key_creation(&mut self, ts: u64) -> Ev {
        let c = self.rng.random_range(0..self.world.containers.len());
        let u = self.rng.random_range(0..self.world.users.len());
        let name = self.fresh_name();
        let dir = self.pick(&["/tmp/", "/dev/shm/", "/var/tmp/"]);
        let mut ev = self.downloader_creation(ts, c, Some(u), dir, &name);
        let url = self.url(&name);
        ev.proc.name = Some(s("curl"));
        ev.proc.executable = s("/usr/bin/curl");
        ev.proc.args = vec![s("curl"), s("-sSLo"), ev.file_path.clone(), url.into()];
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_exec_names_are_outside_the_scenario_namespace() {
        for n in BG_EXECS {
            assert!(!n.contains('.'), "{n}");
            let tail: String = n.chars().rev().take(5).collect();
            assert!(!(tail.len() == 5 && tail.chars().all(|c| c.is_ascii_hexdigit())), "{n}");
        }
        for p in PAYLOADS {
            assert!(!bg_file_name(p), "{p}");
        }
    }

    #[test]
    fn background_events_stay_in_their_namespaces() {
        let w = World::build(2, 3, 20, 5);
        let cfg = Config {
            seed: 3,
            total: Some(20_000),
            attack_rate: 0.01,
            decoy_rate: 0.01,
            live_keys: 0,
            sim_eps: 1000.0,
            start_ms: DEFAULT_START_MS,
        };
        let mut g = Generator::new(&w, cfg);
        let mut scenario_names = std::collections::HashSet::new();
        while let Some(e) = g.next_event() {
            let file_name = e.ev.file_name.as_deref();
            match e.origin {
                Origin::Background => {
                    if let Some(f) = file_name {
                        assert!(bg_file_name(f), "background file name without a dot: {f}");
                    } else {
                        let p = e.ev.proc.name.as_deref().unwrap_or_default();
                        assert!(BG_EXECS.contains(&p), "background exec outside BG_EXECS: {p}");
                    }
                }
                _ => {
                    if let (Kind::FileCreate, Some(f)) = (e.ev.kind, file_name) {
                        assert!(!bg_file_name(f) && !BG_EXECS.contains(&f), "{f}");
                        scenario_names.insert(f.to_string());
                    }
                }
            }
        }
        assert!(scenario_names.len() > 300);
    }

    #[test]
    fn events_per_slot_is_the_observed_mean() {
        let w = World::build(4, 3, 20, 5);
        let (a, d) = (0.05, 0.1);
        let cfg = Config {
            seed: 5,
            total: None,
            attack_rate: a,
            decoy_rate: d,
            live_keys: 0,
            sim_eps: 1000.0,
            start_ms: DEFAULT_START_MS,
        };
        let mut g = Generator::new(&w, cfg);
        // 400 simulated seconds at 1000 slots/s, counted up to a time no scenario is still under
        // way for (all events up to `horizon` are out once one later event is).
        let horizon = DEFAULT_START_MS + 400_000;
        let mut n = 0u64;
        while let Some(e) = g.next_event() {
            if e.ev.ts > horizon {
                break;
            }
            n += 1;
        }
        let observed = n as f64 / 400_000.0;
        let expected = events_per_slot(a, d);
        assert!((expected - 1.0 - a * 2.2316 - d * 2.0).abs() < 1e-3, "{expected}");
        assert!((observed / expected - 1.0).abs() < 0.01, "observed {observed} expected {expected}");
    }

    #[test]
    fn background_only_ends_scenarios_and_keeps_time_order() {
        let w = World::build(1, 3, 20, 5);
        let cfg = Config {
            seed: 2,
            total: Some(3000),
            attack_rate: 0.05,
            decoy_rate: 0.05,
            live_keys: 0,
            sim_eps: 1000.0,
            start_ms: DEFAULT_START_MS,
        };
        let mut g = Generator::new(&w, cfg);
        let mut last = 0;
        while let Some(e) = g.next_event() {
            last = e.ev.ts;
        }
        assert_eq!(g.emitted(), 3000);
        let attacks = g.stats.attacks;
        g.background_only();
        for _ in 0..5000 {
            let e = g.next_event().expect("background goes on");
            assert!(e.ev.ts >= last, "time order across the switch");
            assert_eq!(e.origin, Origin::Background);
            last = e.ev.ts;
        }
        assert_eq!(g.stats.attacks, attacks);
        assert_eq!(g.scheduled(), 0);
        g.stop();
        assert!(g.next_event().is_none());
    }

    #[test]
    fn generator_is_deterministic_and_time_ordered() {
        let w = World::build(1, 3, 20, 5);
        let cfg = Config {
            seed: 9,
            total: Some(5000),
            attack_rate: 0.01,
            decoy_rate: 0.02,
            live_keys: 10,
            sim_eps: 1000.0,
            start_ms: DEFAULT_START_MS,
        };
        let run = |cfg: Config| {
            let mut g = Generator::new(&w, cfg);
            let mut v = Vec::new();
            while let Some(e) = g.next_event() {
                v.push((e.ev.ts, e.ev.n, e.truth.is_some()));
            }
            v
        };
        let a = run(cfg.clone());
        let b = run(cfg);
        assert_eq!(a, b);
        assert_eq!(a.len(), 5000);
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(a.iter().filter(|x| x.2).count() > 10);
    }
}
