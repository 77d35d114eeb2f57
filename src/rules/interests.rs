//! Interests and recently viewed (CONTRACT §5.1): decayed interest per category path,
//! the preferred department, the top categories, and the latest distinct SKU views.
//!
//! A path's interest is kept as a score and the event time it is valid at; reading it
//! later decays it (`score · 2^(−Δt / half_life)`). Adding a weight brings the score to
//! the later of the two times first, so the result does not depend on when it is read
//! and an out-of-order event adds exactly its decayed weight.

use crate::config::InterestsConfig;
use crate::state::{CategoryInterest, RecentView, ShopperProfile};
use crate::time::Millis;

/// `score`, valid at `from`, decayed to `to` (never grown: a `to` before `from` keeps it).
pub fn decayed(score: f64, from: Millis, to: Millis, half_life: Millis) -> f64 {
    if to <= from || half_life <= 0 {
        score
    } else {
        score * (-((to - from) as f64) / half_life as f64).exp2()
    }
}

/// A category path as the profile names it: components joined with `/`. `None` for a
/// missing or empty path.
pub fn path_of(category: Option<&[String]>) -> Option<String> {
    let components = category?;
    (!components.is_empty()).then(|| components.join("/"))
}

/// Adds `weight` to the interest in `path` at event time `at`; when the shopper then
/// has more paths than `max_categories`, the lowest-scoring one (at `now`) is dropped.
pub fn add(
    profile: &mut ShopperProfile,
    path: &str,
    weight: f64,
    at: Millis,
    now: Millis,
    config: &InterestsConfig,
) {
    if weight <= 0.0 {
        return;
    }
    let half_life = config.half_life.millis();
    match profile.interests.iter_mut().find(|i| i.path == path) {
        Some(interest) => accumulate(interest, weight, at, half_life),
        None => profile.interests.push(CategoryInterest {
            path: path.to_string(),
            score: weight,
            at,
        }),
    }
    trim(profile, now, config);
}

fn accumulate(interest: &mut CategoryInterest, weight: f64, at: Millis, half_life: Millis) {
    if at >= interest.at {
        interest.score = decayed(interest.score, interest.at, at, half_life) + weight;
        interest.at = at;
    } else {
        interest.score += decayed(weight, at, interest.at, half_life);
    }
}

/// Drops the lowest-scoring paths (at `now`) beyond `max_categories`. Of equal scores,
/// the one last added to longest ago goes, then the one kept longest.
fn trim(profile: &mut ShopperProfile, now: Millis, config: &InterestsConfig) {
    let half_life = config.half_life.millis();
    while profile.interests.len() > config.max_categories {
        let weakest = profile
            .interests
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| {
                let (sa, sb) = (
                    decayed(a.score, a.at, now, half_life),
                    decayed(b.score, b.at, now, half_life),
                );
                sa.total_cmp(&sb).then(a.at.cmp(&b.at))
            })
            .map(|(i, _)| i)
            .expect("more paths than the limit, so at least one");
        profile.interests.remove(weakest);
    }
}

/// Every kept path with its score at `now`.
fn scores_at<'a>(
    profile: &'a ShopperProfile,
    now: Millis,
    config: &InterestsConfig,
) -> impl Iterator<Item = (&'a str, f64)> {
    let half_life = config.half_life.millis();
    profile
        .interests
        .iter()
        .map(move |i| (i.path.as_str(), decayed(i.score, i.at, now, half_life)))
}

/// Whether `path` is `prefix` or lies under it, component by component.
pub fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The score of a prefix (a department, or any path): the sum of the kept paths under it.
pub fn prefix_score(
    profile: &ShopperProfile,
    prefix: &str,
    now: Millis,
    config: &InterestsConfig,
) -> f64 {
    scores_at(profile, now, config)
        .filter(|(path, _)| is_under(path, prefix))
        .map(|(_, score)| score)
        .sum()
}

