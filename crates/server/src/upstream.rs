//! The one place that talks to upstreams over the network: a pooled HTTP/1.1 + TLS client
//! for configured providers, and the address-checked one (`instances::connector`) for
//! community instances — an instance is never called through the general client.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use tokenrouter_providers::adapter::Auth;

use crate::config::{Config, Deployment};
use crate::instances::connector::{self, InstanceClient};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The `Accept` of every upstream request. Upstream requests carry no `User-Agent`, and
/// an instance's probe sends the same headers, so it cannot tell a probe from a request.
pub const ACCEPT_ANSWERS: &str = "application/json, text/event-stream";

#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<Connector, Full<Bytes>>,
    /// Dials only addresses the instance address policy allows; follows no redirect.
    instances: InstanceClient,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not reach the upstream: {0}")]
    Connect(String),
    #[error("the upstream did not answer within {0} ms")]
    Timeout(u128),
    #[error("invalid upstream request: {0}")]
    Request(String),
}

impl UpstreamClient {
    /// For configured providers, and instances under `[instances]`'s address policy.
    pub fn for_config(config: &Config) -> UpstreamClient {
        let settings = connector::Settings {
            allow_private: config.instances.allow_private_addresses,
            connect_timeout: config.server.connect_timeout,
            resolver: connector::Resolver::System,
        };
        UpstreamClient::with_instances(config.server.connect_timeout, &settings)
    }

    /// Instances connect as `settings` say (tests inject a resolver table).
    pub fn with_instances(connect_timeout: Duration, settings: &connector::Settings) -> UpstreamClient {
        UpstreamClient { instances: connector::client(settings), ..UpstreamClient::new(connect_timeout) }
    }

    /// The client for instances (probes use it too).
    pub fn instance_client(&self) -> &InstanceClient {
        &self.instances
    }

    /// Instances are refused every address but public ones (no `[instances]` settings).
    pub fn new(connect_timeout: Duration) -> UpstreamClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        let instances = connector::client(&connector::Settings {
            allow_private: false,
            connect_timeout,
            resolver: connector::Resolver::System,
        });
        UpstreamClient { client, instances }
    }

    /// POSTs a JSON body to `path` under the deployment's base URL; resolves when the
    /// response head arrives, or fails after the deployment's timeout.
    pub async fn post_json(
        &self,
        deployment: &Deployment,
        path: &str,
        extra_headers: &[(&'static str, String)],
        body: Bytes,
        auth: Auth,
        first_byte_by: std::time::Instant,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let provider = &deployment.provider;
        let mut builder = Request::post(format!("{}{path}", provider.base_url))
            .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(header::ACCEPT, HeaderValue::from_static(ACCEPT_ANSWERS));
        match auth {
            Auth::Bearer => {
                if let Some(value) = &provider.authorization {
                    builder = builder.header(header::AUTHORIZATION, value.clone());
                }
            }
            Auth::Header(name) => {
                if let Some(value) = &provider.key_header {
                    builder = builder.header(name, value.clone());
                }
            }
        }
        for (name, value) in extra_headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder.body(Full::new(body)).map_err(|e| UpstreamError::Request(e.to_string()))?;
        let sending = match provider.instance {
            Some(_) => self.instances.request(request),
            None => self.client.request(request),
        };
        match tokio::time::timeout_at(first_byte_by.into(), sending).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(UpstreamError::Connect(describe(&e))),
            Err(_) => Err(UpstreamError::Timeout(deployment.timeout.as_millis())),
        }
    }
}

impl UpstreamClient {
    /// Sends a small request (not an inference: OAuth, probes) and reads the whole answer,
    /// at most `max_body` bytes, all within `timeout`.
    pub async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<(http::StatusCode, Bytes), UpstreamError> {
        let work = async {
            let response = self.client.request(request).await.map_err(|e| UpstreamError::Connect(describe(&e)))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| UpstreamError::Connect(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| UpstreamError::Timeout(timeout.as_millis()))?
    }
}

/// The innermost cause of a client error, which says what actually happened.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
