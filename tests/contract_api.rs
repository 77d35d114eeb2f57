//! CONTRACT §5.7 (the read API), through `personalizer query`: a hand-written shop is
//! replayed into a state directory once, then each test asks the binary one path and
//! checks that the expected SKUs come first, each with the expected `because`.

mod common;

use common::shop::{shop, Shop};
use personalizer::api::activity::RecentActivity;
use personalizer::api::{self, query, ApiSlot};
use personalizer::config::Config;
use personalizer::decision_codec::DecisionDecoder;
use personalizer::http_port;
use personalizer::telemetry::Telemetry;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

/// Runs `personalizer query` and returns (exit success, JSON).
fn query_raw(shop: &Shop, path: &str, body: Option<&str>) -> (bool, Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_personalizer"));
    command
        .arg("query")
        .arg("--config")
        .arg(&shop.config)
        .arg("--state-dir")
        .arg(&shop.state);
    if let Some(body) = body {
        command.arg("--body").arg(body);
    }
    let output = command.arg(path).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{path}: not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), json)
}

fn query(path: &str) -> Value {
    let (ok, json) = query_raw(shop(), path, None);
    assert!(ok, "{path} failed: {json}");
    json
}

/// (sku, because) of each item, in order.
fn items(answer: &Value) -> Vec<(String, String)> {
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {answer}"))
        .iter()
        .map(|i| {
            assert!(i["score"].is_number(), "every item has a score: {i}");
            assert_eq!(i["product"]["sku"], i["sku"], "the item's product: {i}");
            (
                i["sku"].as_str().unwrap().to_string(),
                i["because"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn recs(query_string: &str) -> Vec<(String, String)> {
    items(&query(&format!("/v1/recommendations?{query_string}")))
}

fn pair(sku: &str, because: &str) -> (String, String) {
    (sku.to_string(), because.to_string())
}

fn skus(items: &[(String, String)]) -> Vec<&str> {
    items.iter().map(|(sku, _)| sku.as_str()).collect()
}

#[test]
fn the_profile_of_a_shopper_and_of_an_anonymous_id_that_signed_in() {
    let profile = query("/v1/shoppers/c-main/profile");
    assert_eq!(profile["shopper"], "c-main");
    assert_eq!(profile["customer_id"], "c-main");
    assert_eq!(profile["recently_viewed"], json!(["D2", "D3", "M1"]));
    assert_eq!(profile["orders"], 1);
    // The anonymous id answers with the customer it became.
    let merged = query("/v1/shoppers/anon-main/profile");
    assert_eq!(merged["shopper"], "c-main");
    let (ok, unknown) = query_raw(shop(), "/v1/shoppers/nobody/profile", None);
    assert!(!ok);
    assert!(
        unknown["error"].as_str().unwrap().contains("nobody"),
        "{unknown}"
    );
}

#[test]
fn viewed_viewed_lists_the_viewed_with_neighbours_strongest_first() {
    let got = recs("type=viewed_viewed&sku=D1");
    assert_eq!(got[0], pair("D2", "viewed_with:D1"));
    assert!(!skus(&got).contains(&"D1"), "never the SKU asked about");
}

#[test]
fn bought_bought_lists_what_is_bought_with_it() {
    assert_eq!(
        recs("type=bought_bought&sku=D1")[0],
        pair("S1", "bought_with:D1")
    );
}

#[test]
fn viewed_bought_lists_what_was_bought_after_viewing_it() {
    assert_eq!(
        recs("type=viewed_bought&sku=D3")[0],
        pair("B1", "viewed_then_bought:D3")
    );
}

#[test]
fn more_like_this_is_the_same_leaf_category_in_the_price_band_same_brand_first() {
    let got = recs("type=more_like_this&sku=D1");
    assert_eq!(
        got,
        [
            pair("D2", "same_brand:Acme"),
            pair("D3", "same_category:women/dresses")
        ],
        "D4 is priced out of the ±30 % band, OOS is out of stock"
    );
}

#[test]
fn popularity_rankings_leave_out_what_is_out_of_stock() {
    // OOS has the most views of all, but no stock.
    assert_eq!(
        recs("type=most_viewed&limit=1"),
        [pair("D1", "most_viewed")]
    );
    assert_eq!(
        recs("type=most_viewed&category=men&limit=1"),
        [pair("M1", "most_viewed:men")]
    );
    assert_eq!(
        recs("type=most_added_to_cart&limit=1"),
        [pair("M1", "most_added_to_cart")]
    );
    let purchased = recs("type=most_purchased");
    assert!(
        ["D1", "S1"].contains(&purchased[0].0.as_str()),
        "{purchased:?}"
    );
    assert_eq!(
        recs("type=trending&category=women&limit=1"),
        [pair("D1", "trending:women")]
    );
    // Conversion needs 20 views: D1 (27 views, 4 orders) and M1 (22 views, 6 carts).
    assert_eq!(
        recs("type=view_to_purchase"),
        [pair("D1", "view_to_purchase")]
    );
    assert_eq!(recs("type=view_to_cart"), [pair("M1", "view_to_cart")]);
}

#[test]
fn recently_viewed_keeps_what_is_in_the_cart_and_leaves_out_recent_purchases() {
    assert_eq!(
        recs("type=recently_viewed&shopper=c-main"),
        [
            pair("D2", "recently_viewed"),
            pair("D3", "recently_viewed"),
            pair("M1", "recently_viewed")
        ]
    );
}

#[test]
fn recommended_for_you_follows_the_latest_views_and_leaves_out_cart_and_purchases() {
    let got = recs("type=recommended_for_you&shopper=c-main");
    assert_eq!(got[0], pair("D1", "viewed_with:D2"));
    for left_out in ["D3", "S1", "OOS"] {
        assert!(
            !skus(&got).contains(&left_out),
            "{left_out} must be left out: {got:?}"
        );
    }
    // Bought S1 within 30 days: not even the most purchased list offers it to them.
    assert!(!skus(&recs("type=most_purchased&shopper=c-main")).contains(&"S1"));
}

#[test]
fn an_unknown_shopper_gets_the_most_viewed() {
    assert_eq!(
        recs("type=recommended_for_you&shopper=stranger&limit=2"),
        [pair("D1", "most_viewed"), pair("D2", "most_viewed")]
    );
}

#[test]
fn complements_are_bought_with_the_cart_then_the_configured_categories() {
    // c-main's cart holds D3, which nobody bought with anything: the bags.
    assert_eq!(
        recs("type=complements&shopper=c-main")[0],
        pair("B1", "complements:accessories/bags")
    );
    let got = recs("type=complements&sku=D1");
    assert_eq!(got[0], pair("S1", "bought_with:D1"));
    assert_eq!(got[1], pair("B1", "complements:accessories/bags"));
}

#[test]
fn the_search_order_is_a_permutation_led_by_the_shoppers_own_clicks() {
    let skus_in = ["M1", "B1", "D3", "D1", "NOT-IN-CATALOG"];
    let body = json!({"query": "dress", "skus": skus_in}).to_string();
    let (ok, answer) = query_raw(shop(), "/v1/shoppers/c-main/search-order", Some(&body));
    assert!(ok, "{answer}");
    let got: Vec<&str> = answer["skus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut sorted_in = skus_in.to_vec();
    let mut sorted_out = got.clone();
    sorted_in.sort_unstable();
    sorted_out.sort_unstable();
    assert_eq!(sorted_in, sorted_out, "a permutation");
    assert_eq!(got[0], "D1", "clicked for this query before: {answer}");
    assert_eq!(got.last(), Some(&"NOT-IN-CATALOG"));
    let scores: Vec<f64> = answer["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    // A stranger with no signal: equal scores keep the input order of what nobody viewed.
    let body = json!({"query": "x", "skus": ["NOPE-2", "NOPE-1"]}).to_string();
    let (_, answer) = query_raw(shop(), "/v1/shoppers/stranger/search-order", Some(&body));
    assert_eq!(answer["skus"], json!(["NOPE-2", "NOPE-1"]));
}

#[test]
fn bad_requests_name_the_parameter() {
    for (path, parameter) in [
        ("/v1/recommendations?type=nope", "`type`"),
        ("/v1/recommendations?type=viewed_viewed", "`sku`"),
        ("/v1/recommendations?type=trending&limit=1000", "`limit`"),
    ] {
        let (ok, answer) = query_raw(shop(), path, None);
        assert!(!ok, "{path}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(parameter), "{path}: {error}");
    }
    let (ok, answer) = query_raw(
        shop(),
        "/v1/recommendations?type=bought_bought&sku=ZZZ",
        None,
    );
    assert!(!ok);
    assert!(
        answer["error"].as_str().unwrap().contains("ZZZ"),
        "{answer}"
    );
    let too_many: Vec<String> = (0..501).map(|i| format!("S{i}")).collect();
    let body = json!({"query": "q", "skus": too_many}).to_string();
    let (ok, answer) = query_raw(shop(), "/v1/shoppers/c-main/search-order", Some(&body));
    assert!(!ok);
    assert!(
        answer["error"].as_str().unwrap().contains("`skus`"),
        "{answer}"
    );
    let (ok, answer) = query_raw(shop(), "/v1/shoppers/c-main/search-order", Some("[1,2"));
    assert!(!ok);
    assert!(
        answer["error"].as_str().unwrap().contains("`body`"),
        "{answer}"
    );
}

#[test]
fn query_refuses_what_is_not_a_state_directory() {
    let output = Command::new(env!("CARGO_BIN_EXE_personalizer"))
        .args(["query", "--state-dir"])
        .arg(Path::new("/nonexistent/personalizer-state"))
        .arg("/v1/recommendations?type=trending")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a directory"), "{stderr}");
}

// ---- The server, and the examples of docs/api.md ------------------------------------

/// `personalizer`'s HTTP port serving the shop's state (read-only, beside `query`).
fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        let shop = shop();
        let config = Config::load(Some(&shop.config)).unwrap();
        let telemetry = Arc::new(Telemetry::new(&config));
        let mut read = query::open(config, &shop.state).unwrap();
        // A running processor keeps the decisions it reads back from its output topics;
        // here they are the replay's.
        let activity = Arc::new(RecentActivity::new(DecisionDecoder::json()));
        for decision in &shop.decisions {
            activity.record(decision.record_key().as_bytes(), &decision.to_json_bytes());
        }
        read.activity = Some(activity);
        let slot = ApiSlot::default();
        slot.publish(api::router(Arc::new(read), None, None));
        let server = http_port::serve("127.0.0.1:0", telemetry, slot).unwrap();
        let address = server.local_addr().to_string();
        // Serves until the test process ends.
        std::mem::forget(server);
        address
    })
}

/// One example of docs/api.md: the request, and the status and JSON it is answered with.
#[derive(Debug)]
struct Example {
    method: String,
    path: String,
    body: Option<String>,
    status: u16,
    answer: Value,
}

/// Every ```http block: `METHOD PATH`, optionally a JSON body, a blank line,
/// `HTTP <status>`, then the JSON answer.
fn examples(page: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find("```http\n") {
        let block_start = start + "```http\n".len();
        let end = rest[block_start..].find("```").expect("an http block ends") + block_start;
        let block = &rest[block_start..end];
        rest = &rest[end + 3..];
        let (request, response) = block
            .split_once("\n\n")
            .unwrap_or_else(|| panic!("no blank line before the answer in:\n{block}"));
        let (request_line, body) = match request.split_once('\n') {
            Some((line, body)) => (line, Some(body.trim().to_string())),
            None => (request, None),
        };
        let (method, path) = request_line.split_once(' ').unwrap();
        let (status_line, answer) = response.split_once('\n').unwrap();
        let status = status_line
            .strip_prefix("HTTP ")
            .unwrap_or_else(|| panic!("`{status_line}` is not `HTTP <status>`"))
            .parse()
            .unwrap();
        found.push(Example {
            method: method.to_string(),
            path: path.to_string(),
            body,
            status,
            answer: serde_json::from_str(answer).unwrap_or_else(|e| {
                panic!("{request_line}: the answer is not JSON ({e}):\n{answer}")
            }),
        });
    }
    found
}

/// Equal, numbers within 0.001 (the page rounds scores to three decimals).
fn same(documented: &Value, served: &Value) -> bool {
    match (documented, served) {
        (Value::Number(a), Value::Number(b)) => {
            (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= 1e-3
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        (a, b) => a == b,
    }
}

#[test]
fn every_example_of_the_api_page_is_what_the_server_answers() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
    let examples = examples(&page);
    assert!(examples.len() >= 15, "only {} examples", examples.len());
    let address = server();
    let mut wrong = Vec::new();
    for example in &examples {
        let url = format!("http://{address}{}", example.path);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let response = match (example.method.as_str(), &example.body) {
            ("GET", None) => agent.get(&url).call(),
            ("POST", Some(body)) => agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.as_str()),
            other => panic!("an example must be a GET or a POST with a body: {other:?}"),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap();
        let served: Value = serde_json::from_str(&text).unwrap();
        if status != example.status || !same(&example.answer, &served) {
            wrong.push(format!(
                "{} {}\nHTTP {status}\n{}",
                example.method,
                example.path,
                serde_json::to_string_pretty(&served).unwrap()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the server answers otherwise:\n\n{}",
        wrong.join("\n\n")
    );
}

// ---- docs/openapi.yaml -------------------------------------------------------------------

fn openapi() -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml"))
            .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Follows a `$ref` within the document.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            resolve(
                document,
                document
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{reference} leads nowhere")),
            )
        }
        None => schema,
    }
}

/// Why `value` does not fit `schema` (types, required and unexpected properties,
/// array items), or `None`.
fn misfit(document: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
    let schema = resolve(document, schema);
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let fits = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("the checker does not know type {other}"),
    };
    if !types.is_empty() && !types.iter().any(|t| fits(t)) {
        return Some(format!("{at}: {value} is not {types:?}"));
    }
    if let (Some(object), Some(properties)) = (value.as_object(), schema["properties"].as_object())
    {
        for required in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(required.as_str().unwrap()) {
                return Some(format!("{at}: no `{required}`"));
            }
        }
        for (key, field) in object {
            match properties.get(key) {
                Some(property) => {
                    if let Some(problem) = misfit(document, property, field, &format!("{at}.{key}"))
                    {
                        return Some(problem);
                    }
                }
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    return Some(format!("{at}: `{key}` is not in the schema"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            if let Some(problem) = misfit(document, items, item, &format!("{at}[{i}]")) {
                return Some(problem);
            }
        }
    }
    None
}

#[test]
fn the_openapi_document_describes_the_routes_the_server_serves() {
    let document = openapi();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(documented, served);

    // The recommendation parameters and types are the server's.
    let parameters = document["paths"]["/v1/recommendations"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = parameters
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, api::RECOMMENDATION_PARAMETERS);
    let types: Vec<&str> = parameters[0]["schema"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let known: Vec<&str> = api::RecType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(types, known);

    // Every example answer of docs/api.md fits its documented response, and every
    // documented route answers on the server (a route it does not serve is a 404 "no
    // such route").
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
    let mut checked = BTreeSet::new();
    for example in examples(&page) {
        let path = example.path.split('?').next().unwrap();
        let (template, _) = api::ROUTES
            .iter()
            .map(|(m, t)| (t, m))
            .find(|(t, m)| **m == example.method.to_lowercase() && route_matches(t, path))
            .map(|(t, m)| (t.to_string(), m.to_string()))
            .unwrap_or_else(|| {
                assert!(
                    example.answer["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("no such route")),
                    "{} {path} is served but not documented",
                    example.method
                );
                (String::new(), String::new())
            });
        if template.is_empty() {
            continue;
        }
        let operation = &document["paths"][&template][example.method.to_lowercase()];
        let response = resolve(
            &document,
            &operation["responses"][example.status.to_string()],
        );
        assert!(
            response.is_object(),
            "{} {template}: status {} is not documented",
            example.method,
            example.status
        );
        let schema = &response["content"]["application/json"]["schema"];
        if let Some(problem) = misfit(&document, schema, &example.answer, "answer") {
            panic!("{} {}: {problem}", example.method, example.path);
        }
        checked.insert(template);
    }
    assert_eq!(
        checked.len(),
        api::ROUTES.len(),
        "an example for every route"
    );
}

/// Whether `path` is an instance of `template` (`{name}` matches one segment).
fn route_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}
