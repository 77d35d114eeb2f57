//! The product table as the read API serves it: every SKU's latest `product` record,
//! and the rankings the popularity recommendations read (most viewed, most purchased,
//! most added to cart, trending, the two conversion rates), kept ready for the whole
//! shop, per department and per leaf category, so a request walks a sorted list instead
//! of sorting the catalog.
//!
//! It is fed from the same rows as the rules' [`crate::catalog::ProductCatalog`] but is
//! a separate structure behind its own lock: an HTTP request holding it never makes the
//! stream thread wait.
//!
//! Decayed counts are published at different times, so they are ranked by the logarithm
//! of their value brought to one instant (`log2(value) + decided_at / half_life`), which
//! orders them exactly as their values at any common time would; scores are reported at
//! the latest `decided_at` the index has seen.

use crate::decision::{Decision, DecisionBody, ProductRecord};
use crate::rules::interests::is_under;
use crate::time::Millis;
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// The popularity rankings a recommendation can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Views,
    Purchases,
    CartAdds,
    Trending,
    ViewToPurchase,
    ViewToCart,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Views,
        Metric::Purchases,
        Metric::CartAdds,
        Metric::Trending,
        Metric::ViewToPurchase,
        Metric::ViewToCart,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the value is a count decayed with `products.popularity_half_life`
    /// (ranked and reported as of one instant), rather than a ratio or a score.
    fn is_decayed(self) -> bool {
        matches!(self, Metric::Views | Metric::Purchases | Metric::CartAdds)
    }

    fn value(self, record: &ProductRecord) -> Option<f64> {
        let value = match self {
            Metric::Views => record.popularity.views_7d,
            Metric::Purchases => record.popularity.purchases_7d,
            Metric::CartAdds => record.popularity.cart_adds_7d,
            Metric::Trending => record.trending_score,
            Metric::ViewToPurchase => record.view_to_purchase?,
            Metric::ViewToCart => record.view_to_cart?,
        };
        (value.is_finite() && value > 0.0).then_some(value)
    }
}

/// A SKU's place in one ranking: ascending order is highest value first, then by SKU.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ranked {
    key: i64,
    sku: Arc<str>,
}

impl Ranked {
    fn new(rank: f64, sku: Arc<str>) -> Ranked {
        // f64::total_cmp as an integer: flip the magnitude bits of negatives.
        let bits = rank.to_bits() as i64;
        let ordered = bits ^ ((((bits >> 63) as u64) >> 1) as i64);
        Ranked {
            key: -ordered.max(i64::MIN + 1),
            sku,
        }
    }
}

/// One SKU as the index holds it.
#[derive(Debug, Clone)]
pub struct IndexedProduct {
    pub record: Arc<ProductRecord>,
    /// When the record's numbers hold.
    pub decided_at: Millis,
    /// The record's category path joined with `/`.
    pub path: Option<String>,
    ranks: [Option<f64>; 6],
}

impl IndexedProduct {
    pub fn in_stock(&self) -> bool {
        self.record.quantity != Some(0)
    }

    pub fn department(&self) -> Option<&str> {
        self.record.department()
    }
}

/// Which SKUs a ranking covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Shop,
    Department(String),
    Leaf(String),
}

#[derive(Debug)]
pub struct ProductIndex {
    products: FxHashMap<Arc<str>, IndexedProduct>,
    rankings: FxHashMap<(Metric, Scope), BTreeSet<Ranked>>,
    /// `products.popularity_half_life` in milliseconds.
    half_life: f64,
    /// The latest `decided_at` seen: the instant decayed scores are reported at.
    now: Millis,
}

/// The index as the HTTP server and the table reader share it.
pub type SharedProductIndex = Arc<RwLock<ProductIndex>>;

/// One entry of a ranking as a request sees it.
#[derive(Debug, Clone)]
pub struct RankedProduct<'a> {
    pub product: &'a IndexedProduct,
    /// The metric's value, decayed counts brought to the index's latest time.
    pub score: f64,
}

impl ProductIndex {
    pub fn new(popularity_half_life: Millis) -> ProductIndex {
        ProductIndex {
            products: FxHashMap::default(),
            rankings: FxHashMap::default(),
            half_life: popularity_half_life.max(1) as f64,
            now: Millis::MIN,
        }
    }

