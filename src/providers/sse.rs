//! A server-sent-events frame splitter for upstream streams: bytes arrive cut anywhere, events
//! come out whole. Used by every provider that streams SSE (OpenAI-compatible, Anthropic, TGI).

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
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    max_line: usize,
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
            buf: Vec::new(),
            event: None,
            data: Vec::new(),
            max_line,
        }
    }

    /// Feed bytes; complete events are pushed to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, out);
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > self.max_line {
            self.buf.clear();
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// The stream ended: a last event without its blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buf.is_empty() {
            let line = String::from_utf8_lossy(&self.buf)
                .trim_end_matches('\r')
                .to_string();
            self.buf.clear();
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.data.is_empty() {
            self.event = None;
            return;
        }
        out.push(SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data).join("\n"),
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
    fn an_endless_line_is_refused() {
        let mut s = SseSplitter::new(8);
        let mut out = Vec::new();
        assert_eq!(s.feed(b"data: 0123456789", &mut out), Err(LineTooLong));
    }
}
