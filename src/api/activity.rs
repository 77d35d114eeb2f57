//! What the merchant's page shows besides state: the decisions recently made about each
//! shopper, and which shoppers they were made about, newest first.
//!
//! A running processor keeps these from a reader of its own output topics (committed
//! records only: what the email service and the storefront also see), bounded in
//! shoppers and in decisions per shopper. The stream thread never touches it; the lock
//! is shared only by that reader and HTTP requests. A state directory has no such
//! history, so `personalizer query` answers these routes with a 503.
//!
//! Records are kept as they came, keyed by their record key (the shopper), and decoded
//! only when the page asks: the reader sees every profile and segment change, about one
//! per input event, and decoding each of them cost that thread a tenth of the
//! processor's CPU while the page shows a few.

use crate::decision::{Decision, DecisionType};
use crate::decision_codec::DecisionDecoder;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Shoppers remembered; the one whose latest decision is oldest goes first.
pub const MAX_SHOPPERS: usize = 5_000;
/// Decisions remembered per shopper, newest first.
pub const MAX_DECISIONS_PER_SHOPPER: usize = 20;

#[derive(Default)]
struct Inner {
    /// Per shopper: the sequence number of their latest record, and their records.
    by_shopper: HashMap<String, (u64, VecDeque<Vec<u8>>)>,
    /// (sequence number, shopper) per record kept, oldest first; an entry whose number
    /// is not its shopper's latest is stale and skipped.
    order: VecDeque<(u64, String)>,
    next: u64,
}

pub struct RecentActivity {
    inner: Mutex<Inner>,
    decoder: DecisionDecoder,
}

/// One shopper in the list of recently active ones.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActiveShopper {
    pub shopper: String,
    /// The type of the latest decision about them.
    pub latest: &'static str,
    pub decided_at: String,
}

impl RecentActivity {
    /// Reads the kept records with `decoder` (the output topics' format).
    pub fn new(decoder: DecisionDecoder) -> RecentActivity {
        RecentActivity {
            inner: Mutex::default(),
            decoder,
        }
    }

    /// Keeps an output record: `shopper` is its key, `payload` its value.
    pub fn record(&self, shopper: &[u8], payload: &[u8]) {
        let Ok(key) = std::str::from_utf8(shopper) else {
            return;
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = inner.next;
        inner.next += 1;
        let (latest, list) = match inner.by_shopper.get_mut(key) {
            Some(entry) => entry,
            None => inner.by_shopper.entry(key.to_string()).or_default(),
        };
        *latest = seq;
        if list.len() == MAX_DECISIONS_PER_SHOPPER {
            list.pop_back();
        }
        list.push_front(payload.to_vec());
        inner.order.push_back((seq, key.to_string()));
        // Stale entries go once they are half the queue: amortized constant work.
        if inner.order.len() > 2 * MAX_SHOPPERS {
            let Inner {
                by_shopper, order, ..
            } = &mut *inner;
            order.retain(|(seq, key)| by_shopper.get(key).is_some_and(|(l, _)| l == seq));
        }
        while inner.by_shopper.len() > MAX_SHOPPERS {
            let Some((seq, oldest)) = inner.order.pop_front() else {
                break;
            };
            if inner
                .by_shopper
                .get(&oldest)
                .is_some_and(|(l, _)| *l == seq)
            {
                inner.by_shopper.remove(&oldest);
            }
        }
    }

    /// A kept record as a decision about a shopper: product records (about no shopper)
    /// and records that do not read now are left out, as a view for people may.
    fn decode(&self, payload: &[u8]) -> Option<Decision> {
        self.decoder
            .decode(payload)
            .ok()
            .filter(|d| d.decision_type() != DecisionType::Product)
    }

    /// The decisions about `shopper`, newest first.
    pub fn decisions(&self, shopper: &str) -> Vec<Decision> {
        let payloads: Vec<Vec<u8>> = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner
                .by_shopper
                .get(shopper)
                .map(|(_, list)| list.iter().cloned().collect())
                .unwrap_or_default()
        };
        // Decoded outside the lock: the reader thread is never kept waiting on a page.
        payloads.iter().filter_map(|p| self.decode(p)).collect()
    }

