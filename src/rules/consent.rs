//! Consent and erasure (CONTRACT §3): who may be emailed, and forgetting a shopper.

use super::Ctx;
use crate::config::RulesConfig;
use crate::forward::{Forward, ProductMessage, ShopperMessage};
use crate::state::ShopperState;
use crate::timer::{Timer, TimerKind};

/// Whether marketing email (reminders, back-in-stock, offers) may go to this shopper:
/// their last word if they said one, otherwise given unless `require_consent` is set.
pub fn allows_email(state: &ShopperState, rules: &RulesConfig) -> bool {
    state.consent.unwrap_or(!rules.require_consent)
}

pub fn on_consent_changed(state: &mut ShopperState, email_marketing: bool) {
    state.consent = Some(email_marketing);
}

/// `customer_erased`: forget everything held about the shopper and cancel what was
/// pending for them here (reminder timer) and elsewhere (stock requests, merged ids).
pub fn erase(key: &str, state: &mut Option<ShopperState>, event_id: &str, ctx: &mut Ctx) {
    let Some(erased) = state.take() else {
        return;
    };
    super::segments::on_erased(&erased, ctx);
    super::profile::delete(key, &erased, Some(key), event_id, ctx);
    if let Some(due) = erased.reminder_armed {
        ctx.cancel_timer(Timer {
            due,
            kind: TimerKind::CartReminder,
            key: key.to_string(),
        });
    }
    // Requests may have been registered under any of the ids merged into this customer.
    let mut holders: Vec<&str> = vec![key];
    holders.extend(erased.aliases.iter().map(String::as_str));
    for request in &erased.stock_requests {
        for holder in &holders {
            ctx.forward(Forward::ToProduct {
                sku: request.sku.clone(),
                at: ctx.now,
                message: ProductMessage::CancelRequests {
                    shopper: holder.to_string(),
                },
            });
        }
    }
    for alias in &erased.aliases {
        ctx.forward(Forward::ToShopper {
            key: alias.clone(),
            at: ctx.now,
            message: ShopperMessage::EraseAlias {
                customer_id: key.to_string(),
            },
        });
    }
}

/// The customer an anonymous id was merged into was erased: forget the link too.
pub fn erase_alias(state: &mut Option<ShopperState>, customer_id: &str) {
    if state
        .as_ref()
        .is_some_and(|s| s.merged_into.as_deref() == Some(customer_id))
    {
        *state = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run;
    use crate::state::PendingStockRequest;

    #[test]
    fn unknown_consent_counts_as_given_unless_required() {
        let mut rules = RulesConfig::default();
        let mut s = ShopperState::default();
        assert!(allows_email(&s, &rules));
        rules.require_consent = true;
        assert!(!allows_email(&s, &rules));
        on_consent_changed(&mut s, true);
        assert!(allows_email(&s, &rules));
        on_consent_changed(&mut s, false);
        rules.require_consent = false;
        assert!(!allows_email(&s, &rules));
    }

    #[test]
    fn erasure_deletes_state_and_cancels_what_is_pending() {
        let rules = RulesConfig::default();
        let mut state = Some(ShopperState {
            customer_id: Some("c1".into()),
            aliases: vec!["a1".into()],
            reminder_armed: Some(42),
            stock_requests: vec![PendingStockRequest {
                sku: "S1".into(),
                requested_at: 1,
                event_id: "e".into(),
            }],
            ..ShopperState::default()
        });
        let ((), out) = run(100, &rules, |ctx| erase("c1", &mut state, "e-erase", ctx));
        assert_eq!(state, None);
        assert_eq!(out.timers.len(), 1);
        let cancels = out
            .forwards
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    Forward::ToProduct {
                        message: ProductMessage::CancelRequests { .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!(cancels, 2, "one per holder id of the request");
        assert!(out.forwards.iter().any(|f| matches!(
            f,
            Forward::ToShopper { key, message: ShopperMessage::EraseAlias { .. }, .. } if key == "a1"
        )));
    }

    #[test]
    fn erase_alias_only_forgets_links_to_that_customer() {
        let mut linked = Some(ShopperState {
            merged_into: Some("c1".into()),
            ..ShopperState::default()
        });
        erase_alias(&mut linked, "c2");
        assert!(linked.is_some());
        erase_alias(&mut linked, "c1");
        assert!(linked.is_none());
    }
}
