//! The Pub/Sub API connection (gRPC over HTTP/2): TLS to Salesforce's endpoint (plain HTTP/2
//! only to a configured `http://` endpoint, the simulator), the credentials every call
//! carries as metadata, and the calls the subscriber makes.

use std::time::Duration;

use pubsub_wire::metadata;
use pubsub_wire::proto::pub_sub_client::PubSubClient;
use pubsub_wire::proto::{FetchRequest, FetchResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest};
use secrecy::ExposeSecret;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::{AccessToken, Client, Connection, Error};

/// Salesforce's public Pub/Sub endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.pubsub.salesforce.com:7443";

/// How Pub/Sub connections are made.
#[derive(Debug, Clone, Default)]
pub(super) struct PubSubOptions {
    /// A PEM certificate authority trusted besides the system's.
    pub extra_ca: Option<Vec<u8>>,
    /// How often to send HTTP/2 PINGs; `None` for never.
    pub ping: Option<Duration>,
}

/// A connection to the Pub/Sub API for one app, with the token its calls carry.
pub struct PubSub {
    client: PubSubClient<Channel>,
    token: AccessToken,
    tenant_id: String,
}

impl Client {
    /// Connects to the app's Pub/Sub endpoint and gets a token for its calls.
    pub async fn pubsub(&self, app: &Connection) -> Result<PubSub, Error> {
        let url = app.pubsub_endpoint.clone().unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let connect = |e: String| Error::Transport(format!("cannot connect to the Pub/Sub API at {url}: {e}"));
        let mut endpoint = Endpoint::from_shared(url.clone()).map_err(|e| connect(e.to_string()))?;
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = &self.pubsub.extra_ca {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(ca));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| connect(e.to_string()))?;
        }
        let mut endpoint =
            endpoint.connect_timeout(Duration::from_secs(10)).tcp_keepalive(Some(Duration::from_secs(60)));
        if let Some(every) = self.pubsub.ping {
            endpoint = endpoint.http2_keep_alive_interval(every).keep_alive_while_idle(false);
        }
        let channel = endpoint.connect().await.map_err(|e| connect(e.to_string()))?;
        let token = self.tokens.get(app).await?;
        Ok(PubSub { client: PubSubClient::new(channel), token, tenant_id: app.org_id.clone() })
    }

    /// Salesforce refused the connection's token: the next connection gets a new one.
    pub async fn token_refused(&self, app: &Connection, pubsub: &PubSub) {
        self.tokens.invalidate(&app.app_id, &pubsub.token).await;
    }
}

impl PubSub {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let md = request.metadata_mut();
        for (key, value) in [
            (metadata::ACCESS_TOKEN, self.token.token.expose_secret()),
            (metadata::INSTANCE_URL, self.token.instance_url.as_str()),
            (metadata::TENANT_ID, self.tenant_id.as_str()),
        ] {
            if let Ok(v) = value.parse() {
                md.insert(key, v);
            }
        }
        request
    }

    pub async fn topic(&mut self, topic_name: &str) -> Result<TopicInfo, Error> {
        let request = self.request(TopicRequest { topic_name: topic_name.to_owned() });
        Ok(self.client.get_topic(request).await.map_err(Error::from)?.into_inner())
    }

    pub async fn schema(&mut self, schema_id: &str) -> Result<SchemaInfo, Error> {
        let request = self.request(SchemaRequest { schema_id: schema_id.to_owned() });
        Ok(self.client.get_schema(request).await.map_err(Error::from)?.into_inner())
    }

    /// Opens the Subscribe stream; `requests` carries the first fetch and every top-up.
    pub async fn subscribe<S>(&mut self, requests: S) -> Result<tonic::Streaming<FetchResponse>, Error>
    where
        S: tokio_stream::Stream<Item = FetchRequest> + Send + 'static,
    {
        let request = self.request(requests);
        Ok(self.client.subscribe(request).await.map_err(Error::from)?.into_inner())
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::PubSub(Box::new(status))
    }
}
