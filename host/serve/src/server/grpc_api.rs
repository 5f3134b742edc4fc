//! The Open Inference Protocol over gRPC: the same served models, canary
//! splits, batcher, request log and metrics as the HTTP endpoints; only
//! the encoding differs (`crate::grpc`).
//!
//! `ModelInfer`, the one method on the hot path, bypasses prost: its
//! message arrives as bytes and is read in place ([`ModelInfer::read`]),
//! names and raw contents borrowed. Every other method goes through the
//! generated service.

use super::{
    ApiError, App, BORROWED_BODY_MAX, MODEL_VERSION_HEADER, SERVER_NAME, VARIANT_HEADER,
    metadata_model,
};
use crate::grpc::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use crate::grpc::inference::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
    ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
};
use crate::grpc::{ModelInfer, infer_request};
use crate::protocol::InferRequest;
use crate::signature::DataError;
use axum::http::StatusCode;
use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

/// The path of `ModelInfer`.
const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

/// The endpoint label of `ModelInfer` in metrics.
const ENDPOINT: &str = "grpc_infer";

/// The gRPC service, ready to be driven by a connection.
#[derive(Clone)]
pub(super) struct Service {
    generated: GrpcInferenceServiceServer<Api>,
    api: Arc<Api>,
}

/// The service over `app`: messages up to the HTTP body limit
/// (`--max-body`; tonic's own default is 4 MiB).
pub(super) fn service(app: Arc<App>) -> Service {
    let max = app.max_body;
    let api = Arc::new(Api { app });
    Service {
        generated: GrpcInferenceServiceServer::from_arc(api.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX),
        api,
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for Service
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != MODEL_INFER {
            return self.generated.call(request);
        }
        let api = self.api.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(MessageCodec)
                .apply_max_message_size_config(Some(api.app.max_body), Some(usize::MAX));
            Ok(grpc.unary(InferMethod(api), request).await)
        })
    }
}

/// `ModelInfer` with its message as bytes.
struct InferMethod(Arc<Api>);

impl tonic::server::UnaryService<Bytes> for InferMethod {
    type Response = Vec<u8>;
    type Future = BoxFuture<Response<Vec<u8>>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.infer_bytes(request).await })
    }
}

/// A codec that hands over a request message's bytes as they arrived (no
/// copy: they are split off tonic's buffer) and sends a response message
/// serialized already (`crate::grpc::infer_response`).
struct MessageCodec;

impl Codec for MessageCodec {
    type Encode = Vec<u8>;
    type Decode = Bytes;
    type Encoder = SerializedMessage;
    type Decoder = MessageBytes;

    fn encoder(&mut self) -> Self::Encoder {
        SerializedMessage
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageBytes
    }
}

/// The encoder of [`MessageCodec`]: the message's bytes as they are.
struct SerializedMessage;

impl Encoder for SerializedMessage {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// The decoder of [`MessageCodec`].
struct MessageBytes;

impl Decoder for MessageBytes {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The implementation of `inference.GRPCInferenceService`.
pub(super) struct Api {
    app: Arc<App>,
}

impl Api {
    /// `ModelInfer` on a serialized message, read in place. A message over
    /// [`BORROWED_BODY_MAX`] is freed once read, as an HTTP body is.
    async fn infer_bytes(&self, request: Request<Bytes>) -> Result<Response<Vec<u8>>, Status> {
        let started = Instant::now();
        let (metadata, _, body) = request.into_parts();
        let message = ModelInfer::read(&body).map_err(|e| {
            self.app.count("", None, ENDPOINT, 400, started);
            Status::invalid_argument(e.0)
        })?;
        if body.len() > BORROWED_BODY_MAX {
            let (name, wanted) = (
                message.model_name.to_string(),
                message.model_version.to_string(),
            );
            let request = infer_request(message).map(InferRequest::into_owned);
            drop(body);
            self.answer(&metadata, &name, &wanted, request, started)
                .await
        } else {
            let (name, wanted) = (message.model_name, message.model_version);
            self.answer(&metadata, name, wanted, infer_request(message), started)
                .await
        }
    }

    /// Answers a request for model `name` (its version `wanted`, or the
    /// server's pick when empty), or says why its message could not be
    /// one; counted in the metrics either way.
    async fn answer(
        &self,
        metadata: &MetadataMap,
        name: &str,
        wanted: &str,
        request: Result<InferRequest<'_>, DataError>,
        started: Instant,
    ) -> Result<Response<Vec<u8>>, Status> {
        let app = &self.app;
        let key = app.header_key(|h| metadata.get(h).and_then(|v| v.to_str().ok()));
        let mut served = None;
        let result = async {
            app.route(name)?;
            let request = request.map_err(|e| ApiError::bad_request(e.0))?;
            let answer = app
                .infer(name, version(wanted), &request, key, &mut served)
                .await?;
            crate::grpc::infer_response(
                &answer.model.name,
                answer.model.version,
                &answer.id,
                &answer.predictions,
                &request,
            )
            .map_err(|e| ApiError::bad_request(e.0))
        }
        .await;
        let code = match &result {
            Ok(_) => 200,
            Err(e) => e.status.as_u16(),
        };
        app.count(name, served, ENDPOINT, code, started);
        let mut response = Response::new(result.map_err(status)?);
        if let Some(p) = served {
            let metadata = response.metadata_mut();
            metadata.insert(MODEL_VERSION_HEADER, p.version.into());
            metadata.insert(
                VARIANT_HEADER,
                tonic::metadata::MetadataValue::from_static(p.role.as_str()),
            );
        }
        Ok(response)
    }
}

/// An HTTP error as the gRPC status clients expect for it.
fn status(e: ApiError) -> Status {
    let code = match e.status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::InvalidArgument,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        _ => Code::Internal,
    };
    Status::new(code, e.message)
}

/// A version field: empty means "the server picks".
fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl GrpcInferenceService for Api {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        // Models load before the server listens: listening means ready.
        Ok(Response::new(ServerReadyResponse { ready: true }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.get_ref();
        self.app
            .route(&r.name)
            .and_then(|route| route.pick(version(&r.version)))
            .map_err(status)?;
        Ok(Response::new(ModelReadyResponse { ready: true }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.get_ref();
        let (model, versions) =
            metadata_model(&self.app, &r.name, version(&r.version)).map_err(status)?;
        Ok(Response::new(crate::grpc::model_metadata(
            &r.name,
            &versions,
            model.inputs(),
            model.outputs(),
        )))
    }

    /// Reached only through the generated service, which [`Service`]
    /// bypasses for this method; answered the same way.
    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let started = Instant::now();
        let message = ModelInfer::from(request.get_ref());
        let (name, wanted) = (message.model_name, message.model_version);
        let answer = self
            .answer(
                request.metadata(),
                name,
                wanted,
                infer_request(message),
                started,
            )
            .await?;
        let (metadata, bytes, extensions) = answer.into_parts();
        let message = ModelInferResponse::decode(&bytes[..])
            .map_err(|e| Status::internal(format!("a response did not serialise: {e}")))?;
        Ok(Response::from_parts(metadata, message, extensions))
    }
}
