//! Profiles (CONTRACT §5.6): what an event changes in the shopper's profile, and when the
//! profile is published. The first change after a publish arms a timer
//! `profiles.publish_interval` of stream time ahead; when it fires, the profile as it
//! is then goes out. So a shopper gets at most one profile record per interval, however
//! busy, and the record always shows the latest state.

use super::{history, interests, site, Ctx};
use crate::decision::{decision_id, CategoryScore, Decision, DecisionBody, Profile};
use crate::event::{Event, EventBody};
use crate::state::{ProfileChanges, ShopperProfile, ShopperState};
use crate::time::Millis;
use crate::timer::{Timer, TimerKind};

/// Applies what `event` changes in the profile of the shopper keyed `key`; a change arms
/// the publish timer unless it is armed already.
pub fn on_event(key: &str, shopper: &mut ShopperState, event: &Event, ctx: &mut Ctx) {
    if !ctx.rules.profiles.enabled {
        return;
    }
    let config = &ctx.rules.interests;
    let weights = &config.weights;
    let (at, now) = (event.occurred_at, ctx.now);
    let profile = &mut shopper.profile;
    history::on_event(profile, event, config);
    let mut changed = site::on_event(profile, event);
    let mut interest = |profile: &mut ShopperProfile, category: Option<&[String]>, weight| {
        if let Some(path) = interests::path_of(category) {
            interests::add(profile, &path, weight, at, now, config);
            changed = true;
        }
    };
    match &event.body {
        EventBody::ProductViewed { product } => {
            interest(profile, product.category.as_deref(), weights.product_viewed);
            interests::view(profile, &product.sku, at, config);
            changed = true;
        }
        EventBody::CategoryViewed { category } => {
            interest(profile, Some(category), weights.category_viewed)
        }
        EventBody::WishlistAdded { product } => {
            interest(profile, product.category.as_deref(), weights.wishlist_added)
        }
        EventBody::CartItemAdded { product, .. } => interest(
            profile,
            product.category.as_deref(),
            weights.cart_item_added,
        ),
        EventBody::OrderCompleted { items, .. } => {
            for item in items {
                interest(
                    profile,
                    item.product.category.as_deref(),
                    weights.order_line,
                );
            }
            profile.orders = profile.orders.saturating_add(1);
            changed = true;
        }
        EventBody::ConsentChanged { .. } => changed = true,
        _ => {}
    }
    if changed {
        mark_changed(key, profile, &format!("event {}", event.event_id), ctx);
    }
}

/// Sign-in, on the customer's task: the anonymous shopper's interests, views, orders,
/// site and country join the customer's, and the profile is due for publishing.
pub fn on_absorb(
    key: &str,
    shopper: &mut ShopperState,
    anonymous: &ShopperProfile,
    event_id: &str,
    ctx: &mut Ctx,
) {
    if !ctx.rules.profiles.enabled {
        return;
    }
    let profile = &mut shopper.profile;
    interests::merge(profile, anonymous, ctx.now, &ctx.rules.interests);
    history::merge(profile, anonymous, &ctx.rules.interests);
    profile.orders = profile.orders.saturating_add(anonymous.orders);
    for (mine, theirs) in [
        (&mut profile.site, &anonymous.site),
        (&mut profile.country, &anonymous.country),
    ] {
        if theirs
            .as_ref()
            .is_some_and(|(_, t)| mine.as_ref().is_none_or(|(_, m)| t > m))
        {
            mine.clone_from(theirs);
        }
    }
    mark_changed(key, profile, &format!("event {event_id}"), ctx);
}

/// Something the profile shows changed (`evidence` says what: `event …`, or the
/// segments at a time): publish it when the interval is up.
pub(super) fn mark_changed(key: &str, profile: &mut ShopperProfile, evidence: &str, ctx: &mut Ctx) {
    if !ctx.rules.profiles.enabled {
        return;
    }
    match &mut profile.changes {
        // One input may change several things (an interest and a segment): one change.
        Some(changes) if changes.last_event == evidence => {}
        Some(changes) => {
            changes.last_event = evidence.to_string();
            changes.events = changes.events.saturating_add(1);
        }
        None => {
            profile.changes = Some(ProfileChanges {
                first_event: evidence.to_string(),
                last_event: evidence.to_string(),
                events: 1,
            })
        }
    }
    if profile.publish_due.is_none() {
        let due = ctx.now + ctx.rules.profiles.publish_interval.millis();
        profile.publish_due = Some(due);
        ctx.set_timer(publish_timer(key, due));
    }
}

