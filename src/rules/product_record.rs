//! The product record (CONTRACT §5.4): what changes it, when it is published, and what
//! it shows. As with profiles, the first change after a publish arms a timer
//! `products.publish_interval` of stream time ahead, and the record as it is when the
//! timer fires goes out: at most one record per SKU per interval, always the latest.

use super::{cooccurrence, popularity, Ctx};
use crate::decision::{decision_id, Decision, DecisionBody, ProductRecord, RankingBasis};
use crate::event::Product;
use crate::state::{NeighbourKind, ProductActivity, ProductInfo, ProductState};
use crate::time::{format_rfc3339, Millis};
use crate::timer::{Timer, TimerKind};

/// The SKU's activity, created on first use; `None` while the product side is off.
pub fn activity<'a>(state: &'a mut ProductState, ctx: &Ctx) -> Option<&'a mut ProductActivity> {
    ctx.rules
        .products
        .enabled
        .then(|| &mut **state.activity.get_or_insert_with(Default::default))
}

/// Something happened to the SKU at event time `at` (`evidence` names it): it is seen,
/// perhaps for the first time, and its record is due for publishing.
pub fn touched(
    sku: &str,
    activity: &mut ProductActivity,
    at: Millis,
    evidence: &str,
    ctx: &mut Ctx,
) {
    if activity.first_seen.is_none_or(|first| at < first) {
        activity.first_seen = Some(at);
        let ends = at.saturating_add(ctx.rules.products.new_arrival_for.millis());
        if let Some(armed) = activity.arrival_ends_armed.take() {
            ctx.cancel_timer(timer(sku, armed, TimerKind::NewArrivalEnds));
        }
        if ends > ctx.now {
            activity.arrival_ends_armed = Some(ends);
            ctx.set_timer(timer(sku, ends, TimerKind::NewArrivalEnds));
        }
    }
    mark_changed(sku, activity, evidence, ctx);
}

/// Takes product details seen at event time `at`, unless later ones are known already.
pub fn take_details(state: &mut ProductState, product: &ProductInfo, at: Millis, ctx: &Ctx) {
    let Some(activity) = activity(state, ctx) else {
        return;
    };
    if activity.details_at.is_some_and(|known| at < known) {
        return;
    }
    activity.details_at = Some(at);
    if state.details.as_ref() != Some(product) {
        state.details = Some(product.clone());
    }
}

fn mark_changed(sku: &str, activity: &mut ProductActivity, evidence: &str, ctx: &mut Ctx) {
    match &mut activity.changes {
        Some((_, last, _)) if last == evidence => {}
        Some((_, last, count)) => {
            *last = evidence.to_string();
            *count = count.saturating_add(1);
        }
        None => activity.changes = Some((evidence.to_string(), evidence.to_string(), 1)),
    }
    if activity.publish_due.is_none() {
        let due = ctx.now + ctx.rules.products.publish_interval.millis();
        activity.publish_due = Some(due);
        ctx.set_timer(timer(sku, due, TimerKind::ProductPublish));
    }
}

fn timer(sku: &str, due: Millis, kind: TimerKind) -> Timer {
    Timer {
        due,
        kind,
        key: sku.to_string(),
    }
}

/// A product timer fired: publish the record, or note that `new_arrival` ended.
pub fn on_timer(sku: &str, state: &mut ProductState, fired: &Timer, ctx: &mut Ctx) {
    let Some(activity) = state.activity.as_deref_mut() else {
        return;
    };
    match fired.kind {
        TimerKind::NewArrivalEnds if activity.arrival_ends_armed == Some(fired.due) => {
            activity.arrival_ends_armed = None;
            let evidence = format!("new_arrival ended at {}", format_rfc3339(fired.due));
            mark_changed(sku, activity, &evidence, ctx);
        }
        TimerKind::ProductPublish if activity.publish_due == Some(fired.due) => {
            activity.publish_due = None;
            let Some((first, last, count)) = activity.changes.take() else {
                return;
            };
            activity.publishes += 1;
            let publishes = activity.publishes;
            let reason = if count == 1 {
                format!("product changed by {first}")
            } else {
                format!(
                    "product changed {count} times since the last publish: by {first} … by {last}"
                )
            };
            let record = record(sku, state, ctx);
            ctx.emit(Decision {
                decision_id: decision_id(&[
                    "product",
                    sku,
                    &ctx.now.to_string(),
                    &publishes.to_string(),
                ]),
                customer_id: None,
                decided_at: ctx.now,
                reason,
                body: DecisionBody::Product(std::sync::Arc::new(record)),
            });
        }
        _ => {}
    }
}

