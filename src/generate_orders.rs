//! Orders: a session's checkout, and the regular customers who order every few weeks
//! over the months before the busy span.

use super::{Actor, Generator, GeneratorSettings};
use crate::event::{EventBody, OrderItem};
use crate::time::Millis;
use rand::Rng;

pub(super) const DAY: Millis = 24 * 3_600_000;
/// One shopper in this many is a regular customer (when there is a history).
const REGULAR_EVERY: u32 = 100;
/// Mean gap between a regular's orders, on top of a week.
const REGULAR_MEAN_GAP: f64 = 40.0 * DAY as f64;
/// Chance that an order is a regular's last for a long while, and that such a
/// regular comes back at all (after a mean break of `REGULAR_MEAN_BREAK`).
const REGULAR_BREAK: f64 = 0.2;
const REGULAR_RETURNS: f64 = 0.5;
const REGULAR_MEAN_BREAK: f64 = 220.0 * DAY as f64;

/// How many of the shoppers (the first ones) are regular customers.
pub(super) fn regular_count(settings: &GeneratorSettings) -> u32 {
    if settings.history > 0 {
        (settings.shoppers / REGULAR_EVERY).max(1)
    } else {
        0
    }
}

impl Generator {
    /// The shopper signs in (unless signed in), checks the cart out and orders it.
    pub(super) fn checkout(&mut self, at: Millis, shopper: u32, signed_in: bool) {
        let index = shopper as usize;
        if !signed_in {
            let e = self.event(at, Some((shopper, true)), EventBody::SignedIn);
            self.push(e);
            self.shoppers[index].known_device = true;
        }
        let who = Some((shopper, true));
        let cart_id = format!("cart-{index}-{}", self.shoppers[index].cart_number);
        let e = self.event(
            at + 20_000,
            who,
            EventBody::CheckoutStarted {
                cart_id: cart_id.clone(),
            },
        );
        self.push(e);
        let lines = std::mem::take(&mut self.shoppers[index].cart);
        let mut total = 0.0;
        let items: Vec<OrderItem> = lines
            .iter()
            .map(|(p, q)| {
                total += self.catalog[*p].product.price.unwrap_or(0.0) * f64::from(*q);
                OrderItem {
                    product: self.catalog[*p].product.clone(),
                    quantity: *q,
                }
            })
            .collect();
        let order_number = self.shoppers[index].cart_number;
        self.shoppers[index].cart_number += 1;
        let e = self.event(
            at + 90_000,
            who,
            EventBody::OrderCompleted {
                order_id: format!("order-{index}-{order_number}"),
                cart_id: Some(cart_id),
                items,
                total: (total * 100.0).round() / 100.0,
                currency: "EUR".into(),
            },
        );
        self.push(e);
        // Stock is simulated over the busy span only: over the months before it the shop
        // is taken to keep up with its regulars.
        if at < self.settings.start {
            return;
        }
        for (p, q) in lines {
            let item = &mut self.catalog[p];
            let before = item.stock;
            item.stock = item.stock.saturating_sub(u64::from(q));
            if before > 0 && item.stock == 0 {
                let sku = item.product.sku.clone();
                let e = self.event(
                    at + 91_000,
                    None,
                    EventBody::StockChanged {
                        sku,
                        quantity: 0,
                        product: None,
                    },
                );
                self.push(e);
            }
        }
    }

    /// A regular customer comes back for the products they buy, orders, and plans the
    /// next order (or a long break, or none).
    pub(super) fn regular_order(&mut self, at: Millis, shopper: u32) {
        let index = shopper as usize;
        let lines = self.rng.random_range(1..4);
        for step in 0..lines {
            let product = self.popular_product();
            let when = at + i64::from(step) * 40_000;
            let details = self.catalog[product].product.clone();
            let e = self.event(
                when,
                Some((shopper, false)),
                EventBody::ProductViewed {
                    product: details.clone(),
                },
            );
            self.push(e);
            let quantity = self.rng.random_range(1..4);
            self.shoppers[index].cart.push((product, quantity));
            let cart_id = format!("cart-{index}-{}", self.shoppers[index].cart_number);
            let e = self.event(
                when + 10_000,
                Some((shopper, false)),
                EventBody::CartItemAdded {
                    cart_id,
                    product: details,
                    quantity,
                },
            );
            self.push(e);
        }
        self.checkout(at + i64::from(lines) * 40_000, shopper, false);
        let next = if self.rng.random_bool(REGULAR_BREAK) {
            self.rng
                .random_bool(REGULAR_RETURNS)
                .then(|| at + self.exponential(REGULAR_MEAN_BREAK))
        } else {
            Some(at + 7 * DAY + self.exponential(REGULAR_MEAN_GAP))
        };
        let end = self.settings.start + self.settings.span;
        if let Some(next) = next.filter(|t| *t < end) {
            self.schedule(next, Actor::Regular(shopper));
        }
    }
}
