//! Popularity, trending and conversion of a SKU (CONTRACT §5.4), from decayed counts.
//!
//! A decayed count is kept as a value and the event time it holds at; adding a weight
//! first brings the value to the later of the two times, so a late message adds exactly
//! its decayed weight and reading the count never depends on when it was last touched.

use super::interests::decayed;
use crate::config::RulesConfig;
use crate::decision::Popularity;
use crate::state::{Decayed, ProductActivity};
use crate::time::Millis;

const HOUR: Millis = 3_600_000;
/// Adobe's trending: a 24-hour foreground against a 72-hour background.
pub const FOREGROUND_HALF_LIFE: Millis = 24 * HOUR;
pub const BACKGROUND_HALF_LIFE: Millis = 72 * HOUR;

/// Adds `weight` at event time `at` to a count that halves every `half_life`.
pub fn add(count: &mut Decayed, weight: f64, at: Millis, half_life: Millis) {
    if count.value == 0.0 && count.at == 0 {
        *count = Decayed { value: weight, at };
    } else if at >= count.at {
        count.value = decayed(count.value, count.at, at, half_life) + weight;
        count.at = at;
    } else {
        count.value += decayed(weight, at, count.at, half_life);
    }
}

/// The count at `now`.
pub fn value_at(count: Decayed, now: Millis, half_life: Millis) -> f64 {
    decayed(count.value, count.at, now, half_life)
}

/// Published numbers carry four decimals: enough to rank by, and a record does not
/// change for noise in the last bits.
pub fn round4(x: f64) -> f64 {
    round(x * 10_000.0) / 10_000.0
}

/// `f64::round` (halves away from zero), without its library call: the default x86-64
/// target has no rounding instruction, and a product record rounds a score for every
/// neighbour it ranks.
pub fn round(x: f64) -> f64 {
    // From 2^52 on every f64 is an integer; NaN and the infinities stay as they are.
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let truncated = x as i64 as f64;
    // Exact: the bits of `x` below its units.
    let fraction = x - truncated;
    let rounded = if fraction >= 0.5 {
        truncated + 1.0
    } else if fraction <= -0.5 {
        truncated - 1.0
    } else {
        truncated
    };
    // A negative number that rounds to zero is -0, as `f64::round` makes it.
    rounded.copysign(x)
}

pub fn on_view(activity: &mut ProductActivity, at: Millis, rules: &RulesConfig) {
    let popularity = rules.products.popularity_half_life.millis();
    add(&mut activity.views, 1.0, at, popularity);
    add(&mut activity.views_24h, 1.0, at, FOREGROUND_HALF_LIFE);
    add(&mut activity.views_72h, 1.0, at, BACKGROUND_HALF_LIFE);
    add(
        &mut activity.long_views,
        1.0,
        at,
        rules.recs.half_life.millis(),
    );
}

pub fn on_cart_add(activity: &mut ProductActivity, at: Millis, rules: &RulesConfig) {
    let popularity = rules.products.popularity_half_life.millis();
    add(&mut activity.cart_adds, 1.0, at, popularity);
}

/// One order bought `units` of the SKU.
pub fn on_purchase(activity: &mut ProductActivity, units: u32, at: Millis, rules: &RulesConfig) {
    let popularity = rules.products.popularity_half_life.millis();
    add(&mut activity.purchases, f64::from(units), at, popularity);
    add(
        &mut activity.long_orders,
        1.0,
        at,
        rules.recs.half_life.millis(),
    );
}

pub fn popularity(activity: &ProductActivity, now: Millis, rules: &RulesConfig) -> Popularity {
    let half_life = rules.products.popularity_half_life.millis();
    Popularity {
        views_7d: round4(value_at(activity.views, now, half_life)),
        purchases_7d: round4(value_at(activity.purchases, now, half_life)),
        cart_adds_7d: round4(value_at(activity.cart_adds, now, half_life)),
    }
}

/// `fg / (bg / 3 + 1)`, and 0 while the foreground is below `trending_min_views`.
pub fn trending_score(activity: &ProductActivity, now: Millis, rules: &RulesConfig) -> f64 {
    let foreground = value_at(activity.views_24h, now, FOREGROUND_HALF_LIFE);
    if foreground < rules.products.trending_min_views {
        return 0.0;
    }
    let background = value_at(activity.views_72h, now, BACKGROUND_HALF_LIFE);
    round4(foreground / (background / 3.0 + 1.0))
}

