//! The directory of instances: which instance serves which customer partitions, and
//! the URL of its HTTP port, so that any instance can send a read-API request to the
//! owner of its shopper (Kafka Streams' interactive queries keep the same map in the
//! group's assignment metadata; here it is a topic of its own).
//!
//! Every instance announces itself on `<app>-instances` (compacted, one partition,
//! keyed by instance) after every assignment and when it stops, and reads that topic in
//! full on a thread of its own. A partition claimed by two instances (one has not yet
//! heard of the rebalance that took it away) belongs to the later announcement.

use super::clients::{self, ClientError, ReadToEnd};
use crate::api::{Owner, Owners};
use crate::config::Config;
use crate::time::Millis;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an announcement may take to reach the broker before it is given up on (the
/// next assignment announces again).
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);

/// One instance's record on the instances topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    pub instance: String,
    pub url: String,
    /// The customer partitions it serves; empty once it stopped.
    pub customer_partitions: Vec<u16>,
    /// Wall-clock milliseconds when it was made: the later claim on a partition wins.
    pub at: Millis,
}

/// The latest announcement of every instance.
#[derive(Debug)]
pub struct Directory {
    this_instance: String,
    announcements: RwLock<BTreeMap<String, Announcement>>,
}

impl Directory {
    pub fn new(this_instance: &str) -> Directory {
        Directory {
            this_instance: this_instance.to_string(),
            announcements: RwLock::new(BTreeMap::new()),
        }
    }

    /// Takes in a record of the topic: an announcement, or a tombstone (`None`).
    pub fn take(&self, instance: &str, announcement: Option<Announcement>) {
        let mut all = self
            .announcements
            .write()
            .unwrap_or_else(|p| p.into_inner());
        match announcement {
            Some(a) => {
                // A late duplicate of an older announcement changes nothing.
                if all.get(instance).is_none_or(|old| old.at <= a.at) {
                    all.insert(instance.to_string(), a);
                }
            }
            None => {
                all.remove(instance);
            }
        }
    }
}

impl Owners for Directory {
    fn owner(&self, partition: u16) -> Option<Owner> {
        let all = self.announcements.read().unwrap_or_else(|p| p.into_inner());
        all.values()
            .filter(|a| a.customer_partitions.contains(&partition))
            .max_by_key(|a| a.at)
            .map(|a| Owner {
                instance: a.instance.clone(),
                url: a.url.clone(),
            })
    }

    fn this_instance(&self) -> &str {
        &self.this_instance
    }
}

/// Publishes this instance's announcements.
pub struct Announcer {
    producer: BaseProducer,
    topic: String,
    instance: String,
    url: String,
}

fn wall_clock_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

impl Announcer {
    pub fn new(
        config: &Config,
        topic: &str,
        instance: &str,
        url: &str,
    ) -> Result<Announcer, ClientError> {
        let mut producer_config = clients::base(config);
        producer_config.set("linger.ms", "0");
        let producer: BaseProducer = producer_config.create().map_err(ClientError::create)?;
        Ok(Announcer {
            producer,
            topic: topic.to_string(),
            instance: instance.to_string(),
            url: url.to_string(),
        })
    }

    /// Says which customer partitions this instance now serves. A failure is logged and
    /// not fatal: requests for its partitions get 503s elsewhere until the next one.
    pub fn announce(&self, customer_partitions: &[u16]) {
        let announcement = Announcement {
            instance: self.instance.clone(),
            url: self.url.clone(),
            customer_partitions: customer_partitions.to_vec(),
            at: wall_clock_millis(),
        };
        let payload = serde_json::to_vec(&announcement).expect("an announcement serializes");
        let record = BaseRecord::to(&self.topic)
            .key(self.instance.as_bytes())
            .payload(&payload);
        let sent = self
            .producer
            .send(record)
            .map_err(|(e, _)| e)
            .and_then(|()| clients::deliver_outstanding(&self.producer, ANNOUNCE_TIMEOUT));
        match sent {
            Ok(()) => tracing::info!(
                topic = self.topic,
                url = self.url,
                partitions = ?customer_partitions,
                "announced the customer partitions this instance serves"
            ),
            Err(error) => tracing::warn!(
                topic = self.topic,
                %error,
                "cannot announce this instance's partitions; other instances cannot forward read-API requests to it until the next assignment"
            ),
        }
    }
}