    pub fn shared(popularity_half_life: Millis) -> SharedProductIndex {
        Arc::new(RwLock::new(ProductIndex::new(popularity_half_life)))
    }

    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    pub fn get(&self, sku: &str) -> Option<&IndexedProduct> {
        self.products.get(sku)
    }

    /// The instant decayed scores are reported at (`None` while empty).
    pub fn now(&self) -> Option<Millis> {
        (self.now != Millis::MIN).then_some(self.now)
    }

    /// Takes in a product record (other decisions are ignored).
    pub fn apply(&mut self, decision: &Decision) {
        let DecisionBody::Product(record) = &decision.body else {
            return;
        };
        let sku: Arc<str> = Arc::from(record.sku.as_str());
        self.remove(&sku);
        self.now = self.now.max(decision.decided_at);
        let mut ranks = [None; 6];
        for metric in Metric::ALL {
            ranks[metric.index()] = metric.value(record).map(|value| {
                if metric.is_decayed() {
                    value.log2() + decision.decided_at as f64 / self.half_life
                } else {
                    value
                }
            });
        }
        let path = record
            .product
            .as_ref()
            .and_then(|p| p.category.as_ref())
            .filter(|c| !c.is_empty())
            .map(|c| c.join("/"));
        let product = IndexedProduct {
            record: Arc::clone(record),
            decided_at: decision.decided_at,
            path,
            ranks,
        };
        for (metric, scope) in scopes(&product) {
            if let Some(rank) = product.ranks[metric.index()] {
                self.rankings
                    .entry((metric, scope))
                    .or_default()
                    .insert(Ranked::new(rank, sku.clone()));
            }
        }
        self.products.insert(sku, product);
    }

    /// Forgets a SKU (a tombstone on the products topic).
    pub fn remove(&mut self, sku: &str) {
        let Some((key, old)) = self.products.remove_entry(sku) else {
            return;
        };
        for (metric, scope) in scopes(&old) {
            if let Some(rank) = old.ranks[metric.index()] {
                let entry = (metric, scope);
                if let Some(ranking) = self.rankings.get_mut(&entry) {
                    ranking.remove(&Ranked::new(rank, key.clone()));
                    if ranking.is_empty() {
                        self.rankings.remove(&entry);
                    }
                }
            }
        }
    }

    /// The SKUs under category `prefix` (or the whole shop), highest `metric` first.
    /// A prefix deeper than a department walks the department's ranking and skips
    /// what is not under it, unless it names a leaf category exactly.
    pub fn ranked<'a>(
        &'a self,
        metric: Metric,
        prefix: Option<&'a str>,
    ) -> impl Iterator<Item = RankedProduct<'a>> + 'a {
        let (scope, filter) = match prefix {
            None => (Scope::Shop, None),
            Some(prefix) => match prefix.split_once('/') {
                None => (Scope::Department(prefix.to_string()), None),
                Some(_)
                    if self
                        .rankings
                        .contains_key(&(metric, Scope::Leaf(prefix.into()))) =>
                {
                    (Scope::Leaf(prefix.to_string()), None)
                }
                Some((department, _)) => (Scope::Department(department.to_string()), Some(prefix)),
            },
        };
        self.rankings
            .get(&(metric, scope))
            .into_iter()
            .flat_map(|ranking| ranking.iter())
            .filter_map(move |ranked| {
                let product = self.products.get(&ranked.sku)?;
                if let Some(prefix) = filter {
                    if !product
                        .path
                        .as_deref()
                        .is_some_and(|path| is_under(path, prefix))
                    {
                        return None;
                    }
                }
                Some(RankedProduct {
                    product,
                    score: self.score(product, metric)?,
                })
            })
    }

    /// `metric`'s value for `product`, decayed counts brought to the index's time.
    pub fn score(&self, product: &IndexedProduct, metric: Metric) -> Option<f64> {
        let value = metric.value(&product.record)?;
        if !metric.is_decayed() {
            return Some(value);
        }
        let age = (self.now - product.decided_at).max(0) as f64;
        Some(value * (-age / self.half_life).exp2())
    }
}