/// `(view_to_purchase, view_to_cart)`; both `None` while views are below
/// `products.conversion_min_views`.
pub fn conversion(
    activity: &ProductActivity,
    now: Millis,
    rules: &RulesConfig,
) -> (Option<f64>, Option<f64>) {
    let half_life = rules.products.popularity_half_life.millis();
    let views = value_at(activity.views, now, half_life);
    if views < rules.products.conversion_min_views || views <= 0.0 {
        return (None, None);
    }
    let purchases = value_at(activity.purchases, now, half_life);
    let cart_adds = value_at(activity.cart_adds, now, half_life);
    (
        Some(round4(purchases / views)),
        Some(round4(cart_adds / views)),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_is_f64_round(bits in any::<u64>(), small in -1e7f64..1e7) {
            // NaN is checked below: its payload is not part of the promise.
            let any = Some(f64::from_bits(bits)).filter(|x| !x.is_nan());
            for x in any.into_iter().chain([small, small.trunc() + 0.5, small.trunc() - 0.5]) {
                prop_assert_eq!(round(x).to_bits(), x.round().to_bits(), "{}", x);
            }
        }
    }

    #[test]
    fn round_handles_the_edges_as_f64_round() {
        let edges = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            0.49999999999999994,
            -0.49999999999999994,
            1.5,
            2.5,
            -2.5,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            9.3e18,
            -9.3e18,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for x in edges {
            assert_eq!(round(x).to_bits(), x.round().to_bits(), "{x}");
        }
        assert!(round(f64::NAN).is_nan());
    }

    use super::*;

    const DAY: Millis = 24 * HOUR;
    const T: Millis = 1_767_225_600_000;

    fn rules() -> RulesConfig {
        RulesConfig::default()
    }

    #[test]
    fn a_count_halves_every_half_life_exactly() {
        let mut count = Decayed::default();
        add(&mut count, 8.0, T, DAY);
        assert_eq!(value_at(count, T, DAY), 8.0);
        assert_eq!(value_at(count, T + DAY, DAY), 4.0);
        assert_eq!(value_at(count, T + 3 * DAY, DAY), 1.0);
        assert!((value_at(count, T + DAY / 2, DAY) - 8.0 / 2f64.sqrt()).abs() < 1e-12);
        // Reading before the count's time never grows it.
        assert_eq!(value_at(count, T - DAY, DAY), 8.0);
    }

    #[test]
    fn weights_added_in_any_order_sum_to_the_same_decayed_count() {
        let times = [T, T + 5 * HOUR, T + DAY, T + 3 * HOUR];
        let mut in_order = Decayed::default();
        let mut sorted = times;
        sorted.sort();
        for t in sorted {
            add(&mut in_order, 1.0, t, DAY);
        }
        let mut shuffled = Decayed::default();
        for t in times {
            add(&mut shuffled, 1.0, t, DAY);
        }
        let now = T + 2 * DAY;
        let exact: f64 = times
            .iter()
            .map(|t| (-((now - t) as f64) / DAY as f64).exp2())
            .sum();
        assert!((value_at(in_order, now, DAY) - exact).abs() < 1e-12);
        assert!((value_at(shuffled, now, DAY) - exact).abs() < 1e-12);
    }

    #[test]
    fn a_long_gap_decays_to_nothing_without_underflow_trouble() {
        let mut count = Decayed::default();
        add(&mut count, 1.0, T, HOUR);
        let years_later = T + 3 * 365 * DAY;
        assert_eq!(value_at(count, years_later, HOUR), 0.0);
        add(&mut count, 1.0, years_later, HOUR);
        assert_eq!(value_at(count, years_later, HOUR), 1.0);
        // A weight far older than the count adds (almost) nothing.
        add(&mut count, 1.0, T, HOUR);
        assert_eq!(value_at(count, years_later, HOUR), 1.0);
    }

    #[test]
    fn popularity_reports_the_counts_at_the_given_time() {
        let rules = rules();
        let mut activity = ProductActivity::default();
        for _ in 0..4 {
            on_view(&mut activity, T, &rules);
        }
        on_cart_add(&mut activity, T, &rules);
        on_purchase(&mut activity, 3, T, &rules);
        let now = T + 7 * DAY / 2; // one 3.5-day half-life
        assert_eq!(
            popularity(&activity, now, &rules),
            Popularity {
                views_7d: 2.0,
                purchases_7d: 1.5,
                cart_adds_7d: 0.5
            }
        );
        assert_eq!(value_at(activity.long_orders, T, DAY), 1.0);
    }

    #[test]
    fn trending_is_the_foreground_over_a_third_of_the_background_plus_one() {
        let rules = rules();
        let mut activity = ProductActivity::default();
        for _ in 0..4 {
            on_view(&mut activity, T, &rules);
        }
        // Below trending_min_views (5): no score.
        assert_eq!(trending_score(&activity, T, &rules), 0.0);
        for _ in 0..8 {
            on_view(&mut activity, T, &rules);
        }
        // fg = bg = 12: 12 / (4 + 1).
        assert_eq!(trending_score(&activity, T, &rules), 2.4);
        // A day later: fg 6, bg 12·2^(-1/3).
        let later = T + DAY;
        let bg = 12.0 * (-1.0f64 / 3.0).exp2();
        assert_eq!(
            trending_score(&activity, later, &rules),
            round4(6.0 / (bg / 3.0 + 1.0))
        );
        // Two days later fg is 3, under the minimum again.
        assert_eq!(trending_score(&activity, T + 2 * DAY, &rules), 0.0);
    }

    #[test]
    fn conversion_needs_twenty_views() {
        let rules = rules();
        let mut activity = ProductActivity::default();
        for _ in 0..19 {
            on_view(&mut activity, T, &rules);
        }
        on_purchase(&mut activity, 2, T, &rules);
        on_cart_add(&mut activity, T, &rules);
        assert_eq!(conversion(&activity, T, &rules), (None, None));
        on_view(&mut activity, T, &rules);
        assert_eq!(conversion(&activity, T, &rules), (Some(0.1), Some(0.05)));
    }
}
