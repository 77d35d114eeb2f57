//! What a shopper's events tell the product side (CONTRACT §5.4): views with the SKUs
//! viewed just before, cart adds, and orders with their lines and the SKUs viewed before
//! them. Each message goes to the task of the SKU it counts for; the fan-out of one
//! event is bounded by `recs.coview_max`, `recs.order_pair_lines` and
//! `interests.recent_max`.

use super::{interests, Ctx};
use crate::event::{Event, EventBody};
use crate::forward::{Forward, ProductMessage};
use crate::state::{ProductInfo, ShopperState};

/// Sends what `event` tells the product side. Call before the profile records the event
/// as a view: "viewed before" means before this one.
pub fn on_event(shopper: &mut ShopperState, event: &Event, ctx: &mut Ctx) {
    if !ctx.rules.products.enabled {
        return;
    }
    let at = event.occurred_at;
    let send = |ctx: &mut Ctx, sku: &str, message: ProductMessage| {
        ctx.forward(Forward::ToProduct {
            sku: sku.to_string(),
            at,
            message,
        })
    };
    let event_id = &event.event_id;
    match &event.body {
        EventBody::ProductViewed { product } => {
            let window = ctx.rules.recs.coview_window.millis();
            let before: Vec<String> = shopper
                .profile
                .recent_views
                .iter()
                .filter(|v| v.sku != product.sku && v.at <= at && at - v.at <= window)
                .take(ctx.rules.recs.coview_max)
                .map(|v| v.sku.clone())
                .collect();
            for other in &before {
                let message = ProductMessage::CoViewed {
                    event_id: event_id.clone(),
                    with: product.sku.clone(),
                };
                send(ctx, other, message);
            }
            let message = ProductMessage::Viewed {
                event_id: event_id.clone(),
                product: ProductInfo::from(product),
                before,
            };
            send(ctx, &product.sku, message);
            if !ctx.rules.profiles.enabled {
                // The profile keeps recent views when it is on; co-views need them anyway.
                interests::view(&mut shopper.profile, &product.sku, at, &ctx.rules.interests);
            }
        }
        EventBody::CartItemAdded { product, .. } => {
            let message = ProductMessage::AddedToCart {
                event_id: event_id.clone(),
                product: ProductInfo::from(product),
            };
            send(ctx, &product.sku, message);
        }
        EventBody::OrderCompleted { items, .. } => {
            // One line per SKU, units summed, in the order's order.
            let mut lines: Vec<(ProductInfo, u32)> = Vec::new();
            for item in items {
                match lines.iter_mut().find(|(p, _)| p.sku == item.product.sku) {
                    Some((_, units)) => *units = units.saturating_add(item.quantity),
                    None => lines.push((ProductInfo::from(&item.product), item.quantity)),
                }
            }
            let paired: Vec<String> = lines
                .iter()
                .take(ctx.rules.recs.order_pair_lines)
                .map(|(p, _)| p.sku.clone())
                .collect();
            let view_window = ctx.rules.recs.view_before_order.millis();
            let viewed: Vec<String> = shopper
                .profile
                .recent_views
                .iter()
                .filter(|v| v.at <= at && at - v.at <= view_window)
                .filter(|v| !lines.iter().any(|(p, _)| p.sku == v.sku))
                .map(|v| v.sku.clone())
                .collect();
            for sku in &viewed {
                let message = ProductMessage::ViewedThenBought {
                    event_id: event_id.clone(),
                    bought: paired.clone(),
                };
                send(ctx, sku, message);
            }
            for (position, (product, units)) in lines.into_iter().enumerate() {
                let with = if position < paired.len() {
                    paired
                        .iter()
                        .filter(|s| **s != product.sku)
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                let sku = product.sku.clone();
                let message = ProductMessage::Purchased {
                    event_id: event_id.clone(),
                    product,
                    units,
                    with,
                };
                send(ctx, &sku, message);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RulesConfig;
    use crate::event::OrderItem;
    use crate::rules::testing::{event, minutes, product, run};
    use crate::rules::Outputs;
    use crate::state::RecentView;

    fn viewed(shopper: &mut ShopperState, sku: &str, minute: i64) {
        interests::view(
            &mut shopper.profile,
            sku,
            minutes(minute),
            &RulesConfig::default().interests,
        );
    }

    fn messages(out: &Outputs) -> Vec<(String, ProductMessage)> {
        out.forwards
            .iter()
            .map(|f| match f {
                Forward::ToProduct { sku, message, .. } => (sku.clone(), message.clone()),
                other => panic!("not for the product side: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_view_pairs_with_the_recent_distinct_views_within_the_window_both_ways() {
        let rules = RulesConfig {
            recs: crate::config::RecsConfig {
                coview_max: 2,
                ..Default::default()
            },
            ..RulesConfig::default()
        };
        let mut shopper = ShopperState::default();
        viewed(&mut shopper, "old", 0); // 40 minutes before: outside 30m
        viewed(&mut shopper, "a", 15);
        viewed(&mut shopper, "b", 20);
        viewed(&mut shopper, "c", 30);
        viewed(&mut shopper, "x", 35);
        let view = event(
            "v1",
            minutes(40),
            Some("c1"),
            EventBody::ProductViewed {
                product: product("x", 10.0),
            },
        );
        let (_, out) = run(minutes(40), &rules, |ctx| {
            on_event(&mut shopper, &view, ctx)
        });
        let sent = messages(&out);
        // The two most recent others (x itself is not its own neighbour): c, then b.
        let co = |with: &str| ProductMessage::CoViewed {
            event_id: "v1".into(),
            with: with.into(),
        };
        assert_eq!(sent[0], ("c".into(), co("x")));
        assert_eq!(sent[1], ("b".into(), co("x")));
        match &sent[2] {
            (
                sku,
                ProductMessage::Viewed {
                    before, product, ..
                },
            ) => {
                assert_eq!(sku, "x");
                assert_eq!(before, &vec!["c".to_string(), "b".to_string()]);
                assert_eq!(product.sku, "x");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sent.len(), 3);
        assert_eq!(
            shopper.profile.recent_views[0],
            RecentView {
                sku: "x".into(),
                at: minutes(35)
            }
        );
    }

    #[test]
    fn an_order_counts_each_sku_once_pairs_its_first_lines_and_credits_earlier_views() {
        let rules = RulesConfig {
            recs: crate::config::RecsConfig {
                order_pair_lines: 2,
                ..Default::default()
            },
            ..RulesConfig::default()
        };
        let mut shopper = ShopperState::default();
        viewed(&mut shopper, "looked", 0);
        viewed(&mut shopper, "a", 1);
        let line = |sku: &str, quantity| OrderItem {
            product: product(sku, 5.0),
            quantity,
        };
        let order = event(
            "o1",
            minutes(60),
            Some("c1"),
            EventBody::OrderCompleted {
                order_id: "o".into(),
                cart_id: None,
                items: vec![line("a", 1), line("b", 2), line("a", 2), line("c", 1)],
                total: 20.0,
                currency: "EUR".into(),
            },
        );
        let (_, out) = run(minutes(60), &rules, |ctx| {
            on_event(&mut shopper, &order, ctx)
        });
        let sent = messages(&out);
        assert_eq!(
            sent[0],
            (
                "looked".into(),
                ProductMessage::ViewedThenBought {
                    event_id: "o1".into(),
                    bought: vec!["a".into(), "b".into()]
                }
            )
        );
        let purchases: Vec<(&str, u32, Vec<String>)> = sent[1..]
            .iter()
            .map(|(sku, m)| match m {
                ProductMessage::Purchased { units, with, .. } => {
                    (sku.as_str(), *units, with.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            purchases,
            vec![
                ("a", 3, vec!["b".to_string()]),
                ("b", 2, vec!["a".to_string()]),
                ("c", 1, vec![]),
            ]
        );
    }

    #[test]
    fn nothing_is_sent_when_the_product_side_is_off() {
        let mut rules = RulesConfig::default();
        rules.products.enabled = false;
        let mut shopper = ShopperState::default();
        viewed(&mut shopper, "a", 0);
        let view = event(
            "v1",
            minutes(1),
            None,
            EventBody::ProductViewed {
                product: product("b", 1.0),
            },
        );
        let (_, out) = run(minutes(1), &rules, |ctx| on_event(&mut shopper, &view, ctx));
        assert!(out.forwards.is_empty());
    }
}
