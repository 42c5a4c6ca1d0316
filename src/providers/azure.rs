//! Azure OpenAI (`azure/<deployment>`): the OpenAI wire format behind Azure's URL scheme and
//! auth. `POST {api_base}/openai/deployments/{deployment}/{route}?api-version={version}`, with
//! an `api-key` header, or `Authorization: Bearer <azure_ad_token>` (and no `api-key`) when a
//! token is configured. Bodies, answers and streams are OpenAI's; Azure's extra fields
//! (`prompt_filter_results`, `content_filter_results`, a first stream chunk with empty `choices`)
//! pass through untouched.

use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Map, Value};

use super::openai::{
    non_empty, param_str, passthrough, upstream_error, validate_base, EndpointUrls, OpenAiStream,
};
use super::outgoing::FixedHeaders;
use super::{
    Endpoint, ParsedResponse, PreparedRequest, ProviderAdapter, ProviderError, RequestContext,
    StreamContext, StreamDecoder, UpstreamRequest, UpstreamResponse,
};

/// `litellm.AZURE_DEFAULT_API_VERSION` in LiteLLM 1.81.
pub const DEFAULT_API_VERSION: &str = "2025-02-01-preview";

const LABEL: &str = "Azure";

/// One Azure OpenAI deployment, resolved once from `litellm_params` and the environment.
#[derive(Clone, Debug)]
pub struct AzureAdapter {
    deployment: String,
    api_base: Option<String>,
    /// Per endpoint; without a base, the error every request gets.
    urls: Result<EndpointUrls, ProviderError>,
    /// Auth and content type; without usable credentials, the error every request gets.
    headers: Result<FixedHeaders, ProviderError>,
}

impl AzureAdapter {
    /// `deployment` is the part of the litellm model after `azure/`. Missing `api_base` or
    /// credentials are reported when a request is built, so a config LiteLLM loads also loads here.
    pub fn new(
        deployment: &str,
        params: &Map<String, Value>,
    ) -> Result<AzureAdapter, ProviderError> {
        AzureAdapter::with_env(deployment, params, &|name| std::env::var(name).ok())
    }

    fn with_env(
        deployment: &str,
        params: &Map<String, Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AzureAdapter, ProviderError> {
        let api_base = param_str(params, "api_base")
            .or_else(|| param_str(params, "base_url"))
            .or_else(|| non_empty(env("AZURE_API_BASE")))
            .map(|base| validate_base("azure", base))
            .transpose()?;
        let api_version = param_str(params, "api_version")
            .or_else(|| non_empty(env("AZURE_API_VERSION")))
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        let token =
            param_str(params, "azure_ad_token").or_else(|| non_empty(env("AZURE_AD_TOKEN")));
        let key = param_str(params, "api_key")
            .or_else(|| non_empty(env("AZURE_OPENAI_API_KEY")))
            .or_else(|| non_empty(env("AZURE_API_KEY")));
        let urls = match &api_base {
            Some(base) => Ok(EndpointUrls::new(|endpoint| {
                format!(
                    "{base}/openai/deployments/{deployment}{}?api-version={api_version}",
                    endpoint.route()
                )
            })),
            None => Err(ProviderError::invalid_config(
                "api_base is required for Azure OpenAI LLM provider. Either set it dynamically or set the AZURE_API_BASE environment variable.",
            )),
        };
        let headers = match (token, key) {
            (Some(token), _) if token.starts_with("oidc/") => Err(ProviderError::invalid_config(
                "azure_ad_token: oidc/ token exchange is not supported by llm-proxy; pass an Azure AD access token or an api_key",
            )),
            (Some(token), _) => Ok(FixedHeaders::default()
                .with_text(AUTHORIZATION, &format!("Bearer {token}"))),
            (None, Some(key)) => Ok(FixedHeaders::default()
                .with_text(HeaderName::from_static("api-key"), &key)),
            (None, None) => Err(ProviderError::from_upstream(
                LABEL,
                401,
                "Missing credentials. Please pass one of `api_key`, `azure_ad_token`, `azure_ad_token_provider`, or the `AZURE_OPENAI_API_KEY` or `AZURE_OPENAI_AD_TOKEN` environment variables.",
                None,
                None,
                None,
            )),
        }
        .map(|auth| auth.with(CONTENT_TYPE, HeaderValue::from_static("application/json")));
        Ok(AzureAdapter {
            deployment: deployment.to_string(),
            api_base,
            urls,
            headers,
        })
    }
}

impl ProviderAdapter for AzureAdapter {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn label(&self) -> &'static str {
        LABEL
    }

