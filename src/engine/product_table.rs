//! The product table's durable form: the latest `product` record per SKU in the store's
//! `product_table` family, as the JSON the products topic carries, from which the
//! in-memory [`ProductCatalog`] is rebuilt when a process starts. `replay` writes its
//! own records here; live, the global-table reader writes what it reads from the topic.

use crate::catalog::ProductCatalog;
use crate::decision::{Decision, DecisionBody};
use crate::store::{Family, StateChange, Store, StoreError};

/// What became of the stored records when the catalog was rebuilt.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub records: usize,
    /// Values that are not a product record: skipped (and overwritten by the next one).
    pub unreadable: usize,
}

/// The store write that keeps `decision` as its SKU's row; `None` for other decisions.
pub fn row_for(decision: &Decision) -> Option<StateChange> {
    let DecisionBody::Product(record) = &decision.body else {
        return None;
    };
    Some(row(&record.sku, decision.to_json_line().into_bytes()))
}

/// The store write for a record as it came off the products topic.
pub fn row(sku: &str, json: Vec<u8>) -> StateChange {
    StateChange {
        family: Family::ProductTable,
        key: sku.as_bytes().to_vec(),
        value: Some(json),
    }
}

/// A stored row (or a record off the topic) as a decision; `None` when it is not a
/// product record.
pub fn parse(json: &[u8]) -> Option<Decision> {
    let decision = crate::decision_json::from_json(json).ok()?;
    matches!(decision.body, DecisionBody::Product(_)).then_some(decision)
}

/// Takes a parsed product record into the catalog.
pub fn apply(catalog: &mut ProductCatalog, decision: &Decision) {
    if let DecisionBody::Product(record) = &decision.body {
        catalog.apply(record, decision.decided_at);
    }
}

/// Fills `catalog` with every stored record.
pub fn load(store: &Store, catalog: &mut ProductCatalog) -> Result<Loaded, StoreError> {
    for_each_record(store, |decision| apply(catalog, decision))
}

/// Calls `take` with every stored record, in SKU order.
pub fn for_each_record(
    store: &Store,
    mut take: impl FnMut(&Decision),
) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    for (_, value) in store.scan_prefix(Family::ProductTable, &[])? {
        match parse(&value) {
            Some(decision) => {
                take(&decision);
                loaded.records += 1;
            }
            None => loaded.unreadable += 1,
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StateConfig;

    #[test]
    fn stored_records_rebuild_the_catalog_and_bad_rows_are_counted_not_fatal() {
        let store = Store::open_temporary(&StateConfig::default()).unwrap();
        let sample = crate::samples::one_of_each_decision_type();
        let product = sample
            .iter()
            .find(|d| matches!(d.body, DecisionBody::Product(_)))
            .unwrap();
        let profile = sample
            .iter()
            .find(|d| matches!(d.body, DecisionBody::Profile(_)))
            .unwrap();
        assert_eq!(row_for(profile), None);
        let mut changes = vec![
            row_for(product).unwrap(),
            row("broken", b"{not json".to_vec()),
        ];
        changes.push(row("SKU-9", profile.to_json_line().into_bytes()));
        store.write(&changes).unwrap();
        let mut catalog = ProductCatalog::default();
        let loaded = load(&store, &mut catalog).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                records: 1,
                unreadable: 2
            }
        );
        let entry = catalog.get("SKU-1").unwrap();
        assert_eq!(entry.views.value, 300.0);
        assert_eq!(entry.views.at, product.decided_at);
        assert_eq!(entry.department.as_deref(), Some("women"));
    }
}
