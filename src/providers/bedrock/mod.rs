//! AWS Bedrock: Converse for chat models, InvokeModel for Cohere Command and the embedding
//! models, SigV4-signed with `aws-sigv4`, streams decoded from AWS event-stream frames.
//!
//! Routes (`bedrock/<model>`): `converse/<id>` and `invoke/<id>` force one; otherwise Cohere
//! Command (`cohere.command-r*`, `command-text*`, `command-light*`) and the embedding models
//! (`amazon.titan-embed-*`, `cohere.embed-*`) use InvokeModel and everything else Converse.
//! Credentials come from the deployment's `aws_access_key_id` / `aws_secret_access_key` /
//! `aws_session_token`, else the `AWS_*` environment; profiles, roles and web identity are not
//! read.

mod converse;
mod eventstream;
mod invoke;

use std::time::SystemTime;

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use llm_proxy_actors::ErrorClass;
use serde_json::{Map, Value};

use self::invoke::{CohereApi, EmbedModel};
use super::outgoing::{push_headers, UpstreamUrl};
use super::{
    retry_after, Endpoint, ParsedResponse, PreparedRequest, ProviderAdapter, ProviderError,
    RequestContext, StreamContext, StreamDecoder, StreamEvent, UpstreamRequest, UpstreamResponse,
};

/// The provider label in error messages (`BedrockException - …`).
const LABEL: &str = "Bedrock";
const DEFAULT_REGION: &str = "us-west-2";
const SERVICE: &str = "bedrock";

/// Which Bedrock API and body a model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Converse,
    Cohere(CohereApi),
    Embed(EmbedModel),
}

/// Static AWS credentials. `Debug` shows none of them.
#[derive(Clone)]
struct AwsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &"***")
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug)]
pub struct BedrockAdapter {
    /// The Bedrock model id (or ARN) without `converse/` / `invoke/`, as LiteLLM reports it.
    model_id: String,
    route: Route,
    region: String,
    /// `https://bedrock-runtime.{region}.amazonaws.com` or the configured override, no trailing `/`.
    endpoint: String,
    credentials: Option<AwsCredentials>,
    /// The route's URL, and its URL for a streamed answer (the same for embeddings, which never
    /// stream).
    url: UpstreamUrl,
    stream_url: UpstreamUrl,
}

/// The model id with a cross-region inference prefix (`us.`, `eu.`, …) and any ARN path removed,
/// for choosing a route and a body.
fn base_model(model_id: &str) -> &str {
    let id = model_id.rsplit('/').next().unwrap_or(model_id);
    for prefix in [
        "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.",
    ] {
        if let Some(rest) = id.strip_prefix(prefix) {
            return rest;
        }
    }
    id
}

/// The InvokeModel route of a model, when llm-proxy has a body for it.
fn invoke_route(model_id: &str) -> Option<Route> {
    let base = base_model(model_id);
    if base.starts_with("cohere.command-r") {
        Some(Route::Cohere(CohereApi::Chat))
    } else if base.starts_with("cohere.command-text") || base.starts_with("cohere.command-light") {
        Some(Route::Cohere(CohereApi::Generate))
    } else if base.starts_with("amazon.titan-embed-text-v2") {
        Some(Route::Embed(EmbedModel::TitanV2))
    } else if base.starts_with("amazon.titan-embed") {
        Some(Route::Embed(EmbedModel::TitanV1))
    } else if base.starts_with("cohere.embed") {
        Some(Route::Embed(EmbedModel::Cohere))
    } else {
        None
    }
}

fn route_for(model: &str) -> Result<(Route, &str), ProviderError> {
    if let Some(id) = model.strip_prefix("converse/") {
        return Ok((Route::Converse, id));
    }
    if let Some(id) = model.strip_prefix("invoke/") {
        return invoke_route(id).map(|r| (r, id)).ok_or_else(|| {
            ProviderError::invalid_config(format!(
                "bedrock/invoke/{id}: llm-proxy speaks InvokeModel only for Cohere Command and the Titan / Cohere embedding models; use bedrock/converse/{id}"
            ))
        });
    }
    Ok((invoke_route(model).unwrap_or(Route::Converse), model))
}

/// OpenAI params LiteLLM lets through for every provider without sending them: `user`, and
/// `n: 1` (LangChain sends it by default). Neither is refused without `drop_params`.
fn ignored_param(key: &str, value: &Value) -> bool {
    key == "user" || (key == "n" && value.as_u64() == Some(1))
}