/// The interest in a product's category `path`: the kept paths on its line, the path
/// itself, its ancestors (a department viewed as a whole) and its descendants.
pub fn path_score(
    profile: &ShopperProfile,
    path: &str,
    now: Millis,
    config: &InterestsConfig,
) -> f64 {
    scores_at(profile, now, config)
        .filter(|(kept, _)| is_under(kept, path) || is_under(path, kept))
        .map(|(_, score)| score)
        .sum()
}

/// The top-level category with the highest score, when it reaches `min_score`; ties go
/// to the alphabetically first.
pub fn preferred_department(
    profile: &ShopperProfile,
    now: Millis,
    config: &InterestsConfig,
) -> Option<String> {
    // A shopper has a few departments: a list beats a map, and this runs on every event
    // of an identified shopper (their `interest:` segment).
    let mut departments: Vec<(&str, f64)> = Vec::new();
    for (path, score) in scores_at(profile, now, config) {
        let department = path.split('/').next().unwrap_or(path);
        match departments.iter_mut().find(|(name, _)| *name == department) {
            Some((_, sum)) => *sum += score,
            None => departments.push((department, score)),
        }
    }
    let mut best: Option<(&str, f64)> = None;
    for (department, score) in departments {
        let better = best.is_none_or(|(name, top)| {
            score
                .total_cmp(&top)
                .then_with(|| name.cmp(department))
                .is_gt()
        });
        if better {
            best = Some((department, score));
        }
    }
    best.filter(|(_, score)| *score >= config.min_score)
        .map(|(department, _)| department.to_string())
}

/// Up to `top_n` kept paths by score at `now`, highest first (ties alphabetically),
/// scores rounded to 3 decimals.
pub fn top_categories(
    profile: &ShopperProfile,
    now: Millis,
    config: &InterestsConfig,
) -> Vec<(String, f64)> {
    let mut all: Vec<(&str, f64)> = scores_at(profile, now, config).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    all.into_iter()
        .take(config.top_n)
        .map(|(path, score)| (path.to_string(), round3(score)))
        .collect()
}

pub fn round3(x: f64) -> f64 {
    super::popularity::round(x * 1000.0) / 1000.0
}

/// Records a view of `sku` at `at`: newest first, each SKU once, at most `recent_max`.
pub fn view(profile: &mut ShopperProfile, sku: &str, at: Millis, config: &InterestsConfig) {
    let views = &mut profile.recent_views;
    let at = match views.iter().position(|v| v.sku == sku) {
        Some(i) => views.remove(i).at.max(at),
        None => at,
    };
    // Newest first; of views with equal times, the one applied last goes in front.
    let position = views.iter().position(|v| v.at <= at).unwrap_or(views.len());
    views.insert(
        position,
        RecentView {
            sku: sku.to_string(),
            at,
        },
    );
    views.truncate(config.recent_max);
}

