//! One Defend for Containers event as plain data ([`Ev`]) and its JSON line.
//!
//! The shape copies `/work/shared/data/cloud_defend/seed_rule_cases.ndjson` (full ECS nesting,
//! arrays where ECS has arrays). Formatting writes straight into a caller-owned `Vec<u8>` with
//! `write!`-free byte pushes; it never builds a `serde_json::Value` and never decides *what* an
//! event means (that is `scenario.rs`).

use std::borrow::Cow;

use crate::world::World;

/// A string that is usually a `'static` literal and sometimes built per scenario.
pub type Str = Cow<'static, str>;

/// `event.ingested` = `@timestamp` + this many ms. Constant on purpose: the seed rule sets
/// `timestamp_override = "event.ingested"`, so a constant offset keeps every ordering and every
/// maxspan delta identical whichever of the two fields an engine orders by.
pub const INGEST_DELAY_MS: u64 = 2_000;

/// What kind of Defend for Containers event this is (decides data stream, action, category, type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `cloud_defend.file`, action `creation`.
    FileCreate,
    /// `cloud_defend.file`, action `deletion`.
    FileDelete,
    /// `cloud_defend.file`, action `modification` (background only).
    FileModify,
    /// `cloud_defend.process`, action `exec`, type `start`.
    ProcExec,
    /// `cloud_defend.process`, action `fork`, type `start`.
    ProcFork,
    /// `cloud_defend.process`, action `end`, type `end`.
    ProcEnd,
}

impl Kind {
    fn is_file(self) -> bool {
        matches!(self, Kind::FileCreate | Kind::FileDelete | Kind::FileModify)
    }
    fn action(self) -> &'static str {
        match self {
            Kind::FileCreate => "creation",
            Kind::FileDelete => "deletion",
            Kind::FileModify => "modification",
            Kind::ProcExec => "exec",
            Kind::ProcFork => "fork",
            Kind::ProcEnd => "end",
        }
    }
    fn event_type(self) -> &'static str {
        match self {
            Kind::FileCreate => "creation",
            Kind::FileDelete => "deletion",
            Kind::FileModify => "change",
            Kind::ProcExec | Kind::ProcFork => "start",
            Kind::ProcEnd => "end",
        }
    }
    fn hook_point(self) -> &'static str {
        match self {
            Kind::FileCreate => "lsm__path_mknod",
            Kind::FileDelete => "lsm__path_unlink",
            Kind::FileModify => "lsm__path_truncate",
            Kind::ProcExec => "tracepoint__sched_process_exec",
            Kind::ProcFork => "tracepoint__sched_process_fork",
            Kind::ProcEnd => "tracepoint__sched_process_exit",
        }
    }
}

/// The acting process (`process.*`) and its parent (`process.parent.*`).
#[derive(Clone, Debug)]
pub struct Proc {
    /// `process.name`; `None` writes no `process.name` at all (seed case P6).
    pub name: Option<Str>,
    /// `process.executable`.
    pub executable: Str,
    /// `process.args` (argv, one element per argument).
    pub args: Vec<Str>,
    /// `process.pid`.
    pub pid: u32,
    /// `process.parent.name`.
    pub parent_name: Str,
    /// `process.parent.executable`.
    pub parent_executable: Str,
    /// `process.parent.args`.
    pub parent_args: Vec<Str>,
}

/// One event to write. Indices point into the [`World`].
#[derive(Clone, Debug)]
pub struct Ev {
    /// `@timestamp`, ms since the Unix epoch.
    pub ts: u64,
    /// Construction counter; `event.id` is [`event_uuid`] of it.
    pub n: u64,
    /// Data stream and action.
    pub kind: Kind,
    /// Index into `world.containers`; `None` writes no `container.id` (never generated today,
    /// the container block is always present).
    pub container: usize,
    /// Index into `world.users`; `None` writes no `user` object (seed case N12).
    pub user: Option<usize>,
    /// `file.path` (file events only).
    pub file_path: Str,
    /// `file.name`; `None` writes only `file.path`.
    pub file_name: Option<Str>,
    /// The acting process.
    pub proc: Proc,
}

