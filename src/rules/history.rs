//! What a shopper bought and which search results they clicked: not part of the
//! published profile, but what the read API (CONTRACT §5.7) needs to leave recent
//! purchases out of recommendations, to recommend what is bought with them, and to
//! lift a shopper's own earlier clicks in a search order.

use crate::config::InterestsConfig;
use crate::event::{Event, EventBody};
use crate::state::{normalize_query, Purchase, SearchClick, ShopperProfile};
use crate::time::Millis;

/// Records what `event` adds to the shopper's purchases or search clicks.
pub fn on_event(profile: &mut ShopperProfile, event: &Event, config: &InterestsConfig) {
    let at = event.occurred_at;
    match &event.body {
        EventBody::OrderCompleted { items, .. } => {
            for item in items {
                bought(profile, &item.product.sku, at, config);
            }
        }
        EventBody::SearchResultClicked { query, sku } => {
            clicked(profile, &normalize_query(query), sku, at, 1, config)
        }
        _ => {}
    }
}

/// `sku` was bought at `at`: each SKU once with its latest time, newest first.
pub fn bought(profile: &mut ShopperProfile, sku: &str, at: Millis, config: &InterestsConfig) {
    let purchases = &mut profile.purchases;
    let at = match purchases.iter().position(|p| p.sku == sku) {
        Some(i) => purchases.remove(i).at.max(at),
        None => at,
    };
    let position = purchases
        .iter()
        .position(|p| p.at <= at)
        .unwrap_or(purchases.len());
    purchases.insert(
        position,
        Purchase {
            sku: sku.to_string(),
            at,
        },
    );
    purchases.truncate(config.purchases_max);
}

/// `clicks` clicks on `sku` in the results of `query` (normalized), the latest at `at`.
pub fn clicked(
    profile: &mut ShopperProfile,
    query: &str,
    sku: &str,
    at: Millis,
    clicks: u32,
    config: &InterestsConfig,
) {
    let list = &mut profile.search_clicks;
    let (at, clicks) = match list.iter().position(|c| c.query == query && c.sku == sku) {
        Some(i) => {
            let old = list.remove(i);
            (old.at.max(at), old.clicks.saturating_add(clicks))
        }
        None => (at, clicks),
    };
    let position = list.iter().position(|c| c.at <= at).unwrap_or(list.len());
    list.insert(
        position,
        SearchClick {
            query: query.to_string(),
            sku: sku.to_string(),
            at,
            clicks,
        },
    );
    list.truncate(config.search_clicks_max);
}

/// Sign-in: the anonymous shopper's purchases and clicks become the customer's.
pub fn merge(customer: &mut ShopperProfile, anonymous: &ShopperProfile, config: &InterestsConfig) {
    for p in anonymous.purchases.iter().rev() {
        bought(customer, &p.sku, p.at, config);
    }
    for c in anonymous.search_clicks.iter().rev() {
        clicked(customer, &c.query, &c.sku, c.at, c.clicks, config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::OrderItem;
    use crate::rules::testing::{event, product};

    fn config(max: usize) -> InterestsConfig {
        InterestsConfig {
            purchases_max: max,
            search_clicks_max: max,
            ..InterestsConfig::default()
        }
    }

    fn skus(profile: &ShopperProfile) -> Vec<(&str, Millis)> {
        profile
            .purchases
            .iter()
            .map(|p| (p.sku.as_str(), p.at))
            .collect()
    }

    #[test]
    fn an_order_records_each_line_newest_first_once_per_sku() {
        let mut profile = ShopperProfile::default();
        let order = |id: &str, at, lines: &[&str]| {
            event(
                id,
                at,
                Some("c1"),
                EventBody::OrderCompleted {
                    order_id: id.into(),
                    cart_id: None,
                    items: lines
                        .iter()
                        .map(|sku| OrderItem {
                            product: product(sku, 5.0),
                            quantity: 1,
                        })
                        .collect(),
                    total: 5.0,
                    currency: "EUR".into(),
                },
            )
        };
        on_event(&mut profile, &order("o1", 10, &["A", "B"]), &config(50));
        on_event(&mut profile, &order("o2", 20, &["A"]), &config(50));
        assert_eq!(skus(&profile), [("A", 20), ("B", 10)]);
        // A late order does not move a SKU bought since back in time.
        on_event(&mut profile, &order("o0", 5, &["A", "C"]), &config(50));
        assert_eq!(skus(&profile), [("A", 20), ("B", 10), ("C", 5)]);
    }

    #[test]
    fn the_oldest_purchase_goes_when_full() {
        let mut profile = ShopperProfile::default();
        for (i, sku) in ["A", "B", "C"].iter().enumerate() {
            bought(&mut profile, sku, i as Millis, &config(2));
        }
        assert_eq!(skus(&profile), [("C", 2), ("B", 1)]);
    }

    #[test]
    fn clicks_count_per_normalized_query_and_sku() {
        let mut profile = ShopperProfile::default();
        let click = |id: &str, at, query: &str, sku: &str| {
            event(
                id,
                at,
                Some("c1"),
                EventBody::SearchResultClicked {
                    query: query.into(),
                    sku: sku.into(),
                },
            )
        };
        on_event(
            &mut profile,
            &click("e1", 1, "Red  Dress", "A"),
            &config(50),
        );
        on_event(&mut profile, &click("e2", 2, "red dress", "A"), &config(50));
        on_event(&mut profile, &click("e3", 3, "red dress", "B"), &config(50));
        let got: Vec<(&str, &str, u32)> = profile
            .search_clicks
            .iter()
            .map(|c| (c.query.as_str(), c.sku.as_str(), c.clicks))
            .collect();
        assert_eq!(got, [("red dress", "B", 1), ("red dress", "A", 2)]);
    }

    #[test]
    fn sign_in_merges_purchases_and_clicks() {
        let c = config(50);
        let mut customer = ShopperProfile::default();
        bought(&mut customer, "A", 10, &c);
        clicked(&mut customer, "shoes", "S", 10, 1, &c);
        let mut anonymous = ShopperProfile::default();
        bought(&mut anonymous, "B", 30, &c);
        bought(&mut anonymous, "A", 20, &c);
        clicked(&mut anonymous, "shoes", "S", 40, 2, &c);
        merge(&mut customer, &anonymous, &c);
        assert_eq!(skus(&customer), [("B", 30), ("A", 20)]);
        assert_eq!(customer.search_clicks.len(), 1);
        assert_eq!(
            (
                customer.search_clicks[0].at,
                customer.search_clicks[0].clicks
            ),
            (40, 3)
        );
    }
}
