//! A client of a Confluent-compatible Schema Registry (Confluent's, Apicurio's
//! `/apis/ccompat/v7`, Redpanda's): the writer schema of an Avro record, fetched by its
//! id once per process and cached.
//!
//! A registry that does not answer is not the record's fault: the lookup retries a few
//! times and then reports the registry unavailable, and the runtime waits and reads the
//! record again rather than dead-lettering it. An id the registry does not know is the
//! record's fault: it goes to the dead-letter topic.

use crate::avro::{LookupError, NamedSchema, SchemaLookup};
use crate::config::{OutputSchemas, SchemaRegistryConfig};
use apache_avro::Schema;
use base64::prelude::{Engine, BASE64_STANDARD};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};

/// Attempts per lookup before the registry counts as unavailable, and the pause before
/// the first retry (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("setting `schema_registry.url`: the registry at {url} does not answer: {problem}")]
    Unreachable { url: String, problem: String },
    #[error(
        "setting `{setting}`: the registry refuses the `{type_name}` schema under subject \
         `{subject}`: {detail} (its compatibility rule forbids this schema after the versions \
         already there; see the subject's versions and `/config/{subject}`)"
    )]
    Incompatible {
        setting: String,
        type_name: String,
        subject: String,
        detail: String,
    },
    #[error(
        "setting `schema_registry.output_schemas` is `check`: the `{type_name}` schema is not \
         registered under subject `{subject}` ({detail}); register it, or set `register`"
    )]
    NotRegistered {
        type_name: String,
        subject: String,
        detail: String,
    },
    #[error("setting `schema_registry.ca_file`: {path}: {problem}")]
    CaFile { path: String, problem: String },
    #[error("setting `schema_registry.url`: {url} answers {status} to {path}: {body}")]
    Refused {
        url: String,
        path: String,
        status: u16,
        body: String,
    },
}

pub struct RegistryClient {
    base: String,
    authorization: Option<String>,
    agent: ureq::Agent,
    cache: RwLock<HashMap<u32, Arc<Schema>>>,
}

const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/json";

/// What one request came to.
enum Answer {
    Ok(String),
    Status(u16, String),
    Unreachable(String),
}

impl RegistryClient {
    pub fn new(config: &SchemaRegistryConfig) -> Result<RegistryClient, RegistryError> {
        let mut agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout.0))
            .http_status_as_error(false);
        if let Some(path) = &config.ca_file {
            agent = agent.tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(authorities(path)?)))
                    .build(),
            );
        }
        let agent = agent.build().new_agent();
        let authorization = config.username.as_ref().map(|user| {
            let password = config.password.as_deref().unwrap_or_default();
            let credentials = format!("{user}:{password}");
            format!("Basic {}", BASE64_STANDARD.encode(credentials))
        });
        Ok(RegistryClient {
            base: config
                .url
                .as_deref()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            authorization,
            agent,
            cache: RwLock::new(HashMap::new()),
        })
    }

    fn get(&self, path: &str) -> Answer {
        let mut request = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Accept", ACCEPT);
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        Self::answer(request.call())
    }

    /// POSTs a JSON body; registries insist on their content type (Apicurio refuses
    /// others).
    fn post(&self, path: &str, body: &str) -> Answer {
        let mut request = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Accept", ACCEPT)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json");
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        Self::answer(request.send(body))
    }

    fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.into_body().read_to_string().unwrap_or_default();
                if status == 200 {
                    Answer::Ok(body)
                } else {
                    Answer::Status(status, body)
                }
            }
            Err(e) => Answer::Unreachable(e.to_string()),
        }
    }

    /// Start-up check: the registry answers (its list of subjects).
    pub fn check(&self) -> Result<(), RegistryError> {
        match self.get("/subjects") {
            Answer::Ok(_) => Ok(()),
            Answer::Status(status, body) => Err(RegistryError::Refused {
                url: self.base.clone(),
                path: "/subjects".into(),
                status,
                body,
            }),
            Answer::Unreachable(problem) => Err(RegistryError::Unreachable {
                url: self.base.clone(),
                problem,
            }),
        }
    }

    /// The id of `schema` (of records of `type_name`, written to the topics `setting`
    /// makes Avro) under `subject`: registered there now (`Register`, a no-op when it is
    /// there already) or looked up (`Check`). The schema is cached under its id, so
    /// reading our own records back never asks the registry.
    pub fn prepare(
        &self,
        setting: &str,
        type_name: &str,
        subject: &str,
        schema: &NamedSchema,
        how: OutputSchemas,
    ) -> Result<u32, RegistryError> {
        let body = serde_json::json!({ "schema": schema.text }).to_string();
        let path = match how {
            OutputSchemas::Register => format!("/subjects/{}/versions", encode_path(subject)),
            OutputSchemas::Check => format!("/subjects/{}", encode_path(subject)),
        };
        let detail = |body: &str| {
            serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.trim().to_string())
        };
        let id = match self.post(&path, &body) {
            Answer::Ok(answer) => serde_json::from_str::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v["id"].as_u64())
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| RegistryError::Refused {
                    url: self.base.clone(),
                    path: path.clone(),
                    status: 200,
                    body: format!("no schema id in the answer: {answer}"),
                })?,
            Answer::Status(409, body) => {
                return Err(RegistryError::Incompatible {
                    setting: setting.into(),
                    type_name: type_name.into(),
                    subject: subject.into(),
                    detail: detail(&body),
                })
            }
            Answer::Status(404, body) if how == OutputSchemas::Check => {
                return Err(RegistryError::NotRegistered {
                    type_name: type_name.into(),
                    subject: subject.into(),
                    detail: detail(&body),
                })
            }
            Answer::Status(status, body) => {
                return Err(RegistryError::Refused {
                    url: self.base.clone(),
                    path,
                    status,
                    body: detail(&body),
                })
            }
            Answer::Unreachable(problem) => {
                return Err(RegistryError::Unreachable {
                    url: self.base.clone(),
                    problem,
                })
            }
        };
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(schema.schema.clone()));
        Ok(id)
    }

    fn fetch(&self, id: u32) -> Result<Schema, LookupError> {
        let path = format!("/schemas/ids/{id}");
        let mut pause = FIRST_RETRY;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match self.get(&path) {
                Answer::Ok(body) => {
                    let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
                        LookupError::Unavailable(format!(
                            "the registry's answer for id {id} is not JSON: {e}"
                        ))
                    })?;
                    // Avro is the default type; another type is not ours to read.
                    if let Some(kind) = answer["schemaType"].as_str().filter(|k| *k != "AVRO") {
                        return Err(LookupError::Unknown(format!(
                            "schema id {id} is a {kind} schema, not Avro"
                        )));
                    }
                    let text = answer["schema"].as_str().ok_or_else(|| {
                        LookupError::Unknown(format!("the registry has no schema text for id {id}"))
                    })?;
                    return Schema::parse_str(text).map_err(|e| {
                        LookupError::Unknown(format!(
                            "schema id {id} is not a valid Avro schema: {e}"
                        ))
                    });
                }
                // Not found: the id is not (or no longer) registered. Confluent answers
                // 404 with error code 40403; Apicurio 404 too.
                Answer::Status(404, body) => {
                    return Err(LookupError::Unknown(format!(
                        "schema id {id} is not registered ({})",
                        body.trim()
                    )))
                }
                Answer::Status(status, body) => last = format!("{status}: {}", body.trim()),
                Answer::Unreachable(problem) => last = problem,
            }
            if attempt < ATTEMPTS {
                std::thread::sleep(pause);
                pause *= 2;
            }
        }
        Err(LookupError::Unavailable(format!(
            "the schema registry at {} did not answer for schema id {id} after {ATTEMPTS} attempts: {last}",
            self.base
        )))
    }
}

