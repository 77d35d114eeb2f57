//! `signed_in` stitching: an anonymous shopper's cart and history become the customer's.
//!
//! The sign-in lands on the customer's task. It asks the anonymous id's task to hand
//! over (`MergeInto`); that task sends its state (`Absorb`) and keeps only a link, so
//! later events that carry just the anonymous id are rerouted to the customer.

use super::Ctx;
use crate::event::Event;
use crate::forward::{Forward, ShopperMessage};
use crate::state::ShopperState;

pub fn on_signed_in(key: &str, state: &mut ShopperState, event: &Event, ctx: &mut Ctx) {
    let Some(anonymous_id) = event.anonymous_id.as_deref() else {
        return;
    };
    if anonymous_id == key {
        return;
    }
    if !state.aliases.iter().any(|a| a == anonymous_id) {
        state.aliases.push(anonymous_id.to_string());
    }
    ctx.forward(Forward::ToShopper {
        key: anonymous_id.to_string(),
        at: event.occurred_at,
        message: ShopperMessage::MergeInto {
            customer_id: key.to_string(),
            event_id: event.event_id.clone(),
        },
    });
}

/// On the anonymous id's task: hand the state over and leave a link behind.
pub fn on_merge_into(
    key: &str,
    state: &mut Option<ShopperState>,
    customer_id: &str,
    at: i64,
    ctx: &mut Ctx,
) {
    if state.as_ref().is_some_and(|s| s.customer_id.is_some()) {
        return; // a registered customer's id is never an anonymous alias
    }
    let previous = state.take().unwrap_or_default();
    if previous.merged_into.is_none() && has_history(&previous) {
        let mut handed_over = previous;
        handed_over.reminder_armed = None; // anonymous shoppers never arm reminders
        ctx.forward(Forward::ToShopper {
            key: customer_id.to_string(),
            at,
            message: ShopperMessage::Absorb {
                from: key.to_string(),
                state: Box::new(handed_over),
            },
        });
    }
    *state = Some(ShopperState {
        merged_into: Some(customer_id.to_string()),
        ..ShopperState::default()
    });
}

fn has_history(state: &ShopperState) -> bool {
    !state.carts.is_empty() || !state.stock_requests.is_empty() || state.last_activity_at.is_some()
}

