//! The generator's fixed world: departments and their categories, storefront sites and
//! the countries they serve, search queries, and how shoppers browse and buy across the
//! catalog (categories, companion products).

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

/// Leaf categories: every department's four.
pub(super) const CATEGORIES: usize = DEPARTMENTS.len() * 4;
/// How often a session's next product view stays in the category of its last one.
pub(super) const BROWSE_WITHIN_CATEGORY: f64 = 0.7;
/// How often a product with a companion brings the companion into the cart.
pub(super) const TAKE_THE_COMPANION: f64 = 0.6;

/// The leaf category of catalog item `index` (items are dealt to categories in turn).
pub(super) fn category_of(index: usize) -> usize {
    index % CATEGORIES
}

/// The product usually bought with catalog item `index`, for one item in ten: an item
/// from the unpopular end of the catalog, bought mostly as the companion (a dress and
/// its belt, a lamp and its bulb), as shops' "bought together" pairs usually are.
pub(super) fn companion_of(index: usize, products: usize) -> Option<usize> {
    let companion = products.checked_sub(1 + index / 10)?;
    // A companion is never a source itself: its sales would then not be mostly the pair's.
    (index.is_multiple_of(10) && !companion.is_multiple_of(10)).then_some(companion)
}

/// The planted "bought together" pairs of a catalog of `products` items, by SKU: a test
/// can check that they come out on top of the `bought_with` lists.
pub fn planted_pairs(products: usize) -> Vec<(String, String)> {
    (0..products)
        .filter_map(|i| companion_of(i, products).map(|c| (sku_of(i), sku_of(c))))
        .collect()
}

pub(super) fn sku_of(index: usize) -> String {
    format!("SKU-{index:05}")
}
