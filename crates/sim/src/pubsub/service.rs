//! The `eventbus.v1.PubSub` gRPC service of the simulator.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::status::{new_rpc_id, plain_status};
use super::{Shared, SimError, auth, subscribe};
use pubsub_wire::proto::pub_sub_server::PubSub;
use pubsub_wire::proto::{
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse, PublishRequest, PublishResponse,
    PublishResult, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};

/// Outgoing messages of a streaming call that is never implemented here.
type Unimplemented<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The gRPC service; get one from [`super::PubSubSim::service`].
#[derive(Clone)]
pub struct PubSubService {
    pub(super) shared: Arc<Shared>,
}

/// Salesforce does not document the code for an unknown topic or schema; `NOT_FOUND` without an
/// `error-code` trailer is the simulator's choice.
fn not_found(what: &str, name: &str, rpc_id: &str) -> Status {
    plain_status(Code::NotFound, &format!("{what} {name} not found"), rpc_id)
}

#[tonic::async_trait]
impl PubSub for PubSubService {
    type SubscribeStream = ReceiverStream<Result<FetchResponse, Status>>;
    type PublishStreamStream = Unimplemented<PublishResponse>;
    type ManagedSubscribeStream = Unimplemented<ManagedFetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let rpc_id = new_rpc_id();
        auth::check(&self.shared.validator, request.metadata(), &rpc_id)?;
        // Small buffer: a client that stops reading holds the stream back instead of piling up.
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(subscribe::run(Arc::clone(&self.shared), request.into_inner(), tx, rpc_id));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_schema(&self, request: Request<SchemaRequest>) -> Result<Response<SchemaInfo>, Status> {
        let rpc_id = new_rpc_id();
        auth::check(&self.shared.validator, request.metadata(), &rpc_id)?;
        let schema_id = request.into_inner().schema_id;
        let schema_json = self.shared.bus().schema_json(&schema_id).map(str::to_owned);
        match schema_json {
            Some(schema_json) => Ok(Response::new(SchemaInfo { schema_json, schema_id, rpc_id })),
            None => Err(not_found("schema", &schema_id, &rpc_id)),
        }
    }

    async fn get_topic(&self, request: Request<TopicRequest>) -> Result<Response<TopicInfo>, Status> {
        let rpc_id = new_rpc_id();
        auth::check(&self.shared.validator, request.metadata(), &rpc_id)?;
        let tenant_id = auth::AuthMetadata::from_metadata(request.metadata()).tenant_id;
        let topic_name = request.into_inner().topic_name;
        let schema_id = self.shared.bus().schema_of(&topic_name).map(|(id, _)| id.to_owned());
        let Some(schema_id) = schema_id else {
            return Err(not_found("topic", &topic_name, &rpc_id));
        };
        let tenant_guid =
            if self.shared.config.tenant_guid.is_empty() { tenant_id } else { self.shared.config.tenant_guid.clone() };
        Ok(Response::new(TopicInfo {
            topic_name,
            tenant_guid,
            can_publish: true,
            can_subscribe: true,
            schema_id,
            rpc_id,
        }))
    }

    /// Stores the events as given: like Salesforce, the payload is not checked against the schema.
    async fn publish(&self, request: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        let rpc_id = new_rpc_id();
        auth::check(&self.shared.validator, request.metadata(), &rpc_id)?;
        let PublishRequest { topic_name, events, .. } = request.into_inner();
        let mut results = Vec::with_capacity(events.len());
        for mut event in events {
            if event.id.is_empty() {
                event.id = uuid::Uuid::new_v4().to_string();
            }
            let correlation_key = event.id.clone();
            let replay_id = self.shared.append(&topic_name, event).map_err(|e| match e {
                SimError::UnknownTopic(_) => not_found("topic", &topic_name, &rpc_id),
                other => plain_status(Code::Internal, &other.to_string(), &rpc_id),
            })?;
            results.push(PublishResult { replay_id, error: None, correlation_key });
        }
        let schema_id = self.shared.bus().schema_of(&topic_name).map(|(id, _)| id.to_owned()).unwrap_or_default();
        Ok(Response::new(PublishResponse { results, schema_id, rpc_id }))
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let rpc_id = new_rpc_id();
        auth::check(&self.shared.validator, request.metadata(), &rpc_id)?;
        Err(plain_status(Code::Unimplemented, "PublishStream is not simulated", &rpc_id))
    }

    async fn managed_subscribe(
        &self,
        request: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        let rpc_id = new_rpc_id();
        auth::check(&self.shared.validator, request.metadata(), &rpc_id)?;
        Err(plain_status(Code::Unimplemented, "ManagedSubscribe is not simulated", &rpc_id))
    }
}
