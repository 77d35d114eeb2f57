//! Abandoned cart (CONTRACT §3): reminder steps after the shopper's last activity.
//!
//! One timer per shopper, armed for the earliest step due. Activity only moves due times
//! later, so the timer is left where it is when activity happens ("lazy"): when it fires
//! the rule recomputes the real due time and re-arms if that is later. Only a change that
//! makes a step due *earlier* (new contents restarting at step 1) moves the timer.

use super::consent::allows_email;
use super::{Ctx, Note};
use crate::config::Dur;
use crate::decision::{decision_id, CartItem, Decision, DecisionBody};
use crate::event::{Event, EventBody, Product};
use crate::state::{Cart, CartLine, ShopperState};
use crate::time::{format_rfc3339, Millis};
use crate::timer::{Timer, TimerKind};

/// Applies a cart event's effect on the shopper's carts.
pub fn on_cart_event(state: &mut ShopperState, event: &Event) {
    match &event.body {
        EventBody::CartItemAdded {
            cart_id,
            product,
            quantity,
        } => add_item(state, event, cart_id, product, *quantity),
        EventBody::CartItemRemoved {
            cart_id,
            sku,
            quantity,
        } => remove_item(state, event, cart_id, sku, *quantity),
        EventBody::CartCleared { cart_id } => state.carts.retain(|c| &c.cart_id != cart_id),
        // Whoever bought gets no reminder for anything still in a cart: the order ends them all.
        EventBody::OrderCompleted { .. } => {
            state.carts.clear();
            state.last_order_at = state.last_order_at.max(Some(event.occurred_at));
        }
        _ => {}
    }
}

/// Whether adding `sku` to `cart_id` would give the cart a line more than `limit`.
pub fn would_overfill(
    state: Option<&ShopperState>,
    cart_id: &str,
    sku: &str,
    limit: usize,
) -> bool {
    state
        .and_then(|s| s.carts.iter().find(|c| c.cart_id == cart_id))
        .is_some_and(|cart| {
            cart.lines.len() >= limit && !cart.lines.iter().any(|l| l.product.sku == sku)
        })
}

fn mark_changed(cart: &mut Cart, event: &Event) {
    cart.changed_by = event.event_id.clone();
    cart.changed_at = event.occurred_at;
    cart.steps_done = 0;
}

fn add_item(
    state: &mut ShopperState,
    event: &Event,
    cart_id: &str,
    product: &Product,
    quantity: u32,
) {
    let index = match state.carts.iter().position(|c| c.cart_id == cart_id) {
        Some(i) => i,
        None => {
            state.carts.push(Cart {
                cart_id: cart_id.to_string(),
                lines: Vec::new(),
                changed_by: String::new(),
                changed_at: event.occurred_at,
                steps_done: 0,
            });
            state.carts.len() - 1
        }
    };
    let cart = &mut state.carts[index];
    match cart.lines.iter_mut().find(|l| l.product.sku == product.sku) {
        Some(line) => {
            line.quantity = line.quantity.saturating_add(quantity);
            line.product = product.into();
        }
        None => cart.lines.push(CartLine {
            product: product.into(),
            quantity,
        }),
    }
    mark_changed(cart, event);
}

fn remove_item(state: &mut ShopperState, event: &Event, cart_id: &str, sku: &str, quantity: u32) {
    let Some(index) = state.carts.iter().position(|c| c.cart_id == cart_id) else {
        return;
    };
    let cart = &mut state.carts[index];
    let Some(line_index) = cart.lines.iter().position(|l| l.product.sku == sku) else {
        return; // removing what is not there changes nothing
    };
    if cart.lines[line_index].quantity <= quantity {
        cart.lines.remove(line_index);
    } else {
        cart.lines[line_index].quantity -= quantity;
    }
    mark_changed(cart, event);
    if cart.lines.is_empty() {
        state.carts.remove(index);
    }
}

/// When the shopper's next reminder step is due, if any is.
pub fn next_due(state: &ShopperState, reminders: &[Dur]) -> Option<Millis> {
    state.customer_id.as_ref()?;
    let last = state.last_activity_at?;
    state
        .carts
        .iter()
        .filter(|c| !c.lines.is_empty())
        .filter_map(|c| reminders.get(c.steps_done as usize))
        .map(|delay| last.saturating_add(delay.millis()))
        .min()
}

/// Makes the armed timer no later than the next due step (see the module comment).
pub fn rearm(key: &str, state: &mut ShopperState, ctx: &mut Ctx) {
    let desired = next_due(state, &ctx.rules.abandoned_cart.reminders);
    let timer = |due| Timer {
        due,
        kind: TimerKind::CartReminder,
        key: key.to_string(),
    };
    match (state.reminder_armed, desired) {
        (Some(armed), Some(due)) if armed <= due => {}
        (armed, desired) => {
            if let Some(armed) = armed {
                ctx.cancel_timer(timer(armed));
            }
            if let Some(due) = desired {
                ctx.set_timer(timer(due));
            }
            state.reminder_armed = desired;
        }
    }
}

