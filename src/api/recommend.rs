//! `GET /v1/recommendations` (CONTRACT §5.7): the thirteen recommendation types, each
//! item with the evidence it was chosen for (`because`), and the exclusions every type
//! shares.
//!
//! Every list read here is bounded: neighbour lists by `recs.top_n`, rankings are
//! walked in order and stop at `limit` (or at [`MAX_WALK`] entries skipped).

use super::shoppers::ShopperView;
use super::ApiError;
use crate::config::InterestsConfig;
use crate::config::{ApiConfig, RecsConfig};
use crate::decision::ScoredSku;
use crate::event::Product;
use crate::product_index::{IndexedProduct, Metric, ProductIndex};
use crate::rules::interests;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Most items one answer may hold.
pub const MAX_LIMIT: usize = 100;
pub const DEFAULT_LIMIT: usize = 10;
/// Most ranking entries one request looks at, whatever it skips.
const MAX_WALK: usize = 5_000;
/// `more_like_this`: candidates priced within this fraction of the SKU's price.
const PRICE_BAND: f64 = 0.3;
/// `recommended_for_you`: trending in the preferred department weighs this much of a
/// neighbour of the latest view.
const TRENDING_WEIGHT: f64 = 0.5;
/// `recommended_for_you`: trending SKUs of the preferred department considered.
const TRENDING_CANDIDATES: usize = 20;

/// The recommendation types, as Adobe names them (plus `complements`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecType {
    RecommendedForYou,
    RecentlyViewed,
    ViewedViewed,
    ViewedBought,
    BoughtBought,
    MoreLikeThis,
    MostViewed,
    MostPurchased,
    MostAddedToCart,
    Trending,
    ViewToPurchase,
    ViewToCart,
    Complements,
}

/// What a type needs besides `limit` and `category`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Shopper,
    Sku,
    ShopperOrSku,
    Nothing,
}