/// Every ranking a product belongs to.
fn scopes(product: &IndexedProduct) -> Vec<(Metric, Scope)> {
    let mut scopes = vec![Scope::Shop];
    if let Some(department) = product.department() {
        scopes.push(Scope::Department(department.to_string()));
    }
    if let Some(path) = product.path.as_deref().filter(|p| p.contains('/')) {
        scopes.push(Scope::Leaf(path.to_string()));
    }
    Metric::ALL
        .into_iter()
        .flat_map(|metric| scopes.iter().map(move |scope| (metric, scope.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Popularity, RankingBasis};
    use crate::event::Product;

    const H: Millis = 1_000;

    fn record(sku: &str, category: &[&str], views: f64, at: Millis) -> Decision {
        Decision {
            decision_id: format!("d-{sku}-{at}"),
            customer_id: None,
            decided_at: at,
            reason: String::new(),
            body: DecisionBody::Product(std::sync::Arc::new(ProductRecord {
                sku: sku.into(),
                product: Some(Product {
                    sku: sku.into(),
                    category: Some(category.iter().map(|c| c.to_string()).collect()),
                    ..Product::default()
                }),
                quantity: Some(3),
                segments: vec![],
                popularity: Popularity {
                    views_7d: views,
                    purchases_7d: 0.0,
                    cart_adds_7d: 0.0,
                },
                trending_score: 0.0,
                view_to_purchase: None,
                view_to_cart: None,
                viewed_with: vec![],
                bought_with: vec![],
                viewed_then_bought: vec![],
                ranking_basis: RankingBasis::default(),
            })),
        }
    }

    fn skus(index: &ProductIndex, metric: Metric, prefix: Option<&str>) -> Vec<String> {
        index
            .ranked(metric, prefix)
            .map(|r| r.product.record.sku.clone())
            .collect()
    }

    #[test]
    fn decayed_counts_published_at_different_times_rank_as_of_one_instant() {
        let mut index = ProductIndex::new(H);
        // a: 8 views at t=0; b: 5 views one half-life later. At t=H, a has 4: b leads.
        index.apply(&record("a", &["women", "dresses"], 8.0, 0));
        index.apply(&record("b", &["women", "shoes"], 5.0, H));
        assert_eq!(skus(&index, Metric::Views, None), ["b", "a"]);
        let scores: Vec<f64> = index.ranked(Metric::Views, None).map(|r| r.score).collect();
        assert!((scores[0] - 5.0).abs() < 1e-9 && (scores[1] - 4.0).abs() < 1e-9);
    }

    #[test]
    fn rankings_per_department_leaf_and_deeper_prefix() {
        let mut index = ProductIndex::new(H);
        index.apply(&record("a", &["women", "dresses", "maxi"], 3.0, 0));
        index.apply(&record("b", &["women", "dresses", "mini"], 9.0, 0));
        index.apply(&record("c", &["men", "shirts"], 20.0, 0));
        assert_eq!(skus(&index, Metric::Views, Some("women")), ["b", "a"]);
        assert_eq!(
            skus(&index, Metric::Views, Some("women/dresses/maxi")),
            ["a"]
        );
        assert_eq!(
            skus(&index, Metric::Views, Some("women/dresses")),
            ["b", "a"]
        );
        // A prefix is matched component by component.
        assert!(skus(&index, Metric::Views, Some("women/dress")).is_empty());
        assert!(skus(&index, Metric::Views, Some("kids")).is_empty());
        assert_eq!(skus(&index, Metric::Views, None), ["c", "b", "a"]);
    }

    #[test]
    fn a_new_record_replaces_the_old_one_everywhere_and_a_tombstone_removes_it() {
        let mut index = ProductIndex::new(H);
        index.apply(&record("a", &["women", "dresses"], 3.0, 0));
        index.apply(&record("b", &["women", "dresses"], 2.0, 0));
        index.apply(&record("a", &["men", "shirts"], 1.0, 0));
        assert_eq!(skus(&index, Metric::Views, Some("women")), ["b"]);
        assert_eq!(skus(&index, Metric::Views, Some("men/shirts")), ["a"]);
        assert_eq!(index.len(), 2);
        index.remove("a");
        assert!(skus(&index, Metric::Views, Some("men")).is_empty());
        assert_eq!(skus(&index, Metric::Views, None), ["b"]);
        // Zero and missing values are not ranked at all.
        index.apply(&record("z", &["women"], 0.0, 0));
        assert_eq!(skus(&index, Metric::Views, None), ["b"]);
        assert!(skus(&index, Metric::ViewToCart, None).is_empty());
    }
}
