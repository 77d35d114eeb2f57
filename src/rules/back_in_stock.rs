//! Back in stock (CONTRACT §3). The shopper side remembers what the shopper asked for
//! and turns a notification into a decision; the product side holds the requests per
//! SKU, serves them oldest first on a restock, and expires them after `request_ttl`.

use super::consent::allows_email;
use super::{Ctx, Note};
use crate::decision::{decision_id, Decision, DecisionBody};
use crate::event::{Event, Product};
use crate::forward::{Forward, ProductMessage, ShopperMessage};
use crate::state::{PendingStockRequest, ProductInfo, ProductState, ShopperState, StockRequest};
use crate::time::{format_rfc3339, Millis};
use crate::timer::{Timer, TimerKind};

// ---- shopper side -------------------------------------------------------------------

/// "Notify me": remember it and register it with the SKU's product task.
pub fn on_request(
    key: &str,
    state: &mut ShopperState,
    event: &Event,
    product: &Product,
    ctx: &mut Ctx,
) {
    let ttl = ctx.rules.back_in_stock.request_ttl.millis();
    let at = event.occurred_at;
    state
        .stock_requests
        .retain(|r| r.sku != product.sku && r.requested_at.saturating_add(ttl) > at);
    state.stock_requests.push(PendingStockRequest {
        sku: product.sku.clone(),
        requested_at: at,
        event_id: event.event_id.clone(),
    });
    ctx.forward(Forward::ToProduct {
        sku: product.sku.clone(),
        at,
        message: ProductMessage::RegisterRequest {
            shopper: key.to_string(),
            event_id: event.event_id.clone(),
            product: product.into(),
        },
    });
}

/// The notification fields of [`ShopperMessage::BackInStock`].
pub struct Notification<'a> {
    pub sku: &'a str,
    pub product: &'a ProductInfo,
    pub requested_at: Millis,
    pub request_event_id: &'a str,
    pub quantity_available: u64,
    pub restock_event_id: &'a str,
}

/// A restock served a request of this shopper: decide, unless the request is gone
/// (erased, served already) or the shopper may not be emailed.
pub fn on_notification(state: &mut Option<ShopperState>, n: &Notification, ctx: &mut Ctx) {
    let Some(shopper) = state.as_mut() else {
        ctx.note(Note::NotificationDropped);
        return;
    };
    let (Some(customer_id), Some(index)) = (
        shopper.customer_id.clone(),
        shopper.stock_requests.iter().position(|r| r.sku == n.sku),
    ) else {
        ctx.note(Note::NotificationDropped);
        return;
    };
    shopper.stock_requests.remove(index);
    if !allows_email(shopper, ctx.rules) {
        ctx.note(Note::SuppressedNoConsent);
        return;
    }
    ctx.emit(Decision {
        decision_id: decision_id(&[
            "back_in_stock",
            &customer_id,
            n.sku,
            n.request_event_id,
            n.restock_event_id,
        ]),
        customer_id: Some(customer_id),
        decided_at: ctx.now,
        reason: format!(
            "back_in_stock: {} requested by event {} at {}, restocked by event {} ({} available)",
            n.sku,
            n.request_event_id,
            format_rfc3339(n.requested_at),
            n.restock_event_id,
            n.quantity_available
        ),
        body: DecisionBody::BackInStock {
            sku: n.sku.to_string(),
            product: n.product.into(),
            requested_at: n.requested_at,
            quantity_available: n.quantity_available,
        },
    });
}

// ---- product side -------------------------------------------------------------------

/// Expired requests are only garbage: validity is checked when a restock serves them.
/// So the expiry timer sweeps at most this often, not once per request.
const EXPIRY_SWEEP_MILLIS: Millis = 3_600_000;

