//! JSON bodies for the answers hyper gives by itself.
//!
//! When a request cannot be parsed as HTTP/1.1 (a malformed request line
//! or header, a bad `Content-Length`, headers or a URI too large), hyper
//! answers 400, 431 or 414 on its own, with an empty body, before any
//! handler runs, and closes the connection. Every other error of this
//! server has a JSON body saying what was wrong; these get one too, by
//! rewriting that one answer on its way to the socket.
//!
//! The answer is recognised by its shape: a response head alone, status
//! 400, 414 or 431, `content-length: 0`. The server's own errors always
//! have a body, so they never match. hyper is told the socket has no
//! vectored writes, so that it writes each response from one buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's socket whose automatic parse-error answers carry a JSON
/// error body.
pub(crate) struct JsonParseErrors<T> {
    inner: T,
    /// A rewritten answer being written: its bytes, how many are written,
    /// and the length of the original buffer to report once done.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonParseErrors<T> {
    pub(crate) fn new(inner: T) -> Self {
        JsonParseErrors {
            inner,
            pending: None,
        }
    }
}

/// The rewritten answer, if `buf` is one of hyper's automatic ones.
fn rewritten(buf: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(buf).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))?
        .get(..3)?;
    let message = match status {
        "400" => {
            "the request is not valid HTTP/1.1: its request line, a header or its framing \
             (Content-Length, Transfer-Encoding) could not be parsed"
        }
        "414" => "the request's URI is too long",
        "431" => "the request's headers are too large",
        _ => return None,
    };
    let mut lines: Vec<&str> = head.split("\r\n").collect();
    let length = lines
        .iter()
        .position(|l| l.eq_ignore_ascii_case("content-length: 0"))?;
    let body = serde_json::json!({ "error": message }).to_string();
    let content_length = format!("content-length: {}", body.len());
    lines[length] = &content_length;
    lines.push("content-type: application/json");
    Some(format!("{}\r\n\r\n{body}", lines.join("\r\n")).into_bytes())
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewritten(buf) {
                Some(bytes) => this.pending = Some((bytes, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        let (bytes, written, reported) = this.pending.as_mut().expect("set above");
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let reported = *reported;
        this.pending = None;
        Poll::Ready(Ok(reported))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_parse_error_answers_get_a_json_body() {
        let auto = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewritten(auto).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let e: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(e["error"].as_str().unwrap().contains("not valid HTTP/1.1"));
        let too_large =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(
            String::from_utf8(rewritten(too_large).unwrap())
                .unwrap()
                .contains("headers are too large")
        );
    }

    #[test]
    fn answers_with_a_body_or_another_status_pass_unchanged() {
        // The server's own 400s carry a body.
        assert!(
            rewritten(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"error\":1}")
                .is_none()
        );
        assert!(rewritten(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            rewritten(b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n").is_none()
        );
        assert!(rewritten(&[0xff, 0xfe]).is_none());
    }
}