fn publish_timer(key: &str, due: Millis) -> Timer {
    Timer {
        due,
        kind: TimerKind::ProfilePublish,
        key: key.to_string(),
    }
}

/// The publish timer fired: the profile as it is now goes out.
pub fn on_timer(key: &str, state: &mut Option<ShopperState>, timer: &Timer, ctx: &mut Ctx) {
    let Some(shopper) = state.as_mut() else {
        return;
    };
    if shopper.profile.publish_due != Some(timer.due) || shopper.merged_into.is_some() {
        return;
    }
    shopper.profile.publish_due = None;
    let Some(changes) = shopper.profile.changes.take() else {
        return;
    };
    shopper.profile.publishes += 1;
    let profile = record(key, shopper, ctx);
    let reason = if changes.events == 1 {
        format!("profile changed by {}", changes.first_event)
    } else {
        format!(
            "profile changed {} times since the last publish: by {} … by {}",
            changes.events, changes.first_event, changes.last_event
        )
    };
    ctx.emit(Decision {
        decision_id: decision_id(&["profile", key, &ctx.now.to_string(), &changes.last_event]),
        customer_id: shopper.customer_id.clone(),
        decided_at: ctx.now,
        reason,
        body: DecisionBody::Profile(Box::new(profile)),
    });
}

/// The profile of the shopper keyed `key`, as it is at stream time.
pub fn record(key: &str, shopper: &ShopperState, ctx: &Ctx) -> Profile {
    let (now, config) = (ctx.now, &ctx.rules.interests);
    let profile = &shopper.profile;
    let anonymous_id = match shopper.customer_id {
        Some(_) => shopper.aliases.last().cloned(),
        None => Some(key.to_string()),
    };
    Profile {
        anonymous_id,
        preferred_department: interests::preferred_department(profile, now, config),
        top_categories: interests::top_categories(profile, now, config)
            .into_iter()
            .map(|(category, score)| CategoryScore { category, score })
            .collect(),
        recently_viewed: profile.recent_views.iter().map(|v| v.sku.clone()).collect(),
        site: profile.site.as_ref().map(|(s, _)| s.clone()),
        suggested_site: site::suggested_site(profile, &ctx.rules.sites),
        segments: profile.segments.current.clone(),
        consent: shopper.consent,
        rfm: super::segments::standing_now(shopper, ctx).and_then(|s| s.rfm),
        orders: profile.orders,
        last_order_at: shopper.last_order_at,
    }
}

