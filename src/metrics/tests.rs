//! Tests of the registry, handles, per-batch flush and the HTTP endpoint (in-process).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn rules() -> Vec<RuleLabels> {
    vec![
        RuleLabels { rule_id: "r-seq".into(), rule_name: "Three stage rule".into(), stages: 3 },
        RuleLabels { rule_id: "r-event".into(), rule_name: "Event rule".into(), stages: 1 },
    ]
}

/// The value of the sample written exactly as `series` (name plus label set).
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[test]
fn every_series_exists_at_zero_from_the_start() {
    let m = Metrics::new(&rules()).unwrap();
    let t = m.render();
    for series in [
        "eqlstream_received_events_total",
        "eqlstream_received_bytes_total",
        "eqlstream_sent_events_total",
        "eqlstream_prefilter_skipped_events_total",
        "eqlstream_sources{state=\"active\"}",
        "eqlstream_sources{state=\"idle\"}",
        "eqlstream_alert_buffering_seconds_count",
        "eqlstream_invalid_events_total{reason=\"invalid_json\"}",
        "eqlstream_invalid_events_total{reason=\"bad_timestamp\"}",
        "eqlstream_stage_matches_total{rule_id=\"r-seq\",stage=\"2\"}",
        "eqlstream_stage_matches_total{rule_id=\"r-event\",stage=\"0\"}",
        "eqlstream_alerts_total{rule_id=\"r-seq\",rule_name=\"Three stage rule\"}",
        "eqlstream_partial_sequences{rule_id=\"r-seq\"}",
        "eqlstream_partial_sequences_expired_total{rule_id=\"r-event\"}",
        "eqlstream_partial_sequences_evicted_total{rule_id=\"r-seq\"}",
        "eqlstream_key_expansion_truncated_total{rule_id=\"r-event\"}",
        "eqlstream_alert_render_errors_total{rule_id=\"r-seq\"}",
        "eqlstream_prefilter_active",
        "eqlstream_prefilter_scanned_events_total",
        "eqlstream_watermark_seconds",
        "eqlstream_alert_latency_seconds_count",
        "eqlstream_batch_duration_seconds_count{stage=\"decode\"}",
        "eqlstream_queue_events{stage=\"sequencer\"}",
        "eqlstream_rule_reloads_total{result=\"success\"}",
        "eqlstream_rule_reloads_total{result=\"failure\"}",
    ] {
        assert_eq!(sample(&t, series), Some(0.0), "{series} in\n{t}");
    }
    assert_eq!(sample(&t, &format!("eqlstream_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), Some(1.0));
    for stage in ["read", "decode", "sequencer", "partition", "write"] {
        let series = format!("eqlstream_batch_duration_seconds_count{{stage=\"{stage}\"}}");
        assert_eq!(sample(&t, &series), Some(0.0), "{series}");
    }
    for stage in ["read", "partition"] {
        let series = format!("eqlstream_queue_events{{stage=\"{stage}\"}}");
        assert_eq!(sample(&t, &series), None, "{stage} has no queue of events");
    }
    assert!(
        sample(&t, "eqlstream_stage_matches_total{rule_id=\"r-event\",stage=\"1\"}").is_none(),
        "an event rule has one stage"
    );
    if cfg!(target_os = "linux") {
        assert!(t.contains("process_resident_memory_bytes "), "process collector: {t}");
        assert!(t.contains("process_cpu_seconds_total "));
    }
}

#[test]
fn handles_for_a_reloaded_rule_set_count_into_its_series() {
    let m = Metrics::new(&rules()).unwrap();
    assert_eq!(sample(&m.render(), "eqlstream_rules_loaded"), Some(2.0));
    let old = m.handles();
    // The reload keeps r-event, now first, drops r-seq and adds r-new.
    let reloaded = vec![
        RuleLabels { rule_id: "r-event".into(), rule_name: "Event rule".into(), stages: 1 },
        RuleLabels { rule_id: "r-new".into(), rule_name: "New rule".into(), stages: 2 },
    ];
    let new = m.rule_handles(&reloaded);
    let t = m.render();
    for series in [
        "eqlstream_stage_matches_total{rule_id=\"r-new\",stage=\"1\"}",
        "eqlstream_alerts_total{rule_id=\"r-new\",rule_name=\"New rule\"}",
        "eqlstream_partial_sequences{rule_id=\"r-new\"}",
        "eqlstream_partial_sequences_expired_total{rule_id=\"r-new\"}",
        "eqlstream_key_expansion_truncated_total{rule_id=\"r-new\"}",
    ] {
        assert_eq!(sample(&t, series), Some(0.0), "{series} exists after the reload:\n{t}");
    }
    let mut stats = Stats::new(&new);
    stats.stage_match(1, 1);
    stats.alerts[0] += 2;
    stats.received_events += 5;
    stats.flush(&new);
    let mut stats = Stats::new(&old);
    stats.alerts[0] += 1;
    stats.flush(&old);
    new.rule_reload(true);
    new.rule_reload(false);
    new.set_rules_loaded(2);
    let t = m.render();
    assert_eq!(sample(&t, "eqlstream_stage_matches_total{rule_id=\"r-new\",stage=\"1\"}"), Some(1.0));
    assert_eq!(sample(&t, "eqlstream_alerts_total{rule_id=\"r-event\",rule_name=\"Event rule\"}"), Some(2.0));
    assert_eq!(sample(&t, "eqlstream_alerts_total{rule_id=\"r-seq\",rule_name=\"Three stage rule\"}"), Some(1.0));
    assert_eq!(sample(&t, "eqlstream_received_events_total"), Some(5.0), "shared by every rule set");
    assert_eq!(sample(&t, "eqlstream_rule_reloads_total{result=\"success\"}"), Some(1.0));
    assert_eq!(sample(&t, "eqlstream_rule_reloads_total{result=\"failure\"}"), Some(1.0));
    assert_eq!(sample(&t, "eqlstream_rules_loaded"), Some(2.0));
}

#[test]
fn rare_counters_count_into_their_rule_series() {
    let m = Metrics::new(&rules()).unwrap();
    let h = m.handles();
    let c = h.key_expansion_truncated(1);
    c.inc();
    c.clone().inc();
    assert_eq!(c.get(), 2);
    h.key_expansion_truncated(99).inc(); // unknown rule: detached, not exported
    let t = m.render();
    assert_eq!(sample(&t, "eqlstream_key_expansion_truncated_total{rule_id=\"r-event\"}"), Some(2.0));
    assert_eq!(sample(&t, "eqlstream_key_expansion_truncated_total{rule_id=\"r-seq\"}"), Some(0.0));
    h.alert_render_errors(0).inc();
    let t = m.render();
    assert_eq!(sample(&t, "eqlstream_alert_render_errors_total{rule_id=\"r-seq\"}"), Some(1.0));
}

#[test]
fn flush_adds_exactly_the_batch_counts_and_zeroes_stats() {
    let m = Metrics::new(&rules()).unwrap();
    let h = m.handles();
    let mut s = Stats::new(&h);
    for _ in 0..10 {
        s.received_events += 1;
        s.received_bytes += 100;
    }
    s.sent_events += 11;
    s.invalid(InvalidReason::TooLong);
    s.invalid(InvalidReason::TooLong);
    s.invalid(InvalidReason::NoTimestamp);
    s.stage_match(0, 0);
    s.stage_match(0, 2);
    s.stage_match(0, 2);
    s.stage_match(1, 0);
    s.stage_match(1, 1); // out of range: ignored
    s.stage_match(7, 0); // unknown rule: ignored
    s.alerts[0] += 1;
    s.partials_delta[0] += 3;
    s.partials_delta[0] -= 1;
    s.expired[0] += 1;
    s.evicted[1] += 4;
    s.flush(&h);
    assert!(s.is_zero(), "flush zeroes the stats");
    // A second worker's batch adds on top.
    let mut s2 = Stats::new(&h);
    s2.received_events = 5;
    s2.partials_delta[0] = -2;
    s2.flush(&h);

    let t = m.render();
    let v = |series: &str| sample(&t, series).unwrap_or_else(|| panic!("{series} missing in\n{t}"));
    assert_eq!(v("eqlstream_received_events_total"), 15.0);
    assert_eq!(v("eqlstream_received_bytes_total"), 1000.0);
    assert_eq!(v("eqlstream_sent_events_total"), 11.0);
    assert_eq!(v("eqlstream_invalid_events_total{reason=\"too_long\"}"), 2.0);
    assert_eq!(v("eqlstream_invalid_events_total{reason=\"no_timestamp\"}"), 1.0);
    assert_eq!(v("eqlstream_invalid_events_total{reason=\"invalid_json\"}"), 0.0);
    assert_eq!(v("eqlstream_stage_matches_total{rule_id=\"r-seq\",stage=\"0\"}"), 1.0);
    assert_eq!(v("eqlstream_stage_matches_total{rule_id=\"r-seq\",stage=\"1\"}"), 0.0);
    assert_eq!(v("eqlstream_stage_matches_total{rule_id=\"r-seq\",stage=\"2\"}"), 2.0);
    assert_eq!(v("eqlstream_stage_matches_total{rule_id=\"r-event\",stage=\"0\"}"), 1.0);
    assert_eq!(v("eqlstream_alerts_total{rule_id=\"r-seq\",rule_name=\"Three stage rule\"}"), 1.0);
    assert_eq!(v("eqlstream_partial_sequences{rule_id=\"r-seq\"}"), 0.0);
    assert_eq!(v("eqlstream_partial_sequences_expired_total{rule_id=\"r-seq\"}"), 1.0);
    assert_eq!(v("eqlstream_partial_sequences_evicted_total{rule_id=\"r-event\"}"), 4.0);
}

#[test]
fn gauges_and_histograms_record_through_handles() {
    let m = Metrics::new(&rules()).unwrap();
    let h = m.handles().clone();
    h.set_watermark_ns(1_772_704_802_500_000_000);
    h.observe_alert_latency(0.0003);
    h.observe_alert_latency(2.0);
    h.observe_batch(PipelineStage::Partition, 0.00002);
    h.queue_pushed(PipelineStage::Decode, 1024);
    h.queue_popped(PipelineStage::Decode, 1000);
    h.set_partials(1, 7);
    let t = m.render();
    let v = |series: &str| sample(&t, series).unwrap_or_else(|| panic!("{series} missing in\n{t}"));
    assert_eq!(v("eqlstream_watermark_seconds"), 1_772_704_802.5);
    assert_eq!(v("eqlstream_alert_latency_seconds_count"), 2.0);
    assert_eq!(v("eqlstream_alert_latency_seconds_bucket{le=\"0.0001\"}"), 0.0);
    assert_eq!(v("eqlstream_alert_latency_seconds_bucket{le=\"0.0005\"}"), 1.0);
    assert_eq!(v("eqlstream_alert_latency_seconds_bucket{le=\"10\"}"), 2.0);
    assert_eq!(v("eqlstream_batch_duration_seconds_count{stage=\"partition\"}"), 1.0);
    assert_eq!(v("eqlstream_batch_duration_seconds_bucket{stage=\"partition\",le=\"0.000025\"}"), 1.0);
    assert_eq!(v("eqlstream_queue_events{stage=\"decode\"}"), 24.0);
    assert_eq!(v("eqlstream_partial_sequences{rule_id=\"r-event\"}"), 7.0);
}

#[test]
fn per_source_metrics_are_labelled_and_the_lag_gauge_goes_with_its_source() {
    let m = Metrics::new(&rules()).unwrap();
    let h = m.handles();
    let a = h.source("tcp:10.0.0.1");
    let b = h.source("stdin");
    a.add(3, 2, 1);
    a.add(1, 0, 0);
    b.add(0, 5, 0);
    a.set_lag_seconds(1.5);
    b.set_lag_seconds(0.25);
    h.set_sources(2, 1);
    let t = m.render();
    let v = |series: &str| sample(&t, series).unwrap_or_else(|| panic!("{series} missing in\n{t}"));
    assert_eq!(v("eqlstream_late_events_total{source=\"tcp:10.0.0.1\"}"), 4.0);
    assert_eq!(v("eqlstream_outlier_events_total{source=\"tcp:10.0.0.1\"}"), 2.0);
    assert_eq!(v("eqlstream_outlier_events_total{source=\"stdin\"}"), 5.0);
    assert_eq!(v("eqlstream_event_time_jumps_total{source=\"tcp:10.0.0.1\"}"), 1.0);
    assert_eq!(v("eqlstream_source_lag_seconds{source=\"tcp:10.0.0.1\"}"), 1.5);
    assert_eq!(v("eqlstream_sources{state=\"active\"}"), 2.0);
    assert_eq!(v("eqlstream_sources{state=\"idle\"}"), 1.0);
    h.forget_source("tcp:10.0.0.1");
    let t = m.render();
    assert!(sample(&t, "eqlstream_source_lag_seconds{source=\"tcp:10.0.0.1\"}").is_none(), "{t}");
    assert_eq!(sample(&t, "eqlstream_late_events_total{source=\"tcp:10.0.0.1\"}"), Some(4.0), "counters stay");
    assert_eq!(sample(&t, "eqlstream_source_lag_seconds{source=\"stdin\"}"), Some(0.25));
}

#[test]
fn latency_buckets_resolve_the_reorder_window_to_a_few_milliseconds() {
    let b = latency_buckets(std::time::Duration::from_secs(2));
    assert!(b.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates: {b:?}");
    for x in [2.0, 2.0025, 2.005, 2.01, 2.02, 2.05] {
        assert!(b.iter().any(|y| (y - x).abs() < 1e-9), "{x} in {b:?}");
    }
    // From the allowance to 50 ms above it, no bucket is wider than 5 ms.
    let near: Vec<f64> = b.iter().copied().filter(|x| (2.0..=2.05).contains(x)).collect();
    assert!(near.windows(2).all(|w| w[1] - w[0] <= 0.005 + 1e-9), "{near:?}");
    // With a 0 s allowance, no bucket at or below 0.
    assert!(latency_buckets(std::time::Duration::ZERO).iter().all(|x| *x > 0.0));
    let m = Metrics::for_run(&rules(), std::time::Duration::from_millis(500)).unwrap();
    m.handles().observe_alert_buffering(0.503);
    let t = m.render();
    assert_eq!(sample(&t, "eqlstream_alert_buffering_seconds_bucket{le=\"0.5025\"}"), Some(0.0), "{t}");
    assert_eq!(sample(&t, "eqlstream_alert_buffering_seconds_bucket{le=\"0.505\"}"), Some(1.0));
}

#[test]
fn stats_add_assign_sums_field_by_field() {
    let m = Metrics::new(&rules()).unwrap();
    let h = m.handles();
    let mut a = Stats::new(&h);
    let mut b = Stats::new(&h);
    a.received_events = 2;
    b.received_events = 3;
    b.stage_match(0, 1);
    b.invalid(InvalidReason::NotObject);
    a += &b;
    assert_eq!(a.received_events, 5);
    assert_eq!(a.stage_matches[a.stage_slot(0, 1).unwrap()], 1);
    assert_eq!(a.invalid[InvalidReason::NotObject.index()], 1);
}

#[test]
fn invalid_reason_labels_are_the_documented_ones() {
    let labels: Vec<&str> = InvalidReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels, ["invalid_json", "invalid_utf8", "not_object", "too_long", "no_timestamp", "bad_timestamp"]);
    for (i, r) in InvalidReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}

/// Sends `request` raw and returns the whole response (the server closes after it).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

#[test]
fn server_serves_exact_values_health_and_404() {
    let rt = runtime();
    let metrics = Arc::new(Metrics::new(&rules()).unwrap());
    let h = metrics.handles();
    let mut s = Stats::new(&h);
    s.received_events = 61;
    s.alerts[0] = 6;
    s.flush(&h);
    let server = serve(metrics.clone(), "127.0.0.1:0".parse().unwrap(), rt.handle()).unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0, "port 0 resolves to the bound port");
    rt.block_on(async {
        let r = exchange(addr, &get("/metrics")).await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{r}");
        let body = &r[r.find("\r\n\r\n").unwrap() + 4..];
        assert_eq!(sample(body, "eqlstream_received_events_total"), Some(61.0));
        assert_eq!(sample(body, "eqlstream_alerts_total{rule_id=\"r-seq\",rule_name=\"Three stage rule\"}"), Some(6.0));

        // Values are live: a later flush shows in the next scrape.
        let mut s = Stats::new(&h);
        s.received_events = 1;
        s.flush(&h);
        let r = exchange(addr, &get("/metrics?x=1")).await;
        assert_eq!(sample(&r, "eqlstream_received_events_total"), Some(62.0));

        let r = exchange(addr, &get("/healthz")).await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nok"), "{r}");

        let r = exchange(addr, &get("/nope")).await;
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");

        let r = exchange(addr, b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
    });
    server.shutdown();
}

#[test]
fn server_survives_garbage_and_oversized_requests() {
    let rt = runtime();
    let metrics = Arc::new(Metrics::new(&rules()).unwrap());
    let server = serve(metrics, "127.0.0.1:0".parse().unwrap(), rt.handle()).unwrap();
    let addr = server.local_addr();
    rt.block_on(async {
        let r = exchange(addr, b"\x00\xffnot http at all\r\n\r\n").await;
        assert!(r.is_empty() || r.starts_with("HTTP/1.1 400"), "{r}");
        let huge = format!("GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
        let r = exchange(addr, huge.as_bytes()).await;
        assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "{r}");
        let r = exchange(addr, &get("/healthz")).await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "still serving: {r}");
    });
}

#[test]
fn busy_port_is_a_bind_error_and_shutdown_frees_the_port() {
    let rt = runtime();
    let metrics = Arc::new(Metrics::new(&rules()).unwrap());
    let server = serve(metrics.clone(), "127.0.0.1:0".parse().unwrap(), rt.handle()).unwrap();
    let addr = server.local_addr();
    match serve(metrics.clone(), addr, rt.handle()) {
        Err(MetricsError::Bind { addr: a, .. }) => assert_eq!(a, addr),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("second bind on a busy port succeeded"),
    }
    server.shutdown();
    // The accept task is aborted asynchronously; give the runtime a moment to drop the listener.
    let mut rebound = None;
    for _ in 0..50 {
        match serve(metrics.clone(), addr, rt.handle()) {
            Ok(s) => {
                rebound = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    assert!(rebound.is_some(), "port is free again after shutdown");
}

#[test]
fn grafana_dashboard_only_uses_registered_metrics() {
    let text = include_str!("../../config/grafana-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(text).expect("dashboard is valid JSON");
    let m = Metrics::new(&rules()).unwrap();
    // Per-source families show once a source has opened (stdin does at start).
    let _stdin = m.handles().source("stdin");
    let exposition = m.render();
    let re = regex::Regex::new(r"\b(eqlstream|process)_[a-z_]+").unwrap();
    let mut checked = 0;
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for m in re.find_iter(expr) {
                let name = m.as_str();
                let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
                assert!(
                    exposition.contains(&format!("# TYPE {base} ")),
                    "panel {:?} uses unknown metric {name}",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "dashboard references the main metrics");
}

#[test]
fn serve_listener_uses_a_socket_bound_by_the_caller() {
    let rt = runtime();
    let metrics = Arc::new(Metrics::new(&rules()).unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_listener(metrics, listener, rt.handle()).unwrap();
    assert_eq!(server.local_addr(), addr);
    let r = rt.block_on(exchange(addr, &get("/healthz")));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
}
