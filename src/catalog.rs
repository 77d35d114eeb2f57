//! The product table as the product rules read it: for every SKU, what its latest
//! published `product` record says about it that another SKU's record depends on (the
//! cosine denominators of co-occurrence, and the trending score its department ranks).
//!
//! Live, every instance fills it from the `personalization.products` topic (a global
//! table: each instance reads every partition), so all instances converge on the same
//! table however the SKUs are spread among them. In `replay` it follows the product
//! records as they are made. Either way a SKU's record is ranked against the records the
//! other SKUs last published, never against another task's unpublished state.

use crate::decision::ProductRecord;
use crate::state::Decayed;
use crate::time::Millis;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// What the table knows of one SKU.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub department: Option<String>,
    pub trending_score: f64,
    /// Views and orders decayed with `recs.half_life`, as of the record's `decided_at`.
    pub views: Decayed,
    pub orders: Decayed,
}

/// A trending score ordered for ranking: highest first, then by SKU.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ranked {
    /// `-score`'s total-order bits, so that ascending order is descending score.
    key: i64,
    sku: String,
}

impl Ranked {
    fn new(score: f64, sku: &str) -> Ranked {
        // f64::total_cmp as an integer: flip the magnitude bits of negatives.
        let bits = score.to_bits() as i64;
        let ordered = bits ^ ((((bits >> 63) as u64) >> 1) as i64);
        Ranked {
            key: -ordered.max(i64::MIN + 1),
            sku: sku.to_string(),
        }
    }
}

#[derive(Debug, Default)]
pub struct ProductCatalog {
    // FxHash: a product record looks up every neighbour it ranks (up to three lists of
    // `recs.max_neighbours`), and SipHash was a tenth of replay's time. Inline keys: a
    // probe compares the SKU in the bucket instead of following a pointer to it.
    entries: FxHashMap<CompactString, CatalogEntry>,
    /// Per department, the SKUs with a trending score above 0, highest first.
    trending: FxHashMap<String, BTreeSet<Ranked>>,
}

/// The catalog as the engine and the runtime share it.
pub type SharedCatalog = Arc<RwLock<ProductCatalog>>;

impl ProductCatalog {
    pub fn shared() -> SharedCatalog {
        Arc::new(RwLock::new(ProductCatalog::default()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, sku: &str) -> Option<&CatalogEntry> {
        self.entries.get(sku)
    }

    /// Takes in a published record (`decided_at` is when its numbers hold).
    pub fn apply(&mut self, record: &ProductRecord, decided_at: Millis) {
        let entry = CatalogEntry {
            department: record.department().map(str::to_string),
            trending_score: record.trending_score,
            views: Decayed {
                value: record.ranking_basis.views,
                at: decided_at,
            },
            orders: Decayed {
                value: record.ranking_basis.orders,
                at: decided_at,
            },
        };
        if let Some(old) = self.entries.get(record.sku.as_str()) {
            self.unrank(&record.sku, old.department.clone(), old.trending_score);
        }
        if let (Some(department), true) = (&entry.department, entry.trending_score > 0.0) {
            self.trending
                .entry(department.clone())
                .or_default()
                .insert(Ranked::new(entry.trending_score, &record.sku));
        }
        self.entries.insert(CompactString::from(&record.sku), entry);
    }

    /// Forgets a SKU (a tombstone on the products topic).
    pub fn remove(&mut self, sku: &str) {
        if let Some(old) = self.entries.remove(sku) {
            self.unrank(sku, old.department, old.trending_score);
        }
    }

    fn unrank(&mut self, sku: &str, department: Option<String>, score: f64) {
        if let Some(department) = department {
            if let Some(ranked) = self.trending.get_mut(&department) {
                ranked.remove(&Ranked::new(score, sku));
                if ranked.is_empty() {
                    self.trending.remove(&department);
                }
            }
        }
    }

    /// Whether a trending `score` for `sku` is among the `top` highest of `department`,
    /// against the other SKUs' published scores. A score of 0 (or NaN) never is.
    pub fn is_top_trending(&self, department: &str, sku: &str, score: f64, top: usize) -> bool {
        if score.is_nan() || score <= 0.0 {
            return false;
        }
        let Some(ranked) = self.trending.get(department) else {
            return true;
        };
        let mine = Ranked::new(score, sku);
        let higher = ranked
            .iter()
            .take_while(|r| *r < &mine)
            .filter(|r| r.sku != sku)
            .take(top)
            .count();
        higher < top
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Popularity, RankingBasis};
    use crate::event::Product;

    fn record(sku: &str, department: &str, trending: f64) -> ProductRecord {
        ProductRecord {
            sku: sku.into(),
            product: Some(Product {
                sku: sku.into(),
                category: Some(vec![department.into(), "x".into()]),
                ..Product::default()
            }),
            quantity: Some(3),
            segments: vec![],
            popularity: Popularity::default(),
            trending_score: trending,
            view_to_purchase: None,
            view_to_cart: None,
            viewed_with: vec![],
            bought_with: vec![],
            viewed_then_bought: vec![],
            ranking_basis: RankingBasis {
                views: 4.0,
                orders: 1.0,
            },
        }
    }

    #[test]
    fn ranks_within_the_department_against_the_other_skus() {
        let mut catalog = ProductCatalog::default();
        for (sku, score) in [("a", 9.0), ("b", 7.0), ("c", 5.0)] {
            catalog.apply(&record(sku, "women", score), 100);
        }
        catalog.apply(&record("m", "men", 100.0), 100);
        // Top 2 of women: a and b; c's 5.0 has two higher.
        assert!(catalog.is_top_trending("women", "a", 9.0, 2));
        assert!(catalog.is_top_trending("women", "b", 7.0, 2));
        assert!(!catalog.is_top_trending("women", "c", 5.0, 2));
        // A fresher score of c's own counts, not its published one.
        assert!(catalog.is_top_trending("women", "c", 8.0, 2));
        assert!(!catalog.is_top_trending("women", "c", 0.0, 2));
        // A department nobody trends in yet: the first to trend is in the top.
        assert!(catalog.is_top_trending("kids", "k", 0.1, 1));
    }

    #[test]
    fn a_new_record_replaces_the_old_ranking() {
        let mut catalog = ProductCatalog::default();
        catalog.apply(&record("a", "women", 9.0), 100);
        catalog.apply(&record("b", "women", 7.0), 100);
        catalog.apply(&record("a", "women", 1.0), 200);
        assert!(catalog.is_top_trending("women", "b", 7.0, 1));
        assert!(!catalog.is_top_trending("women", "a", 1.0, 1));
        // Moving to another department leaves the first.
        catalog.apply(&record("b", "men", 7.0), 300);
        assert!(catalog.is_top_trending("women", "a", 1.0, 1));
        assert_eq!(catalog.len(), 2);
        let b = catalog.get("b").unwrap();
        assert_eq!(
            b.views,
            Decayed {
                value: 4.0,
                at: 300
            }
        );
        assert_eq!(b.department.as_deref(), Some("men"));
    }

    #[test]
    fn equal_scores_and_odd_numbers_rank_without_panicking() {
        let mut catalog = ProductCatalog::default();
        catalog.apply(&record("a", "d", 5.0), 1);
        catalog.apply(&record("b", "d", 5.0), 1);
        catalog.apply(&record("c", "d", f64::INFINITY), 1);
        // Equal scores order by SKU: a before b.
        assert!(catalog.is_top_trending("d", "a", 5.0, 2));
        assert!(!catalog.is_top_trending("d", "b", 5.0, 2));
        assert!(!catalog.is_top_trending("d", "z", f64::NAN, 3));
    }
}
