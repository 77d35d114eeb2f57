//! Tests of the topic layout: names, partition counts, compaction, record limits.
use super::*;

fn cluster(topics: &[(&str, i32, Option<&str>)]) -> ClusterTopics {
    ClusterTopics {
        topics: topics
            .iter()
            .map(|(n, p, c)| {
                (
                    n.to_string(),
                    TopicInfo {
                        partitions: *p,
                        cleanup_policy: c.map(str::to_string),
                        max_message_bytes: Some(1_048_588),
                        segment_bytes: None,
                    },
                )
            })
            .collect(),
    }
}

fn full_cluster(layout: &TopicLayout, partitions: i32) -> Vec<(String, i32, Option<String>)> {
    layout
        .specs()
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                if s.name == layout.instances {
                    1
                } else {
                    partitions
                },
                s.compacted.then(|| "compact".to_string()),
            )
        })
        .collect()
}

fn as_refs(v: &[(String, i32, Option<String>)]) -> Vec<(&str, i32, Option<&str>)> {
    v.iter()
        .map(|(n, p, c)| (n.as_str(), *p, c.as_deref()))
        .collect()
}

#[test]
fn names_internal_topics_after_the_application() {
    let layout = TopicLayout::new(&Config::default());
    assert_eq!(layout.by_sku, "personalizer-by-sku");
    assert_eq!(layout.by_customer, "personalizer-by-customer");
    assert_eq!(layout.customer_changelog, "personalizer-customer-changelog");
    let compacted: Vec<&str> = layout.compacted_names().collect();
    assert_eq!(
        compacted,
        vec![
            "personalization.profiles",
            "personalization.products",
            "personalizer-customer-changelog",
            "personalizer-product-changelog",
            "personalizer-instances"
        ]
    );
}

#[test]
fn the_instances_topic_has_one_partition_whatever_the_inputs_have() {
    let layout = TopicLayout::new(&Config::default());
    let mut topics = full_cluster(&layout, 6);
    for t in &mut topics {
        if t.0 == layout.instances {
            t.1 = 3;
        }
    }
    let problems = layout.check(&cluster(&as_refs(&topics)), 8);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    assert!(
        text.contains("personalizer-instances") && text.contains("must have 1"),
        "{text}"
    );
}

#[test]
fn a_complete_layout_has_no_problems() {
    let layout = TopicLayout::new(&Config::default());
    let topics = full_cluster(&layout, 6);
    assert_eq!(layout.check(&cluster(&as_refs(&topics)), 8), vec![]);
}

#[test]
fn names_the_topic_that_is_not_co_partitioned() {
    let layout = TopicLayout::new(&Config::default());
    let mut topics = full_cluster(&layout, 6);
    for t in &mut topics {
        if t.0 == "cart" {
            t.1 = 4;
        }
    }
    let problems = layout.check(&cluster(&as_refs(&topics)), 8);
    assert_eq!(problems.len(), 1);
    let text = problems[0].to_string();
    assert!(
        text.contains("`cart`") && text.contains("`kafka.topics.cart`"),
        "{text}"
    );
    assert!(
        text.contains("4 partitions but must have 6, like `clickstream`"),
        "{text}"
    );
}

#[test]
fn product_side_topics_follow_stock() {
    let layout = TopicLayout::new(&Config::default());
    let mut topics = full_cluster(&layout, 6);
    for t in &mut topics {
        if t.0 == "stock" || t.0 == layout.product_changelog {
            t.1 = 3;
        }
    }
    let problems = layout.check(&cluster(&as_refs(&topics)), 8);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].to_string().contains("personalizer-by-sku"));
}

#[test]
fn a_changelog_that_refuses_a_full_state_record_is_reported() {
    let layout = TopicLayout::new(&Config::default());
    let topics = full_cluster(&layout, 6);
    let mut c = cluster(&as_refs(&topics));
    assert_eq!(
        layout.check(&c, 8),
        vec![],
        "the broker's default 1 MiB fits"
    );
    c.topics
        .get_mut(&layout.product_changelog)
        .unwrap()
        .max_message_bytes = Some(100_000);
    let problems = layout.check(&c, 8);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    assert!(
        text.contains("personalizer-product-changelog")
            && text.contains("max.message.bytes")
            && text.contains("`rules.limits.max_state_bytes`"),
        "{text}"
    );
}

#[test]
fn missing_and_uncompacted_topics_are_reported_and_planned() {
    let layout = TopicLayout::new(&Config::default());
    let mut topics = full_cluster(&layout, 6);
    topics.retain(|t| t.0 != layout.by_sku);
    for t in &mut topics {
        if t.0 == layout.customer_changelog {
            t.2 = Some("delete".into());
        }
    }
    let c = cluster(&as_refs(&topics));
    let problems = layout.check(&c, 8);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].to_string().contains("does not exist"));
    assert!(problems[1].to_string().contains("cleanup.policy=delete"));
    let missing: Vec<&TopicSpec> = problems
        .iter()
        .filter_map(|p| match p {
            TopicProblem::Missing(s) => Some(s),
            _ => None,
        })
        .collect();
    let plan = layout.to_create(missing.into_iter(), &c, 8);
    assert_eq!(plan.len(), 1);
    assert_eq!(
        (plan[0].0.name.as_str(), plan[0].1),
        ("personalizer-by-sku", 6)
    );
}
