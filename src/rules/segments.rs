//! Customer segments (CONTRACT §5.3): lifecycle, `high_value`, RFM groups,
//! `interest:<department>` and `cart_abandoner`, for identified shoppers.
//!
//! A shopper's segments are a function of their orders, their latest reminder, their
//! interests and stream time. They are recomputed after every input; a change emits one
//! `segment_changed` per segment left or entered. Time alone moves shoppers between
//! segments (an order ageing out of a window), so one timer per shopper is armed for
//! the next moment that can happen.

use super::{interests, profile, Ctx, Note};
use crate::config::SegmentsConfig;
use crate::decision::{decision_id, Decision, DecisionBody, LifecycleStage, Rfm, SegmentChange};
use crate::event::{Event, EventBody};
use crate::state::{OrderRecord, SegmentState, ShopperState};
use crate::time::{format_rfc3339, Millis};
use crate::timer::{Timer, TimerKind};
use std::collections::BTreeSet;

const DAY: Millis = 86_400_000;

/// What changed a shopper's segments: an input, or stream time reaching a boundary.
#[derive(Debug, Clone, Copy)]
pub enum Cause<'a> {
    Event(&'a str),
    /// An abandoned-cart reminder was sent (its `decision_id`).
    Reminder(&'a str),
    Time,
}

/// Where a shopper stands at one moment.
#[derive(Debug, PartialEq)]
pub struct Standing {
    pub segments: BTreeSet<String>,
    pub rfm: Option<Rfm>,
    /// The next moment time alone can change a segment.
    pub next_change: Option<Millis>,
}

fn reached<T: PartialOrd + Copy>(value: T, thresholds: &[T]) -> u8 {
    1 + thresholds.iter().filter(|t| value >= **t).count() as u8
}

/// The RFM group of R and F scores (CONTRACT §5.3's table).
pub fn rfm_group(r: u8, f: u8) -> &'static str {
    match (r, f) {
        (5, 4..) => "champions",
        (3..=4, 4..) => "loyal",
        (4..=5, 2..=3) => "potential_loyalist",
        (5, _) => "new",
        (4, _) => "promising",
        (3, 3) => "need_attention",
        (3, _) => "about_to_sleep",
        (..=2, 5..) => "cant_lose",
        (..=2, 3..=4) => "at_risk",
        _ => "hibernating",
    }
}

/// The shopper's segments at `now`. `preferred_department` comes from their interests.
pub fn standing(
    state: &SegmentState,
    preferred_department: Option<&str>,
    now: Millis,
    config: &SegmentsConfig,
) -> Standing {
    let mut segments = BTreeSet::new();
    let mut boundaries: Vec<Millis> = Vec::new();
    let window = config.value_window.millis();
    let in_window: Vec<&OrderRecord> = state
        .orders
        .iter()
        .filter(|o| now - o.at < window)
        .collect();
    boundaries.extend(in_window.iter().map(|o| o.at + window));
    let mut rfm = None;
    match (state.first_order_at, &state.last_order) {
        (Some(first), Some((last, _))) => {
            let (new_for, active_for, lapsed_after) = (
                config.new_for.millis(),
                config.active_for.millis(),
                config.lapsed_after.millis(),
            );
            let stage = if now - first < new_for {
                LifecycleStage::New
            } else if now - last < active_for {
                LifecycleStage::Active
            } else if now - last < lapsed_after {
                LifecycleStage::AtRisk
            } else {
                LifecycleStage::Lapsed
            };
            segments.insert(stage.segment());
            boundaries.extend([first + new_for, last + active_for, last + lapsed_after]);

            let since = now - last;
            let bands = config.rfm.recency_days.map(|d| Millis::from(d) * DAY);
            let r = 5 - bands.iter().filter(|b| since > **b).count() as u8;
            boundaries.extend(bands.iter().map(|b| last + b + 1));
            let f = reached(in_window.len() as u32, &config.rfm.frequency);
            let value: f64 = in_window.iter().map(|o| o.total).sum();
            let m = reached(value, &config.rfm.monetary);
            segments.insert(format!("rfm:{}", rfm_group(r, f)));
            rfm = Some(Rfm { r, f, m });
            if value >= config.high_value_total {
                segments.insert("high_value".to_string());
            }
        }
        _ => {
            segments.insert(LifecycleStage::Prospect.segment());
        }
    }
    if let Some(department) = preferred_department {
        segments.insert(format!("interest:{department}"));
    }
    if let Some(reminded) = state.last_reminder_at {
        let ordered_since = state
            .last_order
            .as_ref()
            .is_some_and(|(t, _)| *t >= reminded);
        let until = reminded + config.cart_abandoner_for.millis();
        if now < until && !ordered_since {
            segments.insert("cart_abandoner".to_string());
            boundaries.push(until);
        }
    }
    Standing {
        segments,
        rfm,
        next_change: boundaries.into_iter().filter(|b| *b > now).min(),
    }
}

