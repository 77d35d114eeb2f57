//! The part of a shopper's state that their published profile shows (CONTRACT §5.1,
//! §5.2, §5.6): interests, recent views, site and country, orders, and what is waiting
//! to be published.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ShopperProfile {
    /// Category paths with their decayed interest; at most `interests.max_categories`.
    pub interests: Vec<CategoryInterest>,
    /// Distinct SKUs viewed, newest first; at most `interests.recent_max`.
    pub recent_views: Vec<RecentView>,
    /// The `site` of the latest event that had one, and that event's time.
    pub site: Option<(String, Millis)>,
    /// The `country` of the latest event that had one, and that event's time.
    pub country: Option<(String, Millis)>,
    /// Set by `site_selected`: no site is suggested while the country stays the same.
    pub site_choice: Option<SiteChoice>,
    /// Orders completed, ever.
    pub orders: u32,
    /// Due time of the armed publish timer, if any.
    pub publish_due: Option<Millis>,
    /// What changed since the last publish (the published record's evidence).
    pub changes: Option<ProfileChanges>,
    /// Profile records published so far (an erasure or a sign-in owes the profiles
    /// topic a tombstone when there were any); part of each record's id.
    pub publishes: u64,
    /// Orders and reminders that segments are computed from, and the current segments.
    pub segments: SegmentState,
    /// Offer codes already sent to the shopper (each goes once, ever).
    pub offers_sent: Vec<String>,
    /// Category paths of order lines within `offers.lookback`, with the order's time.
    pub ordered_categories: Vec<(String, Millis)>,
    /// Distinct SKUs bought, newest first; at most `interests.purchases_max`. The read
    /// API excludes the recent ones and recommends what is bought with them.
    /// (Format version 3: the last fields, so a version 2 value is a version 3 value
    /// without them.)
    pub purchases: Vec<Purchase>,
    /// Search results the shopper clicked, newest first; at most
    /// `interests.search_clicks_max`. The search order lifts what the shopper clicked
    /// before for the same query.
    pub search_clicks: Vec<SearchClick>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    pub sku: String,
    /// When the shopper last bought it.
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchClick {
    /// The query as [`normalize_query`] leaves it.
    pub query: String,
    pub sku: String,
    pub at: Millis,
    pub clicks: u32,
}

/// Queries that differ only in case or spacing are the same query.
pub fn normalize_query(query: &str) -> String {
    query
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What customer segments (CONTRACT §5.3) are computed from, and where they stand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SegmentState {
    /// Orders within `segments.value_window`, oldest first (at most `max_orders`).
    pub orders: Vec<OrderRecord>,
    pub first_order_at: Option<Millis>,
    /// The latest order: its time and event (evidence for recency changes).
    pub last_order: Option<(Millis, String)>,
    /// The latest abandoned-cart reminder sent (decided) to the shopper.
    pub last_reminder_at: Option<Millis>,
    /// The segments the shopper is in, sorted.
    pub current: Vec<String>,
    /// Due time of the armed segment timer: the next moment time alone changes a segment.
    pub due: Option<Millis>,
    /// Segment changes emitted so far: part of each change's id, so two changes alike
    /// in segment, direction, time and cause (a late message can replay a shopper's
    /// recent past) still have ids of their own.
    pub changes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub at: Millis,
    pub total: f64,
}

/// Interest in one category path: `score` is the decayed count as of `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryInterest {
    /// The path's components joined with `/`, top level first.
    pub path: String,
    pub score: f64,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentView {
    pub sku: String,
    pub at: Millis,
}

/// The shopper chose a site explicitly while in `country`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteChoice {
    pub country: Option<String>,
}

/// What changed a profile since it was last published (`event e1`, or the segments at
/// a time): the first, the latest, and how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileChanges {
    pub first_event: String,
    pub last_event: String,
    pub events: u32,
}

impl ShopperProfile {
    /// Whether there is anything a profile record would show.
    pub fn is_empty(&self) -> bool {
        self.interests.is_empty()
            && self.recent_views.is_empty()
            && self.site.is_none()
            && self.country.is_none()
            && self.orders == 0
    }
}
