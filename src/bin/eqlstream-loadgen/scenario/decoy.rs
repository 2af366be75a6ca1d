//! Near-miss scenarios: three events that look like the seed rule's sequence but, under ES
//! semantics (eql-semantics.md §10), are exactly non-matching; the reason is on each kind.

use std::borrow::Cow;

use rand::Rng;

use super::*;

/// Near-miss kinds. Each is exactly non-matching under ES semantics (eql-semantics.md §10);
/// the reason is on each variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decoy {
    /// Deleter `process.name` in the exclusion list (rm, ld, conftest, link, gcc, getarch): S3 fails. (N1)
    DeletedByExcluded,
    /// Deletion 10 001 ms after creation: maxspan is inclusive, so 1 ms past fails. (N2)
    DeletePastMaxspan,
    /// Exec 10 001 ms after creation: S2 rejected by maxspan, so S3 has no partial. (N2)
    ExecPastMaxspan,
    /// Path outside every pattern (`/usr/local/bin/x`, `/home/x` needs two segments, `/tmpx/..`). (N3)
    PathOutside,
    /// Path in the wrong case (`/TMP/x`): `like` is case-sensitive. (N14)
    PathWrongCase,
    /// Exec'd `process.name` is the upper-cased file name: the join key differs. (N4)
    ExecNameMismatch,
    /// Deletion in another container: other key. (N5)
    DeleteOtherContainer,
    /// Deletion by another `user.id`: other key.
    DeleteOtherUser,
    /// `sh -c "curl ..."`: the args element is the whole string, not `curl`. (N6)
    ShDashCString,
    /// Shell args hold a downloader *and* an excluded word (`which`, `chmod`...). (N7)
    ArgsExclusion,
    /// Downloader name in the wrong case (`CURL`, `Wget`): `in` is case-sensitive. (N8)
    DownloaderWrongCase,
    /// Exec before creation: order matters (strictly increasing ordinals, §3). (N9)
    ExecBeforeCreate,
    /// Exec by another `user.id`: other key. (N10)
    ExecOtherUser,
    /// Exec's parent is not a shell (python3, node, runc...). (N11)
    ParentNotShell,
    /// No `user.id` on any event: mandatory join keys must exist (§4.2). (N12)
    MissingUserId,
    /// Second stage is `event.action: fork`. (N13)
    ForkNotExec,
    /// Second stage is an `end` event.
    ExecEndEvent,
    /// Creator is neither a downloader nor a listed shell with a downloader arg (cp, tar, `ash`).
    NonDownloaderCreator,
    /// Deletion before the exec: S3 needs a stage-2 partial that does not exist yet.
    DeleteBeforeExec,
    /// Creation without `file.name`: mandatory key missing (§4.2).
    MissingFileName,
}

const DECOYS: &[Decoy] = &[
    Decoy::DeletedByExcluded,
    Decoy::DeletePastMaxspan,
    Decoy::ExecPastMaxspan,
    Decoy::PathOutside,
    Decoy::PathWrongCase,
    Decoy::ExecNameMismatch,
    Decoy::DeleteOtherContainer,
    Decoy::DeleteOtherUser,
    Decoy::ShDashCString,
    Decoy::ArgsExclusion,
    Decoy::DownloaderWrongCase,
    Decoy::ExecBeforeCreate,
    Decoy::ExecOtherUser,
    Decoy::ParentNotShell,
    Decoy::MissingUserId,
    Decoy::ForkNotExec,
    Decoy::ExecEndEvent,
    Decoy::NonDownloaderCreator,
    Decoy::DeleteBeforeExec,
    Decoy::MissingFileName,
];

/// Number of decoy kinds (for statistics arrays).
pub const DECOY_KINDS: usize = 20;

impl Decoy {
    /// Position in the fixed list of kinds.
    pub fn index(self) -> usize {
        DECOYS.iter().position(|d| *d == self).unwrap_or(0)
    }
    /// All kinds, in index order.
    pub fn all() -> &'static [Decoy] {
        DECOYS
    }
}

const OUTSIDE_DIRS: &[&str] =
    &["/usr/local/bin/", "/usr/bin/", "/etc/", "/app/", "/srv/", "/var/lib/", "/tmpfs/", "/mnt/data/"];
const WRONG_CASE_DIRS: &[&str] = &["/TMP/", "/Tmp/", "/DEV/SHM/", "/Var/tmp/", "/ROOT/", "/OPT/"];
const EXCLUDED_DELETERS: &[&str] = &["rm", "ld", "conftest", "link", "gcc", "getarch"];
const EXCLUDED_ARGS: &[&str] = &["which", "man", "chmod", "chown"];

/// Number of events of every decoy.
pub(super) const LEN: u64 = 3;