/// Records an order in the shopper's segment state (kept within `value_window`).
fn record_order(
    state: &mut SegmentState,
    event: &Event,
    total: f64,
    now: Millis,
    config: &SegmentsConfig,
) {
    let at = event.occurred_at;
    let position = state.orders.partition_point(|o| o.at <= at);
    state.orders.insert(position, OrderRecord { at, total });
    forget_old_orders(state, now, config);
    state.first_order_at = Some(state.first_order_at.map_or(at, |f| f.min(at)));
    if state.last_order.as_ref().is_none_or(|(t, _)| at >= *t) {
        state.last_order = Some((at, event.event_id.clone()));
    }
}

fn forget_old_orders(state: &mut SegmentState, now: Millis, config: &SegmentsConfig) {
    let window = config.value_window.millis();
    state.orders.retain(|o| now - o.at < window);
    let excess = state.orders.len().saturating_sub(config.max_orders);
    state.orders.drain(..excess);
}

/// An input for the shopper keyed `key` was applied: record an order, then re-evaluate.
pub fn on_event(key: &str, shopper: &mut ShopperState, event: &Event, ctx: &mut Ctx) {
    let config = &ctx.rules.segments;
    if !config.enabled {
        return;
    }
    match &event.body {
        EventBody::OrderCompleted { total, .. } => record_order(
            &mut shopper.profile.segments,
            event,
            *total,
            ctx.now,
            config,
        ),
        // The anonymous history (orders too) is on its way: evaluate once it is here,
        // so a signing-in customer does not flicker through `lifecycle:prospect`.
        EventBody::SignedIn if event.anonymous_id.as_deref().is_some_and(|a| a != key) => {
            return;
        }
        _ => {}
    }
    evaluate(key, shopper, Cause::Event(&event.event_id), ctx);
}

/// An abandoned-cart reminder (`reminder_id`) was just sent to the shopper.
pub fn on_reminder_sent(key: &str, shopper: &mut ShopperState, reminder_id: &str, ctx: &mut Ctx) {
    if !ctx.rules.segments.enabled {
        return;
    }
    shopper.profile.segments.last_reminder_at = Some(ctx.now);
    evaluate(key, shopper, Cause::Reminder(reminder_id), ctx);
}

