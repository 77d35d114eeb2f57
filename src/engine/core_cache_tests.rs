//! The write-back caches of a core's tasks: trimmed to the byte budget after a commit,
//! the least recently used entries first whichever task holds them.

use super::*;

#[test]
fn the_caches_are_trimmed_to_the_byte_budget_and_evicted_states_read_back() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::PerTask);
    for i in 0..200 {
        apply(
            &mut core,
            &store,
            &add_to_cart(&format!("e{i}"), &format!("c{i}"), 0),
        );
    }
    commit(&mut core, &store);
    let full = core.cache_usage();
    assert_eq!(full.entries, 200);
    assert!(full.bytes > 200 * 128, "{full:?}");

    let budget = CacheBudget {
        entries: usize::MAX,
        bytes: full.bytes / 4,
    };
    core.trim_caches(budget);
    let left = core.cache_usage();
    assert!(left.bytes <= budget.bytes, "{left:?} within {budget:?}");
    assert!(
        left.bytes >= budget.bytes / 2,
        "{left:?} keeps most of {budget:?}"
    );
    assert!(left.entries < 100, "{left:?}");

    // An evicted state is read back from the store when its shopper comes again.
    for i in 0..200 {
        let customer = format!("c{i}");
        apply(
            &mut core,
            &store,
            &add_named(&format!("f{i}"), &customer, "S2", 8),
        );
        assert_eq!(cart_lines(&mut core, &store, &customer), 2, "{customer}");
    }
}

#[test]
fn trimming_keeps_the_most_recently_used_whichever_task_holds_them() {
    let store = Store::open_temporary(&StateConfig::default()).unwrap();
    let mut core = core_with_every_task(&store, Clock::PerTask);
    let customers: Vec<String> = (0..200).map(|i| format!("c{i}")).collect();
    for (i, customer) in customers.iter().enumerate() {
        apply(
            &mut core,
            &store,
            &add_to_cart(&format!("e{i}"), customer, 0),
        );
    }
    commit(&mut core, &store);
    // The customers of one task come again: theirs are now the latest uses.
    let hot_task = core.task_for(Side::Customer, &customers[0]);
    let hot: Vec<&String> = customers
        .iter()
        .filter(|c| core.task_for(Side::Customer, c) == hot_task)
        .collect();
    assert!(hot.len() > 10 && hot.len() < 150, "{} of 200", hot.len());
    for (i, customer) in hot.iter().enumerate() {
        apply(
            &mut core,
            &store,
            &add_named(&format!("f{i}"), customer, "S2", 8),
        );
    }
    commit(&mut core, &store);
    let usage = core.cache_usage();
    let hot_bytes = core.tasks[&hot_task].cached_bytes();

    // Room for the hot task's entries and a little more, not for a share of every task.
    core.trim_caches(CacheBudget {
        entries: usize::MAX,
        bytes: (hot_bytes + hot_bytes / 4).min(usage.bytes - 1),
    });
    assert_eq!(
        core.tasks[&hot_task].cached_entries(),
        hot.len(),
        "every recently used entry stays"
    );
    let others: usize = core
        .tasks
        .iter()
        .filter(|(id, _)| **id != hot_task)
        .map(|(_, task)| task.cached_entries())
        .sum();
    assert!(
        others < (customers.len() - hot.len()) / 2,
        "most of the others go: {others} left"
    );
}
