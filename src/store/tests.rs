use super::*;

fn change(family: Family, key: &str, value: Option<&str>) -> StateChange {
    StateChange {
        family,
        key: key.as_bytes().to_vec(),
        value: value.map(|v| v.as_bytes().to_vec()),
    }
}

#[test]
fn writes_survive_a_flush_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig::default();
    {
        let store = Store::open(dir.path(), &config).unwrap();
        store
            .write(&[
                change(Family::Shoppers, "\0\x01c1", Some("v1")),
                change(Family::Products, "\0\x01s1", Some("p1")),
                Store::meta_change("stream_time", 42),
            ])
            .unwrap();
        store
            .write(&[change(Family::Products, "\0\x01s1", None)])
            .unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path(), &config).unwrap();
    assert_eq!(
        store.get(Family::Shoppers, b"\0\x01c1").unwrap(),
        Some(b"v1".to_vec())
    );
    assert_eq!(store.get(Family::Products, b"\0\x01s1").unwrap(), None);
    assert_eq!(store.read_meta("stream_time").unwrap(), Some(42));
}

#[test]
fn unlogged_writes_are_read_at_once_and_kept_by_a_flush_even_in_a_logging_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig::default();
    {
        let store = Store::open(dir.path(), &config).unwrap().keep_writes();
        let mut staged = store.staged();
        store.stage(&mut staged, Family::Shoppers, b"\0\x01restored", Some(b"r"));
        store.stage(&mut staged, Family::Products, b"\0\x01sku", Some(b"p"));
        store.write_staged_unlogged(&mut staged).unwrap();
        assert_eq!(staged.len(), 0, "the batch is left empty for reuse");
        assert_eq!(
            store.get(Family::Shoppers, b"\0\x01restored").unwrap(),
            Some(b"r".to_vec())
        );
        store.flush().unwrap();
    }
    let store = Store::open(dir.path(), &config).unwrap();
    assert_eq!(
        store.get(Family::Shoppers, b"\0\x01restored").unwrap(),
        Some(b"r".to_vec())
    );
    assert_eq!(
        store.get(Family::Products, b"\0\x01sku").unwrap(),
        Some(b"p".to_vec())
    );
}

#[test]
fn staged_puts_and_deletes_land_together_and_leave_the_batch_empty() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    store
        .write(&[change(Family::Shoppers, "\0\x01gone", Some("old"))])
        .unwrap();
    let mut staged = store.staged();
    store.stage(&mut staged, Family::Shoppers, b"\0\x01new", Some(b"value"));
    store.stage(&mut staged, Family::Shoppers, b"\0\x01gone", None);
    store.stage(&mut staged, Family::ShopperTimers, b"\0\x01t", Some(b""));
    assert_eq!(staged.len(), 3);
    assert!(staged.bytes() > "newvaluegonet".len());
    // Nothing is visible before the write.
    assert_eq!(store.get(Family::Shoppers, b"\0\x01new").unwrap(), None);
    store.write_staged_unlogged(&mut staged).unwrap();
    assert!(staged.is_empty());
    assert_eq!(
        store.get(Family::Shoppers, b"\0\x01new").unwrap(),
        Some(b"value".to_vec())
    );
    assert_eq!(store.get(Family::Shoppers, b"\0\x01gone").unwrap(), None);
    assert_eq!(
        store.get(Family::ShopperTimers, b"\0\x01t").unwrap(),
        Some(Vec::new())
    );
}

#[test]
fn stats_report_keys_sizes_and_the_block_cache() {
    let config = StateConfig::default();
    let store = Store::open_temporary(&config).unwrap();
    let changes: Vec<StateChange> = (0..1000)
        .map(|i| change(Family::Shoppers, &format!("\0\x01c{i}"), Some("value")))
        .collect();
    store.write(&changes).unwrap();
    let shoppers = |stats: &StoreStats| {
        *stats
            .families
            .iter()
            .find(|f| f.family == Family::Shoppers)
            .unwrap()
    };
    let before = store.stats();
    assert_eq!(before.families.len(), Family::ALL.len());
    assert!(shoppers(&before).memtable_bytes > 0);
    assert_eq!(before.block_cache_capacity_bytes, config.block_cache_bytes);
    store.flush().unwrap();
    let after = shoppers(&store.stats());
    assert!(after.sst_bytes > 0, "{after:?}");
    assert!((900..=1100).contains(&after.keys), "{after:?}");
}

