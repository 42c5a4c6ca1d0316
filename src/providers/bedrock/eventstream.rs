//! AWS binary event-stream (`application/vnd.amazon.eventstream`) as Bedrock streams it, and the
//! OpenAI chunk JSON both Bedrock stream decoders build.
//!
//! Frames are decoded by `aws-smithy-eventstream` (prelude, headers, payload, both CRCs); this
//! module only buffers network reads so a frame may arrive cut at any byte.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use super::{upstream_error, LABEL};
use crate::providers::{ProviderError, StreamContext, Usage};

/// A frame larger than this is an upstream fault (Bedrock frames are a few KiB).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// One decoded frame, sorted by its `:message-type` header.
#[derive(Debug)]
pub(super) enum Frame {
    /// `:message-type: event`, with its `:event-type` and JSON payload.
    Event { event_type: String, payload: Bytes },
    /// `:message-type: exception` (or `error`): the upstream failed mid-stream.
    Exception(ProviderError),
}

/// Reassembles frames from reads cut anywhere.
#[derive(Debug, Default)]
pub(super) struct FrameReader {
    decoder: MessageFrameDecoder,
    buf: BytesMut,
    /// Bytes handed to the decoder that are not yet part of a complete frame (the decoder keeps
    /// a frame's prelude internally once it has read it).
    pending: usize,
    failed: bool,
}

impl FrameReader {
    /// Feed bytes; complete frames (or one decoding error, after which the reader stops) come out.
    pub(super) fn feed(&mut self, bytes: &[u8], out: &mut Vec<Result<Frame, ProviderError>>) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let before = self.buf.len();
            let decoded = self.decoder.decode_frame(&mut self.buf);
            self.pending += before - self.buf.len();
            match decoded {
                Ok(DecodedFrame::Complete(message)) => {
                    self.pending = 0;
                    out.push(Ok(classify_frame(&message)));
                }
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => {
                    self.fail(out, &format!("malformed event-stream frame: {e}"));
                    return;
                }
            }
        }
        if self.buf.len() + self.pending > MAX_FRAME {
            self.fail(out, "event-stream frame larger than 16 MiB");
        }
    }

    /// Whether the upstream closed in the middle of a frame.
    pub(super) fn truncated(&self) -> bool {
        !self.failed && (self.pending > 0 || !self.buf.is_empty())
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    fn fail(&mut self, out: &mut Vec<Result<Frame, ProviderError>>, detail: &str) {
        self.failed = true;
        self.buf.clear();
        self.pending = 0;
        out.push(Err(ProviderError::malformed_response(LABEL, detail)));
    }
}

fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn classify_frame(message: &Message) -> Frame {
    match header(message, ":message-type") {
        Some("exception") => {
            let kind = header(message, ":exception-type").unwrap_or("exception");
            let text = payload_message(message.payload()).unwrap_or_else(|| kind.to_string());
            Frame::Exception(stream_exception(kind, &text))
        }
        Some("error") => {
            let code = header(message, ":error-code").unwrap_or("error");
            let text = header(message, ":error-message").unwrap_or(code);
            Frame::Exception(stream_exception(code, text))
        }
        _ => Frame::Event {
            event_type: header(message, ":event-type")
                .unwrap_or_default()
                .to_string(),
            payload: message.payload().clone(),
        },
    }
}

/// `{"message": "..."}` (or `Message`) from an exception payload.
fn payload_message(payload: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v.get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// An in-band exception, classified by its type the way the same exception is classified when
/// Bedrock answers it as an HTTP error.
pub(super) fn stream_exception(kind: &str, text: &str) -> ProviderError {
    let lower = kind.to_ascii_lowercase();
    let status = if lower.starts_with("throttling") || lower.starts_with("servicequotaexceeded") {
        429
    } else if lower.starts_with("validation") {
        400
    } else if lower.starts_with("serviceunavailable") {
        503
    } else if lower.starts_with("modeltimeout") {
        408
    } else {
        // internalServerException, modelStreamErrorException and anything unknown.
        500
    };
    upstream_error(status, text, None)
}

/// Builds the compact `chat.completion.chunk` JSON LiteLLM emits (§7): `id` and `created`
/// constant, `role: assistant` on the first chunk that carries content.
#[derive(Debug)]
pub(super) struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    role_sent: bool,
}

impl ChunkWriter {
    pub(super) fn new(ctx: &StreamContext, model: &str) -> ChunkWriter {
        ChunkWriter {
            id: ctx.id.clone(),
            created: ctx.created,
            model: model.to_string(),
            role_sent: false,
        }
    }

