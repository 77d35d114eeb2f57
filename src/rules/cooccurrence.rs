//! Co-occurrence (CONTRACT §5.4): viewed with, bought with, viewed then bought. Each SKU
//! keeps its strongest `recs.max_neighbours` per kind as decayed counts; its product
//! record lists the top `recs.top_n`, ranked by cosine so that popular products do not
//! crowd out the rest.

use super::popularity::{self, round4};
use crate::catalog::ProductCatalog;
use crate::config::RecsConfig;
use crate::decision::ScoredSku;
use crate::state::{Neighbour, NeighbourKind, ProductActivity};
use crate::time::Millis;

/// Adds 1 at event time `at` to the pair with `sku` in `list`. A new neighbour beyond
/// `max` evicts the weakest at `now` (perhaps itself): of equal counts, the one touched
/// longest ago, then the greater SKU.
pub fn add(list: &mut Vec<Neighbour>, sku: &str, at: Millis, now: Millis, config: &RecsConfig) {
    let half_life = config.half_life.millis();
    match list.iter_mut().find(|n| same_sku(&n.sku, sku)) {
        Some(neighbour) => popularity::add(&mut neighbour.count, 1.0, at, half_life),
        None => {
            let mut neighbour = Neighbour {
                sku: sku.into(),
                count: Default::default(),
            };
            popularity::add(&mut neighbour.count, 1.0, at, half_life);
            list.push(neighbour);
        }
    }
    if list.len() > config.max_neighbours {
        // Each count decayed once, not once per comparison: the list is full on most adds.
        let weakest = list
            .iter()
            .map(|n| (popularity::value_at(n.count, now, half_life), n))
            .enumerate()
            .min_by(|(_, (ca, a)), (_, (cb, b))| {
                ca.total_cmp(cb)
                    .then(a.count.at.cmp(&b.count.at))
                    .then_with(|| b.sku.cmp(&a.sku))
            })
            .map(|(i, _)| i)
            .expect("more neighbours than the limit, so at least one");
        list.swap_remove(weakest);
    }
}

/// Whether two SKUs are equal, mostly decided without calling `memcmp`: every pair added
/// scans a list of up to `recs.max_neighbours`, and a shop's SKUs tend to share their
/// length and prefix, so their last eight bytes tell most of them apart.
fn same_sku(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if let (Some(tail_a), Some(tail_b)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        if tail_a != tail_b {
            return false;
        }
    }
    a == b
}

