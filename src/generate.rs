//! Synthetic shopper traffic: seeded, in event-time order, shaped like a real shop.
//!
//! Shoppers arrive in sessions (a Poisson process over the time span). A session views
//! categories and products (popularity is Zipf-skewed), searches, adds to and removes
//! from carts, sometimes signs in, checks out and orders, but mostly leaves its cart
//! behind. Products sell out and come back; shoppers click "notify me" on sold-out ones.
//! A few shoppers change consent or ask to be erased, and a few events arrive twice, as
//! at-least-once producers deliver them.
//!
//! Before the busy span, `history` of regular customers: one shopper in a hundred orders
//! every few weeks over months, some stop for good and some come back after a long
//! break, so customers become new, active, at risk and lapsed, rise into and fall out of
//! `high_value` and the RFM groups (CONTRACT §5.3). Same settings and seed, same events.

#[path = "generate_orders.rs"]
mod orders;
#[path = "generate_world.rs"]
mod world;
use orders::{regular_count, DAY};
use world::{
    category_of, companion_of, home_country, sku_of, BROWSE_WITHIN_CATEGORY, CATEGORIES,
    DEPARTMENTS, QUERIES, TAKE_THE_COMPANION,
};
pub use world::{planted_pairs, site_settings, SITES};

use crate::event::{Event, EventBody, PageType, Product};
use crate::time::Millis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Debug, Clone)]
pub struct GeneratorSettings {
    pub shoppers: u32,
    pub events: u64,
    pub seed: u64,
    /// Event time at which the busy span begins.
    pub start: Millis,
    /// Event time spanned by the busy part of the stream.
    pub span: Millis,
    /// How long before `start` the regular customers' orders begin; 0 for none.
    pub history: Millis,
    /// Catalog size; 0 picks one from the number of shoppers.
    pub products: u32,
    /// How much earlier than the latest event before it an event may be (a shop's
    /// producers deliver a little out of order); 0 gives the events in event-time order.
    pub lateness: Millis,
}

impl Default for GeneratorSettings {
    fn default() -> Self {
        GeneratorSettings {
            shoppers: 10_000,
            events: 100_000,
            seed: 1,
            start: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            span: 3 * 24 * 3_600_000,
            history: 400 * DAY,
            products: 0,
            lateness: 0,
        }
    }
}

struct CatalogItem {
    product: Product,
    stock: u64,
}

struct ShopperSim {
    /// Registered customers have a customer id; the rest stay anonymous.
    registered: bool,
    /// Signed in on an earlier session: sessions start identified.
    known_device: bool,
    cart: Vec<(usize, u32)>,
    cart_number: u32,
    site: usize,
}

struct Session {
    shopper: u32,
    actions_left: u32,
    signed_in: bool,
    /// The category of the session's last product view: most views stay in it, as a
    /// shopper browses within a category (the structure `viewed_with` finds).
    focus: Option<usize>,
}

enum Actor {
    Session(Session),
    StockDesk,
    /// A regular customer's next order.
    Regular(u32),
}

pub struct Generator {
    settings: GeneratorSettings,
    rng: ChaCha8Rng,
    catalog: Vec<CatalogItem>,
    /// Cumulative Zipf weights over the catalog, for popularity-skewed picks.
    popularity: Vec<f64>,
    shoppers: Vec<ShopperSim>,
    agenda: BinaryHeap<Reverse<(Millis, u64)>>,
    actors: std::collections::HashMap<u64, Actor>,
    next_actor: u64,
    next_arrival: Millis,
    mean_arrival_gap: f64,
    sequence: u64,
    /// Events made but not yet given out, earliest first.
    pending: BinaryHeap<Reverse<Made>>,
    /// The simulation's clock: every event made from now on is stamped at or after it.
    simulated_until: Millis,
    made: u64,
}

/// An event in the order it is given out: by time, then in the order it was made.
struct Made {
    at: Millis,
    sequence: u64,
    event: Event,
}

