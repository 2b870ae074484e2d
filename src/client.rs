//! A small HTTP client for a running contactd, used by the command line's server mode
//! (`import --server`, `export --server`) and by `contactd bench`.
//!
//! It speaks the contract of API.md: an error answer is decoded from its
//! `{"error": {"code", "message", "details"}}` shape into a readable message.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The environment variable the CLI's client reads its API key from (a flag would
/// leave the key in shell history and process lists). The server's config ignores it.
pub const API_KEY_VARIABLE: &str = "CONTACTD_API_KEY";

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// `base` is the server's root, e.g. `http://127.0.0.1:7700`.
    pub fn new(base: &str) -> anyhow::Result<Client> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("the server address must start with http:// or https://, not '{base}'");
        }
        // A server with API keys wants one on every request: CONTACTD_API_KEY.
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(key) = std::env::var(API_KEY_VARIABLE) {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                    .with_context(|| format!("{API_KEY_VARIABLE} is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(600))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client { base, http })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.http.get(self.url(path)).send().await;
        decode(path, response).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        let response = self.http.post(self.url(path)).json(body).send().await;
        decode(path, response).await
    }
}

/// The body of a 2xx answer, or the contract's error message as an error.
pub async fn decode<T: DeserializeOwned>(
    path: &str,
    response: reqwest::Result<reqwest::Response>,
) -> anyhow::Result<T> {
    let response = response.with_context(|| format!("cannot reach the server for {path}"))?;
    let response = check(path, response).await?;
    response
        .json()
        .await
        .with_context(|| format!("unexpected answer to {path}"))
}

/// Passes a 2xx answer through; turns any other into an error naming the server's message.
pub async fn check(path: &str, response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let error = &body["error"];
    let message = error["message"].as_str().unwrap_or("no error message");
    let mut text = format!(
        "{path}: {status} {}: {message}",
        error["code"].as_str().unwrap_or("?")
    );
    if let Some(details) = error["details"].as_array() {
        for detail in details.iter().take(10) {
            text.push_str(&format!("\n  {detail}"));
        }
    }
    bail!(text)
}