    fn api_base(&self) -> Option<&str> {
        self.api_base.as_deref()
    }

    fn build_request(
        &self,
        endpoint: Endpoint,
        request: &PreparedRequest,
        _ctx: &RequestContext,
    ) -> Result<UpstreamRequest, ProviderError> {
        let urls = self.urls.as_ref().map_err(Clone::clone)?;
        let headers = self.headers.as_ref().map_err(Clone::clone)?;
        let headers = headers.with_extra(LABEL, &request.extra_headers)?;
        Ok(UpstreamRequest {
            method: "POST",
            url: urls.get(endpoint).uri(LABEL)?,
            headers,
            body: request.json_with_model(&self.deployment),
        })
    }

    fn parse_response(
        &self,
        _endpoint: Endpoint,
        response: &UpstreamResponse<'_>,
        _ctx: &StreamContext,
    ) -> Result<ParsedResponse, ProviderError> {
        passthrough(LABEL, None, response)
    }

    /// Azure's content-filter refusals ("The response was filtered due to the prompt triggering
    /// Azure OpenAI's content management policy", `content_filter_policy`) are content-policy
    /// errors, so `content_policy_fallbacks` apply; other `invalid_request_error`s stay bad
    /// requests (LiteLLM 1.81 counts every Azure `invalid_request_error` as a content-policy
    /// violation).
    fn parse_error(&self, response: &UpstreamResponse<'_>) -> ProviderError {
        upstream_error(LABEL, None, response)
    }

