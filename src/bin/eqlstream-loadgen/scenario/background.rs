//! Background noise: process and file events whose names stay in the background namespaces
//! (see the parent module), so they can never take part in a sequence of the seed rule.

use std::borrow::Cow;

use rand::Rng;

use super::*;

/// Background exec names: no `.`, none ends in five hex digits, none equals a scenario name.
pub const BG_EXECS: &[&str] = &[
    "ls",
    "cat",
    "grep",
    "sed",
    "awk",
    "sleep",
    "date",
    "python3",
    "node",
    "java",
    "nginx",
    "ps",
    "id",
    "env",
    "uname",
    "tar",
    "gzip",
    "find",
    "head",
    "tail",
    "wc",
    "sort",
    "mkdir",
    "cp",
    "mv",
    "psql",
    "redis-cli",
    "pg_isready",
    "hostname",
    "whoami",
    "curl",
    "wget",
    "tr",
    "cut",
    "xargs",
    "stat",
    "true",
];
const BG_FILE_STEMS: &[&str] = &[
    "access",
    "error",
    "app",
    "session",
    "cache",
    "pip-build",
    "npm",
    "state",
    "lock",
    "index",
    "worker",
    "config",
    "tmp",
    "core",
    "upload",
    "report",
    "metrics",
    "db",
    "pid",
    "socket",
];
const BG_FILE_EXTS: &[&str] =
    &[".log", ".json", ".tmp", ".pid", ".sock", ".so", ".tar.gz", ".lock", ".cache", ".yaml", ".db", ".txt", ".gz"];
const BG_FILE_DIRS: &[&str] = &[
    "/tmp/",
    "/var/log/nginx/",
    "/var/lib/postgresql/data/",
    "/app/",
    "/run/",
    "/var/tmp/",
    "/home/app/.cache/",
    "/usr/share/nginx/html/",
    "/etc/",
    "/opt/app/",
    "/dev/shm/",
    "/root/",
];
const BG_CREATORS: &[&str] =
    &["nginx", "python3", "java", "node", "postgres", "redis-server", "tar", "cp", "sh", "curl", "wget"];

impl Generator<'_> {
    /// One background event at `ts`. Names follow the namespace argument in the module docs.
    pub(super) fn background(&mut self, ts: u64) -> Ev {
        let c = self.rng.random_range(0..self.world.containers.len());
        let u = self.user_idx();
        let roll = self.rng.random_range(0..100);
        let n = self.next_n();
        let pid = self.pid();
        if roll < 55 {
            // Process events.
            let kind = match roll {
                0..=29 => Kind::ProcExec,
                30..=41 => Kind::ProcFork,
                _ => Kind::ProcEnd,
            };
            let name = self.pick(BG_EXECS);
            let exe: Str = self.path_of("/usr/bin/", name);
            let args: Vec<Str> = match name {
                "curl" => vec![s("curl"), s("-fsS"), s("http://localhost:8080/healthz")],
                "wget" => vec![s("wget"), s("-qO-"), s("http://127.0.0.1/status")],
                "grep" => vec![s("grep"), s("-c"), s("ERROR"), s("/var/log/app/app.log")],
                "sleep" => vec![s("sleep"), s("30")],
                "psql" => vec![s("psql"), s("-U"), s("postgres"), s("-c"), s("SELECT 1")],
                "tar" => vec![s("tar"), s("-czf"), s("/tmp/backup.tar.gz"), s("/var/lib/data")],
                _ => vec![Cow::Owned(name.to_string())],
            };
            let (pn, pe, pa) = if self.rng.random_bool(0.7) {
                self.shell_parent(s("/docker-entrypoint.sh"))
            } else {
                let p = self.pick(&["python3", "node", "java", "runc", "tini", "supervisord"]);
                (s(p), self.path_of("/usr/bin/", p), vec![s(p)])
            };
            return Ev {
                ts,
                n,
                kind,
                container: c,
                user: Some(u),
                file_path: s(""),
                file_name: None,
                proc: Proc {
                    name: Some(s(name)),
                    executable: exe,
                    args,
                    pid,
                    parent_name: pn,
                    parent_executable: pe,
                    parent_args: pa,
                },
            };
        }
        let kind = match roll {
            55..=74 => Kind::FileCreate,
            75..=87 => Kind::FileModify,
            _ => Kind::FileDelete,
        };
        let fname = self.bg_file_name();
        let dir = self.pick(BG_FILE_DIRS);
        let path = format!("{dir}{fname}");
        let proc_name = match kind {
            Kind::FileDelete => self.pick(&["rm", "nginx", "python3", "find", "logrotate", "sh", "java"]),
            _ => self.pick(BG_CREATORS),
        };
        let args: Vec<Str> = match proc_name {
            "curl" => {
                vec![s("curl"), s("-sSLo"), path.clone().into(), s("https://repo.example.org/pkg/release.tar.gz")]
            }
            "wget" => {
                vec![s("wget"), s("-q"), s("-O"), path.clone().into(), s("https://repo.example.org/pkg/release.tar.gz")]
            }
            "rm" => vec![s("rm"), s("-f"), path.clone().into()],
            "sh" => vec![s("sh"), s("-c"), s("/docker-entrypoint.sh")],
            other => vec![Cow::Owned(other.to_string())],
        };
        let (pn, pe, pa) = self.entry_parent();
        Ev {
            ts,
            n,
            kind,
            container: c,
            user: Some(u),
            file_path: path.into(),
            file_name: Some(fname.into()),
            proc: Proc {
                name: Some(s(proc_name)),
                executable: self.path_of("/usr/bin/", proc_name),
                args,
                pid,
                parent_name: pn,
                parent_executable: pe,
                parent_args: pa,
            },
        }
    }

    /// A background file name: always contains a `.` after its first character.
    fn bg_file_name(&mut self) -> String {
        let stem = self.pick(BG_FILE_STEMS);
        let ext = self.pick(BG_FILE_EXTS);
        if self.rng.random_bool(0.5) {
            format!("{stem}{ext}")
        } else {
            format!("{stem}-{}{ext}", self.rng.random_range(0..100_000u32))
        }
    }
}

/// True when `name` could be a background file name (used by tests of the namespace argument).
#[cfg(test)]
pub(super) fn bg_file_name(name: &str) -> bool {
    name.char_indices().any(|(i, c)| i > 0 && c == '.')
}
