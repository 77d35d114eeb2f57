//! Site suggestion (CONTRACT §5.2): the shopper's site, and the site that serves the
//! country they browse from when that is another one.

use crate::config::SiteConfig;
use crate::event::{Event, EventBody};
use crate::state::{ShopperProfile, SiteChoice};
use crate::time::Millis;
use std::collections::BTreeMap;

/// Takes the event's `site` and `country` when it is at least as new as the ones held;
/// `site_selected` stops suggestions until the country changes. Returns whether the
/// profile changed.
pub fn on_event(profile: &mut ShopperProfile, event: &Event) -> bool {
    let at = event.occurred_at;
    let mut changed = false;
    if let Some(country) = &event.country {
        changed |= take_newer(&mut profile.country, country, at);
    }
    let current_country = profile.country.as_ref().map(|(c, _)| c.clone());
    if profile
        .site_choice
        .as_ref()
        .is_some_and(|choice| choice.country != current_country)
    {
        profile.site_choice = None;
        changed = true;
    }
    if let Some(site) = &event.site {
        changed |= take_newer(&mut profile.site, site, at);
    }
    if let EventBody::SiteSelected = event.body {
        profile.site_choice = Some(SiteChoice {
            country: current_country,
        });
        changed = true;
    }
    changed
}

/// Takes `value` seen at `at` unless what is held is newer; whether the value changed.
/// (Most events repeat the value held: only its time moves, nothing is allocated.)
fn take_newer(held: &mut Option<(String, Millis)>, value: &str, at: Millis) -> bool {
    match held {
        Some((_, t)) if *t > at => false,
        Some((v, t)) if v == value => {
            *t = at;
            false
        }
        _ => {
            *held = Some((value.to_string(), at));
            true
        }
    }
}

/// The configured site whose countries contain the shopper's latest country, when it is
/// not their site and they have not chosen a site from that country.
pub fn suggested_site(
    profile: &ShopperProfile,
    sites: &BTreeMap<String, SiteConfig>,
) -> Option<String> {
    if profile.site_choice.is_some() {
        return None;
    }
    let (country, _) = profile.country.as_ref()?;
    let (code, _) = sites
        .iter()
        .find(|(_, site)| site.countries.iter().any(|c| c == country))?;
    let current = profile.site.as_ref().map(|(s, _)| s.as_str());
    (current != Some(code.as_str())).then(|| code.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{event, minutes};

    fn sites() -> BTreeMap<String, SiteConfig> {
        let mut sites = BTreeMap::new();
        sites.insert(
            "au".to_string(),
            SiteConfig {
                countries: vec!["AU".into(), "NZ".into()],
            },
        );
        sites.insert(
            "us".to_string(),
            SiteConfig {
                countries: vec!["US".into()],
            },
        );
        sites
    }

    fn visit(at: i64, site: Option<&str>, country: Option<&str>, body: EventBody) -> Event {
        let mut e = event("e", minutes(at), Some("c1"), body);
        e.site = site.map(Into::into);
        e.country = country.map(Into::into);
        e
    }

    fn page() -> EventBody {
        EventBody::PageViewed {
            page_type: crate::event::PageType::Home,
            url: None,
        }
    }

    #[test]
    fn a_shopper_abroad_is_suggested_the_site_of_their_country() {
        let mut p = ShopperProfile::default();
        assert!(on_event(&mut p, &visit(0, Some("us"), Some("NZ"), page())));
        assert_eq!(suggested_site(&p, &sites()).as_deref(), Some("au"));
        // Already on the right site: no suggestion.
        on_event(&mut p, &visit(1, Some("au"), Some("NZ"), page()));
        assert_eq!(suggested_site(&p, &sites()), None);
        // A country no site serves: no suggestion.
        on_event(&mut p, &visit(2, Some("us"), Some("FR"), page()));
        assert_eq!(suggested_site(&p, &sites()), None);
    }

    #[test]
    fn the_latest_event_with_a_site_or_country_wins() {
        let mut p = ShopperProfile::default();
        on_event(&mut p, &visit(5, Some("us"), Some("US"), page()));
        // Older and without a site: changes nothing.
        assert!(!on_event(&mut p, &visit(3, Some("au"), Some("AU"), page())));
        assert!(!on_event(&mut p, &visit(6, None, None, page())));
        assert_eq!(p.site.as_ref().map(|(s, _)| s.as_str()), Some("us"));
        assert_eq!(suggested_site(&p, &sites()), None);
    }

    #[test]
    fn choosing_a_site_stops_suggestions_until_the_country_changes() {
        let mut p = ShopperProfile::default();
        on_event(&mut p, &visit(0, Some("au"), Some("US"), page()));
        assert_eq!(suggested_site(&p, &sites()).as_deref(), Some("us"));
        on_event(
            &mut p,
            &visit(1, Some("au"), Some("US"), EventBody::SiteSelected),
        );
        assert_eq!(suggested_site(&p, &sites()), None);
        on_event(&mut p, &visit(2, Some("au"), Some("US"), page()));
        assert_eq!(suggested_site(&p, &sites()), None, "same country");
        on_event(&mut p, &visit(3, Some("au"), Some("NZ"), page()));
        on_event(&mut p, &visit(4, Some("au"), Some("US"), page()));
        assert_eq!(
            suggested_site(&p, &sites()).as_deref(),
            Some("us"),
            "the country changed, so suggestions resume"
        );
    }
}