impl Generator<'_> {
    /// Picks a decoy kind and schedules its events from `t0`; returns the number of events
    /// (0 if the budget is too small).
    pub(super) fn schedule_decoy(&mut self, t0: u64, budget: u64) -> u64 {
        if budget < LEN {
            return 0;
        }
        let kind = self.pick(DECOYS);
        self.stats.decoys[kind.index()] += 1;
        let o = Origin::Decoy(kind);
        let nc = self.world.containers.len();
        let nu = self.world.users.len();
        let c = self.rng.random_range(0..nc);
        let u = self.user_idx();
        let name = self.fresh_name();
        let dir: String = match kind {
            Decoy::PathOutside => {
                if self.rng.random_bool(0.2) {
                    "/home/".to_string() // `/home/<name>` has one segment; `/home/*/*` needs two
                } else {
                    self.pick(OUTSIDE_DIRS).to_string()
                }
            }
            Decoy::PathWrongCase => self.pick(WRONG_CASE_DIRS).to_string(),
            _ => self.pick(RULE_DIRS).to_string(),
        };
        let path = format!("{dir}{name}");
        let span = self.rng.random_range(20..=MAXSPAN_MS - 10);
        let d_exec = self.rng.random_range(1..span);
        let user = if kind == Decoy::MissingUserId { None } else { Some(u) };
        // Stage-1-like creation (possibly made non-matching by the decoy kind).
        let mut create = self.downloader_creation(t0, c, user, &dir, &name);
        match kind {
            Decoy::ShDashCString => {
                let sh = self.pick(&["sh", "bash", "dash"]);
                let dl = self.pick(&["curl -sSLo", "wget -qO"]);
                let url = self.url(&name);
                create.proc.name = Some(s(sh));
                create.proc.executable = self.path_of("/bin/", sh);
                create.proc.args = vec![s(sh), s("-c"), Cow::Owned(format!("{dl} {path} {url}"))];
            }
            Decoy::ArgsExclusion => {
                let sh = self.pick(&["sh", "bash", "busybox"]);
                let dl = self.pick(&["/usr/bin/wget", "curl", "/bin/curl", "wget"]);
                let ex = self.pick(EXCLUDED_ARGS);
                let pre = self.pick(DL_PREFIXES);
                create.proc.name = Some(s(sh));
                create.proc.executable = self.path_of("/bin/", sh);
                create.proc.args = vec![s(sh), s(dl), Cow::Owned(format!("{pre}{ex}")), s("-O"), path.clone().into()];
            }
            Decoy::DownloaderWrongCase => {
                let dl = self.pick(&["CURL", "Wget", "SCP", "Curl", "RSYNC", "Fetch"]);
                create.proc.name = Some(s(dl));
            }
            Decoy::NonDownloaderCreator => {
                if self.rng.random_bool(0.3) {
                    // `ash` is a stage-2 parent shell but not a stage-1 shell.
                    create.proc.name = Some(s("ash"));
                    create.proc.executable = s("/bin/ash");
                    create.proc.args = vec![s("ash"), s("wget"), s("-O"), path.clone().into()];
                } else {
                    let p = self.pick(&["cp", "tar", "python3", "node", "install", "mv"]);
                    create.proc.name = Some(s(p));
                    create.proc.executable = self.path_of("/usr/bin/", p);
                    create.proc.args = vec![s(p), s("/app/dist/bundle"), path.clone().into()];
                }
            }
            Decoy::MissingFileName => create.file_name = None,
            _ => {}
        }
        let (create_at, exec_at, delete_at) = match kind {
            Decoy::DeletePastMaxspan => (t0, t0 + d_exec, t0 + MAXSPAN_MS + 1),
            Decoy::ExecPastMaxspan => (t0, t0 + MAXSPAN_MS + 1, t0 + MAXSPAN_MS + 1 + self.rng.random_range(1..500)),
            Decoy::ExecBeforeCreate => (t0 + d_exec, t0, t0 + span),
            Decoy::DeleteBeforeExec => (t0, t0 + span, t0 + d_exec),
            _ => (t0, t0 + d_exec, t0 + span),
        };
        create.ts = create_at;
        self.push(create_at, create, None, o);
        let exec_kind = match kind {
            Decoy::ForkNotExec => Kind::ProcFork,
            Decoy::ExecEndEvent => Kind::ProcEnd,
            _ => Kind::ProcExec,
        };
        let exec_user = match kind {
            Decoy::ExecOtherUser => Some(self.other(nu, u)),
            _ => user,
        };
        let exec_name = if kind == Decoy::ExecNameMismatch { name.to_ascii_uppercase() } else { name.clone() };
        let ex = self.exec(exec_at, exec_kind, (c, exec_user), &path, &exec_name, kind != Decoy::ParentNotShell);
        self.push(exec_at, ex, None, o);
        let del_c = if kind == Decoy::DeleteOtherContainer { self.other(nc, c) } else { c };
        let del_u = if kind == Decoy::DeleteOtherUser { Some(self.other(nu, u)) } else { user };
        let deleter = if kind == Decoy::DeletedByExcluded {
            self.pick(EXCLUDED_DELETERS).to_string()
        } else {
            self.ok_deleter(&name)
        };
        let del = self.deletion(delete_at, del_c, del_u, &path, &name, Some(&deleter));
        self.push(delete_at, del, None, o);
        LEN
    }
}
