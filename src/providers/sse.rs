//! A server-sent-events frame splitter for upstream streams: bytes arrive cut anywhere, events
//! come out whole. Used by every provider that streams SSE (OpenAI-compatible, Anthropic, TGI).

use std::borrow::Cow;

/// One SSE event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Buffers partial lines between reads. Bounded: a single line longer than `max_line` bytes is
/// an upstream fault, reported once by [`SseSplitter::feed`] returning `Err`.
#[derive(Debug)]
pub struct SseSplitter {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    event: EventInProgress,
    max_line: usize,
}

/// The fields of the event being read, until its blank line.
#[derive(Debug, Default)]
struct EventInProgress {
    event: Option<String>,
    data: Vec<String>,
}

/// An upstream line grew past the splitter's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

impl Default for SseSplitter {
    fn default() -> Self {
        SseSplitter::new(16 * 1024 * 1024)
    }
}

impl SseSplitter {
    pub fn new(max_line: usize) -> SseSplitter {
        SseSplitter {
            partial: Vec::new(),
            event: EventInProgress::default(),
            max_line,
        }
    }

    /// Feed bytes; complete events are pushed to `out`. Lines are read straight from `bytes`
    /// (every chunk of every stream passes here); only a line cut by the read is copied.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        let mut rest = bytes;
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                return self.check_partial();
            };
            self.partial.extend_from_slice(&rest[..end]);
            self.event.line(&self.partial, out);
            self.partial.clear();
            rest = &rest[end + 1..];
        }
        while let Some(end) = memchr::memchr(b'\n', rest) {
            self.event.line(&rest[..end], out);
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        self.check_partial()
    }

    fn check_partial(&mut self) -> Result<(), LineTooLong> {
        if self.partial.len() > self.max_line {
            self.partial = Vec::new();
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// The stream ended: a last event without its blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.event.line(&line, out);
        }
        self.event.dispatch(out);
    }
}

impl EventInProgress {
    /// One line, without its `\n` (a `\r` before it is dropped here).
    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        // `from_utf8` first: `from_utf8_lossy` checks byte by byte even when all is well.
        let line = match std::str::from_utf8(line) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line),
        };
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let data = match self.data.len() {
            0 => {
                self.event = None;
                return;
            }
            // The usual event: one `data:` line, moved rather than joined into a copy.
            1 => self.data.pop().unwrap_or_default(),
            _ => std::mem::take(&mut self.data).join("\n"),
        };
        out.push(SseEvent {
            event: self.event.take(),
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_come_out_whole() {
        let mut s = SseSplitter::default();
        let mut out = Vec::new();
        s.feed(b"data: {\"a\"", &mut out).unwrap();
        assert!(out.is_empty());
        s.feed(
            b":1}\n\nevent: ping\r\ndata: x\r\n\r\ndata: [DONE]\n\n",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                SseEvent {
                    event: None,
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: Some("ping".into()),
                    data: "x".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn comments_are_skipped_and_a_trailing_event_is_flushed() {
        let mut s = SseSplitter::default();
        let mut out = Vec::new();
        s.feed(b": keep-alive\n\ndata: last", &mut out).unwrap();
        assert!(out.is_empty());
        s.finish(&mut out);
        assert_eq!(
            out,
            vec![SseEvent {
                event: None,
                data: "last".into()
            }]
        );
    }

    #[test]
    fn lines_cut_anywhere_join_and_odd_bytes_are_replaced() {
        let text: &[u8] = b"event: e\r\ndata: one\r\ndata: two\r\n\r\ndata: \xff!\n\n";
        // Every way of cutting the text in three reads gives the same events.
        for a in 0..text.len() {
            for b in a..text.len() {
                let mut s = SseSplitter::default();
                let mut out = Vec::new();
                for part in [&text[..a], &text[a..b], &text[b..]] {
                    s.feed(part, &mut out).unwrap();
                }
                s.finish(&mut out);
                assert_eq!(
                    out,
                    vec![
                        SseEvent {
                            event: Some("e".into()),
                            data: "one\ntwo".into()
                        },
                        SseEvent {
                            event: None,
                            data: "\u{fffd}!".into()
                        },
                    ],
                    "cut at {a} and {b}"
                );
            }
        }
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut s = SseSplitter::new(8);
        let mut out = Vec::new();
        assert_eq!(s.feed(b"data: 0123456789", &mut out), Err(LineTooLong));
        // A long line cut by reads is refused too; one that ends within a read is not.
        let mut s = SseSplitter::new(8);
        s.feed(b"data: 01", &mut out).unwrap();
        assert_eq!(s.feed(b"23456789", &mut out), Err(LineTooLong));
        let mut s = SseSplitter::new(8);
        assert_eq!(s.feed(b"data: 0123456789\n\n", &mut out), Ok(()));
        assert_eq!(out[0].data, "0123456789");
    }
}
