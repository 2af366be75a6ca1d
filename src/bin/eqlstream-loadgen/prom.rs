//! Just enough Prometheus for `latency --metrics`: a plain HTTP/1.0 GET of a `/metrics` URL, the
//! text exposition format's sample lines, a classic histogram's buckets (summed over every label
//! set but `le`, as `sum by (le)` would) and `histogram_quantile` exactly as Prometheus computes
//! it (promql/quantile.go `bucketQuantile`: linear interpolation inside the bucket, 0 as the
//! lower bound of a positive first bucket, the highest finite bound for the `+Inf` bucket).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// One sample line: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Label pairs in line order (values unescaped).
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// Parses a sample value: a float, `+Inf`, `-Inf` or `NaN` (any case).
pub fn parse_value(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses one line of the text format; `None` for comments, blank and malformed lines.
pub fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_ascii_whitespace()).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let end = loop {
            // Skip separators, read a key up to '='.
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' | '\t' => continue,
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut val = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => val.push('\n'),
                                other => val.push(other),
                            },
                            other => val.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), val));
                }
                c => key.push(c),
            }
        };
        rest = &body[end + 1..];
    }
    let value = parse_value(rest.split_ascii_whitespace().next()?)?;
    Some(Sample { name: name.to_string(), labels, value })
}

/// A classic histogram: cumulative bucket counts by upper bound, and the sample count.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// `(le, cumulative count)`, ascending `le`, summed over all other labels.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of `<name>_count` over all label sets.
    pub count: f64,
}

/// The histogram `name` in an exposition `text`, or `None` if it has no bucket.
pub fn histogram(text: &str, name: &str) -> Option<Histogram> {
    let bucket_name = format!("{name}_bucket");
    let count_name = format!("{name}_count");
    // Keyed by the bits of `le` (no NaN bounds reach here; -0.0 and 0.0 are one bound).
    let mut by_le: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    let mut count = 0.0;
    for s in text.lines().filter_map(parse_line) {
        if s.name == bucket_name {
            let Some(le) = s.labels.iter().find(|(k, _)| k == "le").and_then(|(_, v)| parse_value(v)) else {
                continue;
            };
            if le.is_nan() {
                continue;
            }
            let e = by_le.entry(ordered_key(le)).or_insert((le, 0.0));
            e.1 += s.value;
        } else if s.name == count_name {
            count += s.value;
        }
    }
    if by_le.is_empty() {
        return None;
    }
    Some(Histogram { buckets: by_le.into_values().collect(), count })
}

/// A key that sorts like the float (for non-NaN values).
fn ordered_key(x: f64) -> i64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let b = x.to_bits() as i64;
    if b < 0 {
        b ^ i64::MAX
    } else {
        b
    }
}