fn notify(
    sku: &str,
    state: &ProductState,
    shopper: &str,
    request: &StockRequest,
    at: Millis,
    ctx: &mut Ctx,
) {
    let product = state.details.clone().unwrap_or_else(|| ProductInfo {
        sku: sku.to_string(),
        ..ProductInfo::default()
    });
    ctx.forward(Forward::ToShopper {
        key: shopper.to_string(),
        at,
        message: ShopperMessage::BackInStock {
            sku: sku.to_string(),
            product,
            requested_at: request.requested_at,
            request_event_id: request.event_id.clone(),
            quantity_available: state.quantity.unwrap_or(0),
            restock_event_id: state.last_restock_event.clone().unwrap_or_default(),
        },
    });
}

/// `stock_changed`: a move from 0 (or unknown) to more than 0 serves the waiting requests.
pub fn on_stock_changed(
    sku: &str,
    state: &mut ProductState,
    event: &Event,
    quantity: u64,
    product: Option<&Product>,
    ctx: &mut Ctx,
) {
    let was_out = matches!(state.quantity, None | Some(0));
    state.quantity = Some(quantity);
    if let Some(p) = product {
        state.details = Some(p.into());
    }
    if was_out && quantity > 0 {
        state.last_restock_at = Some(event.occurred_at);
        state.last_restock_event = Some(event.event_id.clone());
        serve_waiting(sku, state, event.occurred_at, ctx);
    }
}

fn serve_waiting(sku: &str, state: &mut ProductState, at: Millis, ctx: &mut Ctx) {
    state.requests.drop_expired(at);
    let quantity = state.quantity.unwrap_or(0);
    let cap = match ctx.rules.back_in_stock.max_per_unit {
        Some(per_unit) => quantity.saturating_mul(u64::from(per_unit)),
        None => u64::MAX,
    };
    let mut queue: Vec<(Millis, &str, &str)> = state
        .requests
        .iter()
        .map(|(shopper, r)| (r.requested_at, r.event_id.as_str(), shopper.as_str()))
        .collect();
    queue.sort_unstable();
    let count = usize::try_from(cap).unwrap_or(usize::MAX).min(queue.len());
    let served: Vec<String> = queue[..count]
        .iter()
        .map(|(_, _, s)| s.to_string())
        .collect();
    for shopper in &served {
        if let Some(request) = state.requests.remove(shopper) {
            notify(sku, state, shopper, &request, at, ctx);
        }
    }
}

/// A request forwarded by the shopper's task, judged by its own event time `at`.
pub fn on_register(
    sku: &str,
    state: &mut ProductState,
    at: Millis,
    shopper: &str,
    event_id: &str,
    product: &ProductInfo,
    ctx: &mut Ctx,
) {
    let ttl = ctx.rules.back_in_stock.request_ttl.millis();
    let request = StockRequest {
        requested_at: at,
        expires_at: at.saturating_add(ttl),
        event_id: event_id.to_string(),
    };
    if request.expires_at <= ctx.now {
        return;
    }
    if state.details.is_none() {
        state.details = Some(product.clone());
    }
    // Made before a restock that arrived first (the request travelled through another
    // topic): serve it as that restock would have, at the restock's time.
    if let Some(restock) = state.last_restock_at.filter(|&restock| at < restock) {
        notify(sku, state, shopper, &request, restock, ctx);
        return;
    }
    if matches!(state.quantity, Some(q) if q > 0) {
        return;
    }
    let expires_at = request.expires_at;
    // Asking again keeps the place in the queue and renews the validity.
    if !state.requests.renew(shopper, expires_at) {
        if state.requests.len() >= ctx.rules.limits.max_stock_requests {
            ctx.out.refuse(super::Refusal::StockRequestsFull {
                sku: sku.to_string(),
                limit: ctx.rules.limits.max_stock_requests,
            });
            return;
        }
        state.requests.insert(shopper.to_string(), request);
    }
    if state.expiry_armed.is_none_or(|armed| expires_at < armed) {
        arm_expiry(sku, state, Some(expires_at), ctx);
    }
}

pub fn on_cancel(state: &mut ProductState, shopper: &str) {
    state.requests.remove(shopper);
}

