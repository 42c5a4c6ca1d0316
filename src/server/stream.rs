//! Relaying a live upstream stream to the client. The response body itself polls the upstream
//! connection: each poll reads what the upstream sent, translates it and hands the client its
//! SSE frames, so a chunk costs no task wake-up or channel hop, and a slow client slows the
//! upstream read (backpressure) instead of filling a buffer. The body ends the stream's
//! bookkeeping: the deployment hears success or failure when the stream ends, and a client that
//! hangs up drops the body, which closes the upstream connection and cancels the reservation.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_web::rt::time::{sleep, Sleep};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use llm_proxy_actors::Reservation;

use super::error::ProxyError;
use super::upstream;
use crate::providers::{ProviderError, StreamDecoder, StreamEvent, Usage};

/// The frame every stream ends with.
pub const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

/// After `[DONE]`, how long to keep reading the upstream's tail so its connection can be reused.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// `data: <json>\n\n`.
pub fn sse_frame(json: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(json.len() + 8);
    push_frame(&mut frame, json);
    frame.freeze()
}

fn push_frame(out: &mut BytesMut, json: &[u8]) {
    out.reserve(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// The error event a stream ends with when the upstream fails after the first chunk.
pub fn sse_error_frame(e: &ProviderError) -> Bytes {
    let body = ProxyError::Provider(e.clone()).body();
    sse_frame(body.to_string().as_bytes())
}

/// The usage a stream reports at its end, shared between the body relaying it and whoever
/// holds the call's `CallMeta`.
#[derive(Debug, Clone, Default)]
pub struct StreamUsage(Arc<std::sync::OnceLock<Usage>>);

impl StreamUsage {
    /// `None` until the stream has finished successfully.
    pub fn get(&self) -> Option<Usage> {
        self.0.get().copied()
    }

    fn set(&self, usage: Usage) {
        let _ = self.0.set(usage);
    }
}

/// A live upstream stream after its first event, relayed by polling.
pub struct Relay {
    /// `None` once the stream has ended.
    reply: Option<upstream::Reply>,
    decoder: Box<dyn StreamDecoder>,
    reservation: Reservation,
    /// Events decoded and not yet framed (the first read's, at the start).
    events: Vec<StreamEvent>,
    usage: Usage,
    stream_usage: StreamUsage,
    chunk_timeout: Duration,
    /// Armed when a read starts waiting: the upstream may stay silent for `chunk_timeout`.
    idle: Pin<Box<Sleep>>,
    waiting: bool,
    label: &'static str,
}

/// How framing a batch of events ended.
enum Framed {
    More,
    Finished,
    Failed(ProviderError),
}

impl Relay {
    pub fn new(
        reply: upstream::Reply,
        decoder: Box<dyn StreamDecoder>,
        reservation: Reservation,
        first_events: Vec<StreamEvent>,
        chunk_timeout: Duration,
        label: &'static str,
        stream_usage: StreamUsage,
    ) -> Relay {
        Relay {
            reply: Some(reply),
            decoder,
            reservation,
            events: first_events,
            usage: Usage::default(),
            stream_usage,
            chunk_timeout,
            idle: Box::pin(sleep(chunk_timeout)),
            waiting: false,
            label,
        }
    }

    /// Frames the decoded events into `out`, stopping at the stream's end.
    fn frame_events(&mut self, out: &mut BytesMut) -> Framed {
        for event in self.events.drain(..) {
            match event {
                StreamEvent::Chunk(json) => push_frame(out, &json),
                StreamEvent::Usage(u) => self.usage = u,
                StreamEvent::Error(e) => return Framed::Failed(e),
                StreamEvent::Done => return Framed::Finished,
            }
        }
        Framed::More
    }

    /// The upstream said `[DONE]`: report success, end the client's stream, and read the
    /// upstream's tail so its keep-alive connection goes back to the pool.
    fn finish(&mut self, out: &mut BytesMut) {
        self.reservation
            .succeed(self.usage.prompt_tokens, self.usage.completion_tokens);
        self.stream_usage.set(self.usage);
        out.extend_from_slice(DONE_FRAME);
        if let Some(reply) = self.reply.take() {
            drain(reply, self.label);
        }
    }

    /// The upstream failed after the first chunk: report it and end the client's stream with an
    /// error event.
    fn fail(&mut self, e: ProviderError, out: &mut BytesMut) {
        log::warn!(
            "stream from deployment {} failed after its first chunk: {}",
            self.reservation.deployment(),
            e.message
        );
        self.reservation.fail(e.class, e.status, e.retry_after);
        self.reply = None;
        out.extend_from_slice(&sse_error_frame(&e));
        out.extend_from_slice(DONE_FRAME);
    }

    /// Frames the pending events, ending the stream if they end it.
    fn flush(&mut self, out: &mut BytesMut) {
        match self.frame_events(out) {
            Framed::More => {}
            Framed::Finished => self.finish(out),
            Framed::Failed(e) => self.fail(e, out),
        }
    }
}

/// Reads what is left of an upstream body after `[DONE]`, so that its keep-alive connection goes
/// back to the pool. Usually the tail has arrived with the last chunk; only a tail still on its
/// way needs a task, bounded by [`DRAIN_TIMEOUT`].
fn drain(mut reply: upstream::Reply, label: &'static str) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..16 {
        match upstream::poll_chunk(&mut reply, label, &mut cx) {
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(_) => return,
            Poll::Pending => break,
        }
    }
    actix_web::rt::spawn(async move {
        let _ = actix_web::rt::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(Ok(_)) = upstream::next_chunk(&mut reply, label).await {}
        })
        .await;
    });
}