    fn envelope(&self, choices: Value) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("created".into(), json!(self.created));
        m.insert("model".into(), Value::String(self.model.clone()));
        m.insert(
            "object".into(),
            Value::String("chat.completion.chunk".into()),
        );
        m.insert("choices".into(), choices);
        m
    }

    /// A content-carrying delta: `fields` holds any of `content`, `tool_calls`,
    /// `reasoning_content`; `role` is put first on the first such chunk.
    pub(super) fn delta(&mut self, fields: Map<String, Value>) -> Bytes {
        let mut delta = Map::new();
        if !self.role_sent {
            self.role_sent = true;
            delta.insert("role".into(), Value::String("assistant".into()));
        }
        delta.extend(fields);
        to_bytes(self.envelope(json!([{"index": 0, "delta": delta}])))
    }

    /// The chunk with an empty delta and the mapped finish reason.
    pub(super) fn finish(&self, reason: &str) -> Bytes {
        to_bytes(self.envelope(json!([{"index": 0, "delta": {}, "finish_reason": reason}])))
    }

    /// The `stream_options.include_usage` chunk: no choices, only usage.
    pub(super) fn usage(&self, usage: Usage) -> Bytes {
        let mut m = self.envelope(json!([]));
        m.insert("usage".into(), usage_json(usage));
        to_bytes(m)
    }
}

pub(super) fn usage_json(usage: Usage) -> Value {
    json!({
        "completion_tokens": usage.completion_tokens,
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    })
}

pub(super) fn to_bytes(m: Map<String, Value>) -> Bytes {
    Bytes::from(Value::Object(m).to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};
    use llm_proxy_actors::ErrorClass;

    /// One frame as Bedrock sends an event.
    pub(crate) fn event_frame(event_type: &str, payload: &str) -> Vec<u8> {
        let message = Message::new(Bytes::from(payload.to_string()))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event_type.to_string().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    /// One frame as Bedrock sends an in-band exception.
    pub(crate) fn exception_frame(exception_type: &str, message_text: &str) -> Vec<u8> {
        let payload = json!({ "message": message_text }).to_string();
        let message = Message::new(Bytes::from(payload))
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String(exception_type.to_string().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("exception".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    fn event_types(frames: &[Result<Frame, ProviderError>]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Ok(Frame::Event { event_type, .. }) => event_type.clone(),
                Ok(Frame::Exception(e)) => format!("exception:{}", e.status),
                Err(e) => format!("error:{}", e.message),
            })
            .collect()
    }

    #[test]
    fn frames_split_at_every_byte_come_out_whole() {
        let mut bytes = event_frame("messageStart", r#"{"role":"assistant"}"#);
        bytes.extend(event_frame("messageStop", r#"{"stopReason":"end_turn"}"#));
        for cut in 0..=bytes.len() {
            let mut reader = FrameReader::default();
            let mut out = Vec::new();
            reader.feed(&bytes[..cut], &mut out);
            reader.feed(&bytes[cut..], &mut out);
            assert_eq!(
                event_types(&out),
                vec!["messageStart", "messageStop"],
                "cut at {cut}"
            );
            assert!(!reader.truncated());
        }
        let mut reader = FrameReader::default();
        let mut out = Vec::new();
        for b in &bytes {
            reader.feed(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(event_types(&out), vec!["messageStart", "messageStop"]);
    }

    #[test]
    fn a_frame_cut_short_is_truncated_and_a_bad_crc_is_an_error() {
        let bytes = event_frame("messageStart", r#"{"role":"assistant"}"#);
        for cut in [1, 12, bytes.len() - 1] {
            let mut reader = FrameReader::default();
            let mut out = Vec::new();
            reader.feed(&bytes[..cut], &mut out);
            assert!(out.is_empty());
            assert!(reader.truncated(), "cut at {cut}");
        }
        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 5;
        corrupt[last] ^= 0xff;
        let mut reader = FrameReader::default();
        let mut out = Vec::new();
        reader.feed(&corrupt, &mut out);
        assert_eq!(out.len(), 1);
        let e = out.pop().unwrap().unwrap_err();
        assert_eq!(e.class, ErrorClass::ServerError);
        assert!(
            e.message.contains("malformed event-stream frame"),
            "{}",
            e.message
        );
        assert!(reader.failed());
        reader.feed(&bytes, &mut out);
        assert!(out.is_empty(), "a failed reader stays stopped");
    }

    #[test]
    fn exception_frames_are_classified() {
        for (kind, text, class, status) in [
            (
                "throttlingException",
                "Too many requests, please wait before trying again.",
                ErrorClass::RateLimit,
                429,
            ),
            (
                "validationException",
                "Input is too long for requested model.",
                ErrorClass::ContextWindowExceeded,
                400,
            ),
            (
                "validationException",
                "Malformed input request",
                ErrorClass::BadRequest,
                400,
            ),
            (
                "modelStreamErrorException",
                "model failed",
                ErrorClass::ServerError,
                500,
            ),
            (
                "internalServerException",
                "internal",
                ErrorClass::ServerError,
                500,
            ),
            (
                "serviceUnavailableException",
                "unavailable",
                ErrorClass::ServerError,
                503,
            ),
        ] {
            let mut reader = FrameReader::default();
            let mut out = Vec::new();
            reader.feed(&exception_frame(kind, text), &mut out);
            match out.pop() {
                Some(Ok(Frame::Exception(e))) => {
                    assert_eq!((e.class, e.status), (class, status), "{kind}");
                    assert!(
                        e.message.contains(&format!("BedrockException - {text}")),
                        "{}",
                        e.message
                    );
                }
                other => panic!("{kind}: {other:?}"),
            }
        }
    }
}