#[test]
fn dedupe_reads_are_cached_in_the_shared_block_cache() {
    // The dedupe families once had a block cache each of their own, outside
    // `state.block_cache_bytes`: their data blocks never showed in the shared one.
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let value = "x".repeat(100);
    let keys: Vec<String> = (0..2000).map(|i| format!("\0\x01ev-{i:05}")).collect();
    for family in [Family::ShopperDedupe, Family::ProductDedupe] {
        let changes: Vec<StateChange> = keys
            .iter()
            .map(|key| change(family, key, Some(&value)))
            .collect();
        store.write(&changes).unwrap();
    }
    store.flush().unwrap();
    for family in [Family::ShopperDedupe, Family::ProductDedupe] {
        let before = store.stats().block_cache_usage_bytes;
        for key in &keys {
            assert!(store.get(family, key.as_bytes()).unwrap().is_some());
        }
        let after = store.stats().block_cache_usage_bytes;
        assert!(
            after >= before + (64 << 10),
            "{family:?}: the shared cache held {before} bytes before reading 200 KB of \
             values and {after} after"
        );
    }
}

#[test]
fn prefix_scans_stay_inside_the_partition() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    store
        .write(&[
            change(Family::ShopperTimers, "\0\x01a", Some("")),
            change(Family::ShopperTimers, "\0\x01b", Some("")),
            change(Family::ShopperTimers, "\0\x02a", Some("")),
        ])
        .unwrap();
    let rows = store.scan_prefix(Family::ShopperTimers, &[0, 1]).unwrap();
    assert_eq!(rows.len(), 2);
}

#[test]
fn compaction_drops_dedupe_entries_older_than_the_horizon() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let seen = |key: &str, at: Millis| {
        let mut ids = recent_ids::RecentIds::default();
        ids.seen_before("e", at, 1_000);
        StateChange {
            family: Family::ShopperDedupe,
            key: key.as_bytes().to_vec(),
            value: Some(ids.encode()),
        }
    };
    store
        .write(&[seen("old", 100), seen("recent", 900)])
        .unwrap();
    store.flush().unwrap();
    store.set_dedupe_horizon(500);
    store.compact(Family::ShopperDedupe);
    assert_eq!(store.get(Family::ShopperDedupe, b"old").unwrap(), None);
    assert!(store
        .get(Family::ShopperDedupe, b"recent")
        .unwrap()
        .is_some());
    // The horizon never moves back, so an older stream time cannot revive entries.
    store.set_dedupe_horizon(10);
    assert_eq!(store.dedupe_horizon.load(Ordering::Relaxed), 500);
}

#[test]
fn writing_far_past_the_memtable_budget_never_stalls() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let config = StateConfig {
            write_buffer_bytes: 4 << 20,
            ..StateConfig::default()
        };
        let store = Store::open_temporary(&config).unwrap();
        let value = vec![7u8; 1000];
        for batch in 0..200u32 {
            let changes: Vec<StateChange> = (0..100u32)
                .map(|i| StateChange {
                    family: Family::Shoppers,
                    key: format!("{batch:05}-{i:05}").into_bytes(),
                    value: Some(value.clone()),
                })
                .collect();
            store.write(&changes).unwrap();
        }
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("20 MB through a 4 MiB write budget completes");
}

#[test]
fn an_unusable_directory_is_named_in_the_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = Store::open(&file.path().join("sub"), &StateConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&file.path().display().to_string()), "{err}");
}

#[test]
fn families_are_declared_in_the_order_of_all() {
    // Per-family counters index arrays by `family as usize`.
    for (index, family) in Family::ALL.into_iter().enumerate() {
        assert_eq!(family as usize, index, "{}", family.name());
    }
}
