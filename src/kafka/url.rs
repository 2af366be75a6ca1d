//! `kafka://BROKERS/TOPIC?group=G&name=value`: where a Kafka input or output is.
//!
//! `BROKERS` is librdkafka's `bootstrap.servers` (comma-separated `host:port`). Query pairs other
//! than `group` are passed to librdkafka as they are (e.g. `security.protocol=ssl`,
//! `session.timeout.ms=10000`); see librdkafka's CONFIGURATION.md.

use std::fmt;

/// A parsed `kafka://` address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaUrl {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// The consumer group (inputs only).
    pub group: Option<String>,
    /// Other librdkafka settings, in the order given.
    pub options: Vec<(String, String)>,
}

impl KafkaUrl {
    /// True when `s` names a Kafka topic.
    pub fn is_kafka(s: &str) -> bool {
        s.starts_with("kafka://")
    }

    /// Parses `kafka://BROKERS/TOPIC[?group=G&name=value...]`.
    pub fn parse(s: &str) -> Result<KafkaUrl, String> {
        let rest = s.strip_prefix("kafka://").ok_or("expected kafka://BROKERS/TOPIC")?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (brokers, topic) = path.split_once('/').ok_or("expected kafka://BROKERS/TOPIC (no topic)")?;
        if brokers.is_empty()
            || brokers
                .split(',')
                .any(|b| b.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
        {
            return Err("expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC".into());
        }
        if topic.is_empty()
            || !topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || topic.len() > 249
        {
            return Err("a topic name is 1 to 249 characters of [a-zA-Z0-9._-]".into());
        }
        let mut url = KafkaUrl { brokers: brokers.into(), topic: topic.into(), group: None, options: Vec::new() };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("expected name=value, got `{pair}`"))?;
            if k.is_empty() || v.is_empty() {
                return Err(format!("expected name=value, got `{pair}`"));
            }
            if k == "group" {
                url.group = Some(v.into());
            } else {
                url.options.push((k.into(), v.into()));
            }
        }
        Ok(url)
    }
}

impl fmt::Display for KafkaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kafka://{}/{}", self.brokers, self.topic)?;
        let mut sep = '?';
        if let Some(g) = &self.group {
            write!(f, "{sep}group={g}")?;
            sep = '&';
        }
        for (k, v) in &self.options {
            write!(f, "{sep}{k}={v}")?;
            sep = '&';
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_brokers_topic_group_and_options() {
        let u = KafkaUrl::parse("kafka://a:9092,b:9093/events.cloud?group=eql&session.timeout.ms=6000").unwrap();
        assert_eq!(u.brokers, "a:9092,b:9093");
        assert_eq!(u.topic, "events.cloud");
        assert_eq!(u.group.as_deref(), Some("eql"));
        assert_eq!(u.options, vec![("session.timeout.ms".to_string(), "6000".to_string())]);
        assert_eq!(u.to_string(), "kafka://a:9092,b:9093/events.cloud?group=eql&session.timeout.ms=6000");
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "kafka://",
            "kafka://a:9092",
            "kafka://a/t",
            "kafka://a:x/t",
            "kafka://a:1/",
            "kafka://a:1/t?x",
            "kafka://a:1/b c",
        ] {
            assert!(KafkaUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