/// The shopper's profile is gone (erasure, or an anonymous shopper who signed in):
/// cancel a pending publish and, when a profile was ever published, send its tombstone.
pub fn delete(
    key: &str,
    shopper: &ShopperState,
    customer_id: Option<&str>,
    evidence: &str,
    ctx: &mut Ctx,
) {
    if let Some(due) = shopper.profile.publish_due {
        ctx.cancel_timer(publish_timer(key, due));
    }
    if let Some(due) = shopper.profile.segments.due {
        ctx.cancel_timer(super::segments::timer(key, due));
    }
    if shopper.profile.publishes == 0 {
        return;
    }
    let anonymous_id = customer_id.is_none().then(|| key.to_string());
    ctx.emit(Decision {
        decision_id: decision_id(&["profile_deleted", key, evidence]),
        customer_id: customer_id.map(str::to_string),
        decided_at: ctx.now,
        reason: format!("profile deleted by event {evidence}"),
        body: DecisionBody::ProfileDeleted { anonymous_id },
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RulesConfig;
    use crate::event::Product;
    use crate::rules::testing::{event, minutes, run};

    fn viewed(id: &str, at: i64, sku: &str, category: &[&str]) -> Event {
        event(
            id,
            at,
            Some("c1"),
            EventBody::ProductViewed {
                product: Product {
                    sku: sku.into(),
                    category: Some(category.iter().map(|c| c.to_string()).collect()),
                    ..Product::default()
                },
            },
        )
    }

    fn fire(shopper: ShopperState, at: Millis, rules: &RulesConfig) -> Vec<Decision> {
        let mut state = Some(shopper);
        let due = state.as_ref().unwrap().profile.publish_due.unwrap();
        assert!(at >= due);
        let ((), out) = run(at, rules, |ctx| {
            on_timer("c1", &mut state, &publish_timer("c1", due), ctx)
        });
        out.decisions
    }

    #[test]
    fn the_first_change_arms_one_timer_and_later_ones_ride_on_it() {
        let rules = RulesConfig::default();
        let mut shopper = ShopperState {
            customer_id: Some("c1".into()),
            ..ShopperState::default()
        };
        let ((), out) = run(minutes(0), &rules, |ctx| {
            on_event(
                "c1",
                &mut shopper,
                &viewed("e1", minutes(0), "A", &["women"]),
                ctx,
            )
        });
        assert_eq!(out.timers.len(), 1);
        let ((), out) = run(minutes(0) + 5_000, &rules, |ctx| {
            on_event(
                "c1",
                &mut shopper,
                &viewed("e2", minutes(0) + 5_000, "B", &["men"]),
                ctx,
            )
        });
        assert!(out.timers.is_empty(), "already armed");
        let due = minutes(0) + 10_000;
        assert_eq!(shopper.profile.publish_due, Some(due));
        let decisions = fire(shopper, due, &rules);
        assert_eq!(decisions.len(), 1);
        let d = &decisions[0];
        assert_eq!(d.customer_id.as_deref(), Some("c1"));
        assert!(
            d.reason.contains("changed 2 times")
                && d.reason.contains("e1")
                && d.reason.contains("e2")
        );
        match &d.body {
            DecisionBody::Profile(p) => {
                assert_eq!(p.recently_viewed, ["B", "A"]);
                assert_eq!(p.top_categories.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_that_change_nothing_shown_do_not_publish() {
        let rules = RulesConfig::default();
        let mut shopper = ShopperState::default();
        let page = event(
            "e1",
            minutes(0),
            None,
            EventBody::PageViewed {
                page_type: crate::event::PageType::Home,
                url: None,
            },
        );
        let ((), out) = run(minutes(0), &rules, |ctx| {
            on_event("anon", &mut shopper, &page, ctx)
        });
        assert!(out.timers.is_empty());
        assert!(shopper.profile.changes.is_none());
    }

    #[test]
    fn profiles_can_be_turned_off() {
        let mut rules = RulesConfig::default();
        rules.profiles.enabled = false;
        let mut shopper = ShopperState::default();
        let ((), out) = run(minutes(0), &rules, |ctx| {
            on_event(
                "c1",
                &mut shopper,
                &viewed("e1", minutes(0), "A", &["women"]),
                ctx,
            )
        });
        assert!(out.timers.is_empty());
        assert_eq!(shopper.profile, ShopperProfile::default());
    }

    #[test]
    fn a_stale_timer_publishes_nothing() {
        let rules = RulesConfig::default();
        let mut state = Some(ShopperState::default());
        let ((), out) = run(minutes(5), &rules, |ctx| {
            on_timer("c1", &mut state, &publish_timer("c1", minutes(1)), ctx)
        });
        assert!(out.decisions.is_empty());
    }

    #[test]
    fn only_a_published_profile_gets_a_tombstone() {
        let rules = RulesConfig::default();
        let mut shopper = ShopperState::default();
        shopper.profile.publish_due = Some(minutes(1));
        let ((), out) = run(minutes(0), &rules, |ctx| {
            delete("a1", &shopper, None, "e9", ctx)
        });
        assert!(out.decisions.is_empty());
        assert_eq!(out.timers.len(), 1, "the pending publish is cancelled");
        shopper.profile.publishes = 1;
        let ((), out) = run(minutes(0), &rules, |ctx| {
            delete("a1", &shopper, None, "e9", ctx)
        });
        assert_eq!(out.decisions.len(), 1);
        assert!(out.decisions[0].is_tombstone());
        assert_eq!(out.decisions[0].record_key(), "a1");
        assert_eq!(out.decisions[0].customer_id, None);
    }
}