impl PartialEq for Made {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}
impl Eq for Made {}
impl PartialOrd for Made {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Made {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

impl Generator {
    pub fn new(settings: GeneratorSettings) -> Generator {
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let product_count = if settings.products > 0 {
            settings.products
        } else {
            (settings.shoppers / 20).clamp(100, 20_000)
        } as usize;
        let catalog: Vec<CatalogItem> = (0..product_count)
            .map(|i| {
                let (department, subs) = DEPARTMENTS[i % DEPARTMENTS.len()];
                let sub = subs[(i / DEPARTMENTS.len()) % subs.len()];
                let sku = sku_of(i);
                let price = (rng.random_range(500..30_000) as f64) / 100.0;
                CatalogItem {
                    product: Product {
                        name: Some(format!("{} {} {i}", capitalise(sub), department)),
                        category: Some(vec![department.to_string(), sub.to_string()]),
                        brand: Some(["Acme", "Northwind", "Globex", "Initech"][i % 4].to_string()),
                        price: Some(price),
                        currency: Some("EUR".to_string()),
                        url: Some(format!("https://shop.example/p/{}", sku.to_lowercase())),
                        image_url: Some(format!(
                            "https://shop.example/i/{}.jpg",
                            sku.to_lowercase()
                        )),
                        sku,
                    },
                    stock: if rng.random_bool(0.08) {
                        0
                    } else {
                        rng.random_range(1..60)
                    },
                }
            })
            .collect();
        let mut total = 0.0;
        let popularity = (0..product_count)
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(1.1);
                total
            })
            .collect();
        let regulars = regular_count(&settings);
        let shoppers = (0..settings.shoppers.max(1))
            .map(|index| ShopperSim {
                registered: index < regulars || rng.random_bool(0.6),
                known_device: false,
                cart: Vec::new(),
                cart_number: 0,
                site: rng.random_range(0..SITES.len()),
            })
            .collect();
        // About 11 events per session: arrivals spaced so the stream spans `span`.
        let sessions = (settings.events as f64 / 11.0).max(1.0);
        let mean_arrival_gap = settings.span as f64 / sessions;
        let mut generator = Generator {
            next_arrival: settings.start,
            settings,
            rng,
            catalog,
            popularity,
            shoppers,
            agenda: BinaryHeap::new(),
            actors: std::collections::HashMap::new(),
            next_actor: 0,
            mean_arrival_gap,
            sequence: 0,
            pending: BinaryHeap::new(),
            simulated_until: Millis::MIN,
            made: 0,
        };
        let first_stock_check = generator.settings.start + 60_000;
        generator.schedule(first_stock_check, Actor::StockDesk);
        let history = generator.settings.history;
        for regular in 0..regulars {
            // First orders over the first half of the history, so each regular has
            // months in which to move through the stages.
            let first = generator.settings.start - history
                + generator.rng.random_range(0..(history / 2).max(1));
            generator.schedule(first, Actor::Regular(regular));
        }
        generator
    }

    fn schedule(&mut self, at: Millis, actor: Actor) {
        let id = self.next_actor;
        self.next_actor += 1;
        self.actors.insert(id, actor);
        self.agenda.push(Reverse((at, id)));
    }

    fn exponential(&mut self, mean: f64) -> Millis {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        (-u.ln() * mean) as Millis
    }

    fn popular_product(&mut self) -> usize {
        let total = *self.popularity.last().expect("catalog is not empty");
        let x = self.rng.random_range(0.0..total);
        self.popularity
            .partition_point(|c| *c < x)
            .min(self.catalog.len() - 1)
    }

    /// A product of `category`, the popular ones more likely (the catalog is ordered by
    /// popularity, and a category's products are every `CATEGORIES`-th of it).
    fn product_in_category(&mut self, category: usize) -> usize {
        let members = self
            .catalog
            .len()
            .saturating_sub(category)
            .div_ceil(CATEGORIES);
        let rank = (self.exponential(2.0) as usize).min(members.saturating_sub(1));
        category + rank * CATEGORIES
    }

    fn event(&mut self, at: Millis, shopper: Option<(u32, bool)>, body: EventBody) -> Event {
        self.sequence += 1;
        let (customer_id, anonymous_id, site, country) = match shopper {
            Some((index, identified)) => {
                let s = &self.shoppers[index as usize];
                let (site, _) = SITES[s.site];
                let (_, country) = SITES[home_country(index, s.site)];
                (
                    (identified && s.registered).then(|| format!("cust-{index}")),
                    Some(format!("anon-{index}")),
                    Some(site.to_string()),
                    Some(country.to_string()),
                )
            }
            None => (None, None, None, None),
        };
        Event {
            event_id: format!("ev-{}-{}", self.settings.seed, self.sequence),
            occurred_at: at,
            customer_id,
            anonymous_id,
            session_id: shopper.map(|(i, _)| format!("sess-{i}-{}", at / 3_600_000)),
            site,
            country,
            body,
        }
    }

    fn push(&mut self, event: Event) {
        // At-least-once producers resend now and then: the same event, twice.
        let duplicate = self.rng.random_bool(0.003).then(|| event.clone());
        self.hold(event);
        if let Some(copy) = duplicate {
            self.hold(copy);
        }
    }