    /// Up to `limit` shoppers with recent decisions, the most recent first.
    pub fn active(&self, limit: usize) -> Vec<ActiveShopper> {
        let recent: Vec<(String, VecDeque<Vec<u8>>)> = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner
                .order
                .iter()
                .rev()
                .filter_map(|(seq, key)| {
                    let (latest_seq, list) = inner.by_shopper.get(key)?;
                    (latest_seq == seq).then(|| (key.clone(), list.clone()))
                })
                .take(limit)
                .collect()
        };
        recent
            .into_iter()
            .filter_map(|(shopper, list)| {
                let latest = list.iter().find_map(|p| self.decode(p))?;
                Some(ActiveShopper {
                    shopper,
                    latest: latest.decision_type().name(),
                    decided_at: crate::time::format_rfc3339(latest.decided_at),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::DecisionBody;

    fn activity() -> RecentActivity {
        RecentActivity::new(DecisionDecoder::json())
    }

    fn record(activity: &RecentActivity, decision: Decision) {
        activity.record(decision.record_key().as_bytes(), &decision.to_json_bytes());
    }

    fn decision(customer: &str, at: i64) -> Decision {
        Decision {
            decision_id: format!("{customer}-{at}"),
            customer_id: Some(customer.into()),
            decided_at: at,
            reason: "test".into(),
            body: DecisionBody::DiscountOffer {
                category: "women".into(),
                code: "W10".into(),
                score: 9.0,
            },
        }
    }

    #[test]
    fn newest_first_bounded_per_shopper() {
        let activity = activity();
        for at in 0..(MAX_DECISIONS_PER_SHOPPER as i64 + 5) {
            record(&activity, decision("c1", at));
        }
        record(&activity, decision("c2", 100));
        let c1 = activity.decisions("c1");
        assert_eq!(c1.len(), MAX_DECISIONS_PER_SHOPPER);
        assert_eq!(c1[0].decided_at, MAX_DECISIONS_PER_SHOPPER as i64 + 4);
        let active: Vec<String> = activity.active(10).into_iter().map(|a| a.shopper).collect();
        assert_eq!(active, ["c2", "c1"]);
        assert!(activity.decisions("nobody").is_empty());
    }

    #[test]
    fn records_are_read_when_asked_and_those_that_do_not_read_are_left_out() {
        let activity = activity();
        record(&activity, decision("c1", 1));
        let product = crate::samples::one_of_each_decision_type()
            .into_iter()
            .find(|d| d.decision_type() == DecisionType::Product)
            .unwrap();
        activity.record(b"c1", &product.to_json_bytes());
        activity.record(b"c1", b"{\"not\": \"a decision\"}");
        activity.record(b"\xff", &decision("c2", 2).to_json_bytes());
        assert_eq!(activity.decisions("c1"), vec![decision("c1", 1)]);
        let active = activity.active(10);
        assert_eq!(active.len(), 1, "a key that is not text is not a shopper");
        assert_eq!(active[0].shopper, "c1");
        assert_eq!(active[0].latest, "discount_offer", "the latest that reads");
    }

    #[test]
    fn the_least_recently_decided_shopper_is_forgotten_first() {
        let activity = activity();
        for i in 0..MAX_SHOPPERS + 10 {
            record(&activity, decision(&format!("c{i}"), i as i64));
            // c0 stays active throughout.
            record(&activity, decision("c0", i as i64));
        }
        assert!(!activity.decisions("c0").is_empty());
        assert!(activity.decisions("c1").is_empty(), "the oldest goes");
        assert!(!activity
            .decisions(&format!("c{}", MAX_SHOPPERS + 9))
            .is_empty());
        assert_eq!(activity.active(usize::MAX).len(), MAX_SHOPPERS);
    }
}