fn string_param<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Percent-encode a model id for the request path: everything but RFC 3986 unreserved
/// characters, and `:` too unless `keep_colon` (Converse paths encode it, InvokeModel paths keep
/// it, as LiteLLM sends them).
fn encode_model_id(id: &str, keep_colon: bool) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_colon && b == b':')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl BedrockAdapter {
    /// `model` is the litellm model after `bedrock/`; `params` the deployment's resolved
    /// `litellm_params`. Reads the `AWS_*` environment for what `params` leaves out.
    pub fn new(model: &str, params: &Map<String, Value>) -> Result<BedrockAdapter, ProviderError> {
        BedrockAdapter::with_env(model, params, |name| std::env::var(name).ok())
    }

    fn with_env(
        model: &str,
        params: &Map<String, Value>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BedrockAdapter, ProviderError> {
        let (route, model_id) = route_for(model)?;
        if model_id.is_empty() {
            return Err(ProviderError::invalid_config(format!(
                "bedrock/{model}: no model id"
            )));
        }
        let from = |param: &str, var: &str| {
            string_param(params, param).map(str::to_string).or_else(|| {
                env(var)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            })
        };
        let region = string_param(params, "aws_region_name")
            .map(str::to_string)
            .or_else(|| env("AWS_REGION_NAME").filter(|v| !v.is_empty()))
            .or_else(|| env("AWS_REGION").filter(|v| !v.is_empty()))
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let endpoint = string_param(params, "api_base")
            .map(str::to_string)
            .or_else(|| {
                from(
                    "aws_bedrock_runtime_endpoint",
                    "AWS_BEDROCK_RUNTIME_ENDPOINT",
                )
            })
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        // A key pair comes whole from one place, with that place's session token: the
        // environment's AWS_SESSION_TOKEN belongs to the environment's keys, and signing the
        // deployment's own keys with it makes AWS refuse the request.
        let param = |key: &str| string_param(params, key).map(str::to_string);
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let credentials = match (param("aws_access_key_id"), param("aws_secret_access_key")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(AwsCredentials {
                access_key_id,
                secret_access_key,
                session_token: param("aws_session_token"),
            }),
            _ => match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(access_key_id), Some(secret_access_key)) => Some(AwsCredentials {
                    access_key_id,
                    secret_access_key,
                    session_token: var("AWS_SESSION_TOKEN"),
                }),
                _ => None,
            },
        };
        let (action, stream_action) = match route {
            Route::Converse => ("converse", "converse-stream"),
            Route::Cohere(_) => ("invoke", "invoke-with-response-stream"),
            Route::Embed(_) => ("invoke", "invoke"),
        };
        let keep_colon = route != Route::Converse;
        let model_path = encode_model_id(model_id, keep_colon);
        let url =
            |action: &str| UpstreamUrl::new(format!("{endpoint}/model/{model_path}/{action}"));
        Ok(BedrockAdapter {
            model_id: model_id.to_string(),
            route,
            region,
            url: url(action),
            stream_url: url(stream_action),
            endpoint,
            credentials,
        })
    }

    fn wrong_endpoint(&self, endpoint: Endpoint) -> ProviderError {
        ProviderError::invalid_config(format!(
            "bedrock/{} does not serve {}",
            self.model_id,
            endpoint.route()
        ))
    }

    /// SigV4 headers for a POST of `body` to `url`: `content-type`, the extra headers, then
    /// `x-amz-date`, `x-amz-security-token` (with a session token) and `authorization`.
    fn signed_headers(
        &self,
        url: &str,
        body: &[u8],
        extra_headers: &[(String, String)],
        now: SystemTime,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ProviderError> {
        let Some(creds) = &self.credentials else {
            return Err(ProviderError::new(
                ErrorClass::Auth,
                401,
                "litellm.AuthenticationError: AuthenticationError: BedrockException Invalid Authentication - Unable to locate credentials: set aws_access_key_id and aws_secret_access_key in litellm_params or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
            ));
        };
        let extra: Vec<(&str, &str)> = extra_headers
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "content-type" | "host" | "authorization"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let identity: Identity = Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.clone(),
            creds.session_token.clone(),
            None,
            "litellm_params",
        )
        .into();
        let signing_error = |e: &dyn std::fmt::Display| {
            ProviderError::invalid_config(format!(
                "BedrockException - cannot sign the request: {e}"
            ))
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_error(&e))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url,
            std::iter::once(("content-type", "application/json")).chain(extra.iter().copied()),
            SignableBody::Bytes(body),
        )
        .map_err(|e| signing_error(&e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| signing_error(&e))?
            .into_parts();
        let (signed, _query) = instructions.into_parts();
        let mut headers = Vec::with_capacity(1 + extra.len() + signed.len());
        headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        push_headers(
            LABEL,
            &mut headers,
            extra
                .iter()
                .copied()
                .chain(signed.iter().map(|h| (h.name(), h.value()))),
        )?;
        Ok(headers)
    }
}