/// Remembers the formatted `YYYY-MM-DDTHH:MM:SS.` prefix of the last few seconds
/// (direct-mapped on `second % 4`, so `@timestamp` and `event.ingested`, 2 s apart, both hit).
#[derive(Clone, Debug)]
pub struct TimeCache {
    slots: [(u64, [u8; 20]); 4],
}

impl Default for TimeCache {
    fn default() -> Self {
        TimeCache { slots: [(u64::MAX, [0; 20]); 4] }
    }
}

impl TimeCache {
    /// Writes `ms` (Unix epoch milliseconds) as RFC 3339 UTC with millisecond digits.
    pub fn write(&mut self, out: &mut Vec<u8>, ms: u64) {
        let secs = ms / 1000;
        let slot = &mut self.slots[(secs % 4) as usize];
        if slot.0 != secs {
            *slot = (secs, format_second(secs));
        }
        out.extend_from_slice(&slot.1);
        let mut b = [0u8; 4];
        put_num(&mut b[..3], (ms % 1000) as u32);
        b[3] = b'Z';
        out.extend_from_slice(&b);
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` for a Unix second.
fn format_second(secs: u64) -> [u8; 20] {
    let days = (secs / 86_400) as i64;
    let sod = (secs % 86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let mut b = [0u8; 20];
    put_num(&mut b[0..4], y as u32);
    b[4] = b'-';
    put_num(&mut b[5..7], m);
    b[7] = b'-';
    put_num(&mut b[8..10], d);
    b[10] = b'T';
    put_num(&mut b[11..13], sod / 3600);
    b[13] = b':';
    put_num(&mut b[14..16], (sod / 60) % 60);
    b[16] = b':';
    put_num(&mut b[17..19], sod % 60);
    b[19] = b'.';
    b
}

fn put_num(dst: &mut [u8], mut v: u32) {
    for slot in dst.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A bijection on 48-bit values (xor-multiply-xorshift), keyed by the seed.
fn mix48(x: u64, key: u64) -> u64 {
    const M: u64 = (1 << 48) - 1;
    let mut x = (x ^ key) & M;
    x = x.wrapping_mul(0x9E37_79B9_7F4B) & M; // odd multiplier: invertible mod 2^48
    x ^= x >> 23;
    x = x.wrapping_mul(0xC2B2_AE3D_27D5) & M;
    x ^= x >> 19;
    x
}

/// splitmix64 finaliser (for non-unique "random-looking" hex only).
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(dst: &mut [u8], mut v: u64) {
    for slot in dst.iter_mut().rev() {
        *slot = HEX[(v & 15) as usize];
        v >>= 4;
    }
}

/// The UUID-shaped `event.id` of construction counter `n` under `seed`. Unique for every
/// `n < 2^48`: the last group is a bijection of `n` (see [`mix48`]).
pub fn event_uuid(seed: u64, n: u64) -> [u8; 36] {
    let hi = mix64(n ^ mix64(seed));
    let lo = mix48(n, mix64(seed ^ 0x5eed));
    let mut b = [b'-'; 36];
    put_hex(&mut b[0..8], hi >> 32);
    put_hex(&mut b[9..13], (hi >> 16) & 0xffff);
    b[14] = b'4';
    put_hex(&mut b[15..18], hi & 0xfff);
    b[19] = HEX[8 + ((hi >> 12) & 3) as usize];
    put_hex(&mut b[20..23], (hi >> 40) & 0xfff);
    put_hex(&mut b[24..36], lo);
    b
}

/// `len` lower-case hex digits derived from `v` (entity ids, container ids...).
pub fn hex_id(v: u64, len: usize) -> String {
    let mut s = Vec::with_capacity(len);
    let mut x = v;
    while s.len() < len {
        x = mix64(x);
        let mut chunk = [0u8; 16];
        put_hex(&mut chunk, x);
        let take = (len - s.len()).min(16);
        s.extend_from_slice(&chunk[..take]);
    }
    String::from_utf8(s).expect("hex digits are ASCII")
}

/// Appends `s` as a JSON string literal (quotes included), escaping as RFC 8259 requires.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Fast path (nearly every string): nothing to escape.
    if bytes.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_str_array(out: &mut Vec<u8>, items: &[Str]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, s);
    }
    out.push(b']');
}

fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = [0u8; 20];
    let mut i = b.len();
    let mut x = v;
    loop {
        i -= 1;
        b[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    out.extend_from_slice(&b[i..]);
}

/// Formats events of one run: the seed (for `event.id`) and the timestamp cache.
#[derive(Clone, Debug)]
pub struct Formatter {
    seed: u64,
    times: TimeCache,
}

impl Formatter {
    /// A formatter for a run with `seed`.
    pub fn new(seed: u64) -> Self {
        Formatter { seed, times: TimeCache::default() }
    }

    /// Appends the event's JSON object and a `\n` to `out`.
    pub fn write_event(&mut self, out: &mut Vec<u8>, world: &World, ev: &Ev) {
        write_event(out, &mut self.times, world, self.seed, ev);
    }
}

/// Appends the event's JSON object and a `\n` to `out`. `seed` keys the `event.id`.
fn write_event(out: &mut Vec<u8>, times: &mut TimeCache, world: &World, seed: u64, ev: &Ev) {
    let c = &world.containers[ev.container];
    let h = &world.hosts[c.host];
    let stream: &str = if ev.kind.is_file() { "file" } else { "process" };
    out.extend_from_slice(b"{\"@timestamp\":\"");
    times.write(out, ev.ts);
    out.extend_from_slice(b"\",\"agent\":{\"id\":\"");
    out.extend_from_slice(h.agent_id.as_bytes());
    out.extend_from_slice(
        b"\",\"type\":\"cloud-defend\",\"version\":\"9.3.0\"},\"cloud\":{\"provider\":\"aws\",\"region\":\"",
    );
    out.extend_from_slice(h.region.as_bytes());
    out.extend_from_slice(b"\",\"availability_zone\":\"");
    out.extend_from_slice(h.az.as_bytes());
    out.extend_from_slice(b"\"},\"cloud_defend\":{\"matched_selectors\":[\"");
    out.extend_from_slice(if ev.kind.is_file() { b"fileActivity" } else { b"allProcesses" });
    out.extend_from_slice(b"\"],\"hook_point\":[\"");
    out.extend_from_slice(ev.kind.hook_point().as_bytes());
    out.extend_from_slice(b"\"]},\"container\":{\"id\":\"");
    out.extend_from_slice(c.id.as_bytes());
    out.extend_from_slice(b"\",\"name\":\"");
    out.extend_from_slice(c.name.as_bytes());
    out.extend_from_slice(b"\",\"image\":{\"name\":\"");
    out.extend_from_slice(c.image.as_bytes());
    out.extend_from_slice(b"\",\"tag\":[\"");
    out.extend_from_slice(c.tag.as_bytes());
    out.extend_from_slice(b"\"]}},\"data_stream\":{\"dataset\":\"cloud_defend.");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",\"namespace\":\"default\",\"type\":\"logs\"},\"ecs\":{\"version\":\"8.7.0\"},\"event\":{\"dataset\":\"cloud_defend.");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",\"id\":\"");
    out.extend_from_slice(&event_uuid(seed, ev.n));
    out.extend_from_slice(b"\",\"ingested\":\"");
    times.write(out, ev.ts + INGEST_DELAY_MS);
    out.extend_from_slice(b"\",\"kind\":\"event\",\"module\":\"cloud_defend\",\"action\":\"");
    out.extend_from_slice(ev.kind.action().as_bytes());
    out.extend_from_slice(b"\",\"category\":[\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\"],\"type\":[\"");
    out.extend_from_slice(ev.kind.event_type().as_bytes());
    out.extend_from_slice(b"\"]},\"host\":{\"hostname\":\"");
    out.extend_from_slice(h.hostname.as_bytes());
    out.extend_from_slice(b"\",\"id\":\"");
    out.extend_from_slice(h.id.as_bytes());
    out.extend_from_slice(b"\",\"ip\":[\"127.0.0.1\",\"");
    out.extend_from_slice(h.ip.as_bytes());
    out.extend_from_slice(b"\"],\"mac\":[\"");
    out.extend_from_slice(h.mac.as_bytes());
    out.extend_from_slice(b"\"],\"os\":{\"kernel\":\"");
    out.extend_from_slice(h.kernel.as_bytes());
    out.extend_from_slice(
        b"\",\"name\":\"Linux\",\"version\":\"22.04.4\"}},\"orchestrator\":{\"cluster\":{\"name\":\"",
    );
    out.extend_from_slice(world.cluster.as_bytes());
    out.extend_from_slice(b"\"},\"namespace\":\"");
    out.extend_from_slice(c.namespace.as_bytes());
    out.extend_from_slice(b"\",\"resource\":{\"ip\":[\"");
    out.extend_from_slice(c.pod_ip.as_bytes());
    out.extend_from_slice(b"\"],\"name\":\"");
    out.extend_from_slice(c.pod.as_bytes());
    out.extend_from_slice(b"\",\"type\":\"pod\"}},");
    if let Some(u) = ev.user {
        let uid = world.users[u].as_bytes();
        out.extend_from_slice(b"\"user\":{\"id\":\"");
        out.extend_from_slice(uid);
        out.extend_from_slice(b"\"},\"group\":{\"id\":\"");
        out.extend_from_slice(uid);
        out.extend_from_slice(b"\"},");
    }
    if ev.kind.is_file() {
        out.extend_from_slice(b"\"file\":{\"path\":");
        write_json_str(out, &ev.file_path);
        if let Some(name) = &ev.file_name {
            out.extend_from_slice(b",\"name\":");
            write_json_str(out, name);
        }
        out.extend_from_slice(b"},");
    }
    let p = &ev.proc;
    out.extend_from_slice(b"\"process\":{");
    if let Some(name) = &p.name {
        out.extend_from_slice(b"\"name\":");
        write_json_str(out, name);
        out.push(b',');
    }
    out.extend_from_slice(b"\"executable\":");
    write_json_str(out, &p.executable);
    out.extend_from_slice(b",\"args\":");
    write_str_array(out, &p.args);
    out.extend_from_slice(b",\"pid\":");
    write_u64(out, u64::from(p.pid));
    out.extend_from_slice(b",\"entity_id\":\"");
    let mut ent = [0u8; 32];
    put_hex(&mut ent[..16], mix64(ev.n ^ 0xe17));
    put_hex(&mut ent[16..], mix64(u64::from(p.pid) ^ seed));
    out.extend_from_slice(&ent);
    out.extend_from_slice(b"\",\"parent\":{\"name\":");
    write_json_str(out, &p.parent_name);
    out.extend_from_slice(b",\"executable\":");
    write_json_str(out, &p.parent_executable);
    out.extend_from_slice(b",\"args\":");
    write_str_array(out, &p.parent_args);
    out.extend_from_slice(b",\"pid\":");
    write_u64(out, u64::from(p.pid.saturating_sub(1 + p.pid % 5)));
    out.extend_from_slice(b",\"entity_id\":\"");
    put_hex(&mut ent[..16], mix64(u64::from(p.pid) ^ 0x9a7));
    put_hex(&mut ent[16..], mix64(c.host as u64 ^ seed));
    out.extend_from_slice(&ent);
    out.extend_from_slice(b"\"}}}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instant_with_millis() {
        let mut cache = TimeCache::default();
        let mut cached = Vec::new();
        for ms in [1_772_704_800_123, 1_772_704_802_999, 1_772_704_800_124, 951_782_400_000] {
            cache.write(&mut cached, ms);
            cached.push(b' ');
        }
        assert_eq!(
            cached,
            b"2026-03-05T10:00:00.123Z 2026-03-05T10:00:02.999Z 2026-03-05T10:00:00.124Z 2000-02-29T00:00:00.000Z "
        );
    }

    #[test]
    fn event_uuids_are_unique_and_uuid_shaped() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..50_000 {
            let u = event_uuid(7, n);
            assert_eq!(u[8], b'-');
            assert_eq!(u[14], b'4');
            assert!(seen.insert(u), "duplicate uuid at {n}");
        }
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        let mut out = Vec::new();
        write_json_str(&mut out, "a\"b\\c\n\u{1}");
        assert_eq!(out, br#""a\"b\\c\n\u0001""#);
    }
}
