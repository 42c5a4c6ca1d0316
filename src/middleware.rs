//! The proxy as an actix-web middleware: `App::new().wrap(proxy.middleware())`.
//!
//! The middleware answers the paths in [`crate::server::ROUTES`] and the path forms that name a
//! model (`/engines/{model}/…`, `/openai/deployments/{model}/…`, `/models/{id}`) itself (through the same
//! function per endpoint as the routes of [`crate::LlmProxy::configure`]) and hands every other
//! request to the service it wraps, untouched: the host's routes, extractors, default service and
//! inner middleware see exactly what they would without the proxy.
//!
//! Paths are matched on what is left of the path at the point the middleware is registered: the
//! whole path when it wraps the `App`, the rest after the prefix when it wraps a `web::scope`.
//! A proxy path called with the wrong method gets an OpenAI-shaped 405; it is not passed on.
//!
//! Middleware registered *after* (outside) this one sees every response, the proxy's included,
//! and can read the call's [`crate::CallMeta`] from the request extensions once the inner service
//! has answered. Middleware registered *before* (inside) it only sees the host's own requests.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::Error;
use futures_util::future::{ready, Either, LocalBoxFuture, MapOk, Ready};
use futures_util::TryFutureExt;

use crate::server::{self, Shared, Worker};

/// `Transform` that mounts the proxy in front of a host's services. Made by
/// [`crate::LlmProxy::middleware`]; each worker builds its own service (and HTTP actor) in
/// `new_transform`.
#[derive(Clone)]
pub struct ProxyMiddleware {
    shared: Arc<Shared>,
}

impl ProxyMiddleware {
    pub(crate) fn new(shared: Arc<Shared>) -> ProxyMiddleware {
        ProxyMiddleware { shared }
    }
}

impl<S, B> Transform<S, ServiceRequest> for ProxyMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = ProxyMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ProxyMiddlewareService {
            service,
            worker: Worker::start(self.shared.clone()),
        }))
    }
}

/// The per-worker service of [`ProxyMiddleware`].
pub struct ProxyMiddlewareService<S> {
    service: S,
    worker: Worker,
}

/// The host's answer, its body wrapped as the left side.
type PassedOn<F, B> = MapOk<F, fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B>>>;

/// The proxy's answer.
type Answered<B> = LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, Error>>;

impl<S, B> Service<ServiceRequest> for ProxyMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Either<PassedOn<S::Future, B>, Answered<B>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let Some((route, path_model)) = server::match_path(req.match_info().unprocessed()) else {
            let into_left: fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B>> =
                ServiceResponse::map_into_left_body;
            return Either::Left(self.service.call(req).map_ok(into_left));
        };
        let worker = self.worker.clone();
        let (req, payload) = req.into_parts();
        Either::Right(Box::pin(async move {
            let res = server::respond(&worker, route, path_model, &req, payload).await;
            Ok(ServiceResponse::new(req, res).map_into_right_body())
        }))
    }
}
