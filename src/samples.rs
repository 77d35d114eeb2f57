//! One fully populated instance of every event and decision type: the fixtures that the
//! codec and schema tests check each form against, so a new type cannot skip them.

use crate::decision::{
    decision_id, CartItem, CategoryScore, Decision, DecisionBody, Popularity, ProductRecord,
    Profile, RankingBasis, Rfm, ScoredSku, SegmentChange,
};
use crate::event::{Event, EventBody, OrderItem, PageType, Product};

const AT: i64 = 1_767_261_600_000; // 2026-01-01T10:00:00Z

pub fn product() -> Product {
    Product {
        sku: "SKU-1".into(),
        name: Some("Linen dress".into()),
        category: Some(vec!["women".into(), "dresses".into()]),
        brand: Some("Acme".into()),
        price: Some(49.5),
        currency: Some("EUR".into()),
        url: Some("https://shop.example/p/sku-1".into()),
        image_url: Some("https://shop.example/i/sku-1.jpg".into()),
    }
}

fn event(n: usize, body: EventBody) -> Event {
    Event {
        event_id: format!("sample-{n}"),
        occurred_at: AT + n as i64,
        customer_id: Some("c-1".into()),
        anonymous_id: Some("a-1".into()),
        session_id: Some("s-1".into()),
        site: Some("au".into()),
        country: Some("AU".into()),
        body,
    }
}

pub fn one_of_each_event_type() -> Vec<Event> {
    let bodies = vec![
        EventBody::PageViewed {
            page_type: PageType::Category,
            url: Some("https://shop.example/women".into()),
        },
        EventBody::ProductViewed { product: product() },
        EventBody::CategoryViewed {
            category: vec!["women".into(), "dresses".into()],
        },
        EventBody::ProductsSearched {
            query: "linen dress".into(),
            results: Some(vec!["SKU-1".into(), "SKU-2".into()]),
        },
        EventBody::SearchResultClicked {
            query: "linen dress".into(),
            sku: "SKU-1".into(),
        },
        EventBody::WishlistAdded { product: product() },
        EventBody::BackInStockRequested { product: product() },
        EventBody::SignedIn,
        EventBody::SiteSelected,
        EventBody::CartItemAdded {
            cart_id: "cart-1".into(),
            product: product(),
            quantity: 2,
        },
        EventBody::CartItemRemoved {
            cart_id: "cart-1".into(),
            sku: "SKU-1".into(),
            quantity: 1,
        },
        EventBody::CartCleared {
            cart_id: "cart-1".into(),
        },
        EventBody::CheckoutStarted {
            cart_id: "cart-1".into(),
        },
        EventBody::OrderCompleted {
            order_id: "order-1".into(),
            cart_id: Some("cart-1".into()),
            items: vec![OrderItem {
                product: product(),
                quantity: 2,
            }],
            total: 99.0,
            currency: "EUR".into(),
        },
        EventBody::StockChanged {
            sku: "SKU-1".into(),
            quantity: 12,
            product: Some(product()),
        },
        EventBody::ConsentChanged {
            email_marketing: true,
        },
        EventBody::CustomerErased,
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(n, body)| event(n, body))
        .collect()
}

fn decision(body: DecisionBody) -> Decision {
    Decision {
        decision_id: decision_id(&[body.decision_type().name(), "sample"]),
        customer_id: Some("c-1".into()),
        decided_at: AT,
        reason: "sample".into(),
        body,
    }
}

pub fn one_of_each_decision_type() -> Vec<Decision> {
    vec![
        decision(DecisionBody::AbandonedCart {
            cart_id: "cart-1".into(),
            step: 1,
            items: vec![CartItem {
                sku: "SKU-1".into(),
                name: Some("Linen dress".into()),
                quantity: 2,
                price: Some(49.5),
                currency: Some("EUR".into()),
                url: Some("https://shop.example/p/sku-1".into()),
                image_url: Some("https://shop.example/i/sku-1.jpg".into()),
            }],
            cart_value: 99.0,
            currency: Some("EUR".into()),
            last_activity_at: AT - 3_600_000,
        }),
        decision(DecisionBody::BackInStock {
            sku: "SKU-1".into(),
            product: product(),
            requested_at: AT - 86_400_000,
            quantity_available: 12,
        }),
        decision(DecisionBody::DiscountOffer {
            category: "women/dresses".into(),
            code: "DRESS10".into(),
            score: 0.82,
        }),
        decision(DecisionBody::SegmentChanged {
            segment: "rfm:champions".into(),
            change: SegmentChange::Entered,
        }),
        decision(DecisionBody::Profile(Box::new(Profile {
            anonymous_id: Some("a-1".into()),
            preferred_department: Some("women".into()),
            top_categories: vec![CategoryScore {
                category: "women/dresses".into(),
                score: 3.5,
            }],
            recently_viewed: vec!["SKU-1".into()],
            site: Some("us".into()),
            suggested_site: Some("au".into()),
            segments: vec!["lifecycle:active".into(), "rfm:champions".into()],
            consent: Some(true),
            rfm: Some(Rfm { r: 5, f: 4, m: 3 }),
            orders: 4,
            last_order_at: Some(AT - 86_400_000),
        }))),
        Decision {
            customer_id: None,
            ..decision(DecisionBody::Product(std::sync::Arc::new(ProductRecord {
                sku: "SKU-1".into(),
                product: Some(product()),
                quantity: Some(3),
                segments: vec!["low_stock".into(), "trending".into()],
                popularity: Popularity {
                    views_7d: 120.5,
                    purchases_7d: 6.25,
                    cart_adds_7d: 14.0,
                },
                trending_score: 3.2,
                view_to_purchase: Some(0.0519),
                view_to_cart: Some(0.1162),
                viewed_with: vec![ScoredSku {
                    sku: "SKU-2".into(),
                    score: 0.41,
                }],
                bought_with: vec![ScoredSku {
                    sku: "SKU-3".into(),
                    score: 0.2,
                }],
                viewed_then_bought: vec![],
                ranking_basis: RankingBasis {
                    views: 300.0,
                    orders: 12.5,
                },
            })))
        },
    ]
}

/// The tombstone a profile gets when its shopper is erased (not a record with a schema:
/// on Kafka it is a key with no value).
pub fn profile_tombstone() -> Decision {
    decision(DecisionBody::ProfileDeleted { anonymous_id: None })
}
