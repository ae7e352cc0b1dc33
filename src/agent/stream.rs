//! Incremental framing of streamed HTTP bodies for the agent backends: server-sent events
//! (`SseParser`, for the Responses API) and newline-delimited JSON (`LineSplitter`, for webhooks).
//! Sans-IO: feed bytes as they arrive, take complete frames out. Chunks may split anywhere,
//! including inside a UTF-8 character.

/// Longest line accepted; a longer one is an error of the stream (see [`LineSplitter::overflowed`]).
pub const MAX_LINE: usize = 1 << 20;

/// Splits a byte stream into complete lines (without the `\n` / `\r\n`). Linear in the input:
/// each byte is scanned once, however the chunks fall.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    overflowed: bool,
}

impl LineSplitter {
    /// Feed bytes; returns the complete lines now available.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        if self.overflowed {
            return Vec::new();
        }
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(off) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + off;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            lines.push(String::from_utf8_lossy(line).into_owned());
            start = end + 1;
            self.scanned = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_LINE {
            self.overflowed = true;
            self.buf = Vec::new();
            self.scanned = 0;
        }
        lines
    }

    /// A line grew past [`MAX_LINE`] without ending: the stream is refused from there on.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// What is left when the stream ends (a last line without a newline).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        let s = String::from_utf8_lossy(&rest).trim_end().to_owned();
        (!s.is_empty()).then_some(s)
    }
}

/// Collects the `data:` payload of each server-sent event.
#[derive(Debug, Default)]
pub struct SseParser {
    lines: LineSplitter,
    data: Vec<String>,
}

impl SseParser {
    /// Feed bytes; returns the data of every event completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for line in self.lines.push(chunk) {
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(std::mem::take(&mut self.data).join("\n"));
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                self.data
                    .push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
            }
            // `event:`, `id:`, `retry:` and comments carry nothing the backends need.
        }
        events
    }

    /// The final event if the stream ended without a blank line.
    pub fn finish(&mut self) -> Option<String> {
        if let Some(rest) = self
            .lines
            .finish()
            .as_deref()
            .and_then(|l| l.strip_prefix("data:"))
        {
            self.data.push(rest.trim_start().to_owned());
        }
        (!self.data.is_empty()).then(|| std::mem::take(&mut self.data).join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_never_ends_is_cut_off_and_costs_linear_time() {
        let mut l = LineSplitter::default();
        let chunk = vec![b'x'; 4096];
        // 2 MiB in 4 KiB chunks: quadratic rescanning would take ~500 M byte visits.
        for _ in 0..512 {
            assert!(l.push(&chunk).is_empty());
        }
        assert!(l.overflowed());
        assert!(l.push(b"\nmore\n").is_empty(), "refused from there on");
    }

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut l = LineSplitter::default();
        assert!(l.push(b"ab").is_empty());
        assert_eq!(
            l.push(b"c\r\nde\nf"),
            vec!["abc".to_owned(), "de".to_owned()]
        );
        assert_eq!(l.finish(), Some("f".to_owned()));
    }

    #[test]
    fn lines_survive_arbitrary_chunking_including_inside_utf8() {
        let text = "{\"a\":\"é\"}\r\n{\"b\":2}\npartial";
        let bytes = text.as_bytes();
        for split in 0..bytes.len() {
            let mut s = LineSplitter::default();
            let mut got = s.push(&bytes[..split]);
            got.extend(s.push(&bytes[split..]));
            assert_eq!(got, vec!["{\"a\":\"é\"}", "{\"b\":2}"], "split at {split}");
            assert_eq!(s.finish().as_deref(), Some("partial"));
        }
    }

    #[test]
    fn sse_events_are_joined_data_lines() {
        let mut p = SseParser::default();
        let mut got =
            p.push(b"event: response.created\ndata: {\"x\":1}\n\n: comment\ndata: a\ndata: b\n");
        assert_eq!(got, vec!["{\"x\":1}"]);
        got = p.push(b"\ndata:tail");
        assert_eq!(got, vec!["a\nb"]);
        assert_eq!(p.finish().as_deref(), Some("tail"));
    }
}