/// The top `recs.top_n` neighbours of `kind` at `now`, by cosine: the pair's count over
/// √(this SKU's basis × the neighbour's), where the basis is views for viewed-with,
/// orders for bought-with, and this SKU's views with the neighbour's orders for
/// viewed-then-bought (each decayed with `recs.half_life`, at least 1). A neighbour's
/// basis comes from its last published record in the product table; one not in the
/// table yet counts as 1. Ties go to the alphabetically first SKU.
pub fn ranked(
    activity: &ProductActivity,
    kind: NeighbourKind,
    now: Millis,
    config: &RecsConfig,
    catalog: &ProductCatalog,
) -> Vec<ScoredSku> {
    let half_life = config.half_life.millis();
    let own_views = popularity::value_at(activity.long_views, now, half_life);
    let own_orders = popularity::value_at(activity.long_orders, now, half_life);
    let own = match kind {
        NeighbourKind::ViewedWith | NeighbourKind::ViewedThenBought => own_views,
        NeighbourKind::BoughtWith => own_orders,
    };
    // Scored by reference and cut to the top before any SKU is copied: a record ranks
    // up to three lists of `recs.max_neighbours` and lists only `recs.top_n` of each.
    let mut scored: Vec<(f64, &str)> = activity
        .neighbours(kind)
        .iter()
        .map(|n| {
            let theirs = catalog.get(&n.sku).map_or(1.0, |entry| {
                let basis = match kind {
                    NeighbourKind::ViewedWith => entry.views,
                    NeighbourKind::BoughtWith | NeighbourKind::ViewedThenBought => entry.orders,
                };
                popularity::value_at(basis, now, half_life)
            });
            let count = popularity::value_at(n.count, now, half_life);
            let score = round4(count / (own.max(1.0) * theirs.max(1.0)).sqrt());
            (score, n.sku.as_str())
        })
        .collect();
    let best_first =
        |a: &(f64, &str), b: &(f64, &str)| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1));
    if scored.len() > config.top_n {
        scored.select_nth_unstable_by(config.top_n, best_first);
        scored.truncate(config.top_n);
    }
    scored.sort_unstable_by(best_first);
    scored
        .into_iter()
        .map(|(score, sku)| ScoredSku {
            sku: sku.into(),
            score,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Popularity, ProductRecord, RankingBasis};
    use crate::state::Decayed;

    const T: Millis = 1_767_225_600_000;
    const DAY: Millis = 86_400_000;

    fn config(max: usize) -> RecsConfig {
        RecsConfig {
            max_neighbours: max,
            top_n: max,
            ..RecsConfig::default()
        }
    }

    fn skus(list: &[Neighbour]) -> Vec<&str> {
        let mut skus: Vec<&str> = list.iter().map(|n| n.sku.as_str()).collect();
        skus.sort();
        skus
    }

    #[test]
    fn skus_are_equal_only_when_every_byte_is() {
        assert!(same_sku("SKU-000123", "SKU-000123"));
        assert!(!same_sku("SKU-000123", "SKU-000124"));
        assert!(
            !same_sku("XKU-000123", "SKU-000123"),
            "differs before the last 8 bytes"
        );
        assert!(!same_sku("SKU-1", "SKU-10"));
        assert!(
            same_sku("ab", "ab") && !same_sku("ab", "ac"),
            "shorter than 8 bytes"
        );
        assert!(same_sku("", ""));
    }

    #[test]
    fn counts_accumulate_per_neighbour() {
        let config = config(5);
        let mut list = Vec::new();
        add(&mut list, "b", T, T, &config);
        add(&mut list, "b", T, T, &config);
        add(&mut list, "c", T, T, &config);
        assert_eq!(skus(&list), ["b", "c"]);
        assert_eq!(list[0].count, Decayed { value: 2.0, at: T });
    }

    #[test]
    fn a_full_list_evicts_its_weakest_which_may_be_the_newcomer() {
        let config = config(2);
        let mut list = Vec::new();
        for _ in 0..3 {
            add(&mut list, "strong", T, T, &config);
        }
        add(&mut list, "weak", T, T, &config);
        // A newcomer with 1 ties with `weak` (1); `weak` was touched no earlier, so the
        // greater SKU goes: `zed`.
        add(&mut list, "zed", T, T, &config);
        assert_eq!(skus(&list), ["strong", "weak"]);
        // Decay decides too: `weak` is old by now, a fresh pair outweighs it.
        let later = T + 180 * DAY;
        add(&mut list, "fresh", later, later, &config);
        assert_eq!(skus(&list), ["fresh", "strong"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Cutting the scored list to the top `recs.top_n` lists the same as sorting it
        /// whole: equal counts, ties, unknown neighbours and counts touched after `now`
        /// included.
        #[test]
        fn the_top_n_are_the_first_of_the_whole_ranking(
            counts in proptest::collection::vec(
                (0u8..12, 0u32..6, proptest::prop_oneof![2 => proptest::strategy::Just(0i64), 3 => -40i64..400]),
                0..60,
            ),
            bases in proptest::collection::vec(proptest::option::of((0u16..400, 0u16..60)), 60),
            own in proptest::prop_oneof![0u16..3, 0u16..300],
            top_n in 1usize..25,
            now_days in 0i64..200,
        ) {
            let half_life = RecsConfig::default().half_life.millis();
            let now = T + now_days * DAY;
            let mut activity = ProductActivity::default();
            popularity::add(&mut activity.long_views, f64::from(own), T, half_life);
            popularity::add(&mut activity.long_orders, f64::from(own) / 7.0, T, half_life);
            let mut catalog = ProductCatalog::default();
            for (i, (count, shade, days)) in counts.iter().enumerate() {
                let neighbour = Neighbour {
                    // Equal counts on purpose: ties are where an early stop could err.
                    sku: format!("sku-{i:02}").into(),
                    count: Decayed {
                        value: f64::from(*count) / 4.0 + f64::from(*shade) * 1e-5,
                        // At `now` (no decay), before it, or after it.
                        at: now - days * DAY / 4,
                    },
                };
                activity.viewed_with.push(neighbour.clone());
                activity.bought_with.push(neighbour);
                if let Some((views, orders)) = bases[i] {
                    let record = published(&format!("sku-{i:02}"), f64::from(views), f64::from(orders));
                    catalog.apply(&record, T);
                }
            }
            for kind in [NeighbourKind::ViewedWith, NeighbourKind::BoughtWith] {
                let cut = RecsConfig { top_n, ..RecsConfig::default() };
                let every = RecsConfig { top_n: 1_000, ..RecsConfig::default() };
                let mut all = ranked(&activity, kind, now, &every, &catalog);
                all.truncate(top_n);
                proptest::prop_assert_eq!(ranked(&activity, kind, now, &cut, &catalog), all);
            }
        }
    }

    fn published(sku: &str, views: f64, orders: f64) -> ProductRecord {
        ProductRecord {
            sku: sku.into(),
            product: None,
            quantity: None,
            segments: vec![],
            popularity: Popularity::default(),
            trending_score: 0.0,
            view_to_purchase: None,
            view_to_cart: None,
            viewed_with: vec![],
            bought_with: vec![],
            viewed_then_bought: vec![],
            ranking_basis: RankingBasis { views, orders },
        }
    }

    #[test]
    fn ranking_divides_by_both_popularities_so_the_popular_do_not_dominate() {
        let config = config(10);
        let mut activity = ProductActivity::default();
        for _ in 0..4 {
            popularity::add(&mut activity.long_views, 1.0, T, config.half_life.millis());
        }
        // 3 co-views with a blockbuster (100 views), 2 with a niche product (4 views).
        for _ in 0..3 {
            add(&mut activity.viewed_with, "blockbuster", T, T, &config);
        }
        for _ in 0..2 {
            add(&mut activity.viewed_with, "niche", T, T, &config);
        }
        add(&mut activity.viewed_with, "unknown", T, T, &config);
        let mut catalog = ProductCatalog::default();
        catalog.apply(&published("blockbuster", 100.0, 0.0), T);
        catalog.apply(&published("niche", 4.0, 0.0), T);
        let top = ranked(&activity, NeighbourKind::ViewedWith, T, &config, &catalog);
        let expect = |sku: &str, score: f64| ScoredSku {
            sku: sku.into(),
            score,
        };
        assert_eq!(
            top,
            vec![
                // 2 / √(4·4), 1 / √(4·1), 3 / √(4·100)
                expect("niche", 0.5),
                expect("unknown", 0.5),
                expect("blockbuster", 0.15),
            ]
        );
        let top_one = ranked(
            &activity,
            NeighbourKind::ViewedWith,
            T,
            &RecsConfig {
                top_n: 1,
                ..config.clone()
            },
            &catalog,
        );
        assert_eq!(top_one, vec![expect("niche", 0.5)]);
    }

    #[test]
    fn bought_with_ranks_by_orders_and_decays_with_the_recs_half_life() {
        let config = config(10);
        let half_life = config.half_life.millis();
        let mut activity = ProductActivity::default();
        popularity::add(&mut activity.long_orders, 4.0, T, half_life);
        add(&mut activity.bought_with, "b", T, T, &config);
        add(&mut activity.bought_with, "b", T, T, &config);
        let mut catalog = ProductCatalog::default();
        catalog.apply(&published("b", 50.0, 1.0), T);
        let now = T + half_life;
        // count 1, own orders 2, theirs 0.5 → floor 1: 1 / √2.
        let top = ranked(&activity, NeighbourKind::BoughtWith, now, &config, &catalog);
        assert_eq!(top[0].score, round4(1.0 / 2f64.sqrt()));
    }
}
