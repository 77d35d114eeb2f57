//! Category discount offers (CONTRACT §5.5): a configured code goes, once ever, to an
//! identified, consenting shopper whose interest in its category reaches the offer's
//! minimum score, unless they ordered in that category recently.

use super::consent::allows_email;
use super::{interests, Ctx};
use crate::decision::{decision_id, Decision, DecisionBody};
use crate::event::{Event, EventBody};
use crate::state::ShopperState;
use crate::time::Millis;

/// Records the categories of an order's lines (for `offers.lookback`), then offers
/// what the shopper's interests now reach.
pub fn on_event(key: &str, shopper: &mut ShopperState, event: &Event, ctx: &mut Ctx) {
    let offers = &ctx.rules.offers;
    if offers.codes.is_empty() {
        return;
    }
    if let EventBody::OrderCompleted { items, .. } = &event.body {
        let lookback = offers.lookback.millis();
        let limit = ctx.rules.interests.max_categories;
        let ordered = &mut shopper.profile.ordered_categories;
        for item in items {
            if let Some(path) = interests::path_of(item.product.category.as_deref()) {
                note_order(ordered, path, event.occurred_at, limit);
            }
        }
        ordered.retain(|(_, at)| ctx.now - *at < lookback);
    }
    if shopper.customer_id.is_some() {
        offer(key, shopper, &event.event_id, ctx);
    }
}

/// Sign-in, on the customer's task: the anonymous shopper's recent orders count, and
/// their merged interests may reach an offer now.
pub fn on_absorb(
    key: &str,
    shopper: &mut ShopperState,
    anonymous: &crate::state::ShopperProfile,
    event_id: &str,
    ctx: &mut Ctx,
) {
    if ctx.rules.offers.codes.is_empty() {
        return;
    }
    let limit = ctx.rules.interests.max_categories;
    for (path, at) in &anonymous.ordered_categories {
        note_order(
            &mut shopper.profile.ordered_categories,
            path.clone(),
            *at,
            limit,
        );
    }
    offer(key, shopper, event_id, ctx);
}

/// Keeps each path once, with its latest order time; at most `limit` paths (the ones
/// ordered longest ago go first).
fn note_order(ordered: &mut Vec<(String, Millis)>, path: String, at: Millis, limit: usize) {
    match ordered.iter_mut().find(|(p, _)| *p == path) {
        Some((_, t)) => *t = (*t).max(at),
        None => ordered.push((path, at)),
    }
    if ordered.len() > limit {
        ordered.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        ordered.truncate(limit);
    }
}

fn offer(key: &str, shopper: &mut ShopperState, event_id: &str, ctx: &mut Ctx) {
    let lookback = ctx.rules.offers.lookback.millis();
    for offer in &ctx.rules.offers.codes {
        if shopper.profile.offers_sent.contains(&offer.code) {
            continue;
        }
        let score = interests::prefix_score(
            &shopper.profile,
            &offer.category,
            ctx.now,
            &ctx.rules.interests,
        );
        if score < offer.min_score {
            continue;
        }
        let ordered_recently = shopper.profile.ordered_categories.iter().any(|(path, at)| {
            interests::is_under(path, &offer.category) && ctx.now - *at < lookback
        });
        if ordered_recently {
            continue;
        }
        // Not counted as suppressed: the offer stays due, and goes out at the shopper's
        // next event after they consent, if their interest is still high enough.
        if !allows_email(shopper, ctx.rules) {
            continue;
        }
        shopper.profile.offers_sent.push(offer.code.clone());
        let score = interests::round3(score);
        ctx.out.decisions.push(Decision {
            decision_id: decision_id(&["discount_offer", key, &offer.code]),
            customer_id: Some(key.to_string()),
            decided_at: ctx.now,
            reason: format!(
                "discount_offer {}: interest in {} reached {score} (min_score {}) with event {event_id}",
                offer.code, offer.category, offer.min_score
            ),
            body: DecisionBody::DiscountOffer {
                category: offer.category.clone(),
                code: offer.code.clone(),
                score,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_paths_are_kept_once_with_their_latest_time_and_bounded() {
        let mut ordered = Vec::new();
        note_order(&mut ordered, "a".into(), 5, 2);
        note_order(&mut ordered, "a".into(), 3, 2);
        assert_eq!(ordered, vec![("a".to_string(), 5)]);
        note_order(&mut ordered, "b".into(), 6, 2);
        note_order(&mut ordered, "c".into(), 7, 2);
        assert_eq!(ordered, vec![("c".to_string(), 7), ("b".to_string(), 6)]);
    }
}
