//! What the merchant's page shows besides state: the decisions recently made about each
//! shopper, and which shoppers they were made about, newest first.
//!
//! A running processor keeps these from a reader of its own output topics (committed
//! records only: what the email service and the storefront also see), bounded in
//! shoppers and in decisions per shopper. The stream thread never touches it; the lock
//! is shared only by that reader and HTTP requests. A state directory has no such
//! history, so `personalizer query` answers these routes with a 503.

use crate::decision::Decision;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Shoppers remembered; the one whose latest decision is oldest goes first.
pub const MAX_SHOPPERS: usize = 5_000;
/// Decisions remembered per shopper, newest first.
pub const MAX_DECISIONS_PER_SHOPPER: usize = 20;

#[derive(Default)]
struct Inner {
    /// Per shopper: the sequence number of their latest decision, and their decisions.
    by_shopper: HashMap<String, (u64, VecDeque<Decision>)>,
    /// (sequence number, shopper) per decision recorded, oldest first; an entry whose
    /// number is not its shopper's latest is stale and skipped.
    order: VecDeque<(u64, String)>,
    next: u64,
}

#[derive(Default)]
pub struct RecentActivity {
    inner: Mutex<Inner>,
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
    /// Remembers a decision (product records, which are about no shopper, are not).
    pub fn record(&self, decision: Decision) {
        if decision.decision_type() == crate::decision::DecisionType::Product {
            return;
        }
        let key = decision.record_key().to_string();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = inner.next;
        inner.next += 1;
        let (latest, list) = inner.by_shopper.entry(key.clone()).or_default();
        *latest = seq;
        list.push_front(decision);
        list.truncate(MAX_DECISIONS_PER_SHOPPER);
        inner.order.push_back((seq, key));
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

    /// The decisions about `shopper`, newest first.
    pub fn decisions(&self, shopper: &str) -> Vec<Decision> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .by_shopper
            .get(shopper)
            .map(|(_, list)| list.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Up to `limit` shoppers with recent decisions, the most recent first.
    pub fn active(&self, limit: usize) -> Vec<ActiveShopper> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .order
            .iter()
            .rev()
            .filter_map(|(seq, key)| {
                let (latest_seq, list) = inner.by_shopper.get(key)?;
                let latest = list.front().filter(|_| latest_seq == seq)?;
                Some(ActiveShopper {
                    shopper: key.clone(),
                    latest: latest.decision_type().name(),
                    decided_at: crate::time::format_rfc3339(latest.decided_at),
                })
            })
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::DecisionBody;

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
        let activity = RecentActivity::default();
        for at in 0..(MAX_DECISIONS_PER_SHOPPER as i64 + 5) {
            activity.record(decision("c1", at));
        }
        activity.record(decision("c2", 100));
        let c1 = activity.decisions("c1");
        assert_eq!(c1.len(), MAX_DECISIONS_PER_SHOPPER);
        assert_eq!(c1[0].decided_at, MAX_DECISIONS_PER_SHOPPER as i64 + 4);
        let active: Vec<String> = activity.active(10).into_iter().map(|a| a.shopper).collect();
        assert_eq!(active, ["c2", "c1"]);
        assert!(activity.decisions("nobody").is_empty());
    }

    #[test]
    fn the_least_recently_decided_shopper_is_forgotten_first() {
        let activity = RecentActivity::default();
        for i in 0..MAX_SHOPPERS + 10 {
            activity.record(decision(&format!("c{i}"), i as i64));
            // c0 stays active throughout.
            activity.record(decision("c0", i as i64));
        }
        assert!(!activity.decisions("c0").is_empty());
        assert!(activity.decisions("c1").is_empty(), "the oldest goes");
        assert!(!activity
            .decisions(&format!("c{}", MAX_SHOPPERS + 9))
            .is_empty());
        assert_eq!(activity.active(usize::MAX).len(), MAX_SHOPPERS);
    }
}