/// Sign-in: the anonymous shopper's interests (scores added, each path brought to the
/// later of the two times) and views join the customer's.
pub fn merge(
    customer: &mut ShopperProfile,
    anonymous: &ShopperProfile,
    now: Millis,
    config: &InterestsConfig,
) {
    let half_life = config.half_life.millis();
    for incoming in &anonymous.interests {
        match customer
            .interests
            .iter_mut()
            .find(|i| i.path == incoming.path)
        {
            Some(interest) => accumulate(interest, incoming.score, incoming.at, half_life),
            None => customer.interests.push(incoming.clone()),
        }
    }
    trim(customer, now, config);
    // Oldest first (the list is newest first), so each SKU keeps its newest view and
    // newer views end up in front.
    for v in anonymous.recent_views.iter().rev() {
        view(customer, &v.sku, v.at, config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    const DAY: Millis = 86_400_000;

    fn config() -> InterestsConfig {
        InterestsConfig::default()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_path_scores_the_kept_paths_on_its_line() {
        let c = config();
        let mut p = ShopperProfile::default();
        add(&mut p, "women", 1.0, 0, 0, &c);
        add(&mut p, "women/dresses", 2.0, 0, 0, &c);
        add(&mut p, "women/dresses/maxi", 4.0, 0, 0, &c);
        add(&mut p, "women/shoes", 8.0, 0, 0, &c);
        add(&mut p, "womenswear", 16.0, 0, 0, &c);
        assert!(close(path_score(&p, "women/dresses", 0, &c), 7.0));
        assert!(close(path_score(&p, "women/dresses/maxi", 0, &c), 7.0));
        assert!(close(path_score(&p, "men/shirts", 0, &c), 0.0));
    }

    #[test]
    fn a_score_halves_every_half_life() {
        let h = 14 * DAY;
        assert!(close(decayed(8.0, 0, h, h), 4.0));
        assert!(close(decayed(8.0, 0, 3 * h, h), 1.0));
        assert!(close(decayed(8.0, 5, 5, h), 8.0));
        // Never grows backwards in time.
        assert!(close(decayed(8.0, h, 0, h), 8.0));
        // A very long gap decays to (nearly) nothing without overflow.
        assert!(decayed(8.0, 0, 10_000 * h, h) >= 0.0);
    }

    #[test]
    fn weights_add_after_decay_and_late_events_add_their_decayed_weight() {
        let c = config();
        let h = c.half_life.millis();
        let mut p = ShopperProfile::default();
        add(&mut p, "women/dresses", 4.0, 0, 0, &c);
        add(&mut p, "women/dresses", 1.0, h, h, &c);
        assert!(close(p.interests[0].score, 3.0));
        assert_eq!(p.interests[0].at, h);
        // An event from before the latest: its weight decayed to the latest time.
        add(&mut p, "women/dresses", 2.0, 0, h, &c);
        assert!(close(p.interests[0].score, 4.0));
        assert_eq!(p.interests[0].at, h);
    }

    #[test]
    fn order_of_arrival_does_not_change_the_score() {
        let c = config();
        let events = [(3.0, 0), (1.0, DAY), (4.0, 5 * DAY), (1.0, 2 * DAY)];
        let mut forward = ShopperProfile::default();
        for (w, at) in events {
            add(&mut forward, "a", w, at, 6 * DAY, &c);
        }
        let mut backward = ShopperProfile::default();
        for (w, at) in events.iter().rev() {
            add(&mut backward, "a", *w, *at, 6 * DAY, &c);
        }
        let now = 6 * DAY;
        assert!(close(
            prefix_score(&forward, "a", now, &c),
            prefix_score(&backward, "a", now, &c)
        ));
    }

    #[test]
    fn when_full_the_lowest_scoring_path_is_dropped() {
        let c = InterestsConfig {
            max_categories: 2,
            ..config()
        };
        let mut p = ShopperProfile::default();
        add(&mut p, "a", 5.0, 0, 0, &c);
        add(&mut p, "b", 1.0, 0, 0, &c);
        add(&mut p, "c", 3.0, 0, 0, &c);
        let kept: Vec<&str> = p.interests.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(kept, ["a", "c"]);
        // Scores are compared at `now`: an old strong interest can lose to a fresh one.
        let h = c.half_life.millis();
        add(&mut p, "d", 2.0, 3 * h, 3 * h, &c);
        let kept: Vec<&str> = p.interests.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(kept, ["a", "d"], "a = 5/8, c = 3/8, d = 2");
    }

    #[test]
    fn a_prefix_sums_the_paths_under_it_component_by_component() {
        let c = config();
        let mut p = ShopperProfile::default();
        add(&mut p, "women/dresses/maxi", 2.0, 0, 0, &c);
        add(&mut p, "women/dresses", 1.0, 0, 0, &c);
        add(&mut p, "women/dressesx", 4.0, 0, 0, &c);
        add(&mut p, "men", 0.5, 0, 0, &c);
        assert!(close(prefix_score(&p, "women/dresses", 0, &c), 3.0));
        assert!(close(prefix_score(&p, "women", 0, &c), 7.0));
        assert!(close(prefix_score(&p, "women/dresses/maxi", 0, &c), 2.0));
        assert!(close(prefix_score(&p, "wom", 0, &c), 0.0));
    }

    #[test]
    fn the_preferred_department_needs_the_minimum_and_ties_go_alphabetically() {
        let c = config();
        let mut p = ShopperProfile::default();
        add(&mut p, "men/shirts", 2.0, 0, 0, &c);
        assert_eq!(preferred_department(&p, 0, &c), None, "2 < min_score 3");
        add(&mut p, "men", 1.0, 0, 0, &c);
        add(&mut p, "women/dresses", 3.0, 0, 0, &c);
        assert_eq!(preferred_department(&p, 0, &c).as_deref(), Some("men"));
        add(&mut p, "women/shoes", 0.5, 0, 0, &c);
        assert_eq!(preferred_department(&p, 0, &c).as_deref(), Some("women"));
        // Decay alone can take it below the minimum.
        let h = c.half_life.millis();
        assert_eq!(preferred_department(&p, 2 * h, &c), None);
    }

    #[test]
    fn top_categories_are_ranked_rounded_and_capped() {
        let c = InterestsConfig {
            top_n: 2,
            half_life: Dur(std::time::Duration::from_secs(14 * 86_400)),
            ..config()
        };
        let mut p = ShopperProfile::default();
        add(&mut p, "b", 1.0, 0, 0, &c);
        add(&mut p, "a", 1.0, 0, 0, &c);
        add(&mut p, "c", 2.0 / 3.0, 0, 0, &c);
        add(&mut p, "d", 0.1, 0, 0, &c);
        assert_eq!(
            top_categories(&p, 0, &c),
            vec![("a".to_string(), 1.0), ("b".to_string(), 1.0)]
        );
        let c3 = InterestsConfig { top_n: 3, ..c };
        assert_eq!(top_categories(&p, 0, &c3)[2], ("c".to_string(), 0.667));
    }

    #[test]
    fn recent_views_are_distinct_newest_first_and_capped() {
        let c = InterestsConfig {
            recent_max: 3,
            ..config()
        };
        let mut p = ShopperProfile::default();
        for (sku, at) in [("A", 1), ("B", 2), ("C", 3), ("A", 4), ("D", 5)] {
            view(&mut p, sku, at, &c);
        }
        let skus: Vec<&str> = p.recent_views.iter().map(|v| v.sku.as_str()).collect();
        assert_eq!(skus, ["D", "A", "C"]);
        // A late view lands where its time says (in front of views of the same time),
        // or falls off the end.
        view(&mut p, "E", 4, &c);
        let skus: Vec<&str> = p.recent_views.iter().map(|v| v.sku.as_str()).collect();
        assert_eq!(skus, ["D", "E", "A"]);
        view(&mut p, "F", 0, &c);
        assert!(!p.recent_views.iter().any(|v| v.sku == "F"));
    }

    #[test]
    fn merging_adds_scores_and_interleaves_views() {
        let c = config();
        let h = c.half_life.millis();
        let mut customer = ShopperProfile::default();
        add(&mut customer, "women", 2.0, 0, 0, &c);
        view(&mut customer, "A", 10, &c);
        view(&mut customer, "B", 30, &c);
        let mut anonymous = ShopperProfile::default();
        add(&mut anonymous, "women", 4.0, h, h, &c);
        add(&mut anonymous, "men", 1.0, h, h, &c);
        view(&mut anonymous, "C", 20, &c);
        view(&mut anonymous, "A", 40, &c);
        merge(&mut customer, &anonymous, h, &c);
        assert!(close(prefix_score(&customer, "women", h, &c), 5.0));
        assert!(close(prefix_score(&customer, "men", h, &c), 1.0));
        let skus: Vec<&str> = customer
            .recent_views
            .iter()
            .map(|v| v.sku.as_str())
            .collect();
        assert_eq!(skus, ["A", "B", "C"]);
    }

    #[test]
    fn paths_join_components_and_ignore_empty_ones() {
        let path = vec!["women".to_string(), "dresses".to_string()];
        assert_eq!(path_of(Some(&path)).as_deref(), Some("women/dresses"));
        assert_eq!(path_of(Some(&[])), None);
        assert_eq!(path_of(None), None);
    }
}