/// Sweeps expired requests and re-arms for the next expiry (not sooner than an hour).
pub fn on_expiry_timer(sku: &str, state: &mut ProductState, timer: &Timer, ctx: &mut Ctx) {
    if state.expiry_armed != Some(timer.due) {
        return;
    }
    state.expiry_armed = None;
    let now = ctx.now;
    state.requests.drop_expired(now);
    let next = state
        .requests
        .iter()
        .map(|(_, r)| r.expires_at)
        .min()
        .map(|due| due.max(now.saturating_add(EXPIRY_SWEEP_MILLIS)));
    arm_expiry(sku, state, next, ctx);
}

/// Moves the SKU's one expiry timer to `due` (or removes it).
fn arm_expiry(sku: &str, state: &mut ProductState, due: Option<Millis>, ctx: &mut Ctx) {
    if due == state.expiry_armed {
        return;
    }
    let timer = |due| Timer {
        due,
        kind: TimerKind::RequestExpiry,
        key: sku.to_string(),
    };
    if let Some(armed) = state.expiry_armed {
        ctx.cancel_timer(timer(armed));
    }
    if let Some(due) = due {
        ctx.set_timer(timer(due));
    }
    state.expiry_armed = due;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RulesConfig;
    use crate::event::EventBody;
    use crate::rules::testing::{event, minutes, product, run};

    fn stock(id: &str, at: Millis, quantity: u64) -> Event {
        event(
            id,
            at,
            None,
            EventBody::StockChanged {
                sku: "S1".into(),
                quantity,
                product: None,
            },
        )
    }

    fn register(state: &mut ProductState, rules: &RulesConfig, shopper: &str, at: Millis) -> usize {
        let info = ProductInfo::from(&product("S1", 5.0));
        let ((), out) = run(at, rules, |ctx| {
            on_register(
                "S1",
                state,
                at,
                shopper,
                &format!("r-{shopper}"),
                &info,
                ctx,
            )
        });
        out.forwards.len()
    }

    fn restock(state: &mut ProductState, rules: &RulesConfig, at: Millis, q: u64) -> Vec<String> {
        let e = stock(&format!("s{at}"), at, q);
        let ((), out) = run(at, rules, |ctx| {
            on_stock_changed("S1", state, &e, q, None, ctx)
        });
        out.forwards
            .into_iter()
            .map(|f| match f {
                Forward::ToShopper { key, .. } => key,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn restock_serves_every_valid_request_oldest_first_then_forgets_them() {
        let rules = RulesConfig::default();
        let mut s = ProductState::default();
        register(&mut s, &rules, "late", minutes(5));
        register(&mut s, &rules, "early", minutes(1));
        assert_eq!(
            restock(&mut s, &rules, minutes(10), 3),
            vec!["early", "late"]
        );
        assert!(s.requests.is_empty());
        assert_eq!(
            restock(&mut s, &rules, minutes(11), 0),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_request_for_a_sku_in_stock_does_nothing() {
        let rules = RulesConfig::default();
        let mut s = ProductState::default();
        restock(&mut s, &rules, minutes(0), 4);
        assert_eq!(register(&mut s, &rules, "c1", minutes(1)), 0);
        assert!(s.requests.is_empty());
    }

    #[test]
    fn a_request_older_than_the_restock_it_missed_is_served_at_once() {
        let rules = RulesConfig::default();
        let mut s = ProductState::default();
        restock(&mut s, &rules, minutes(10), 4);
        assert_eq!(register(&mut s, &rules, "c1", minutes(9)), 1);
    }

    #[test]
    fn expired_requests_are_not_served() {
        let rules = RulesConfig::default();
        let ttl = rules.back_in_stock.request_ttl.millis();
        let mut s = ProductState::default();
        register(&mut s, &rules, "c1", minutes(0));
        assert_eq!(s.expiry_armed, Some(minutes(0) + ttl));
        assert!(restock(&mut s, &rules, minutes(0) + ttl, 5).is_empty());
    }

    #[test]
    fn the_expiry_timer_purges_and_re_arms() {
        let rules = RulesConfig::default();
        let ttl = rules.back_in_stock.request_ttl.millis();
        let mut s = ProductState::default();
        register(&mut s, &rules, "a", minutes(0));
        register(&mut s, &rules, "b", minutes(100));
        let timer = Timer {
            due: minutes(0) + ttl,
            kind: TimerKind::RequestExpiry,
            key: "S1".into(),
        };
        let ((), _) = run(timer.due, &rules, |ctx| {
            on_expiry_timer("S1", &mut s, &timer, ctx)
        });
        assert_eq!(s.requests.len(), 1);
        assert_eq!(s.expiry_armed, Some(minutes(100) + ttl));
    }

    #[test]
    fn the_cap_keeps_the_rest_queued_for_the_next_restock() {
        let mut rules = RulesConfig::default();
        rules.back_in_stock.max_per_unit = Some(2);
        let mut s = ProductState::default();
        for (i, shopper) in ["a", "b", "c", "d"].iter().enumerate() {
            register(&mut s, &rules, shopper, minutes(i as i64));
        }
        assert_eq!(restock(&mut s, &rules, minutes(10), 1), vec!["a", "b"]);
        restock(&mut s, &rules, minutes(11), 0);
        assert_eq!(restock(&mut s, &rules, minutes(12), 5), vec!["c", "d"]);
    }

    #[test]
    fn a_full_queue_refuses_another_shopper_and_still_renews_a_waiting_one() {
        let mut rules = RulesConfig::default();
        rules.limits.max_stock_requests = 2;
        let mut s = ProductState::default();
        register(&mut s, &rules, "a", minutes(0));
        register(&mut s, &rules, "b", minutes(1));
        let info = ProductInfo::from(&product("S1", 5.0));
        let ((), out) = run(minutes(2), &rules, |ctx| {
            on_register("S1", &mut s, minutes(2), "c", "r-c", &info, ctx)
        });
        assert!(
            matches!(&out.refused, Some(crate::rules::Refusal::StockRequestsFull { sku, limit: 2 }) if sku == "S1"),
            "{:?}",
            out.refused
        );
        let ttl = rules.back_in_stock.request_ttl.millis();
        let ((), out) = run(minutes(3), &rules, |ctx| {
            on_register("S1", &mut s, minutes(3), "a", "r-a2", &info, ctx)
        });
        assert!(out.refused.is_none(), "asking again is not a new request");
        assert_eq!(
            s.requests.get("a").unwrap().expires_at,
            minutes(3) + ttl,
            "renewed"
        );
        assert_eq!(restock(&mut s, &rules, minutes(4), 9), vec!["a", "b"]);
    }

    #[test]
    fn asking_twice_keeps_one_request_in_its_first_place() {
        let rules = RulesConfig::default();
        let mut s = ProductState::default();
        register(&mut s, &rules, "a", minutes(0));
        register(&mut s, &rules, "b", minutes(1));
        register(&mut s, &rules, "a", minutes(2));
        assert_eq!(restock(&mut s, &rules, minutes(3), 9), vec!["a", "b"]);
    }

    #[test]
    fn a_notification_without_a_matching_request_is_dropped() {
        let rules = RulesConfig::default();
        let info = ProductInfo::from(&product("S1", 5.0));
        let n = Notification {
            sku: "S1",
            product: &info,
            requested_at: minutes(0),
            request_event_id: "r",
            quantity_available: 3,
            restock_event_id: "s",
        };
        let mut erased: Option<ShopperState> = None;
        let ((), out) = run(minutes(1), &rules, |ctx| {
            on_notification(&mut erased, &n, ctx)
        });
        assert!(out.decisions.is_empty());
        let mut customer = Some(ShopperState {
            customer_id: Some("c1".into()),
            stock_requests: vec![PendingStockRequest {
                sku: "S1".into(),
                requested_at: minutes(0),
                event_id: "r".into(),
            }],
            ..ShopperState::default()
        });
        let ((), out) = run(minutes(1), &rules, |ctx| {
            on_notification(&mut customer, &n, ctx)
        });
        assert_eq!(out.decisions.len(), 1);
        let ((), out) = run(minutes(1), &rules, |ctx| {
            on_notification(&mut customer, &n, ctx)
        });
        assert!(out.decisions.is_empty(), "served once");
    }
}