/// The reminder timer fired at `ctx.now`: send every step that is really due, re-arm.
pub fn on_timer(key: &str, state: &mut Option<ShopperState>, timer: &Timer, ctx: &mut Ctx) {
    let Some(state) = state.as_mut() else {
        return;
    };
    if state.reminder_armed != Some(timer.due) {
        return; // superseded by a re-arm whose cancel raced with the firing
    }
    state.reminder_armed = None;
    let reminders = &ctx.rules.abandoned_cart.reminders;
    if let (Some(customer_id), Some(last)) = (state.customer_id.clone(), state.last_activity_at) {
        let may_email = allows_email(state, ctx.rules);
        for cart in state.carts.iter_mut().filter(|c| !c.lines.is_empty()) {
            let Some(delay) = reminders.get(cart.steps_done as usize).map(|d| d.millis()) else {
                continue;
            };
            if last.saturating_add(delay) > ctx.now {
                continue;
            }
            cart.steps_done += 1;
            if may_email {
                let decision = reminder(&customer_id, cart, last, delay, ctx.now);
                ctx.emit(decision);
            } else {
                ctx.note(Note::SuppressedNoConsent);
            }
        }
    }
    rearm(key, state, ctx);
}

fn reminder(
    customer_id: &str,
    cart: &Cart,
    last_activity: Millis,
    delay: Millis,
    now: Millis,
) -> Decision {
    let step = cart.steps_done;
    let items: Vec<CartItem> = cart
        .lines
        .iter()
        .map(|l| CartItem {
            sku: l.product.sku.clone(),
            name: l.product.name.clone(),
            quantity: l.quantity,
            price: l.product.price,
            currency: l.product.currency.clone(),
            url: l.product.url.clone(),
            image_url: l.product.image_url.clone(),
        })
        .collect();
    let value: f64 = cart
        .lines
        .iter()
        .map(|l| l.product.price.unwrap_or(0.0) * f64::from(l.quantity))
        .sum();
    let currency = cart.lines.iter().find_map(|l| l.product.currency.clone());
    let wait = humantime::format_duration(std::time::Duration::from_millis(delay.max(0) as u64));
    Decision {
        decision_id: decision_id(&[
            "abandoned_cart",
            customer_id,
            &cart.cart_id,
            &cart.changed_by,
            &step.to_string(),
        ]),
        customer_id: Some(customer_id.to_string()),
        decided_at: now,
        reason: format!(
            "abandoned_cart step {step}: cart {} ({} lines) last changed by event {}; \
             no activity since {} (reminder after {wait})",
            cart.cart_id,
            cart.lines.len(),
            cart.changed_by,
            format_rfc3339(last_activity),
        ),
        body: DecisionBody::AbandonedCart {
            cart_id: cart.cart_id.clone(),
            step,
            items,
            // Cents: sums of binary floats would otherwise print as 118.99000000000001.
            cart_value: (value * 100.0).round() / 100.0,
            currency,
            last_activity_at: last_activity,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RulesConfig;
    use crate::rules::testing::{event, minutes, product, run};
    use crate::timer::TimerOp;

    fn reminder_timer(due: Millis) -> Timer {
        Timer {
            due,
            kind: TimerKind::CartReminder,
            key: "c1".into(),
        }
    }

    fn identified() -> ShopperState {
        ShopperState {
            customer_id: Some("c1".into()),
            ..ShopperState::default()
        }
    }

    fn add(state: &mut ShopperState, id: &str, at: Millis, sku: &str, q: u32) {
        let e = event(
            id,
            at,
            Some("c1"),
            EventBody::CartItemAdded {
                cart_id: "k1".into(),
                product: product(sku, 10.0),
                quantity: q,
            },
        );
        on_cart_event(state, &e);
        state.last_activity_at = Some(at);
    }

    #[test]
    fn adding_merges_lines_and_removing_more_than_there_empties_the_line() {
        let mut s = identified();
        add(&mut s, "e1", minutes(0), "A", 1);
        add(&mut s, "e2", minutes(1), "A", 2);
        add(&mut s, "e3", minutes(2), "B", 1);
        assert_eq!(s.carts[0].lines[0].quantity, 3);
        let remove = event(
            "e4",
            minutes(3),
            Some("c1"),
            EventBody::CartItemRemoved {
                cart_id: "k1".into(),
                sku: "A".into(),
                quantity: 5,
            },
        );
        on_cart_event(&mut s, &remove);
        assert_eq!(s.carts[0].lines.len(), 1);
        assert_eq!(s.carts[0].changed_by, "e4");
    }

    #[test]
    fn removing_the_last_item_ends_the_cart() {
        let mut s = identified();
        add(&mut s, "e1", minutes(0), "A", 1);
        let remove = event(
            "e2",
            minutes(1),
            Some("c1"),
            EventBody::CartItemRemoved {
                cart_id: "k1".into(),
                sku: "A".into(),
                quantity: 1,
            },
        );
        on_cart_event(&mut s, &remove);
        assert!(s.carts.is_empty());
        assert_eq!(next_due(&s, &[Dur::minutes(60)]), None);
    }

    #[test]
    fn anonymous_carts_are_not_reminded() {
        let mut s = ShopperState::default();
        add(&mut s, "e1", minutes(0), "A", 1);
        assert_eq!(next_due(&s, &[Dur::minutes(60)]), None);
    }

    #[test]
    fn activity_never_moves_the_armed_timer_but_a_restart_at_step_one_does() {
        let rules = RulesConfig::default();
        let mut s = identified();
        add(&mut s, "e1", minutes(0), "A", 1);
        let ((), out) = run(minutes(0), &rules, |ctx| rearm("c1", &mut s, ctx));
        assert_eq!(s.reminder_armed, Some(minutes(60)));
        assert_eq!(out.timers.len(), 1);
        s.last_activity_at = Some(minutes(30));
        let ((), out) = run(minutes(30), &rules, |ctx| rearm("c1", &mut s, ctx));
        assert!(
            out.timers.is_empty(),
            "later due time keeps the early timer"
        );
        // Step 1 sent, step 2 armed at +24h; then new contents make step 1 due in 60m.
        s.reminder_armed = Some(minutes(24 * 60));
        s.carts[0].steps_done = 1;
        add(&mut s, "e2", minutes(40), "B", 1);
        let ((), out) = run(minutes(40), &rules, |ctx| rearm("c1", &mut s, ctx));
        assert_eq!(s.reminder_armed, Some(minutes(100)));
        assert!(matches!(out.timers[0], TimerOp::Cancel(_)));
        assert!(matches!(out.timers[1], TimerOp::Set(ref t) if t.due == minutes(100)));
    }

    #[test]
    fn a_timer_that_fires_early_re_arms_at_the_real_due_time() {
        let rules = RulesConfig::default();
        let mut s = identified();
        add(&mut s, "e1", minutes(0), "A", 1);
        s.reminder_armed = Some(minutes(60));
        s.last_activity_at = Some(minutes(30));
        let timer = reminder_timer(minutes(60));
        let mut state = Some(s);
        let ((), out) = run(minutes(60), &rules, |ctx| {
            on_timer("c1", &mut state, &timer, ctx)
        });
        assert!(out.decisions.is_empty());
        assert_eq!(state.unwrap().reminder_armed, Some(minutes(90)));
    }

    #[test]
    fn a_due_step_carries_the_cart_and_a_stable_id() {
        let rules = RulesConfig::default();
        let mut s = identified();
        add(&mut s, "e1", minutes(0), "A", 2);
        add(&mut s, "e2", minutes(1), "B", 1);
        s.reminder_armed = Some(minutes(61));
        let timer = reminder_timer(minutes(61));
        let mut state = Some(s.clone());
        let ((), out) = run(minutes(61), &rules, |ctx| {
            on_timer("c1", &mut state, &timer, ctx)
        });
        assert_eq!(out.decisions.len(), 1);
        let d = &out.decisions[0];
        match &d.body {
            DecisionBody::AbandonedCart {
                step,
                items,
                cart_value,
                currency,
                last_activity_at,
                ..
            } => {
                assert_eq!(*step, 1);
                assert_eq!(items.len(), 2);
                assert_eq!(*cart_value, 30.0);
                assert_eq!(currency.as_deref(), Some("EUR"));
                assert_eq!(*last_activity_at, minutes(1));
            }
            other => panic!("{other:?}"),
        }
        assert!(d.reason.contains("e2"), "{}", d.reason);
        let mut again = Some(s);
        let ((), out2) = run(minutes(61), &rules, |ctx| {
            on_timer("c1", &mut again, &timer, ctx)
        });
        assert_eq!(out2.decisions[0].decision_id, d.decision_id);
        assert_eq!(state.unwrap().reminder_armed, Some(minutes(1 + 24 * 60)));
    }

    #[test]
    fn without_consent_the_step_is_used_up_silently() {
        let rules = RulesConfig::default();
        let mut s = identified();
        s.consent = Some(false);
        add(&mut s, "e1", minutes(0), "A", 1);
        s.reminder_armed = Some(minutes(60));
        let timer = reminder_timer(minutes(60));
        let mut state = Some(s);
        let ((), out) = run(minutes(60), &rules, |ctx| {
            on_timer("c1", &mut state, &timer, ctx)
        });
        assert!(out.decisions.is_empty());
        assert_eq!(out.notes, vec![Note::SuppressedNoConsent]);
        assert_eq!(state.unwrap().carts[0].steps_done, 1);
    }
}