impl ProviderAdapter for BedrockAdapter {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    fn label(&self) -> &'static str {
        LABEL
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.endpoint)
    }

    fn build_request(
        &self,
        endpoint: Endpoint,
        request: &PreparedRequest,
        ctx: &RequestContext,
    ) -> Result<UpstreamRequest, ProviderError> {
        let body = match (endpoint, self.route) {
            (Endpoint::ChatCompletions, Route::Converse) => {
                converse::request_body(&self.model_id, request, ctx.drop_params)?
            }
            (Endpoint::ChatCompletions, Route::Cohere(api)) => {
                invoke::cohere_chat_body(api, &self.model_id, request, ctx.drop_params)?
            }
            (Endpoint::Embeddings, Route::Embed(model)) => {
                invoke::embed_body(model, &self.model_id, request, ctx.drop_params)?
            }
            _ => return Err(self.wrong_endpoint(endpoint)),
        };
        let url = if request.stream {
            &self.stream_url
        } else {
            &self.url
        };
        let headers = self.signed_headers(url.as_str(), &body, &request.extra_headers, ctx.now)?;
        Ok(UpstreamRequest {
            method: "POST",
            url: url.uri(LABEL)?,
            headers,
            body: Bytes::from(body),
        })
    }

    fn parse_response(
        &self,
        endpoint: Endpoint,
        response: &UpstreamResponse<'_>,
        ctx: &StreamContext,
    ) -> Result<ParsedResponse, ProviderError> {
        let (body, usage) = match (endpoint, self.route) {
            (Endpoint::ChatCompletions, Route::Converse) => {
                converse::parse_response(&self.model_id, response.body, ctx)?
            }
            (Endpoint::ChatCompletions, Route::Cohere(_)) => {
                invoke::parse_cohere_chat(&self.model_id, response, ctx)?
            }
            (Endpoint::Embeddings, Route::Embed(model)) => {
                invoke::parse_embeddings(model, &self.model_id, response)?
            }
            _ => return Err(self.wrong_endpoint(endpoint)),
        };
        Ok(ParsedResponse { body, usage })
    }

    fn parse_error(&self, response: &UpstreamResponse<'_>) -> ProviderError {
        parse_error(response)
    }

    fn stream_decoder(&self, endpoint: Endpoint, ctx: &StreamContext) -> Box<dyn StreamDecoder> {
        match (endpoint, self.route) {
            (Endpoint::ChatCompletions, Route::Converse) => {
                Box::new(converse::ConverseStream::new(ctx, &self.model_id))
            }
            (Endpoint::ChatCompletions, Route::Cohere(_)) => {
                Box::new(invoke::CohereStream::new(ctx, &self.model_id))
            }
            _ => Box::new(NoStream(Some(self.wrong_endpoint(endpoint)))),
        }
    }
}

/// The decoder for a route that never streams: it reports why, once.
#[derive(Debug)]
struct NoStream(Option<ProviderError>);

impl StreamDecoder for NoStream {
    fn feed(&mut self, _bytes: &[u8], out: &mut Vec<StreamEvent>) {
        self.finish(out);
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(e) = self.0.take() {
            out.push(StreamEvent::Error(e));
        }
    }
}

/// A Bedrock error answer: `{"message": "..."}` with the exception name in `x-amzn-errortype`
/// (`ThrottlingException:http://internal.amazon.com/...`). AWS answers bad credentials with 403;
/// those become 401 authentication errors, the rest is classified by text and status.
fn parse_error(response: &UpstreamResponse<'_>) -> ProviderError {
    let kind = response
        .header(HeaderName::from_static("x-amzn-errortype"))
        .map(|t| t.split(':').next().unwrap_or(t).trim())
        .unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_slice(response.body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(response.body).trim().to_string());
    let status = match kind {
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException" => 401,
        "ThrottlingException" | "ServiceQuotaExceededException" => 429,
        _ => response.status,
    };
    upstream_error(status, &message, retry_after(response.headers))
}

/// Classify a Bedrock error. A 429 is always a rate limit: Bedrock's throttling text ("Too many
/// tokens, please wait before trying again.") would otherwise read as a context-window error.
fn upstream_error(
    status: u16,
    message: &str,
    retry_after: Option<std::time::Duration>,
) -> ProviderError {
    let mut e = ProviderError::from_upstream(LABEL, status, message, None, None, retry_after);
    if status == 429 && e.class != ErrorClass::RateLimit {
        e = ProviderError {
            class: ErrorClass::RateLimit,
            status: 429,
            message: format!(
                "litellm.RateLimitError: RateLimitError: {LABEL}Exception - {message}"
            ),
            error_type: Some("throttling_error".to_string()),
            param: None,
            retry_after,
        };
    }
    e
}

#[cfg(test)]
mod tests;
