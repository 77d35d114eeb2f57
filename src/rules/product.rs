//! The product processor's rules, per SKU: stock and back-in-stock requests (CONTRACT
//! §3), popularity and co-occurrence (§5.4), and the product record.

use super::{back_in_stock, cooccurrence, popularity, product_record, Ctx};
use crate::event::{Event, EventBody};
use crate::forward::ProductMessage;
use crate::state::{ProductInfo, ProductState};
use crate::time::Millis;
use crate::timer::{Timer, TimerKind};

pub fn on_event(sku: &str, state: &mut Option<ProductState>, event: &Event, ctx: &mut Ctx) {
    if let EventBody::StockChanged {
        quantity, product, ..
    } = &event.body
    {
        let product_state = state.get_or_insert_with(ProductState::default);
        let known_details = product_state.details.clone();
        back_in_stock::on_stock_changed(
            sku,
            product_state,
            event,
            *quantity,
            product.as_ref(),
            ctx,
        );
        if ctx.rules.products.enabled {
            if let Some(product) = product {
                // The latest details by event time win, whichever input carried them.
                product_state.details = known_details;
                product_record::take_details(
                    product_state,
                    &ProductInfo::from(product),
                    event.occurred_at,
                    ctx,
                );
            }
            let evidence = format!("event {}", event.event_id);
            if let Some(activity) = product_record::activity(product_state, ctx) {
                product_record::touched(sku, activity, event.occurred_at, &evidence, ctx);
            }
        }
    }
}

pub fn on_message(
    sku: &str,
    state: &mut Option<ProductState>,
    at: Millis,
    message: &ProductMessage,
    ctx: &mut Ctx,
) {
    match message {
        ProductMessage::RegisterRequest {
            shopper,
            event_id,
            product,
        } => {
            let product_state = state.get_or_insert_with(ProductState::default);
            back_in_stock::on_register(sku, product_state, at, shopper, event_id, product, ctx);
        }
        ProductMessage::CancelRequests { shopper } => {
            if let Some(product_state) = state.as_mut() {
                back_in_stock::on_cancel(product_state, shopper);
            }
        }
        _ if !ctx.rules.products.enabled => {}
        _ => on_activity(
            sku,
            state.get_or_insert_with(ProductState::default),
            at,
            message,
            ctx,
        ),
    }
}

/// A view, cart add, purchase or co-occurrence reported by a shopper's task.
fn on_activity(
    sku: &str,
    state: &mut ProductState,
    at: Millis,
    message: &ProductMessage,
    ctx: &mut Ctx,
) {
    let details = match message {
        ProductMessage::Viewed { product, .. }
        | ProductMessage::AddedToCart { product, .. }
        | ProductMessage::Purchased { product, .. } => Some(product),
        _ => None,
    };
    if let Some(product) = details {
        product_record::take_details(state, product, at, ctx);
    }
    let (rules, now) = (ctx.rules, ctx.now);
    let Some(activity) = product_record::activity(state, ctx) else {
        return;
    };
    let event_id = match message {
        ProductMessage::Viewed {
            event_id, before, ..
        } => {
            popularity::on_view(activity, at, rules);
            for other in before.iter().filter(|other| *other != sku) {
                cooccurrence::add(&mut activity.viewed_with, other, at, now, &rules.recs);
            }
            event_id
        }
        ProductMessage::CoViewed { event_id, with } => {
            if with != sku {
                cooccurrence::add(&mut activity.viewed_with, with, at, now, &rules.recs);
            }
            event_id
        }
        ProductMessage::AddedToCart { event_id, .. } => {
            popularity::on_cart_add(activity, at, rules);
            event_id
        }
        ProductMessage::Purchased {
            event_id,
            units,
            with,
            ..
        } => {
            popularity::on_purchase(activity, *units, at, rules);
            for other in with.iter().filter(|other| *other != sku) {
                cooccurrence::add(&mut activity.bought_with, other, at, now, &rules.recs);
            }
            event_id
        }
        ProductMessage::ViewedThenBought { event_id, bought } => {
            for other in bought.iter().filter(|other| *other != sku) {
                cooccurrence::add(
                    &mut activity.viewed_then_bought,
                    other,
                    at,
                    now,
                    &rules.recs,
                );
            }
            event_id
        }
        ProductMessage::RegisterRequest { .. } | ProductMessage::CancelRequests { .. } => {
            unreachable!("handled by on_message")
        }
    };
    let evidence = format!("event {event_id}");
    product_record::touched(sku, activity, at, &evidence, ctx);
}

pub fn on_timer(sku: &str, state: &mut Option<ProductState>, timer: &Timer, ctx: &mut Ctx) {
    let Some(product_state) = state.as_mut() else {
        return;
    };
    match timer.kind {
        TimerKind::RequestExpiry => back_in_stock::on_expiry_timer(sku, product_state, timer, ctx),
        TimerKind::ProductPublish | TimerKind::NewArrivalEnds => {
            product_record::on_timer(sku, product_state, timer, ctx)
        }
        TimerKind::CartReminder | TimerKind::ProfilePublish | TimerKind::SegmentChange => {}
    }
}
