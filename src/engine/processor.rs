//! The two processors: which state, messages, column families and rules each task uses.

use crate::event::Event;
use crate::forward::{Forward, ProductMessage, ShopperMessage};
use crate::rules::{self, Ctx};
use crate::state::{ProductState, ShopperState, VersionedState};
use crate::store::Family;
use crate::time::Millis;
use crate::timer::Timer;

pub trait Processor {
    type State: VersionedState + Clone;
    type Message: serde::Serialize;
    const NAME: &'static str;
    const STATE: Family;
    const TIMERS: Family;
    const DEDUPE: Family;
    /// Where the state's detached entries are stored (see
    /// [`VersionedState::take_detached`]), if it has any.
    const DETACHED: Option<Family>;
    fn on_event(key: &str, state: &mut Option<Self::State>, event: &Event, ctx: &mut Ctx);
    fn on_message(
        key: &str,
        state: &mut Option<Self::State>,
        at: Millis,
        message: &Self::Message,
        ctx: &mut Ctx,
    );
    fn on_timer(key: &str, state: &mut Option<Self::State>, timer: &Timer, ctx: &mut Ctx);
    /// The key, time and message of a forward addressed to this processor; the forward
    /// back when it is for the other one.
    fn addressed(forward: Forward) -> Result<(String, Millis, Self::Message), Box<Forward>>;
}

/// Per shopper: clickstream, cart and customers events.
pub struct CustomerProcessor;

impl Processor for CustomerProcessor {
    type State = ShopperState;
    type Message = ShopperMessage;
    const NAME: &'static str = "customer";
    const STATE: Family = Family::Shoppers;
    const TIMERS: Family = Family::ShopperTimers;
    const DEDUPE: Family = Family::ShopperDedupe;
    const DETACHED: Option<Family> = None;

    fn on_event(key: &str, state: &mut Option<ShopperState>, event: &Event, ctx: &mut Ctx) {
        rules::shopper::on_event(key, state, event, ctx)
    }
    fn on_message(
        key: &str,
        state: &mut Option<ShopperState>,
        at: Millis,
        message: &ShopperMessage,
        ctx: &mut Ctx,
    ) {
        rules::shopper::on_message(key, state, at, message, ctx)
    }
    fn on_timer(key: &str, state: &mut Option<ShopperState>, timer: &Timer, ctx: &mut Ctx) {
        rules::shopper::on_timer(key, state, timer, ctx)
    }
    fn addressed(forward: Forward) -> Result<(String, Millis, ShopperMessage), Box<Forward>> {
        match forward {
            Forward::ToShopper { key, at, message } => Ok((key, at, message)),
            other => Err(Box::new(other)),
        }
    }
}

/// Per SKU: stock events and back-in-stock requests.
pub struct ProductProcessor;

impl Processor for ProductProcessor {
    type State = ProductState;
    type Message = ProductMessage;
    const NAME: &'static str = "product";
    const STATE: Family = Family::Products;
    const TIMERS: Family = Family::ProductTimers;
    const DEDUPE: Family = Family::ProductDedupe;
    const DETACHED: Option<Family> = Some(Family::ProductRequests);

    fn on_event(key: &str, state: &mut Option<ProductState>, event: &Event, ctx: &mut Ctx) {
        rules::product::on_event(key, state, event, ctx)
    }
    fn on_message(
        key: &str,
        state: &mut Option<ProductState>,
        at: Millis,
        message: &ProductMessage,
        ctx: &mut Ctx,
    ) {
        rules::product::on_message(key, state, at, message, ctx)
    }
    fn on_timer(key: &str, state: &mut Option<ProductState>, timer: &Timer, ctx: &mut Ctx) {
        rules::product::on_timer(key, state, timer, ctx)
    }
    fn addressed(forward: Forward) -> Result<(String, Millis, ProductMessage), Box<Forward>> {
        match forward {
            Forward::ToProduct { sku, at, message } => Ok((sku, at, message)),
            other => Err(Box::new(other)),
        }
    }
}