impl Stream for Relay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let mut out = BytesMut::new();
        loop {
            if !this.events.is_empty() {
                this.flush(&mut out);
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out.freeze())));
            }
            let Some(reply) = this.reply.as_mut() else {
                return Poll::Ready(None);
            };
            match upstream::poll_chunk(reply, this.label, cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    this.waiting = false;
                    this.decoder.feed(&bytes, &mut this.events);
                }
                Poll::Ready(Some(Err(e))) => this.fail(e, &mut out),
                Poll::Ready(None) => {
                    this.decoder.finish(&mut this.events);
                    match this.frame_events(&mut out) {
                        Framed::More => {
                            let e = ProviderError::connection(
                                this.label,
                                "the upstream ended the stream without finishing it",
                            );
                            this.fail(e, &mut out);
                        }
                        Framed::Finished => this.finish(&mut out),
                        Framed::Failed(e) => this.fail(e, &mut out),
                    }
                }
                Poll::Pending => {
                    if !this.waiting {
                        this.waiting = true;
                        let deadline = actix_web::rt::time::Instant::now() + this.chunk_timeout;
                        this.idle.as_mut().reset(deadline);
                    }
                    if this.idle.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let e = ProviderError::timeout(this.label, this.chunk_timeout);
                    this.fail(e, &mut out);
                }
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.reply.is_some() {
            log::info!(
                "client went away mid-stream; cancelling the upstream call to deployment {}",
                self.reservation.deployment()
            );
        }
    }
}

/// A live stream parked on the worker's thread between the HTTP actor's answer and the response
/// that relays it. actix hands actor answers over as `Send` values, and a relay holds this
/// worker's `Rc`-pooled upstream connection, so the answer carries this ticket instead (the
/// actor and the request handler share the worker's thread). A ticket dropped unredeemed (the
/// client left before its response began) drops its relay, closing the upstream connection.
#[derive(Debug)]
pub struct StreamTicket(u64);

thread_local! {
    static PARKED: Lot<Relay> = const { Lot::new() };
}

impl StreamTicket {
    pub fn park(relay: Relay) -> StreamTicket {
        StreamTicket(PARKED.with(|lot| lot.park(relay)))
    }

    /// The relay, on the thread that parked it.
    pub fn redeem(self) -> Option<Relay> {
        PARKED.with(|lot| lot.take(self.0))
    }
}

impl Drop for StreamTicket {
    fn drop(&mut self) {
        // `try_with`: a ticket may outlive the thread-local at thread exit. The relay drops
        // after the lot's borrow ends.
        let relay = PARKED.try_with(|lot| lot.take(self.0)).ok().flatten();
        drop(relay);
    }
}

/// Values parked under numbered tickets. Few are parked at once (a stream stays only until its
/// handler resumes), so a list beats a map.
struct Lot<T> {
    parked: RefCell<Vec<(u64, T)>>,
    next: Cell<u64>,
}

impl<T> Lot<T> {
    const fn new() -> Lot<T> {
        Lot {
            parked: RefCell::new(Vec::new()),
            next: Cell::new(0),
        }
    }

    fn park(&self, value: T) -> u64 {
        let ticket = self.next.get();
        self.next.set(ticket.wrapping_add(1));
        self.parked.borrow_mut().push((ticket, value));
        ticket
    }

    fn take(&self, ticket: u64) -> Option<T> {
        let mut parked = self.parked.borrow_mut();
        let at = parked.iter().position(|(t, _)| *t == ticket)?;
        Some(parked.swap_remove(at).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_sse() {
        assert_eq!(&sse_frame(b"{}")[..], b"data: {}\n\n");
        let mut out = BytesMut::new();
        push_frame(&mut out, b"{\"a\":1}");
        push_frame(&mut out, b"{}");
        assert_eq!(&out[..], b"data: {\"a\":1}\n\ndata: {}\n\n");
    }

    #[test]
    fn a_parked_value_is_taken_once_by_its_own_ticket() {
        let lot = Lot::new();
        let a = lot.park("a");
        let b = lot.park("b");
        let c = lot.park("c");
        assert_eq!(lot.take(b), Some("b"));
        assert_eq!(lot.take(b), None);
        assert_eq!(lot.take(c), Some("c"));
        assert_eq!(lot.take(a), Some("a"));
        assert!(lot.parked.borrow().is_empty());
    }
}
