//! Reloading the rules of a running pipeline: on SIGHUP, and with `--watch` when the rule files
//! change.
//!
//! One thread (`rules-reload`) does every reload, so reloads never overlap and never run on a
//! pipeline thread: it waits for a request (the SIGHUP handler sends one; requests that arrive
//! during a reload are merged into one), and with `--watch` it also looks at the rule files
//! every [`WATCH_INTERVAL`].
//!
//! **Watching** is polling: the size, modification time and inode of every `*.toml` file under
//! the rule paths (and of each file named directly), compared with the previous look. A change,
//! an added or a removed file triggers a reload. Polling needs no extra crate and no inotify
//! watch per directory (a detection-rules checkout has hundreds), works on network and bind
//! mounts, and a look at 2,000 files costs a few milliseconds a second. The look is taken before
//! the files are read, so a change made during a reload triggers another one. A file caught
//! half-written is refused like any bad rule set, and the next change (the end of the write)
//! reloads again.
//!
//! **A reload** loads and compiles the rules exactly as start-up does ([`super::load`], same
//! `--strict`), while the old set keeps running. A set that fails is refused: every problem goes
//! to stderr as `FILE:LINE:COL` with its source line, an error line says the previous rules keep
//! running, and `eqlstream_rule_reloads_total{result="failure"}` counts it. A good set is handed
//! to [`LiveRules::replace`] (it applies from the next batch read; see
//! [`crate::pipeline::live`]) and counted as a success.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use super::LoadOptions;
use crate::config::RuleSource;
use crate::metrics::Handles;
use crate::pipeline::LiveRules;

/// How often `--watch` looks at the rule files.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Loads the rules again and, when they are good, makes them the running set.
pub struct Reloader {
    source: RuleSource,
    opts: LoadOptions,
    live: LiveRules,
    handles: Handles,
}

impl Reloader {
    /// A reloader of `source` (as at start-up, under `opts`) into `live`, counting in `handles`.
    pub fn new(source: RuleSource, opts: LoadOptions, live: LiveRules, handles: Handles) -> Reloader {
        Reloader { source, opts, live, handles }
    }

    /// One reload (`why` says what asked for it, for the log). Returns whether the new rules
    /// were accepted; a refusal prints its errors on stderr.
    pub fn reload(&self, why: &str) -> bool {
        if self.source == RuleSource::Embedded {
            tracing::info!(trigger = why, "The rules are built into the binary: nothing to reload.");
            return false;
        }
        tracing::info!(trigger = why, "Reloading the rules.");
        match super::load(&self.source, self.opts) {
            Ok(catalog) => {
                for w in catalog.skipped.iter().filter_map(|s| s.warning()) {
                    tracing::warn!("{w}");
                }
                tracing::info!("{}", catalog.summary());
                let old = self.live.current();
                let new = self.live.replace(catalog.rules);
                let carried = new.carried_from(&old);
                let kept = carried.iter().flatten().count();
                self.handles.rule_reload(true);
                tracing::info!(
                    version = new.number,
                    rules = new.rules.rules.len(),
                    unchanged = kept,
                    new_or_changed = new.rules.rules.len() - kept,
                    removed_or_changed = old.rules.rules.len() - kept,
                    "Rules reloaded: in effect from the next batch read; unchanged rules keep their partial sequences."
                );
                true
            }
            Err(e) => {
                use std::io::Write;
                // Counted before it is told, so that whoever reads the message sees the count.
                self.handles.rule_reload(false);
                let _ = std::io::stderr().lock().write_all(e.rendered().as_bytes());
                tracing::error!(error = %e, "Rule reload refused: the previous rules keep running.");
                false
            }
        }
    }
}

/// What `--watch` compares per rule file: its size, modification time and inode.
type FileStamp = (u64, SystemTime, u64);

/// What `--watch` compares: each rule file with its [`FileStamp`] (`None` for a path given that
/// does not exist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot(Vec<(PathBuf, Option<FileStamp>)>);