impl RecType {
    pub const ALL: [RecType; 13] = [
        RecType::RecommendedForYou,
        RecType::RecentlyViewed,
        RecType::ViewedViewed,
        RecType::ViewedBought,
        RecType::BoughtBought,
        RecType::MoreLikeThis,
        RecType::MostViewed,
        RecType::MostPurchased,
        RecType::MostAddedToCart,
        RecType::Trending,
        RecType::ViewToPurchase,
        RecType::ViewToCart,
        RecType::Complements,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RecType::RecommendedForYou => "recommended_for_you",
            RecType::RecentlyViewed => "recently_viewed",
            RecType::ViewedViewed => "viewed_viewed",
            RecType::ViewedBought => "viewed_bought",
            RecType::BoughtBought => "bought_bought",
            RecType::MoreLikeThis => "more_like_this",
            RecType::MostViewed => "most_viewed",
            RecType::MostPurchased => "most_purchased",
            RecType::MostAddedToCart => "most_added_to_cart",
            RecType::Trending => "trending",
            RecType::ViewToPurchase => "view_to_purchase",
            RecType::ViewToCart => "view_to_cart",
            RecType::Complements => "complements",
        }
    }

    pub fn from_name(name: &str) -> Option<RecType> {
        RecType::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn needs(self) -> Needs {
        match self {
            RecType::RecommendedForYou | RecType::RecentlyViewed => Needs::Shopper,
            RecType::ViewedViewed
            | RecType::ViewedBought
            | RecType::BoughtBought
            | RecType::MoreLikeThis => Needs::Sku,
            RecType::Complements => Needs::ShopperOrSku,
            _ => Needs::Nothing,
        }
    }

    /// The ranking a popularity type reads.
    fn metric(self) -> Option<Metric> {
        Some(match self {
            RecType::MostViewed => Metric::Views,
            RecType::MostPurchased => Metric::Purchases,
            RecType::MostAddedToCart => Metric::CartAdds,
            RecType::Trending => Metric::Trending,
            RecType::ViewToPurchase => Metric::ViewToPurchase,
            RecType::ViewToCart => Metric::ViewToCart,
            _ => return None,
        })
    }
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct RecRequest {
    pub rec_type: RecType,
    /// The key asked about, when given.
    pub shopper_key: Option<String>,
    pub sku: Option<String>,
    pub category: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecItem {
    pub sku: String,
    pub score: f64,
    pub because: String,
    pub product: Product,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecAnswer {
    #[serde(rename = "type")]
    pub rec_type: &'static str,
    pub items: Vec<RecItem>,
}

/// What the recommendations read besides the product index.
pub struct RecSettings<'a> {
    pub api: &'a ApiConfig,
    pub recs: &'a RecsConfig,
    pub interests: &'a InterestsConfig,
}

/// Answers `request` for `shopper` (`None`: unknown, or not asked about).
pub fn recommend(
    request: &RecRequest,
    shopper: Option<&ShopperView>,
    index: &ProductIndex,
    settings: &RecSettings,
) -> Result<RecAnswer, ApiError> {
    let anchor = match &request.sku {
        Some(sku) => Some(
            index
                .get(sku)
                .ok_or_else(|| ApiError::UnknownSku(sku.clone()))?,
        ),
        None => None,
    };
    let mut picker = Picker::new(request, shopper, index, settings);
    let rec_type = request.rec_type;
    match rec_type {
        RecType::RecentlyViewed => {
            if let Some(shopper) = shopper {
                for (i, view) in shopper.state.profile.recent_views.iter().enumerate() {
                    let score = settings.api.recent_view_decay.powi(i as i32);
                    picker.offer(&view.sku, score, "recently_viewed".into());
                }
            }
        }
        RecType::ViewedViewed | RecType::ViewedBought | RecType::BoughtBought => {
            let anchor = anchor.expect("checked: the type needs a sku");
            let (list, label) = neighbours(anchor, rec_type);
            for n in list {
                picker.offer(&n.sku, n.score, format!("{label}:{}", anchor.record.sku));
            }
            picker.fill_cold_start(anchor);
        }
        RecType::MoreLikeThis => {
            more_like_this(&mut picker, anchor.expect("checked: the type needs a sku"));
        }
        RecType::RecommendedForYou => match shopper.filter(|s| has_history(s, settings)) {
            Some(shopper) => {
                for_you(&mut picker, shopper, settings);
                picker.fill_most_viewed();
            }
            None => picker.fill_most_viewed(),
        },
        RecType::Complements => complements(&mut picker, shopper, anchor, settings),
        popular => {
            let metric = popular.metric().expect("every other type is a ranking");
            picker.fill_ranked(metric, request.category.as_deref(), popular.name());
        }
    }
    Ok(RecAnswer {
        rec_type: rec_type.name(),
        items: picker.items,
    })
}

fn neighbours(anchor: &IndexedProduct, rec_type: RecType) -> (&[ScoredSku], &'static str) {
    let record = &anchor.record;
    match rec_type {
        RecType::ViewedViewed => (&record.viewed_with, "viewed_with"),
        RecType::ViewedBought => (&record.viewed_then_bought, "viewed_then_bought"),
        _ => (&record.bought_with, "bought_with"),
    }
}

fn has_history(shopper: &ShopperView, settings: &RecSettings) -> bool {
    let profile = &shopper.state.profile;
    !profile.recent_views.is_empty()
        || !profile.purchases.is_empty()
        || interests::preferred_department(profile, shopper.now, settings.interests).is_some()
}

/// Viewed-with neighbours of the recent views (newer views weigh more), bought-with
/// neighbours of past purchases, trending in the preferred department.
fn for_you(picker: &mut Picker, shopper: &ShopperView, settings: &RecSettings) {
    let decay = settings.api.recent_view_decay;
    let profile = &shopper.state.profile;
    let mut scores = Candidates::default();
    let sources = [
        (
            profile
                .recent_views
                .iter()
                .map(|v| v.sku.as_str())
                .collect::<Vec<_>>(),
            RecType::ViewedViewed,
        ),
        (
            profile.purchases.iter().map(|p| p.sku.as_str()).collect(),
            RecType::BoughtBought,
        ),
    ];
    for (skus, kind) in sources {
        for (i, sku) in skus.into_iter().enumerate() {
            let Some(source) = picker.index.get(sku) else {
                continue;
            };
            let weight = decay.powi(i as i32);
            let (list, label) = neighbours(source, kind);
            for n in list {
                scores.add(&n.sku, weight * n.score, || format!("{label}:{sku}"));
            }
        }
    }
    if let Some(department) =
        interests::preferred_department(profile, shopper.now, settings.interests)
    {
        let trending: Vec<(String, f64)> = picker
            .index
            .ranked(Metric::Trending, Some(&department))
            .take(TRENDING_CANDIDATES)
            .map(|r| (r.product.record.sku.clone(), r.score))
            .collect();
        let top = trending.first().map_or(1.0, |(_, s)| *s);
        for (sku, score) in trending {
            scores.add(&sku, TRENDING_WEIGHT * score / top, || {
                format!("trending:{department}")
            });
        }
    }
    scores.offer_all(picker);
}

/// Bought-with neighbours of the cart's items (or of `sku`), then the most purchased of
/// the categories `[rules.recs.complements]` lists for them.
fn complements(
    picker: &mut Picker,
    shopper: Option<&ShopperView>,
    anchor: Option<&IndexedProduct>,
    settings: &RecSettings,
) {
    let mut items: Vec<(String, Option<String>)> = Vec::new();
    if let Some(anchor) = anchor {
        items.push((anchor.record.sku.clone(), anchor.path.clone()));
    }
    if let Some(shopper) = shopper {
        for cart in &shopper.state.carts {
            for line in &cart.lines {
                let path = interests::path_of(line.product.category.as_deref());
                items.push((line.product.sku.clone(), path));
            }
        }
    }
    let mut scores = Candidates::default();
    for (sku, _) in &items {
        if let Some(product) = picker.index.get(sku) {
            for n in &product.record.bought_with {
                scores.add(&n.sku, n.score, || format!("bought_with:{sku}"));
            }
        }
    }
    scores.offer_all(picker);
    let mut categories: Vec<&str> = Vec::new();
    for (_, path) in &items {
        let Some(path) = path else { continue };
        let configured = settings
            .recs
            .complements
            .iter()
            .filter(|(prefix, _)| interests::is_under(path, prefix))
            .max_by_key(|(prefix, _)| prefix.len());
        if let Some((_, listed)) = configured {
            for category in listed {
                if !categories.contains(&category.as_str()) {
                    categories.push(category);
                }
            }
        }
    }
    for category in categories {
        picker.fill_ranked_within(Metric::Purchases, category, "complements");
    }
}

/// Same leaf category, priced within ±30 %; the same brand first, then by views.
fn more_like_this(picker: &mut Picker, anchor: &IndexedProduct) {
    let Some(path) = anchor.path.clone() else {
        return;
    };
    let details = anchor.record.product.as_ref();
    let brand = details.and_then(|p| p.brand.clone());
    let price = details.and_then(|p| p.price).filter(|p| *p > 0.0);
    let mut found: Vec<(bool, f64, String)> = Vec::new();
    let index = picker.index;
    for ranked in index.ranked(Metric::Views, Some(&path)).take(MAX_WALK) {
        let candidate = ranked.product;
        if candidate.path.as_deref() != Some(path.as_str()) {
            continue;
        }
        let details = candidate.record.product.as_ref();
        if let Some(price) = price {
            let Some(theirs) = details.and_then(|p| p.price) else {
                continue;
            };
            if (theirs - price).abs() > PRICE_BAND * price {
                continue;
            }
        }
        let same_brand =
            brand.is_some() && details.and_then(|p| p.brand.as_ref()) == brand.as_ref();
        found.push((same_brand, ranked.score, candidate.record.sku.clone()));
    }
    // Stable: within a brand group the ranking's order (views) stays.
    found.sort_by_key(|(same_brand, _, _)| !*same_brand);
    for (same_brand, views, sku) in found {
        let because = match (&brand, same_brand) {
            (Some(brand), true) => format!("same_brand:{brand}"),
            _ => format!("same_category:{path}"),
        };
        let score = f64::from(u8::from(same_brand)) + views / (views + 1.0);
        if picker.offer(&sku, score, because) {
            break;
        }
    }
}

/// Candidates gathered from several sources: scores add up, and the largest single
/// contribution is the reason given.
#[derive(Default)]
struct Candidates {
    by_sku: BTreeMap<String, (f64, f64, String)>,
}

impl Candidates {
    fn add(&mut self, sku: &str, score: f64, because: impl FnOnce() -> String) {
        if !(score.is_finite() && score > 0.0) {
            return;
        }
        match self.by_sku.get_mut(sku) {
            Some((total, best, reason)) => {
                *total += score;
                if score > *best {
                    *best = score;
                    *reason = because();
                }
            }
            None => {
                self.by_sku
                    .insert(sku.to_string(), (score, score, because()));
            }
        }
    }

    fn offer_all(self, picker: &mut Picker) {
        let mut all: Vec<(String, f64, String)> = self
            .by_sku
            .into_iter()
            .map(|(sku, (total, _, because))| (sku, total, because))
            .collect();
        // Highest first; equal scores by SKU (the map's order, kept by a stable sort).
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (sku, score, because) in all {
            if picker.offer(&sku, score, because) {
                return;
            }
        }
    }
}

/// Collects items in order, applying what every type leaves out.
struct Picker<'a> {
    index: &'a ProductIndex,
    limit: usize,
    category: Option<&'a str>,
    excluded: HashSet<&'a str>,
    items: Vec<RecItem>,
}

impl<'a> Picker<'a> {
    fn new(
        request: &'a RecRequest,
        shopper: Option<&'a ShopperView>,
        index: &'a ProductIndex,
        settings: &RecSettings,
    ) -> Picker<'a> {
        let mut excluded: HashSet<&str> = HashSet::new();
        if let Some(sku) = &request.sku {
            excluded.insert(sku);
        }
        if let Some(shopper) = shopper {
            let since = shopper
                .now
                .saturating_sub(settings.api.exclude_bought_for.millis());
            for purchase in &shopper.state.profile.purchases {
                if purchase.at >= since {
                    excluded.insert(&purchase.sku);
                }
            }
            // What is in the cart is not recommended, but it is still recently viewed.
            if request.rec_type != RecType::RecentlyViewed {
                for cart in &shopper.state.carts {
                    excluded.extend(cart.lines.iter().map(|l| l.product.sku.as_str()));
                }
            }
        }
        Picker {
            index,
            limit: request.limit,
            category: request.category.as_deref(),
            excluded,
            items: Vec::new(),
        }
    }

    fn is_full(&self) -> bool {
        self.items.len() >= self.limit
    }

    /// Adds `sku` unless it is left out; true once the answer is full.
    fn offer(&mut self, sku: &str, score: f64, because: String) -> bool {
        if self.is_full() {
            return true;
        }
        if self.excluded.contains(sku) || self.items.iter().any(|i| i.sku == sku) {
            return false;
        }
        let Some(product) = self.index.get(sku) else {
            return false;
        };
        if !product.in_stock() {
            return false;
        }
        if let Some(prefix) = self.category {
            if !product
                .path
                .as_deref()
                .is_some_and(|path| interests::is_under(path, prefix))
            {
                return false;
            }
        }
        let details = product.record.product.clone().unwrap_or_else(|| Product {
            sku: sku.to_string(),
            ..Product::default()
        });
        self.items.push(RecItem {
            sku: sku.to_string(),
            score,
            because,
            product: details,
        });
        self.is_full()
    }

    /// Fills up from a ranking, within the request's category if any.
    fn fill_ranked(&mut self, metric: Metric, category: Option<&str>, label: &str) {
        let because = match category {
            Some(category) => format!("{label}:{category}"),
            None => label.to_string(),
        };
        let index = self.index;
        for ranked in index.ranked(metric, category).take(MAX_WALK) {
            if self.offer(&ranked.product.record.sku, ranked.score, because.clone()) {
                return;
            }
        }
    }

    /// Fills up from a ranking within `category` (and the request's category).
    fn fill_ranked_within(&mut self, metric: Metric, category: &str, label: &str) {
        if self.is_full() {
            return;
        }
        self.fill_ranked(metric, Some(category), label);
    }

    /// The cold start of everything personal: the most viewed, within the request's
    /// category if any.
    fn fill_most_viewed(&mut self) {
        if self.is_full() {
            return;
        }
        let category = self.category;
        self.fill_ranked(Metric::Views, category, "most_viewed");
    }

    /// A SKU with too few neighbours: the most viewed of its leaf category, then of its
    /// department.
    fn fill_cold_start(&mut self, anchor: &IndexedProduct) {
        for scope in [anchor.path.as_deref(), anchor.department()]
            .into_iter()
            .flatten()
        {
            if self.is_full() {
                return;
            }
            self.fill_ranked(Metric::Views, Some(scope), "most_viewed");
        }
    }
}
