//! Shared helpers for the integration tests: events written as the JSON the contract
//! describes, times as minutes after a fixed start, and a replay that returns decisions.
#![allow(dead_code)] // each test binary uses its own subset

use personalizer::config::Config;
use personalizer::decision::{Decision, DecisionBody, DecisionType};
use personalizer::replay::{self, Input, ReplayOptions};
use personalizer::time::{format_rfc3339, parse_rfc3339, Millis};
use serde_json::{json, Value};
use std::io::Write;

pub const START: &str = "2026-01-01T00:00:00Z";

pub fn at(minutes: i64) -> Millis {
    parse_rfc3339(START).unwrap() + minutes * 60_000
}

pub fn ts(minutes: i64) -> String {
    format_rfc3339(at(minutes))
}

pub fn product(sku: &str) -> Value {
    json!({"sku": sku, "name": format!("Product {sku}"), "price": 20.0, "currency": "EUR",
           "url": format!("https://shop.example/p/{sku}"), "image_url": format!("https://shop.example/i/{sku}.jpg")})
}

/// An event of type `type_` by shopper `who` (`anon…` is an anonymous id, anything
/// else a customer id) at `minutes`, with its own `fields`.
pub fn shopper_event(who: &str, minutes: i64, type_: &str, mut fields: Value) -> Value {
    fields["type"] = json!(type_);
    fields["occurred_at"] = json!(ts(minutes));
    if who.starts_with("anon") {
        fields["anonymous_id"] = json!(who);
    } else {
        fields["customer_id"] = json!(who);
    }
    fields
}

/// Builds event lines with unique ids.
#[derive(Default)]
pub struct Events {
    pub lines: Vec<String>,
    next_id: u64,
}

impl Events {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, mut event: Value) -> String {
        self.next_id += 1;
        let id = event
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("e{}", self.next_id));
        event["event_id"] = json!(id);
        self.lines.push(event.to_string());
        id
    }

    fn shopper(&mut self, who: &str, minutes: i64, type_: &str, fields: Value) -> String {
        self.push(shopper_event(who, minutes, type_, fields))
    }

    pub fn add(&mut self, who: &str, minutes: i64, cart: &str, sku: &str, quantity: i64) -> String {
        self.shopper(
            who,
            minutes,
            "cart_item_added",
            json!({"cart_id": cart, "product": product(sku), "quantity": quantity}),
        )
    }

    pub fn remove(
        &mut self,
        who: &str,
        minutes: i64,
        cart: &str,
        sku: &str,
        quantity: i64,
    ) -> String {
        self.shopper(
            who,
            minutes,
            "cart_item_removed",
            json!({"cart_id": cart, "sku": sku, "quantity": quantity}),
        )
    }

    pub fn clear(&mut self, who: &str, minutes: i64, cart: &str) -> String {
        self.shopper(who, minutes, "cart_cleared", json!({"cart_id": cart}))
    }

    pub fn view(&mut self, who: &str, minutes: i64) -> String {
        self.shopper(who, minutes, "page_viewed", json!({"page_type": "home"}))
    }

    pub fn order(&mut self, who: &str, minutes: i64, cart: Option<&str>) -> String {
        let mut fields = json!({"order_id": format!("o-{minutes}"), "items": [{"product": product("S1"), "quantity": 1}],
                                "total": 20.0, "currency": "EUR"});
        if let Some(cart) = cart {
            fields["cart_id"] = json!(cart);
        }
        self.shopper(who, minutes, "order_completed", fields)
    }

    pub fn notify_me(&mut self, who: &str, minutes: i64, sku: &str) -> String {
        self.shopper(
            who,
            minutes,
            "back_in_stock_requested",
            json!({"product": product(sku)}),
        )
    }

    pub fn sign_in(&mut self, customer: &str, anonymous: &str, minutes: i64) -> String {
        self.push(json!({"type": "signed_in", "occurred_at": ts(minutes), "customer_id": customer, "anonymous_id": anonymous}))
    }

    pub fn stock(&mut self, sku: &str, minutes: i64, quantity: i64) -> String {
        self.push(json!({"type": "stock_changed", "occurred_at": ts(minutes), "sku": sku, "quantity": quantity}))
    }

    pub fn consent(&mut self, customer: &str, minutes: i64, given: bool) -> String {
        self.push(json!({"type": "consent_changed", "occurred_at": ts(minutes), "customer_id": customer, "email_marketing": given}))
    }

    pub fn erase(&mut self, customer: &str, minutes: i64) -> String {
        self.push(
            json!({"type": "customer_erased", "occurred_at": ts(minutes), "customer_id": customer}),
        )
    }
}

pub struct Replayed {
    pub decisions: Vec<Decision>,
    pub output: String,
    pub errors: String,
}

/// Replays lines through the library's replay driver, as `personalizer replay` does;
/// panics on a line the replay rejects.
pub fn replay_lines(config: &Config, lines: &[String], until_minutes: Option<i64>) -> Replayed {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    // Strict: a test whose input had a rejected line must fail, not pass on less input.
    let options = ReplayOptions {
        inputs: vec![Input::File(file.path().to_path_buf())],
        until: until_minutes.map(at),
        strict: true,
        now: None,
        types: None,
    };
    let mut output = Vec::new();
    let mut errors = Vec::new();
    replay::run(config, &options, &mut output, &mut errors).unwrap();
    let output = String::from_utf8(output).unwrap();
    let decisions = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    Replayed {
        decisions,
        output,
        errors: String::from_utf8(errors).unwrap(),
    }
}

pub fn replay(events: &Events, until_minutes: Option<i64>) -> Vec<Decision> {
    replay_lines(&Config::default(), &events.lines, until_minutes).decisions
}

/// The decisions that become emails (reminders, back in stock, offers): not profiles
/// or segment changes.
pub fn emails(decisions: Vec<Decision>) -> Vec<Decision> {
    decisions
        .into_iter()
        .filter(|d| {
            matches!(
                d.decision_type(),
                DecisionType::AbandonedCart
                    | DecisionType::BackInStock
                    | DecisionType::DiscountOffer
            )
        })
        .collect()
}

/// (customer, step, decided_at in minutes) of each abandoned-cart decision.
pub fn reminders(decisions: &[Decision]) -> Vec<(String, u32, i64)> {
    decisions
        .iter()
        .filter_map(|d| match &d.body {
            DecisionBody::AbandonedCart { step, .. } => Some((
                d.customer_id
                    .clone()
                    .expect("a reminder names its customer"),
                *step,
                (d.decided_at - at(0)) / 60_000,
            )),
            _ => None,
        })
        .collect()
}

/// (customer, sku) of each back-in-stock decision.
pub fn restock_notices(decisions: &[Decision]) -> Vec<(String, String)> {
    decisions
        .iter()
        .filter_map(|d| match &d.body {
            DecisionBody::BackInStock { sku, .. } => Some((
                d.customer_id
                    .clone()
                    .expect("a notification names its customer"),
                sku.clone(),
            )),
            _ => None,
        })
        .collect()
}
pub mod certificates;
pub mod compare;
pub mod crash;
pub mod http;
pub mod live;
pub mod progress;
pub mod registry;
pub mod shop;
