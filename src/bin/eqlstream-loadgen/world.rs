//! The simulated fleet: hosts, containers (each on one host) and user ids, built once from the
//! seed. Pure data; it never writes events and never decides what happens in them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::event::{hex_id, mix64};

/// One Kubernetes node running the Defend for Containers agent.
#[derive(Clone, Debug)]
pub struct Host {
    /// `host.hostname` / `host.name` / `cloud.instance.name`.
    pub hostname: String,
    /// `host.id` (32 hex).
    pub id: String,
    /// `agent.id` (UUID-shaped).
    pub agent_id: String,
    /// Private IP (`host.ip[1]`).
    pub ip: String,
    /// `host.mac[0]`.
    pub mac: String,
    /// `host.os.kernel`.
    pub kernel: &'static str,
    /// `cloud.region`.
    pub region: &'static str,
    /// `cloud.availability_zone`.
    pub az: String,
}

/// One container (pod) on a host.
#[derive(Clone, Debug)]
pub struct Container {
    /// `container.id` (64 hex, unique).
    pub id: String,
    /// `container.name`.
    pub name: String,
    /// `container.image.name`.
    pub image: &'static str,
    /// `container.image.tag[0]`.
    pub tag: &'static str,
    /// Index into [`World::hosts`].
    pub host: usize,
    /// `orchestrator.resource.name`.
    pub pod: String,
    /// `orchestrator.namespace`.
    pub namespace: &'static str,
    /// `orchestrator.resource.ip[0]`.
    pub pod_ip: String,
}

/// Hosts, containers and user ids of one run.
#[derive(Clone, Debug)]
pub struct World {
    /// All hosts.
    pub hosts: Vec<Host>,
    /// All containers (at least 2, so "another container" always exists).
    pub containers: Vec<Container>,
    /// `user.id` values, all distinct (at least 2, so "another user" always exists).
    pub users: Vec<String>,
    /// `orchestrator.cluster.name`.
    pub cluster: &'static str,
}

const IMAGES: &[(&str, &str)] = &[
    ("nginx", "1.25.4"),
    ("redis", "7.2"),
    ("postgres", "16.2"),
    ("python", "3.12-slim"),
    ("node", "20-alpine"),
    ("eclipse-temurin", "21-jre"),
    ("busybox", "1.36"),
    ("alpine", "3.19"),
    ("ubuntu", "22.04"),
    ("grafana/grafana", "10.4.1"),
    ("bitnami/kafka", "3.7"),
    ("ghcr.io/acme/api", "v2.14.0"),
];
const NAMESPACES: &[&str] = &["default", "prod", "payments", "monitoring", "ci", "kube-system"];
const KERNELS: &[&str] = &["6.5.0-1018-aws", "6.2.0-1017-aws", "5.15.0-1055-aws"];

impl World {
    /// Builds a fleet of `hosts` hosts, `containers` containers and `users` user ids.
    pub fn build(seed: u64, hosts: usize, containers: usize, users: usize) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(mix64(seed ^ 0x0077_6f72_6c64));
        let hosts = hosts.max(1);
        let host_list: Vec<Host> = (0..hosts)
            .map(|i| {
                let a = 1 + (i / 250) as u8;
                let b = 1 + (i % 250) as u8;
                let hostname = format!("ip-10-0-{a}-{b}");
                let agent = hex_id(seed ^ (i as u64) << 8 ^ 0xa9, 32);
                Host {
                    ip: format!("10.0.{a}.{b}"),
                    hostname,
                    id: hex_id(seed ^ (i as u64) << 8 ^ 0x40, 32),
                    agent_id: format!(
                        "{}-{}-4{}-a{}-{}",
                        &agent[0..8],
                        &agent[8..12],
                        &agent[13..16],
                        &agent[17..20],
                        &agent[20..32]
                    ),
                    mac: {
                        let m = hex_id(seed ^ (i as u64) << 8 ^ 0x3ac, 12);
                        format!("{}:{}:{}:{}:{}:{}", &m[0..2], &m[2..4], &m[4..6], &m[6..8], &m[8..10], &m[10..12])
                    },
                    kernel: KERNELS[rng.random_range(0..KERNELS.len())],
                    region: "us-east-1",
                    az: format!("us-east-1{}", ['a', 'b', 'c', 'd'][i % 4]),
                }
            })
            .collect();
        let containers = containers.max(2);
        let container_list: Vec<Container> = (0..containers)
            .map(|i| {
                let (image, tag) = IMAGES[rng.random_range(0..IMAGES.len())];
                let short = image.rsplit('/').next().unwrap_or(image);
                let rs = hex_id(seed ^ (i as u64) << 12 ^ 0x55, 10);
                let pod = format!("{short}-{}-{}", &rs[0..9], &rs[5..10]);
                Container {
                    // Index mixed into the id, so ids are distinct (64 hex of a bijection is
                    // overkill; distinctness is asserted in the tests).
                    id: hex_id(seed.rotate_left(17) ^ (i as u64) << 20 ^ 0xc0, 64),
                    name: format!("{short}-{i}"),
                    image,
                    tag,
                    host: i % hosts,
                    pod,
                    namespace: NAMESPACES[rng.random_range(0..NAMESPACES.len())],
                    pod_ip: format!("172.{}.{}.{}", 16 + (i / 65_000) % 16, (i / 250) % 256, 2 + i % 250),
                }
            })
            .collect();
        let users = users.max(2);
        let user_list: Vec<String> = (0..users)
            .map(|i| match i {
                0 => "0".to_string(),
                1 => "33".to_string(),
                _ => (1000 + i - 2).to_string(),
            })
            .collect();
        World { hosts: host_list, containers: container_list, users: user_list, cluster: "prod-eks-1" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_and_user_ids_are_distinct() {
        let w = World::build(3, 10, 5000, 300);
        let ids: std::collections::HashSet<_> = w.containers.iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), 5000);
        let users: std::collections::HashSet<_> = w.users.iter().collect();
        assert_eq!(users.len(), 300);
    }
}