    fn stream_decoder(&self, _endpoint: Endpoint, _ctx: &StreamContext) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiStream::new(LABEL, None))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::http::header::HeaderMap;
    use bytes::Bytes;
    use llm_proxy_actors::ErrorClass;
    use serde_json::json;

    use super::*;
    use crate::providers::{testing, StreamEvent, Usage};

    const CHAT_RESPONSE: &[u8] = include_bytes!("../../tests/fixtures/azure/chat_response.json");
    const CHAT_STREAM: &[u8] = include_bytes!("../../tests/fixtures/azure/chat_stream.sse");

    use crate::providers::testing::{ctx, obj, pairs, request, sent_headers};

    fn adapter(params: Value, env: &[(&str, &str)]) -> AzureAdapter {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AzureAdapter::with_env("gpt-4o-eu", &obj(params), &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn stream_ctx() -> StreamContext {
        StreamContext {
            id: "chatcmpl-test".into(),
            created: 1,
            model: "gpt-4o-eu".into(),
            include_usage: false,
        }
    }

    fn build(a: &AzureAdapter, endpoint: Endpoint) -> Result<UpstreamRequest, ProviderError> {
        a.build_request(
            endpoint,
            &request(r#"{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#),
            &ctx(),
        )
    }

    #[test]
    fn the_request_goes_to_the_deployment_with_an_api_key() {
        let a = adapter(
            json!({"model": "azure/gpt-4o-eu", "api_base": "https://my-endpoint-europe-berri-992.openai.azure.com/", "api_key": "az-key", "api_version": "2024-10-21"}),
            &[],
        );
        let req = build(&a, Endpoint::ChatCompletions).unwrap();
        assert_eq!(
            req.url.to_string(),
            "https://my-endpoint-europe-berri-992.openai.azure.com/openai/deployments/gpt-4o-eu/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            pairs(&req.headers),
            vec![
                ("api-key".to_string(), "az-key".to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ]
        );
        assert_eq!(
            &req.body[..],
            br#"{"model":"gpt-4o-eu","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#
        );
        assert_eq!(
            a.api_base(),
            Some("https://my-endpoint-europe-berri-992.openai.azure.com")
        );
        assert_eq!(a.name(), "azure");
        assert!(!format!("{a:?}").contains("az-key"));

        let req = build(&a, Endpoint::Completions).unwrap();
        assert!(
            req.url
                .to_string()
                .ends_with("/openai/deployments/gpt-4o-eu/completions?api-version=2024-10-21"),
            "{}",
            req.url
        );
        let req = build(&a, Endpoint::Embeddings).unwrap();
        assert!(
            req.url
                .to_string()
                .ends_with("/openai/deployments/gpt-4o-eu/embeddings?api-version=2024-10-21"),
            "{}",
            req.url
        );
    }

    #[test]
    fn environment_fills_base_key_and_version() {
        let a = adapter(
            json!({}),
            &[
                ("AZURE_API_BASE", "https://env.openai.azure.com"),
                ("AZURE_API_KEY", "second-choice"),
                ("AZURE_OPENAI_API_KEY", "first-choice"),
                ("AZURE_API_VERSION", "2024-06-01"),
            ],
        );
        let req = build(&a, Endpoint::ChatCompletions).unwrap();
        assert_eq!(
            req.url.to_string(),
            "https://env.openai.azure.com/openai/deployments/gpt-4o-eu/chat/completions?api-version=2024-06-01"
        );
        assert_eq!(
            pairs(&req.headers)[0],
            ("api-key".to_string(), "first-choice".to_string())
        );

        let a = adapter(
            json!({"api_base": "https://x.openai.azure.com", "api_key": "k"}),
            &[],
        );
        let req = build(&a, Endpoint::ChatCompletions).unwrap();
        assert!(
            req.url
                .to_string()
                .ends_with("?api-version=2025-02-01-preview"),
            "{}",
            req.url
        );
    }

    #[test]
    fn an_ad_token_replaces_the_api_key() {
        let a = adapter(
            json!({"api_base": "https://x.openai.azure.com", "api_key": "k", "azure_ad_token": "eyJ0eXAi"}),
            &[],
        );
        let req = build(&a, Endpoint::ChatCompletions).unwrap();
        assert_eq!(
            pairs(&req.headers),
            vec![
                ("authorization".to_string(), "Bearer eyJ0eXAi".to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ]
        );
        let a = adapter(
            json!({"api_base": "https://x.openai.azure.com"}),
            &[("AZURE_AD_TOKEN", "env-token")],
        );
        let req = build(&a, Endpoint::ChatCompletions).unwrap();
        assert_eq!(
            pairs(&req.headers)[0],
            ("authorization".to_string(), "Bearer env-token".to_string())
        );
        assert!(!format!("{a:?}").contains("env-token"));
    }

    #[test]
    fn missing_base_credentials_or_oidc_fail_before_calling_upstream() {
        let a = adapter(json!({"api_key": "k"}), &[]);
        let e = build(&a, Endpoint::ChatCompletions).unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::BadRequest, 400));
        assert_eq!(
            e.message,
            "litellm.BadRequestError: api_base is required for Azure OpenAI LLM provider. Either set it dynamically or set the AZURE_API_BASE environment variable."
        );
        let a = adapter(json!({"api_base": "https://x.openai.azure.com"}), &[]);
        let e = build(&a, Endpoint::ChatCompletions).unwrap_err();
        assert_eq!((e.class, e.status), (ErrorClass::Auth, 401));
        assert!(e.message.starts_with("litellm.AuthenticationError: AuthenticationError: AzureException - Missing credentials"), "{}", e.message);
        let a = adapter(
            json!({"api_base": "https://x.openai.azure.com", "azure_ad_token": "oidc/azure/token"}),
            &[],
        );
        assert_eq!(
            build(&a, Endpoint::ChatCompletions).unwrap_err().status,
            400
        );
    }

    #[test]
    fn extra_headers_are_sent_last() {
        let a = adapter(
            json!({"api_base": "https://x.openai.azure.com", "api_key": "k"}),
            &[],
        );
        let mut req = request(r#"{"model":"m"}"#);
        req.extra_headers = vec![("x-ms-useragent".into(), "llm-proxy".into())];
        assert_eq!(
            sent_headers(&a, &req).last(),
            Some(&("x-ms-useragent".to_string(), "llm-proxy".to_string()))
        );
    }

    #[test]
    fn adapter_for_builds_azure_deployments() {
        let params = obj(
            json!({"model": "azure/gpt-turbo-small-eu", "api_base": "https://x.openai.azure.com/", "api_key": "k"}),
        );
        let a = crate::providers::adapter_for("azure/gpt-turbo-small-eu", &params).unwrap();
        assert_eq!(a.name(), "azure");
        let req = a
            .build_request(
                Endpoint::ChatCompletions,
                &request(r#"{"model":"gpt-3.5-turbo"}"#),
                &ctx(),
            )
            .unwrap();
        assert!(
            req.url
                .to_string()
                .contains("/openai/deployments/gpt-turbo-small-eu/chat/completions?"),
            "{}",
            req.url
        );
    }

    #[test]
    fn responses_pass_through_with_their_content_filter_results() {
        let a = adapter(
            json!({"api_base": "https://x.openai.azure.com", "api_key": "k"}),
            &[],
        );
        let resp = UpstreamResponse {
            status: 200,
            headers: &HeaderMap::new(),
            body: &Bytes::from_static(CHAT_RESPONSE),
        };
        let parsed = a
            .parse_response(Endpoint::ChatCompletions, &resp, &stream_ctx())
            .unwrap();
        assert_eq!(&parsed.body[..], CHAT_RESPONSE);
        assert_eq!(
            parsed.usage,
            Some(Usage {
                prompt_tokens: 8,
                completion_tokens: 9
            })
        );
    }

    #[test]
    fn the_stream_forwards_the_empty_filter_chunk_and_splits_anywhere() {
        let a = adapter(
            json!({"api_base": "https://x.openai.azure.com", "api_key": "k"}),
            &[],
        );
        let decode = |parts: &[&[u8]]| {
            let mut d = a.stream_decoder(Endpoint::ChatCompletions, &stream_ctx());
            let mut out = Vec::new();
            for p in parts {
                d.feed(p, &mut out);
            }
            d.finish(&mut out);
            out
        };
        let whole = decode(&[CHAT_STREAM]);
        let mut want: Vec<StreamEvent> = std::str::from_utf8(CHAT_STREAM)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|p| *p != "[DONE]")
            .map(|p| StreamEvent::Chunk(Bytes::from(p.to_string())))
            .collect();
        assert_eq!(want.len(), 4);
        // "Hello there" is 11 characters: 3 estimated tokens.
        want.push(StreamEvent::Usage(Usage {
            prompt_tokens: 0,
            completion_tokens: 3,
        }));
        want.push(StreamEvent::Done);
        assert_eq!(whole, want);
        for cut in 0..=CHAT_STREAM.len() {
            assert_eq!(
                decode(&[&CHAT_STREAM[..cut], &CHAT_STREAM[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_error_status_is_classified() {
        let a = adapter(
            json!({"api_base": "https://x.openai.azure.com", "api_key": "k"}),
            &[],
        );
        let retry = testing::headers(&[("retry-after", "6")]);
        let cases: [(u16, &[u8], ErrorClass, u16, &str); 8] = [
            (
                400,
                include_bytes!("../../tests/fixtures/azure/error_400.json"),
                ErrorClass::BadRequest,
                400,
                "litellm.BadRequestError: AzureException - Unrecognized request argument supplied: foo",
            ),
            (
                400,
                include_bytes!("../../tests/fixtures/azure/error_content_filter.json"),
                ErrorClass::ContentPolicy,
                400,
                "litellm.ContentPolicyViolationError: ContentPolicyViolationError: AzureException - The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            ),
            (
                400,
                include_bytes!("../../tests/fixtures/azure/error_context_window.json"),
                ErrorClass::ContextWindowExceeded,
                400,
                "litellm.ContextWindowExceededError: ContextWindowExceededError: AzureException - This model's maximum context length is 128000 tokens.",
            ),
            (
                401,
                include_bytes!("../../tests/fixtures/azure/error_401.json"),
                ErrorClass::Auth,
                401,
                "litellm.AuthenticationError: AuthenticationError: AzureException - Access denied due to invalid subscription key",
            ),
            (
                404,
                include_bytes!("../../tests/fixtures/azure/error_404.json"),
                ErrorClass::NotFound,
                404,
                "litellm.NotFoundError: NotFoundError: AzureException - The API deployment for this resource does not exist.",
            ),
            (
                429,
                include_bytes!("../../tests/fixtures/azure/error_429.json"),
                ErrorClass::RateLimit,
                429,
                "litellm.RateLimitError: RateLimitError: AzureException - Requests to the ChatCompletions_Create Operation",
            ),
            (
                500,
                include_bytes!("../../tests/fixtures/azure/error_500.json"),
                ErrorClass::ServerError,
                500,
                "litellm.InternalServerError: InternalServerError: AzureException - The server had an error",
            ),
            (
                503,
                include_bytes!("../../tests/fixtures/azure/error_503.json"),
                ErrorClass::ServerError,
                503,
                "litellm.ServiceUnavailableError: ServiceUnavailableError: AzureException - The service is temporarily unable",
            ),
        ];
        for (status, body, class, out_status, prefix) in cases {
            let e = a.parse_error(&UpstreamResponse {
                status,
                headers: &retry,
                body: &Bytes::from_static(body),
            });
            assert_eq!(
                (e.class, e.status),
                (class, out_status),
                "{status}: {}",
                e.message
            );
            assert!(e.message.starts_with(prefix), "{status}: {}", e.message);
            assert_eq!(e.retry_after, Some(Duration::from_secs(6)));
        }
    }
}
