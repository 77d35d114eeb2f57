//! The product processor's rules, per SKU.

use super::{back_in_stock, Ctx};
use crate::event::{Event, EventBody};
use crate::forward::ProductMessage;
use crate::state::ProductState;
use crate::timer::{Timer, TimerKind};

pub fn on_event(sku: &str, state: &mut Option<ProductState>, event: &Event, ctx: &mut Ctx) {
    if let EventBody::StockChanged {
        quantity, product, ..
    } = &event.body
    {
        let product_state = state.get_or_insert_with(ProductState::default);
        back_in_stock::on_stock_changed(
            sku,
            product_state,
            event,
            *quantity,
            product.as_ref(),
            ctx,
        );
    }
}

pub fn on_message(
    sku: &str,
    state: &mut Option<ProductState>,
    at: i64,
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
    }
}

pub fn on_timer(sku: &str, state: &mut Option<ProductState>, timer: &Timer, ctx: &mut Ctx) {
    if let (TimerKind::RequestExpiry, Some(product_state)) = (timer.kind, state.as_mut()) {
        back_in_stock::on_expiry_timer(sku, product_state, timer, ctx);
    }
}
