//! The generator's fixed world: departments and their categories, storefront sites and
//! the countries they serve, search queries.

pub(super) const DEPARTMENTS: [(&str, [&str; 4]); 4] = [
    ("women", ["dresses", "tops", "shoes", "bags"]),
    ("men", ["shirts", "trousers", "shoes", "jackets"]),
    ("kids", ["toys", "clothing", "school", "baby"]),
    ("home", ["kitchen", "bedding", "decor", "garden"]),
];
/// The storefront sites the synthetic shoppers use, and the country each serves.
pub const SITES: [(&str, &str); 4] = [("us", "US"), ("au", "AU"), ("uk", "GB"), ("de", "DE")];

/// The site index whose country shopper `index` browses from: their own site's, except
/// for one shopper in ten, who is abroad (so profiles get site suggestions). Derived
/// from the index, not drawn, so streams of earlier versions stay the same otherwise.
pub(super) fn home_country(index: u32, site: usize) -> usize {
    if index % 10 == 7 {
        (site + 1 + (index as usize / 10) % (SITES.len() - 1)) % SITES.len()
    } else {
        site
    }
}

/// `[rules.sites]` for the generator's sites: each serves its own country.
pub fn site_settings() -> std::collections::BTreeMap<String, crate::config::SiteConfig> {
    SITES
        .iter()
        .map(|(site, country)| {
            let countries = vec![country.to_string()];
            (site.to_string(), crate::config::SiteConfig { countries })
        })
        .collect()
}
pub(super) const QUERIES: [&str; 8] = [
    "dress", "linen", "sneakers", "gift", "blue", "sale", "lamp", "jacket",
];