impl Snapshot {
    /// A look at the rule files under `paths` (`*.toml` under directories, recursively, following
    /// symbolic links once; files given directly whatever their name).
    pub fn take(paths: &[PathBuf]) -> Snapshot {
        let mut out = Vec::new();
        let mut visited = hashbrown::HashSet::new();
        for p in paths {
            match std::fs::metadata(p) {
                Ok(m) if m.is_dir() => walk(p, &mut out, &mut visited),
                Ok(m) => out.push((p.clone(), Some(stamp(&m)))),
                Err(_) => out.push((p.clone(), None)),
            }
        }
        out.sort();
        // A file named and also under a directory given.
        out.dedup();
        Snapshot(out)
    }

    /// Number of files looked at.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no file was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn stamp(m: &std::fs::Metadata) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.ino())
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Option<FileStamp>)>, visited: &mut hashbrown::HashSet<PathBuf>) {
    if let Ok(real) = std::fs::canonicalize(dir) {
        if !visited.insert(real) {
            return;
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, out, visited),
            Ok(m) if p.extension().is_some_and(|x| x == "toml") => out.push((p, Some(stamp(&m)))),
            _ => {}
        }
    }
}

/// The running reload thread; [`ReloadThread::stop`] ends it.
pub struct ReloadThread {
    stop: Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl ReloadThread {
    /// Stops the thread, after the reload it may be doing.
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.handle.join();
    }
}

/// Starts the reload thread: a reload per message on `requests` (SIGHUP) and, with `watch` (a
/// [`Snapshot`] of the files as they were when the running rules were read: take it before
/// loading them), one whenever the rule files differ from the last look (every
/// [`WATCH_INTERVAL`]).
pub fn spawn(reloader: Reloader, watch: Option<Snapshot>, requests: Receiver<()>) -> std::io::Result<ReloadThread> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let paths = super::paths(&reloader.source).to_vec();
    let watch = watch.filter(|_| !paths.is_empty());
    let handle = std::thread::Builder::new().name("rules-reload".into()).spawn(move || {
        let (watch, mut last) = (watch.is_some(), watch.unwrap_or_default());
        if watch {
            tracing::info!(files = last.len(), "Watching the rule files for changes.");
        }
        let tick = if watch { crossbeam_channel::tick(WATCH_INTERVAL) } else { crossbeam_channel::never() };
        let mut requests = requests;
        loop {
            crossbeam_channel::select! {
                recv(stopped) -> _ => return,
                recv(requests) -> r => {
                    if r.is_err() {
                        // No more signals can come: wait for the stop (and watch, if asked to).
                        requests = crossbeam_channel::never();
                        continue;
                    }
                    if watch {
                        last = Snapshot::take(&paths);
                    }
                    reloader.reload("SIGHUP");
                }
                recv(tick) -> _ => {
                    let now = Snapshot::take(&paths);
                    if now != last {
                        last = now;
                        reloader.reload("rule files changed");
                    }
                }
            }
        }
    })?;
    Ok(ReloadThread { stop, handle })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_changed_added_and_removed_rule_files_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = dir.path().join("a.toml");
        std::fs::write(&a, "one").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let b = dir.path().join("sub/b.toml");
        std::fs::write(&b, "two").expect("write");
        let paths = vec![dir.path().to_path_buf(), dir.path().join("missing.toml")];
        let first = Snapshot::take(&paths);
        assert_eq!(first.len(), 3, "{first:?}");
        std::fs::write(dir.path().join("notes.md"), "not a rule").expect("write");
        std::fs::write(dir.path().join("a.toml.swp"), "editor").expect("write");
        assert_eq!(Snapshot::take(&paths), first, "other files do not count");
        std::fs::write(&b, "three").expect("write");
        let second = Snapshot::take(&paths);
        assert_ne!(second, first, "a size change");
        // Replaced by a rename (editors, `mv`): another inode, same size.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, "THREE").expect("write");
        std::fs::rename(&tmp, &b).expect("rename");
        let third = Snapshot::take(&paths);
        assert_ne!(third, second, "a replaced file");
        std::fs::write(dir.path().join("missing.toml"), "now here").expect("write");
        assert_ne!(Snapshot::take(&paths), third, "a file that appears");
        std::fs::remove_file(&a).expect("rm");
        assert_eq!(Snapshot::take(&paths).len(), 2);
    }
}