/// Sign-in, on the customer's task: the anonymous shopper's orders become the customer's.
pub fn on_absorb(
    key: &str,
    shopper: &mut ShopperState,
    anonymous: &SegmentState,
    event_id: &str,
    ctx: &mut Ctx,
) {
    let config = &ctx.rules.segments;
    if !config.enabled {
        return;
    }
    let mine = &mut shopper.profile.segments;
    mine.orders.extend(anonymous.orders.iter().cloned());
    mine.orders.sort_by_key(|o| o.at);
    forget_old_orders(mine, ctx.now, config);
    mine.first_order_at = match (mine.first_order_at, anonymous.first_order_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some((at, id)) = &anonymous.last_order {
        if mine.last_order.as_ref().is_none_or(|(t, _)| at > t) {
            mine.last_order = Some((*at, id.clone()));
        }
    }
    mine.last_reminder_at = mine.last_reminder_at.max(anonymous.last_reminder_at);
    shopper.last_order_at = shopper
        .last_order_at
        .max(anonymous.last_order.as_ref().map(|(t, _)| *t));
    evaluate(key, shopper, Cause::Event(event_id), ctx);
}

/// The segment timer fired: time may have moved the shopper between segments.
pub fn on_timer(key: &str, state: &mut Option<ShopperState>, timer: &Timer, ctx: &mut Ctx) {
    let Some(shopper) = state.as_mut() else {
        return;
    };
    if shopper.profile.segments.due != Some(timer.due) {
        return;
    }
    shopper.profile.segments.due = None;
    if ctx.rules.segments.enabled {
        forget_old_orders(&mut shopper.profile.segments, ctx.now, &ctx.rules.segments);
        evaluate(key, shopper, Cause::Time, ctx);
    }
}

pub fn timer(key: &str, due: Millis) -> Timer {
    Timer {
        due,
        kind: TimerKind::SegmentChange,
        key: key.to_string(),
    }
}

/// The shopper's segments now; `None` for an anonymous shopper (segments are for
/// identified shoppers only).
pub fn standing_now(shopper: &ShopperState, ctx: &Ctx) -> Option<Standing> {
    shopper.customer_id.as_ref()?;
    if !ctx.rules.segments.enabled {
        return None;
    }
    let preferred =
        interests::preferred_department(&shopper.profile, ctx.now, &ctx.rules.interests);
    Some(standing(
        &shopper.profile.segments,
        preferred.as_deref(),
        ctx.now,
        &ctx.rules.segments,
    ))
}

/// Recomputes the shopper's segments, emits what changed, re-arms the timer.
fn evaluate(key: &str, shopper: &mut ShopperState, cause: Cause, ctx: &mut Ctx) {
    let Some(now) = standing_now(shopper, ctx) else {
        return;
    };
    let state = &mut shopper.profile.segments;
    // Most evaluations change nothing: the segments are compared in place and only a
    // change is copied out.
    let mut exited: Vec<String> = state
        .current
        .iter()
        .filter(|s| !now.segments.contains(*s))
        .cloned()
        .collect();
    exited.sort_unstable();
    let entered: Vec<&String> = now
        .segments
        .iter()
        .filter(|s| !state.current.contains(s))
        .collect();
    let changed = !exited.is_empty() || !entered.is_empty();
    for (segment, change) in exited
        .iter()
        .map(|s| (s, SegmentChange::Exited))
        .chain(entered.into_iter().map(|s| (s, SegmentChange::Entered)))
    {
        state.changes += 1;
        if let Some(stage) = LifecycleStage::of(segment) {
            ctx.note(Note::Lifecycle(stage, change));
        }
        ctx.emit(segment_changed(key, segment, change, cause, state, ctx.now));
    }
    if changed {
        state.current = now.segments.into_iter().collect();
    }
    if state.due != now.next_change {
        if let Some(due) = state.due {
            ctx.cancel_timer(timer(key, due));
        }
        if let Some(due) = now.next_change {
            ctx.set_timer(timer(key, due));
        }
        state.due = now.next_change;
    }
    if changed {
        let evidence = match cause {
            Cause::Event(id) => format!("event {id}"),
            Cause::Reminder(id) => format!("reminder {id}"),
            Cause::Time => format!("segments at {}", format_rfc3339(ctx.now)),
        };
        profile::mark_changed(key, &mut shopper.profile, &evidence, ctx);
    }
}

fn segment_changed(
    key: &str,
    segment: &str,
    change: SegmentChange,
    cause: Cause,
    state: &SegmentState,
    now: Millis,
) -> Decision {
    let verb = match change {
        SegmentChange::Entered => "entered",
        SegmentChange::Exited => "exited",
    };
    let (evidence, because) = match cause {
        Cause::Event(id) => (id.to_string(), format!("after event {id}")),
        Cause::Reminder(id) => (
            id.to_string(),
            format!("after abandoned-cart reminder {id}"),
        ),
        Cause::Time => {
            let last_order = match &state.last_order {
                Some((at, id)) => format!("; last order: event {id} at {}", format_rfc3339(*at)),
                None => String::new(),
            };
            (
                "time".to_string(),
                format!("as stream time reached {}{last_order}", format_rfc3339(now)),
            )
        }
    };
    Decision {
        decision_id: decision_id(&[
            "segment_changed",
            key,
            segment,
            verb,
            &now.to_string(),
            &evidence,
            &state.changes.to_string(),
        ]),
        customer_id: Some(key.to_string()),
        decided_at: now,
        reason: format!("segment {segment} {verb} {because}"),
        body: DecisionBody::SegmentChanged {
            segment: segment.to_string(),
            change,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SegmentsConfig {
        SegmentsConfig::default()
    }

    fn with_orders(orders: &[(Millis, f64)]) -> SegmentState {
        let mut state = SegmentState::default();
        for (at, total) in orders {
            state.orders.push(OrderRecord {
                at: *at,
                total: *total,
            });
        }
        state.first_order_at = orders.iter().map(|o| o.0).min();
        state.last_order = orders.iter().map(|o| o.0).max().map(|t| (t, "o".into()));
        state
    }

    fn names(s: &Standing) -> Vec<&str> {
        s.segments.iter().map(String::as_str).collect()
    }

    #[test]
    fn lifecycle_moves_through_its_stages_at_exact_boundaries() {
        let c = config();
        let state = with_orders(&[(0, 10.0)]);
        let stage = |now| {
            standing(&state, None, now, &c)
                .segments
                .into_iter()
                .find(|s| s.starts_with("lifecycle:"))
                .unwrap()
        };
        assert_eq!(stage(0), "lifecycle:new");
        assert_eq!(stage(30 * DAY - 1), "lifecycle:new");
        assert_eq!(stage(30 * DAY), "lifecycle:active");
        assert_eq!(stage(90 * DAY), "lifecycle:at_risk");
        assert_eq!(stage(180 * DAY), "lifecycle:lapsed");
        assert_eq!(
            names(&standing(&SegmentState::default(), None, 0, &c)),
            ["lifecycle:prospect"]
        );
    }

    #[test]
    fn the_next_change_is_the_nearest_boundary() {
        let c = config();
        let state = with_orders(&[(0, 10.0)]);
        assert_eq!(standing(&state, None, 0, &c).next_change, Some(30 * DAY));
        // R drops from 5 to 4 just after 30 days: ≤ 30 days is still 5.
        assert_eq!(
            standing(&state, None, 30 * DAY, &c).next_change,
            Some(30 * DAY + 1)
        );
        assert_eq!(standing(&state, None, 30 * DAY, &c).rfm.unwrap().r, 5);
        assert_eq!(standing(&state, None, 30 * DAY + 1, &c).rfm.unwrap().r, 4);
    }

    #[test]
    fn rfm_scores_and_groups_follow_the_tables() {
        let c = config();
        // Six orders in the last month worth 1,200: R 5, F 5, M 5.
        let orders: Vec<(Millis, f64)> = (0..6).map(|i| (i * DAY, 200.0)).collect();
        let s = standing(&with_orders(&orders), None, 10 * DAY, &c);
        assert_eq!(s.rfm, Some(Rfm { r: 5, f: 5, m: 5 }));
        assert!(s.segments.contains("rfm:champions"));
        assert!(s.segments.contains("high_value"));
        // One order of 60 a year ago minus a day: R 1, F 1, M 2.
        let s = standing(&with_orders(&[(0, 60.0)]), None, 364 * DAY, &c);
        assert_eq!(s.rfm, Some(Rfm { r: 1, f: 1, m: 2 }));
        assert!(s.segments.contains("rfm:hibernating"));
        // Outside the value window: it no longer counts for F, M or high_value.
        let s = standing(&with_orders(&[(0, 600.0)]), None, 365 * DAY, &c);
        assert_eq!(s.rfm, Some(Rfm { r: 1, f: 1, m: 1 }));
        assert!(!s.segments.contains("high_value"));
    }

    #[test]
    fn every_r_and_f_has_a_group() {
        let expected = [
            ((5, 4), "champions"),
            ((5, 5), "champions"),
            ((4, 4), "loyal"),
            ((3, 5), "loyal"),
            ((4, 2), "potential_loyalist"),
            ((5, 3), "potential_loyalist"),
            ((5, 1), "new"),
            ((4, 1), "promising"),
            ((3, 3), "need_attention"),
            ((3, 1), "about_to_sleep"),
            ((3, 2), "about_to_sleep"),
            ((2, 5), "cant_lose"),
            ((1, 5), "cant_lose"),
            ((1, 3), "at_risk"),
            ((2, 4), "at_risk"),
            ((1, 1), "hibernating"),
            ((2, 2), "hibernating"),
        ];
        for ((r, f), group) in expected {
            assert_eq!(rfm_group(r, f), group, "R {r} F {f}");
        }
    }

    #[test]
    fn high_value_needs_the_total_within_the_window() {
        let c = config();
        let s = standing(&with_orders(&[(0, 300.0), (DAY, 199.99)]), None, DAY, &c);
        assert!(!s.segments.contains("high_value"));
        let s = standing(&with_orders(&[(0, 300.0), (DAY, 200.0)]), None, DAY, &c);
        assert!(s.segments.contains("high_value"));
    }

    #[test]
    fn cart_abandoner_lasts_seven_days_unless_an_order_follows() {
        let c = config();
        let mut state = SegmentState {
            last_reminder_at: Some(DAY),
            ..SegmentState::default()
        };
        assert!(standing(&state, None, DAY, &c)
            .segments
            .contains("cart_abandoner"));
        assert_eq!(standing(&state, None, DAY, &c).next_change, Some(8 * DAY));
        assert!(!standing(&state, None, 8 * DAY, &c)
            .segments
            .contains("cart_abandoner"));
        state.last_order = Some((2 * DAY, "o".into()));
        state.first_order_at = Some(2 * DAY);
        assert!(!standing(&state, None, 2 * DAY, &c)
            .segments
            .contains("cart_abandoner"));
    }

    #[test]
    fn the_preferred_department_is_a_segment() {
        let s = standing(&SegmentState::default(), Some("women"), 0, &config());
        assert_eq!(names(&s), ["interest:women", "lifecycle:prospect"]);
    }
}

/// The shopper's state is about to go (erasure): their lifecycle stage is left without
/// a decision (nothing is sent about an erased customer), so the counts stay true.
pub fn on_erased(shopper: &ShopperState, ctx: &mut Ctx) {
    for segment in &shopper.profile.segments.current {
        if let Some(stage) = LifecycleStage::of(segment) {
            ctx.note(Note::Lifecycle(stage, SegmentChange::Exited));
        }
    }
}

#[cfg(test)]
mod stage_count_tests {
    use super::*;
    use crate::config::RulesConfig;
    use crate::rules::testing::{event, run, T0};

    fn lifecycle_notes(notes: &[Note]) -> Vec<(LifecycleStage, SegmentChange)> {
        notes
            .iter()
            .filter_map(|n| match n {
                Note::Lifecycle(stage, change) => Some((*stage, *change)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stage_moves_and_erasure_are_noted_for_the_counts() {
        let rules = RulesConfig::default();
        let mut shopper = ShopperState {
            customer_id: Some("c1".into()),
            ..ShopperState::default()
        };
        let signed_up = event("e1", T0, Some("c1"), EventBody::SiteSelected);
        let (_, out) = run(T0, &rules, |ctx| {
            on_event("c1", &mut shopper, &signed_up, ctx)
        });
        assert_eq!(
            lifecycle_notes(&out.notes),
            [(LifecycleStage::Prospect, SegmentChange::Entered)]
        );

        let ordered = event(
            "e2",
            T0 + 1_000,
            Some("c1"),
            EventBody::OrderCompleted {
                order_id: "o1".into(),
                cart_id: None,
                items: Vec::new(),
                total: 10.0,
                currency: "EUR".into(),
            },
        );
        let (_, out) = run(T0 + 1_000, &rules, |ctx| {
            on_event("c1", &mut shopper, &ordered, ctx)
        });
        assert_eq!(
            lifecycle_notes(&out.notes),
            [
                (LifecycleStage::Prospect, SegmentChange::Exited),
                (LifecycleStage::New, SegmentChange::Entered)
            ]
        );

        // Erased: the stage is left without a word to anyone.
        let mut state = Some(shopper);
        let (_, out) = run(T0 + 2_000, &rules, |ctx| {
            super::super::consent::erase("c1", &mut state, "e3", ctx)
        });
        assert!(state.is_none());
        assert_eq!(
            lifecycle_notes(&out.notes),
            [(LifecycleStage::New, SegmentChange::Exited)]
        );
        assert!(out
            .decisions
            .iter()
            .all(|d| !matches!(d.body, DecisionBody::SegmentChanged { .. })));
    }
}