/// The SKU's record at stream time.
pub fn record(sku: &str, state: &ProductState, ctx: &Ctx) -> ProductRecord {
    let now = ctx.now;
    let (rules, recs) = (ctx.rules, &ctx.rules.recs);
    let empty = ProductActivity::default();
    let activity = state.activity.as_deref().unwrap_or(&empty);
    let product = state.details.as_ref().map(Product::from);
    let trending_score = popularity::trending_score(activity, now, rules);
    let (view_to_purchase, view_to_cart) = popularity::conversion(activity, now, rules);
    let half_life = recs.half_life.millis();
    let mut record = ProductRecord {
        sku: sku.to_string(),
        product,
        quantity: state.quantity,
        segments: Vec::new(),
        popularity: popularity::popularity(activity, now, rules),
        trending_score,
        view_to_purchase,
        view_to_cart,
        viewed_with: cooccurrence::ranked(
            activity,
            NeighbourKind::ViewedWith,
            now,
            recs,
            ctx.catalog,
        ),
        bought_with: cooccurrence::ranked(
            activity,
            NeighbourKind::BoughtWith,
            now,
            recs,
            ctx.catalog,
        ),
        viewed_then_bought: cooccurrence::ranked(
            activity,
            NeighbourKind::ViewedThenBought,
            now,
            recs,
            ctx.catalog,
        ),
        ranking_basis: RankingBasis {
            views: popularity::round4(popularity::value_at(activity.long_views, now, half_life)),
            orders: popularity::round4(popularity::value_at(activity.long_orders, now, half_life)),
        },
    };
    record.segments = segments(&record, activity, ctx);
    record
}

/// `low_stock`, `new_arrival`, `out_of_stock`, `trending`: sorted by name.
fn segments(record: &ProductRecord, activity: &ProductActivity, ctx: &Ctx) -> Vec<String> {
    let products = &ctx.rules.products;
    let mut segments = Vec::new();
    match record.quantity {
        Some(0) => segments.push("out_of_stock"),
        Some(q) if q <= products.low_stock_at => segments.push("low_stock"),
        _ => {}
    }
    if activity
        .first_seen
        .is_some_and(|first| ctx.now < first.saturating_add(products.new_arrival_for.millis()))
    {
        segments.push("new_arrival");
    }
    if let Some(department) = record.department() {
        if ctx.catalog.is_top_trending(
            department,
            &record.sku,
            record.trending_score,
            products.trending_top,
        ) {
            segments.push("trending");
        }
    }
    segments.sort_unstable();
    segments.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RulesConfig;
    use crate::rules::testing::{minutes, run};
    use crate::timer::TimerOp;

    const DAY: Millis = 86_400_000;

    fn armed(ops: &[TimerOp]) -> Vec<(TimerKind, Millis)> {
        ops.iter()
            .filter_map(|op| match op {
                TimerOp::Set(t) => Some((t.kind, t.due)),
                TimerOp::Cancel(_) => None,
            })
            .collect()
    }

    #[test]
    fn the_first_change_arms_one_publish_and_the_end_of_new_arrival() {
        let rules = RulesConfig::default();
        let mut activity = ProductActivity::default();
        let (_, out) = run(minutes(0), &rules, |ctx| {
            touched("S1", &mut activity, minutes(0), "event e1", ctx);
            touched("S1", &mut activity, minutes(0), "event e2", ctx);
        });
        assert_eq!(
            armed(&out.timers),
            vec![
                (TimerKind::NewArrivalEnds, minutes(0) + 14 * DAY),
                (TimerKind::ProductPublish, minutes(0) + 5_000),
            ]
        );
        assert_eq!(
            activity.changes,
            Some(("event e1".into(), "event e2".into(), 2))
        );
    }

    #[test]
    fn an_earlier_first_sighting_moves_the_end_of_new_arrival() {
        let rules = RulesConfig::default();
        let mut activity = ProductActivity::default();
        run(minutes(60), &rules, |ctx| {
            touched("S1", &mut activity, minutes(60), "event late", ctx)
        });
        let (_, out) = run(minutes(60), &rules, |ctx| {
            touched("S1", &mut activity, minutes(0), "event early", ctx)
        });
        assert_eq!(activity.first_seen, Some(minutes(0)));
        assert!(out.timers.contains(&TimerOp::Cancel(Timer {
            due: minutes(60) + 14 * DAY,
            kind: TimerKind::NewArrivalEnds,
            key: "S1".into(),
        })));
        assert_eq!(activity.arrival_ends_armed, Some(minutes(0) + 14 * DAY));
    }

    #[test]
    fn a_publish_timer_that_is_not_the_armed_one_does_nothing() {
        let rules = RulesConfig::default();
        let mut state = ProductState::default();
        run(minutes(0), &rules, |ctx| {
            let activity = activity(&mut state, ctx).unwrap();
            touched("S1", activity, minutes(0), "event e1", ctx);
        });
        let stale = Timer {
            due: minutes(0) + 1,
            kind: TimerKind::ProductPublish,
            key: "S1".into(),
        };
        let (_, out) = run(minutes(1), &rules, |ctx| {
            on_timer("S1", &mut state, &stale, ctx)
        });
        assert!(out.decisions.is_empty());
        let due = Timer {
            due: minutes(0) + 5_000,
            ..stale
        };
        let (_, out) = run(due.due, &rules, |ctx| on_timer("S1", &mut state, &due, ctx));
        assert_eq!(out.decisions.len(), 1);
        assert_eq!(out.decisions[0].reason, "product changed by event e1");
        assert_eq!(out.decisions[0].record_key(), "S1");
    }
}