/// Reads the instances topic from its beginning into `directory` until one of `stops`
/// is set.
pub fn follow(
    config: &Config,
    topic: &str,
    directory: &Directory,
    stops: &[&AtomicBool],
) -> Result<(), ClientError> {
    let consumer: BaseConsumer<ReadToEnd> = clients::reader(config, "the instances topic")?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("a fresh list accepts any partition");
    consumer
        .assign(&assignment)
        .map_err(|e| ClientError::broker(config, &format!("read `{topic}`"), e))?;
    while !stops.iter().any(|stop| stop.load(Ordering::SeqCst)) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let instance = String::from_utf8_lossy(message.key().unwrap_or_default());
                match message.payload() {
                    None => directory.take(&instance, None),
                    Some(json) => match serde_json::from_slice::<Announcement>(json) {
                        Ok(announcement) => directory.take(&instance, Some(announcement)),
                        Err(error) => tracing::warn!(
                            topic,
                            offset = message.offset(),
                            %error,
                            "a record on the instances topic is not an announcement; skipped"
                        ),
                    },
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(error)) => {
                tracing::warn!(topic, %error, "cannot read the instances topic");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    Ok(())
}

/// The URL other instances reach this one at: `http.advertised_url`, else built from
/// the address the HTTP port is bound to.
pub fn advertised_url(config: &Config, bound: Option<std::net::SocketAddr>) -> String {
    if let Some(url) = &config.http.advertised_url {
        return url.trim_end_matches('/').to_string();
    }
    let listen: Option<std::net::SocketAddr> = config.http.listen.parse().ok();
    let address = bound.or(listen);
    let Some(address) = address else {
        return format!("http://{}", config.http.listen);
    };
    let host = if address.ip().is_unspecified() {
        host_name().unwrap_or_else(|| "127.0.0.1".to_string())
    } else {
        match address.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    format!("http://{host}:{}", address.port())
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The directory as the read API sees it.
pub fn shared(this_instance: &str) -> Arc<Directory> {
    Arc::new(Directory::new(this_instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement(instance: &str, partitions: &[u16], at: Millis) -> Announcement {
        Announcement {
            instance: instance.into(),
            url: format!("http://{instance}:8080"),
            customer_partitions: partitions.to_vec(),
            at,
        }
    }

    #[test]
    fn the_later_claim_on_a_partition_wins() {
        let directory = Directory::new("a");
        directory.take("a", Some(announcement("a", &[0, 1], 10)));
        directory.take("b", Some(announcement("b", &[2, 3], 10)));
        assert_eq!(directory.owner(2).unwrap().instance, "b");
        // b took partition 1 in a rebalance that a has not announced yet.
        directory.take("b", Some(announcement("b", &[1, 2, 3], 20)));
        assert_eq!(directory.owner(1).unwrap().instance, "b");
        assert_eq!(directory.owner(0).unwrap().url, "http://a:8080");
        assert_eq!(directory.owner(7), None);
        // An older announcement read late changes nothing; a stop clears the claims.
        directory.take("b", Some(announcement("b", &[], 15)));
        assert_eq!(directory.owner(3).unwrap().instance, "b");
        directory.take("b", Some(announcement("b", &[], 30)));
        assert_eq!(directory.owner(3), None);
        directory.take("a", None);
        assert_eq!(directory.owner(0), None);
        assert_eq!(directory.this_instance(), "a");
    }

    #[test]
    fn the_advertised_url_comes_from_the_setting_or_the_bound_address() {
        let mut config = Config::default();
        config.http.listen = "127.0.0.1:0".into();
        let bound: std::net::SocketAddr = "127.0.0.1:43210".parse().unwrap();
        assert_eq!(
            advertised_url(&config, Some(bound)),
            "http://127.0.0.1:43210"
        );
        config.http.advertised_url = Some("http://p-0.personalizer:8080/".into());
        assert_eq!(
            advertised_url(&config, Some(bound)),
            "http://p-0.personalizer:8080"
        );
        config.http.advertised_url = None;
        config.http.listen = "0.0.0.0:8080".into();
        let url = advertised_url(&config, None);
        assert!(
            url.starts_with("http://") && url.ends_with(":8080"),
            "{url}"
        );
        assert!(!url.contains("0.0.0.0"), "{url}");
    }
}