    fn hold(&mut self, event: Event) {
        // Exactly `events` are made, so the stream is the same whatever the lateness.
        if self.made >= self.settings.events {
            return;
        }
        self.made += 1;
        self.pending.push(Reverse(Made {
            at: event.occurred_at,
            sequence: self.made,
            event,
        }));
    }

    fn start_session(&mut self, at: Millis) {
        let shopper = self.rng.random_range(0..self.shoppers.len() as u32);
        let s = &self.shoppers[shopper as usize];
        let signed_in = s.registered && s.known_device && self.rng.random_bool(0.7);
        let actions_left = 1 + self.exponential(9.0) as u32;
        let e = self.event(
            at,
            Some((shopper, signed_in)),
            EventBody::PageViewed {
                page_type: PageType::Home,
                url: Some("https://shop.example/".into()),
            },
        );
        self.push(e);
        let next = at + 5_000 + self.exponential(40_000.0);
        self.schedule(
            next,
            Actor::Session(Session {
                shopper,
                actions_left,
                signed_in,
                focus: None,
            }),
        );
    }

    fn session_step(&mut self, at: Millis, mut session: Session) {
        let who = Some((session.shopper, session.signed_in));
        let index = session.shopper as usize;
        if session.actions_left == 0 {
            self.end_session(at, session);
            return;
        }
        session.actions_left -= 1;
        let roll: f64 = self.rng.random();
        let body = if roll < 0.20 {
            let product = self.popular_product();
            EventBody::CategoryViewed {
                category: self.catalog[product]
                    .product
                    .category
                    .clone()
                    .unwrap_or_default(),
            }
        } else if roll < 0.55 {
            let product = match session.focus {
                Some(category) if self.rng.random_bool(BROWSE_WITHIN_CATEGORY) => {
                    self.product_in_category(category)
                }
                _ => self.popular_product(),
            };
            session.focus = Some(category_of(product));
            if self.catalog[product].stock == 0 && self.rng.random_bool(0.15) {
                EventBody::BackInStockRequested {
                    product: self.catalog[product].product.clone(),
                }
            } else {
                EventBody::ProductViewed {
                    product: self.catalog[product].product.clone(),
                }
            }
        } else if roll < 0.63 {
            let query = QUERIES[self.rng.random_range(0..QUERIES.len())].to_string();
            let results = (0..5).map(|_| self.popular_product()).collect::<Vec<_>>();
            let skus: Vec<String> = results
                .iter()
                .map(|i| self.catalog[*i].product.sku.clone())
                .collect();
            if self.rng.random_bool(0.5) {
                EventBody::SearchResultClicked {
                    query,
                    sku: skus[0].clone(),
                }
            } else {
                EventBody::ProductsSearched {
                    query,
                    results: Some(skus),
                }
            }
        } else if roll < 0.66 {
            let product = self.popular_product();
            EventBody::WishlistAdded {
                product: self.catalog[product].product.clone(),
            }
        } else if roll < 0.80 {
            let product = self.popular_product();
            if self.catalog[product].stock == 0 {
                let product = self.catalog[product].product.clone();
                if self.rng.random_bool(0.3) {
                    EventBody::BackInStockRequested { product }
                } else {
                    EventBody::ProductViewed { product }
                }
            } else {
                let quantity = if self.rng.random_bool(0.85) { 1 } else { 2 };
                let companion = companion_of(product, self.catalog.len())
                    .filter(|c| self.catalog[*c].stock > 0)
                    .filter(|_| self.rng.random_bool(TAKE_THE_COMPANION));
                if let Some(companion) = companion {
                    // Added a moment later, as a shop's "goes well with" suggests it.
                    let added = self.add_to_cart(index, companion, 1);
                    let e = self.event(at + 2_000, who, added);
                    self.push(e);
                }
                self.add_to_cart(index, product, quantity)
            }
        } else if roll < 0.84 && !self.shoppers[index].cart.is_empty() {
            let shopper = &mut self.shoppers[index];
            let (product, quantity) = shopper.cart.remove(0);
            EventBody::CartItemRemoved {
                cart_id: format!("cart-{index}-{}", shopper.cart_number),
                sku: self.catalog[product].product.sku.clone(),
                quantity,
            }
        } else if roll < 0.93 && self.shoppers[index].registered && !session.signed_in {
            session.signed_in = true;
            self.shoppers[index].known_device = true;
            EventBody::SignedIn
        } else if roll < 0.94 {
            let site = self.rng.random_range(0..SITES.len());
            self.shoppers[index].site = site;
            EventBody::SiteSelected
        } else {
            EventBody::PageViewed {
                page_type: PageType::Other,
                url: None,
            }
        };
        let who = if matches!(body, EventBody::SignedIn) {
            Some((session.shopper, true))
        } else {
            who
        };
        let e = self.event(at, who, body);
        self.push(e);
        let next = at + 3_000 + self.exponential(35_000.0);
        self.schedule(next, Actor::Session(session));
    }

