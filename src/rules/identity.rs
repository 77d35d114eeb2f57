//! `signed_in` stitching: an anonymous shopper's cart and history become the customer's.
//!
//! The sign-in lands on the customer's task. It asks the anonymous id's task to hand
//! over (`MergeInto`); that task sends its state (`Absorb`) and keeps only a link, so
//! later events that carry just the anonymous id are rerouted to the customer.

use super::Ctx;
use crate::event::Event;
use crate::forward::{Forward, ShopperMessage};
use crate::state::ShopperState;
use crate::time::Millis;

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
    (customer_id, event_id): (&str, &str),
    at: i64,
    ctx: &mut Ctx,
) {
    if state.as_ref().is_some_and(|s| s.customer_id.is_some()) {
        return; // a registered customer's id is never an anonymous alias
    }
    let previous = state.take().unwrap_or_default();
    super::profile::delete(key, &previous, None, event_id, ctx);
    if previous.merged_into.is_none() && has_history(&previous) {
        let mut handed_over = previous;
        handed_over.reminder_armed = None; // anonymous shoppers never arm reminders
        handed_over.profile.publish_due = None; // cancelled above
        ctx.forward(Forward::ToShopper {
            key: customer_id.to_string(),
            at,
            message: ShopperMessage::Absorb {
                from: key.to_string(),
                state: Box::new(handed_over),
                event_id: event_id.to_string(),
            },
        });
    }
    *state = Some(ShopperState {
        merged_into: Some(customer_id.to_string()),
        ..ShopperState::default()
    });
}

fn has_history(state: &ShopperState) -> bool {
    !state.carts.is_empty()
        || !state.stock_requests.is_empty()
        || state.last_activity_at.is_some()
        || !state.profile.is_empty()
}

/// On the customer's task: take over the anonymous shopper's carts, activity and requests.
///
/// Carts become one, as a storefront merges a guest cart at login (CONTRACT §3): the
/// anonymous cart's lines are added to the customer's open cart (quantities summed per
/// SKU, the customer's `cart_id` kept, at most `max_lines` lines with the customer's
/// first); a customer with no open cart takes the anonymous one. The merge changes the
/// contents: reminders start again at step 1, due after the sign-in at `at`, with the
/// sign-in `event_id` as the evidence (which also keeps their decision ids apart from
/// those sent before). A cart last changed before the customer's latest order is left
/// behind: whoever bought since is not reminded of it.
pub fn on_absorb(
    state: &mut ShopperState,
    from: &str,
    incoming: &ShopperState,
    sign_in: (&str, Millis),
    max_lines: usize,
) {
    let (event_id, at) = sign_in;
    let ordered_at = state.last_order_at;
    let mut open = state
        .carts
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.lines.is_empty())
        .max_by_key(|(_, c)| c.changed_at)
        .map(|(i, _)| i);
    for cart in incoming
        .carts
        .iter()
        .filter(|c| Some(c.changed_at) > ordered_at && !c.lines.is_empty())
    {
        let target = match open {
            Some(i) => {
                let existing = &mut state.carts[i];
                for line in &cart.lines {
                    let same = existing
                        .lines
                        .iter()
                        .position(|l| l.product.sku == line.product.sku);
                    match same {
                        Some(j) => {
                            let quantity = &mut existing.lines[j].quantity;
                            *quantity = quantity.saturating_add(line.quantity);
                        }
                        None if existing.lines.len() < max_lines => {
                            existing.lines.push(line.clone());
                        }
                        None => {}
                    }
                }
                i
            }
            None => {
                let mut taken = cart.clone();
                taken.lines.truncate(max_lines);
                state.carts.push(taken);
                state.carts.len() - 1
            }
        };
        let merged = &mut state.carts[target];
        merged.changed_by = event_id.to_string();
        merged.changed_at = merged.changed_at.max(cart.changed_at).max(at);
        merged.steps_done = 0;
        open = Some(target);
    }
    state.last_activity_at = state.last_activity_at.max(Some(at));
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
            on_merge_into("a1", &mut anon, ("c1", "sign-in"), 10, ctx)
        });
        assert_eq!(anon.unwrap().merged_into.as_deref(), Some("c1"));
        match &out.forwards[0] {
            Forward::ToShopper {
                key,
                message:
                    ShopperMessage::Absorb {
                        from,
                        state,
                        event_id,
                    },
                ..
            } => {
                assert_eq!((key.as_str(), from.as_str()), ("c1", "a1"));
                assert_eq!(event_id, "sign-in");
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
            on_merge_into("a1", &mut anon, ("c1", "sign-in"), 10, ctx)
        });
        assert!(out.forwards.is_empty());
        assert_eq!(anon.unwrap().merged_into.as_deref(), Some("c1"));
    }

    fn lines(cart: &Cart) -> Vec<(&str, u32)> {
        cart.lines
            .iter()
            .map(|l| (l.product.sku.as_str(), l.quantity))
            .collect()
    }

    #[test]
    fn the_anonymous_cart_joins_the_customers_open_cart() {
        let mut older = cart("k0", &["Z"]);
        older.changed_at = 1;
        let mut open = cart("k1", &["A"]);
        open.changed_at = 2;
        open.steps_done = 1;
        let mut customer = ShopperState {
            customer_id: Some("c1".into()),
            carts: vec![older, open],
            last_activity_at: Some(3),
            ..ShopperState::default()
        };
        let mut guest = cart("g1", &["A", "B"]);
        guest.steps_done = 2;
        let anon = ShopperState {
            carts: vec![guest],
            last_activity_at: Some(7),
            ..ShopperState::default()
        };
        on_absorb(&mut customer, "a1", &anon, ("sign-in", 9), 100);
        assert_eq!(customer.carts.len(), 2, "no cart of the guest's own");
        let merged = &customer.carts[1];
        assert_eq!(
            merged.cart_id, "k1",
            "the most recently changed open cart, its id kept"
        );
        assert_eq!(
            lines(merged),
            [("A", 2), ("B", 1)],
            "quantities summed per SKU"
        );
        assert_eq!(
            (
                merged.changed_by.as_str(),
                merged.changed_at,
                merged.steps_done
            ),
            ("sign-in", 9, 0),
            "a change of contents at the sign-in: step 1 again"
        );
        assert_eq!(customer.last_activity_at, Some(9));
        assert_eq!(customer.aliases, vec!["a1".to_string()]);
    }

    #[test]
    fn a_customer_without_an_open_cart_takes_the_anonymous_one() {
        let mut customer = ShopperState {
            customer_id: Some("c1".into()),
            ..ShopperState::default()
        };
        let mut guest = cart("g1", &["A"]);
        guest.steps_done = 1;
        let anon = ShopperState {
            carts: vec![guest, cart("g2", &["B"])],
            ..ShopperState::default()
        };
        on_absorb(&mut customer, "a1", &anon, ("sign-in", 5), 100);
        assert_eq!(customer.carts.len(), 1, "two guest carts become one");
        assert_eq!(customer.carts[0].cart_id, "g1");
        assert_eq!(lines(&customer.carts[0]), [("A", 1), ("B", 1)]);
        assert_eq!(customer.carts[0].steps_done, 0);
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
        on_absorb(&mut customer, "a1", &anon, ("sign-in", 1), 3);
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
        on_absorb(&mut customer, "a1", &anon, ("sign-in", 12), 100);
        let ids: Vec<&str> = customer.carts.iter().map(|c| c.cart_id.as_str()).collect();
        assert_eq!(ids, vec!["k2"]);
    }
}
