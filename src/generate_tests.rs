//! Unit tests of the synthetic traffic generator.

use super::*;
use std::collections::HashMap;

fn events(settings: GeneratorSettings) -> Vec<Event> {
    Generator::new(settings).collect()
}

#[test]
fn same_seed_same_events_other_seed_other_events() {
    let settings = GeneratorSettings {
        shoppers: 200,
        events: 3_000,
        ..GeneratorSettings::default()
    };
    let a = events(settings.clone());
    assert_eq!(a.len(), 3_000);
    assert_eq!(a, events(settings.clone()));
    assert_ne!(
        a,
        events(GeneratorSettings {
            seed: 2,
            ..settings
        })
    );
}

#[test]
fn events_are_in_event_time_order_unless_lateness_is_allowed() {
    let settings = GeneratorSettings {
        shoppers: 500,
        events: 20_000,
        ..GeneratorSettings::default()
    };
    let ordered = events(settings.clone());
    assert_eq!(ordered.len(), 20_000);
    assert!(ordered
        .windows(2)
        .all(|pair| pair[0].occurred_at <= pair[1].occurred_at));
    let lateness = 30_000;
    let late = events(GeneratorSettings {
        lateness,
        ..settings
    });
    let mut newest = Millis::MIN;
    let mut late_events = 0;
    for e in &late {
        assert!(
            e.occurred_at >= newest.saturating_sub(lateness),
            "{} is {} ms late",
            e.event_id,
            newest.saturating_sub(e.occurred_at)
        );
        late_events += usize::from(e.occurred_at < newest);
        newest = newest.max(e.occurred_at);
    }
    assert!(late_events > 0, "some events come late");
    let ids = |all: &[Event]| {
        let mut ids: Vec<String> = all.iter().map(|e| e.event_id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&ordered),
        ids(&late),
        "the same events, in another order"
    );
}

#[test]
fn events_are_valid_and_varied() {
    let all = events(GeneratorSettings {
        shoppers: 2_000,
        events: 40_000,
        ..GeneratorSettings::default()
    });
    let mut by_type: HashMap<&str, usize> = HashMap::new();
    for e in &all {
        *by_type.entry(e.body.type_name()).or_default() += 1;
        let line = e.to_json_line();
        assert_eq!(
            crate::event::decode_json(line.as_bytes()),
            Ok(crate::event::Decoded::Event(e.clone())),
            "{line}"
        );
    }
    for t in [
        "page_viewed",
        "product_viewed",
        "category_viewed",
        "cart_item_added",
        "cart_item_removed",
        "order_completed",
        "signed_in",
        "stock_changed",
        "back_in_stock_requested",
        "products_searched",
        "search_result_clicked",
    ] {
        assert!(
            by_type.get(t).copied().unwrap_or(0) > 0,
            "no {t} in {by_type:?}"
        );
    }
    let adds = by_type["cart_item_added"];
    let orders = by_type["order_completed"];
    assert!(
        orders * 3 < adds,
        "most carts are abandoned: {orders} orders, {adds} adds"
    );
    let ids: std::collections::HashSet<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    assert!(ids.len() < all.len(), "some events are delivered twice");
}

#[test]
fn popularity_is_skewed() {
    let mut g = Generator::new(GeneratorSettings {
        products: 1_000,
        ..GeneratorSettings::default()
    });
    let picks: Vec<usize> = (0..20_000).map(|_| g.popular_product()).collect();
    let top_ten = picks.iter().filter(|p| **p < 10).count();
    assert!(
        top_ten > picks.len() / 5,
        "top 1% of products get {top_ten} of 20000 picks"
    );
}

#[test]
fn most_shoppers_browse_from_their_sites_country_and_some_from_abroad() {
    let settings = GeneratorSettings {
        shoppers: 1_000,
        events: 20_000,
        ..GeneratorSettings::default()
    };
    let sites = site_settings();
    let (mut at_home, mut abroad) = (0, 0);
    for event in events(settings) {
        let (Some(site), Some(country)) = (&event.site, &event.country) else {
            continue;
        };
        if sites[site].countries.contains(country) {
            at_home += 1;
        } else {
            assert!(
                sites.values().any(|s| s.countries.contains(country)),
                "{country} is served by one of the sites"
            );
            abroad += 1;
        }
    }
    let share = abroad as f64 / (at_home + abroad) as f64;
    assert!((0.03..0.25).contains(&share), "abroad share {share}");
}