/// The certificates of a PEM file (anything else in it is ignored); at least one.
fn authorities(path: &std::path::Path) -> Result<Vec<Certificate<'static>>, RegistryError> {
    let problem = |problem: String| RegistryError::CaFile {
        path: path.display().to_string(),
        problem,
    };
    let pem = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    let mut certificates = Vec::new();
    for item in parse_pem(&pem) {
        match item.map_err(|e| problem(format!("not PEM: {e}")))? {
            PemItem::Certificate(certificate) => certificates.push(certificate),
            _ => continue,
        }
    }
    if certificates.is_empty() {
        return Err(problem("holds no certificate".into()));
    }
    Ok(certificates)
}

/// A subject in a URL path: record names are safe, topic names may hold characters that
/// are not.
fn encode_path(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl SchemaLookup for RegistryClient {
    fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, LookupError> {
        if let Some(schema) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(schema.clone());
        }
        let schema = Arc::new(self.fetch(id)?);
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authentication_is_sent_when_a_user_is_set() {
        let config = SchemaRegistryConfig {
            url: Some("http://127.0.0.1:1/".into()),
            username: Some("user".into()),
            password: Some("pass".into()),
            ..SchemaRegistryConfig::default()
        };
        let client = RegistryClient::new(&config).unwrap();
        assert_eq!(client.authorization.as_deref(), Some("Basic dXNlcjpwYXNz"));
        assert_eq!(client.base, "http://127.0.0.1:1");
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error_naming_the_setting() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, b"no pem here\n").unwrap();
        let config = SchemaRegistryConfig {
            url: Some("https://registry.example".into()),
            ca_file: Some(file.path().to_path_buf()),
            ..SchemaRegistryConfig::default()
        };
        let error = RegistryClient::new(&config).err().unwrap().to_string();
        assert!(
            error.contains("schema_registry.ca_file") && error.contains("no certificate"),
            "{error}"
        );
    }

    #[test]
    fn subjects_are_escaped_in_paths() {
        assert_eq!(
            encode_path("personalization.profiles-value"),
            "personalization.profiles-value"
        );
        assert_eq!(encode_path("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn a_registry_that_does_not_answer_is_unavailable_not_unknown() {
        let config = SchemaRegistryConfig {
            // Nothing listens on port 1.
            url: Some("http://127.0.0.1:1".into()),
            ..SchemaRegistryConfig::default()
        };
        let client = RegistryClient::new(&config).unwrap();
        assert!(matches!(
            client.schema_by_id(7),
            Err(LookupError::Unavailable(_))
        ));
        assert!(matches!(
            client.check(),
            Err(RegistryError::Unreachable { .. })
        ));
    }
}
