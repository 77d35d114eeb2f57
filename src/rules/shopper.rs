//! The customer processor's rules, per shopper: which rule sees which input, in order.
//! Every input reaches the email rules first and the profile after, so a profile shows
//! the state the event left behind.

use super::{
    abandoned_cart, back_in_stock, consent, identity, offers, product_signals, profile, segments,
    Ctx,
};
use crate::decision::DecisionType;
use crate::event::{Event, EventBody, InputTopic};
use crate::forward::{Forward, ShopperMessage};
use crate::state::ShopperState;
use crate::timer::{Timer, TimerKind};

/// One input event for the shopper keyed `key`. `None` state: nothing known yet; the
/// rules leave `None` behind to delete the shopper (erasure).
pub fn on_event(key: &str, state: &mut Option<ShopperState>, event: &Event, ctx: &mut Ctx) {
    apply(key, state, event, event.customer_id.is_some(), ctx);
}

fn apply(
    key: &str,
    state: &mut Option<ShopperState>,
    event: &Event,
    identified: bool,
    ctx: &mut Ctx,
) {
    if let Some(customer_id) = state.as_ref().and_then(|s| s.merged_into.clone()) {
        if !identified {
            ctx.forward(Forward::ToShopper {
                key: customer_id,
                at: event.occurred_at,
                message: ShopperMessage::Reroute(Box::new(event.clone())),
            });
            return;
        }
    }
    if let EventBody::CustomerErased = event.body {
        consent::erase(key, state, &event.event_id, ctx);
        return;
    }
    if let EventBody::CartItemAdded {
        cart_id, product, ..
    } = &event.body
    {
        let limit = ctx.rules.limits.max_cart_lines;
        if abandoned_cart::would_overfill(state.as_ref(), cart_id, &product.sku, limit) {
            ctx.out.refuse(super::Refusal::CartFull {
                cart_id: cart_id.clone(),
                limit,
            });
            return;
        }
    }
    let shopper = state.get_or_insert_with(ShopperState::default);
    if identified && shopper.customer_id.is_none() {
        shopper.customer_id = Some(key.to_string());
    }
    if matches!(
        event.body.topic(),
        InputTopic::Clickstream | InputTopic::Cart
    ) {
        shopper.last_activity_at = shopper.last_activity_at.max(Some(event.occurred_at));
    }
    match &event.body {
        EventBody::ConsentChanged { email_marketing } => {
            consent::on_consent_changed(shopper, *email_marketing)
        }
        EventBody::SignedIn => identity::on_signed_in(key, shopper, event, ctx),
        EventBody::BackInStockRequested { product } => {
            back_in_stock::on_request(key, shopper, event, product, ctx)
        }
        EventBody::CartItemAdded { .. }
        | EventBody::CartItemRemoved { .. }
        | EventBody::CartCleared { .. }
        | EventBody::OrderCompleted { .. } => abandoned_cart::on_cart_event(shopper, event),
        _ => {}
    }
    product_signals::on_event(shopper, event, ctx);
    profile::on_event(key, shopper, event, ctx);
    segments::on_event(key, shopper, event, ctx);
    offers::on_event(key, shopper, event, ctx);
    abandoned_cart::rearm(key, shopper, ctx);
}

/// A message from another task; `at` is its event time.
pub fn on_message(
    key: &str,
    state: &mut Option<ShopperState>,
    at: i64,
    message: &ShopperMessage,
    ctx: &mut Ctx,
) {
    match message {
        ShopperMessage::Reroute(event) => apply(key, state, event, true, ctx),
        ShopperMessage::MergeInto {
            customer_id,
            event_id,
        } => identity::on_merge_into(key, state, (customer_id, event_id), at, ctx),
        ShopperMessage::Absorb {
            from,
            state: incoming,
            event_id,
        } => {
            let shopper = state.get_or_insert_with(ShopperState::default);
            shopper.customer_id.get_or_insert_with(|| key.to_string());
            let limit = ctx.rules.limits.max_cart_lines;
            identity::on_absorb(shopper, from, incoming, (event_id, at), limit);
            profile::on_absorb(key, shopper, &incoming.profile, event_id, ctx);
            segments::on_absorb(key, shopper, &incoming.profile.segments, event_id, ctx);
            offers::on_absorb(key, shopper, &incoming.profile, event_id, ctx);
            abandoned_cart::rearm(key, shopper, ctx);
        }
        ShopperMessage::BackInStock {
            sku,
            product,
            requested_at,
            request_event_id,
            quantity_available,
            restock_event_id,
        } => {
            if let Some(customer_id) = state.as_ref().and_then(|s| s.merged_into.clone()) {
                ctx.forward(Forward::ToShopper {
                    key: customer_id,
                    at,
                    message: message.clone(),
                });
                return;
            }
            let notification = back_in_stock::Notification {
                sku,
                product,
                requested_at: *requested_at,
                request_event_id,
                quantity_available: *quantity_available,
                restock_event_id,
            };
            back_in_stock::on_notification(state, &notification, ctx);
        }
        ShopperMessage::EraseAlias { customer_id } => consent::erase_alias(state, customer_id),
    }
}

pub fn on_timer(key: &str, state: &mut Option<ShopperState>, timer: &Timer, ctx: &mut Ctx) {
    match timer.kind {
        TimerKind::CartReminder => {
            let before = ctx.out.decisions.len();
            abandoned_cart::on_timer(key, state, timer, ctx);
            let reminder = ctx.out.decisions[before..]
                .iter()
                .find(|d| d.decision_type() == DecisionType::AbandonedCart)
                .map(|d| d.decision_id.clone());
            if let (Some(reminder), Some(shopper)) = (reminder, state.as_mut()) {
                segments::on_reminder_sent(key, shopper, &reminder, ctx);
            }
        }
        TimerKind::ProfilePublish => profile::on_timer(key, state, timer, ctx),
        TimerKind::SegmentChange => segments::on_timer(key, state, timer, ctx),
        TimerKind::RequestExpiry | TimerKind::ProductPublish | TimerKind::NewArrivalEnds => {}
    }
}