/// `histogram_quantile(q, buckets)` as Prometheus computes it for classic buckets
/// `(upper bound, cumulative count)` (any order; equal bounds are added up).
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if !b.last().is_some_and(|l| l.0 == f64::INFINITY) {
        return f64::NAN;
    }
    // coalesceBuckets
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (le, n) in b {
        match c.last_mut() {
            Some(last) if last.0 == le => last.1 += n,
            _ => c.push((le, n)),
        }
    }
    // correctPrecisionErrors (tolerance 1e-12), then ensureMonotonic.
    let mut prev = c[0].1;
    for e in c.iter_mut().skip(1) {
        let cur = e.1;
        let delta = (cur - prev).abs();
        if delta == 0.0 {
            continue;
        }
        if delta / cur <= 1e-12 {
            e.1 = prev;
        } else {
            prev = cur;
        }
    }
    let mut max = c[0].1;
    for e in c.iter_mut().skip(1) {
        if e.1 > max {
            max = e.1;
        } else {
            e.1 = max;
        }
    }
    if c.len() < 2 {
        return f64::NAN;
    }
    let observations = c[c.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // sort.Search over the first len-1 buckets: the first with count >= rank.
    let idx = c[..c.len() - 1].iter().position(|e| e.1 >= rank).unwrap_or(c.len() - 1);
    if idx == c.len() - 1 {
        return c[c.len() - 2].0;
    }
    if idx == 0 && c[0].0 <= 0.0 {
        return c[0].0;
    }
    let (mut start, end, mut count) = (0.0, c[idx].0, c[idx].1);
    if idx > 0 {
        start = c[idx - 1].0;
        count -= c[idx - 1].1;
        rank -= c[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// GETs `url` (`http://HOST[:PORT][/PATH]`) with HTTP/1.0 and returns the body of a 200 answer.
pub fn scrape(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow!("{url}: only http:// URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let with_port = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = with_port.to_socket_addrs()?.next().ok_or_else(|| anyhow!("{hostport}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n")?;
    let mut resp = Vec::new();
    s.take(64 << 20).read_to_end(&mut resp)?;
    let head_end = memchr::memmem::find(&resp, b"\r\n\r\n").context("no end of HTTP headers")?;
    let head = String::from_utf8_lossy(&resp[..head_end]);
    let status = head.lines().next().unwrap_or_default();
    if status.split_ascii_whitespace().nth(1) != Some("200") {
        bail!("{url}: {status}");
    }
    Ok(String::from_utf8_lossy(&resp[head_end + 4..]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    // Expected values from prometheus/promql/promqltest/testdata/histograms.test.
    const POSITIVE: &[(f64, f64)] = &[(0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (f64::INFINITY, 120.0)];
    const NEGATIVE: &[(f64, f64)] = &[(-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (f64::INFINITY, 30.0)];

    #[test]
    fn quantiles_match_prometheus_test_data() {
        for (q, want) in [(0.0, 0.0), (0.2, 0.048), (0.5, 0.15), (0.8, 0.72), (1.0, 1.0)] {
            let got = histogram_quantile(q, POSITIVE);
            assert!(close(got, want), "positive q={q}: {got} != {want}");
        }
        for (q, want) in [(0.0, -0.2), (0.2, -0.2), (0.5, -0.15), (0.8, 0.3), (1.0, 0.3)] {
            let got = histogram_quantile(q, NEGATIVE);
            assert!(close(got, want), "negative q={q}: {got} != {want}");
        }
        // q(1/6), q(1/2), q(5/6) in the middle of their buckets.
        let mid = [(0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (f64::INFINITY, 3.0)];
        for (q, want) in [(1.0 / 6.0, 1.0), (0.5, 3.0), (5.0 / 6.0, 5.0)] {
            assert!(close(histogram_quantile(q, &mid), want), "q={q}");
        }
        assert_eq!(histogram_quantile(-0.1, POSITIVE), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.01, POSITIVE), f64::INFINITY);
        assert!(histogram_quantile(f64::NAN, POSITIVE).is_nan());
        assert!(histogram_quantile(0.5, &POSITIVE[..3]).is_nan(), "no +Inf bucket");
        assert!(histogram_quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]).is_nan(), "no observation");
        assert!(histogram_quantile(0.5, &[(f64::INFINITY, 4.0)]).is_nan(), "a single bucket");
        // Non-monotonic counts are flattened (the envelope).
        let bumpy = [(1.0, 5.0), (2.0, 3.0), (3.0, 10.0), (f64::INFINITY, 10.0)];
        assert!(close(histogram_quantile(0.5, &bumpy), 1.0));
        assert!(close(histogram_quantile(0.6, &bumpy), 2.0 + 1.0 / 5.0));
    }

    #[test]
    fn exposition_lines_parse() {
        let s = parse_line(r#"x_bucket{le="0.25",rule="a \"q\" b\\c",} 17 1700000000000"#).expect("a sample");
        assert_eq!(s.name, "x_bucket");
        assert_eq!(s.labels, vec![("le".into(), "0.25".into()), ("rule".into(), "a \"q\" b\\c".into())]);
        assert_eq!(s.value, 17.0);
        assert_eq!(parse_line("x_count 3").map(|s| (s.name, s.value)), Some(("x_count".into(), 3.0)));
        assert_eq!(parse_line(r#"x{le="+Inf"} +Inf"#).map(|s| s.value), Some(f64::INFINITY));
        assert!(parse_line("# TYPE x histogram").is_none());
        assert!(parse_line("").is_none());
        assert!(parse_line(r#"x{le="1} 3"#).is_none(), "unterminated label value");
        assert!(parse_line("x notanumber").is_none());
        for (v, want) in
            [(".2", 0.2), ("1e0", 1.0), ("2.0e-1", 0.2), ("+Inf", f64::INFINITY), ("-inf", f64::NEG_INFINITY)]
        {
            assert_eq!(parse_value(v), Some(want), "{v}");
        }
    }

    #[test]
    fn histogram_sums_label_sets_by_le_like_sum_by_le() {
        // request_duration_seconds of histograms.test: sum by (le) gives 100, 190, 250;
        // q(0.3) = 0.075 and q(0.5) = 0.12777...
        let text = "\
# HELP request_duration_seconds Request duration.
# TYPE request_duration_seconds histogram
request_duration_seconds_bucket{job=\"job1\",instance=\"ins1\",le=\"0.1\"} 10
request_duration_seconds_bucket{job=\"job1\",instance=\"ins1\",le=\"0.2\"} 30
request_duration_seconds_bucket{job=\"job1\",instance=\"ins1\",le=\"+Inf\"} 40
request_duration_seconds_bucket{job=\"job1\",instance=\"ins2\",le=\"0.1\"} 20
request_duration_seconds_bucket{job=\"job1\",instance=\"ins2\",le=\"0.2\"} 50
request_duration_seconds_bucket{job=\"job1\",instance=\"ins2\",le=\"+Inf\"} 60
request_duration_seconds_bucket{job=\"job2\",instance=\"ins1\",le=\"0.1\"} 30
request_duration_seconds_bucket{job=\"job2\",instance=\"ins1\",le=\"0.2\"} 40
request_duration_seconds_bucket{job=\"job2\",instance=\"ins1\",le=\"+Inf\"} 60
request_duration_seconds_bucket{job=\"job2\",instance=\"ins2\",le=\".1\"} 40
request_duration_seconds_bucket{job=\"job2\",instance=\"ins2\",le=\"2e-1\"} 70
request_duration_seconds_bucket{job=\"job2\",instance=\"ins2\",le=\"+Inf\"} 90
request_duration_seconds_sum 33.5
request_duration_seconds_count{job=\"job1\"} 100
request_duration_seconds_count{job=\"job2\"} 150
request_duration_seconds_other_bucket{le=\"+Inf\"} 99
";
        let h = histogram(text, "request_duration_seconds").expect("histogram present");
        assert_eq!(h.buckets, vec![(0.1, 100.0), (0.2, 190.0), (f64::INFINITY, 250.0)]);
        assert_eq!(h.count, 250.0);
        assert!(close(histogram_quantile(0.3, &h.buckets), 0.075));
        assert!(close(histogram_quantile(0.5, &h.buckets), 0.12777777777777778));
        assert!(histogram(text, "request_duration").is_none());
    }
}