/// On the customer's task: take over the anonymous shopper's carts, activity and requests.
/// What the customer already has wins over the anonymous copy of the same thing, and a
/// cart last changed before the customer's latest order is left behind: whoever bought
/// since is not reminded of it.
/// Merges the anonymous shopper's carts into the customer's; a merged cart keeps at
/// most `max_lines` lines (`rules.limits.max_cart_lines`), the customer's first.
pub fn on_absorb(state: &mut ShopperState, from: &str, incoming: &ShopperState, max_lines: usize) {
    let ordered_at = state.last_order_at;
    for cart in incoming
        .carts
        .iter()
        .filter(|c| Some(c.changed_at) > ordered_at)
    {
        match state.carts.iter_mut().find(|c| c.cart_id == cart.cart_id) {
            Some(existing) => {
                let before = existing.lines.len();
                for line in &cart.lines {
                    if existing.lines.len() >= max_lines {
                        break;
                    }
                    if !existing
                        .lines
                        .iter()
                        .any(|l| l.product.sku == line.product.sku)
                    {
                        existing.lines.push(line.clone());
                    }
                }
                if existing.lines.len() > before {
                    // New contents: reminders start over, with the anonymous change as
                    // the evidence (it also keeps their decision ids distinct).
                    existing.changed_by = cart.changed_by.clone();
                    existing.changed_at = existing.changed_at.max(cart.changed_at);
                    existing.steps_done = 0;
                }
            }
            None => state.carts.push(cart.clone()),
        }
    }
    state.last_activity_at = state.last_activity_at.max(incoming.last_activity_at);
    for request in &incoming.stock_requests {
        if !state.stock_requests.iter().any(|r| r.sku == request.sku) {
            state.stock_requests.push(request.clone());
        }
    }
    if !state.aliases.iter().any(|a| a == from) {
        state.aliases.push(from.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RulesConfig;
    use crate::rules::testing::run;
    use crate::state::{Cart, CartLine, ProductInfo};

    fn cart(id: &str, skus: &[&str]) -> Cart {
        Cart {
            cart_id: id.into(),
            lines: skus
                .iter()
                .map(|s| CartLine {
                    product: ProductInfo {
                        sku: s.to_string(),
                        ..ProductInfo::default()
                    },
                    quantity: 1,
                })
                .collect(),
            changed_by: "e".into(),
            changed_at: 0,
            steps_done: 0,
        }
    }

    #[test]
    fn merge_hands_over_history_and_leaves_a_link() {
        let rules = RulesConfig::default();
        let mut anon = Some(ShopperState {
            carts: vec![cart("k1", &["A"])],
            last_activity_at: Some(5),
            ..ShopperState::default()
        });
        let ((), out) = run(10, &rules, |ctx| {
            on_merge_into("a1", &mut anon, "c1", 10, ctx)
        });
        assert_eq!(anon.unwrap().merged_into.as_deref(), Some("c1"));
        match &out.forwards[0] {
            Forward::ToShopper {
                key,
                message: ShopperMessage::Absorb { from, state },
                ..
            } => {
                assert_eq!((key.as_str(), from.as_str()), ("c1", "a1"));
                assert_eq!(state.carts.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_anonymous_id_just_becomes_a_link() {
        let rules = RulesConfig::default();
        let mut anon = None;
        let ((), out) = run(10, &rules, |ctx| {
            on_merge_into("a1", &mut anon, "c1", 10, ctx)
        });
        assert!(out.forwards.is_empty());
        assert_eq!(anon.unwrap().merged_into.as_deref(), Some("c1"));
    }

    #[test]
    fn absorb_adds_carts_and_missing_lines() {
        let mut customer = ShopperState {
            customer_id: Some("c1".into()),
            carts: vec![cart("k1", &["A"])],
            last_activity_at: Some(3),
            ..ShopperState::default()
        };
        let mut anon_k1 = cart("k1", &["A", "B"]);
        anon_k1.changed_by = "anon-change".into();
        let anon = ShopperState {
            carts: vec![anon_k1, cart("k2", &["C"])],
            last_activity_at: Some(7),
            ..ShopperState::default()
        };
        on_absorb(&mut customer, "a1", &anon, 100);
        assert_eq!(customer.carts.len(), 2);
        assert_eq!(
            customer.carts[0].changed_by, "anon-change",
            "new lines restart the reminders"
        );
        assert_eq!(customer.carts[0].lines.len(), 2);
        assert_eq!(customer.last_activity_at, Some(7));
        assert_eq!(customer.aliases, vec!["a1".to_string()]);
    }

    #[test]
    fn a_merged_cart_keeps_at_most_the_line_limit() {
        let mut customer = ShopperState {
            customer_id: Some("c1".into()),
            carts: vec![cart("k1", &["A", "B"])],
            ..ShopperState::default()
        };
        let anon = ShopperState {
            carts: vec![cart("k1", &["C", "D", "E"])],
            ..ShopperState::default()
        };
        on_absorb(&mut customer, "a1", &anon, 3);
        let skus: Vec<&str> = customer.carts[0]
            .lines
            .iter()
            .map(|l| l.product.sku.as_str())
            .collect();
        assert_eq!(
            skus,
            ["A", "B", "C"],
            "the customer's lines first, then up to the limit"
        );
    }

    #[test]
    fn carts_last_changed_before_the_customers_order_are_left_behind() {
        let mut customer = ShopperState {
            customer_id: Some("c1".into()),
            last_order_at: Some(10),
            ..ShopperState::default()
        };
        let mut stale = cart("k1", &["A"]);
        stale.changed_at = 10;
        let mut fresh = cart("k2", &["B"]);
        fresh.changed_at = 11;
        let anon = ShopperState {
            carts: vec![stale, fresh],
            ..ShopperState::default()
        };
        on_absorb(&mut customer, "a1", &anon, 100);
        let ids: Vec<&str> = customer.carts.iter().map(|c| c.cart_id.as_str()).collect();
        assert_eq!(ids, vec!["k2"]);
    }
}
