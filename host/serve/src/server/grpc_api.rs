//! The Open Inference Protocol over gRPC: the same served models, canary
//! splits, batcher, request log and metrics as the HTTP endpoints; only
//! the encoding differs (`crate::grpc`).

use super::{ApiError, App, MODEL_VERSION_HEADER, SERVER_NAME, VARIANT_HEADER, metadata_model};
use crate::grpc::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use crate::grpc::inference::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
    ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
};
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Code, Request, Response, Status};

/// The gRPC service, ready to be driven by a connection.
pub(super) type Service = GrpcInferenceServiceServer<Api>;

/// The service over `app`: messages up to the HTTP body limit
/// (`--max-body`; tonic's own default is 4 MiB).
pub(super) fn service(app: Arc<App>) -> Service {
    let max = app.max_body;
    GrpcInferenceServiceServer::new(Api { app })
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

/// The implementation of `inference.GRPCInferenceService`.
pub(super) struct Api {
    app: Arc<App>,
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

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let started = Instant::now();
        let app = &self.app;
        let key = app.header_key(|h| request.metadata().get(h).and_then(|v| v.to_str().ok()));
        let mut message = request.into_inner();
        let name = std::mem::take(&mut message.model_name);
        let wanted = std::mem::take(&mut message.model_version);
        let mut served = None;
        let result = async {
            app.route(&name)?;
            let request =
                crate::grpc::infer_request(message).map_err(|e| ApiError::bad_request(e.0))?;
            let answer = app
                .infer(&name, version(&wanted), &request, key, &mut served)
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
        app.count(&name, served, "grpc_infer", code, started);
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