    /// Puts `quantity` of `product` in the shopper's cart: the event that says so.
    fn add_to_cart(&mut self, index: usize, product: usize, quantity: u32) -> EventBody {
        let shopper = &mut self.shoppers[index];
        match shopper.cart.iter_mut().find(|(p, _)| *p == product) {
            Some(line) => line.1 += quantity,
            None => shopper.cart.push((product, quantity)),
        }
        EventBody::CartItemAdded {
            cart_id: format!("cart-{index}-{}", shopper.cart_number),
            product: self.catalog[product].product.clone(),
            quantity,
        }
    }

    fn end_session(&mut self, at: Millis, session: Session) {
        let index = session.shopper as usize;
        let registered = self.shoppers[index].registered;
        let buys = !self.shoppers[index].cart.is_empty() && registered && self.rng.random_bool(0.3);
        if buys {
            self.checkout(at, session.shopper, session.signed_in);
        }
        if registered && self.rng.random_bool(0.02) {
            let email_marketing = self.rng.random_bool(0.5);
            let e = self.event(
                at + 1_000,
                Some((session.shopper, true)),
                EventBody::ConsentChanged { email_marketing },
            );
            self.push(e);
        }
        if registered && self.rng.random_bool(0.001) {
            let e = self.event(
                at + 2_000,
                Some((session.shopper, true)),
                EventBody::CustomerErased,
            );
            self.push(e);
            let shopper = &mut self.shoppers[index];
            shopper.cart.clear();
            shopper.known_device = false;
            shopper.cart_number += 1;
        }
    }

    /// The stock desk sells popular items out and brings sold-out ones back.
    fn stock_step(&mut self, at: Millis) {
        let restock = self.rng.random_bool(0.6);
        let product = if restock {
            // Popular products are restocked first, as a shop's buyers would.
            let popular = self.popular_product();
            if self.catalog[popular].stock == 0 {
                Some(popular)
            } else {
                let start = self.rng.random_range(0..self.catalog.len());
                (0..self.catalog.len())
                    .map(|i| (start + i) % self.catalog.len())
                    .find(|i| self.catalog[*i].stock == 0)
            }
        } else {
            Some(self.rng.random_range(0..self.catalog.len()))
        };
        if let Some(p) = product {
            let quantity = if restock {
                self.rng.random_range(1..40)
            } else {
                0
            };
            self.catalog[p].stock = quantity;
            let details = self.catalog[p].product.clone();
            let e = self.event(
                at,
                None,
                EventBody::StockChanged {
                    sku: details.sku.clone(),
                    quantity,
                    product: Some(details),
                },
            );
            self.push(e);
        }
        let gap = (self.settings.span / 400).max(1_000) as f64;
        let next = at + 1 + self.exponential(gap);
        self.schedule(next, Actor::StockDesk);
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            let done = self.made >= self.settings.events;
            // An event may go once no event still to be made can be earlier than it by
            // more than the lateness allows.
            let release = self.simulated_until.saturating_add(self.settings.lateness);
            if let Some(Reverse(first)) = self.pending.peek() {
                if done || first.at <= release {
                    return self.pending.pop().map(|Reverse(made)| made.event);
                }
            } else if done {
                return None;
            }
            let next_actor = self.agenda.peek().map(|Reverse((at, _))| *at);
            if next_actor.is_none_or(|t| self.next_arrival <= t) {
                let at = self.next_arrival;
                self.simulated_until = at;
                self.start_session(at);
                let gap = self.mean_arrival_gap;
                self.next_arrival = at + 1 + self.exponential(gap);
            } else {
                let Reverse((at, id)) = self.agenda.pop().expect("peeked");
                self.simulated_until = at;
                match self.actors.remove(&id).expect("scheduled actors exist") {
                    Actor::Session(session) => self.session_step(at, session),
                    Actor::StockDesk => self.stock_step(at),
                    Actor::Regular(shopper) => self.regular_order(at, shopper),
                }
            }
        }
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
