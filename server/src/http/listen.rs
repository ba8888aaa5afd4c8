//! The listening socket: hyper (through `axum::serve`) serves every
//! connection, except the ones that open a live stream.
//!
//! A live stream is one long response to one request, and most of its life
//! it is idle. Through hyper each one kept a 16 KiB read buffer and an 8 KiB
//! write buffer (hyper 1.x reserves them per connection and offers no
//! setting below that; heaptrack of 2,000 idle streams: 24 KiB of the 28.5
//! each one cost). So a connection whose first bytes are
//! `GET /api/v1/stream` is read here instead: its request head is parsed
//! (`httparse`, the parser hyper uses), handed to the same `Router` as every
//! other request — the same authentication, middleware and handler — and
//! the response is written straight to the socket: the head, then each frame
//! of the body as it comes, until the stream ends or the client goes. Such a
//! connection carries that one response and closes (an `EventSource`
//! reconnects on a new connection anyway). Everything else reaches hyper
//! untouched, including a connection that says nothing for a while.

use super::error::ApiError;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use axum::response::IntoResponse;
use axum::Router;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower::ServiceExt;

/// The request line that marks a live stream.
const STREAM: &[u8] = b"GET /api/v1/stream";
/// How long a new connection may stay silent before hyper takes it as it is.
const FIRST_BYTES: Duration = Duration::from_secs(2);
/// A stream's whole request head must arrive within this, and fit in this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// The listener `axum::serve` takes: it yields every connection that is not
/// a live stream, and serves those itself.
pub struct Listener {
    connections: mpsc::Receiver<(TcpStream, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Accepts on `tcp`; live streams are answered by `app`. Accepting stops
    /// when `closing` completes (the server's shutdown).
    pub fn new(
        tcp: TcpListener,
        app: Router,
        closing: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Listener> {
        let local = tcp.local_addr()?;
        let (tx, connections) = mpsc::channel(256);
        let acceptor = tokio::spawn(async move {
            tokio::pin!(closing);
            loop {
                let (stream, addr) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(c) => c,
                        Err(err) => {
                            // Out of file descriptors and the like: wait, as axum does.
                            tracing::warn!(error = %err, "Accepting a connection failed.");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                    () = &mut closing => return,
                };
                let (tx, app) = (tx.clone(), app.clone());
                tokio::spawn(async move {
                    if opens_a_stream(&stream).await {
                        let _ = stream.set_nodelay(true);
                        serve_stream(stream, addr, app).await;
                    } else {
                        let _ = tx.send((stream, addr)).await;
                    }
                });
            }
        });
        Ok(Listener { connections, local, acceptor })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for Listener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.connections.recv().await {
            Some(c) => c,
            // The acceptor stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Whether the connection's first bytes are a live stream's request line,
/// looking without taking them (hyper reads them otherwise).
async fn opens_a_stream(stream: &TcpStream) -> bool {
    let mut first = [0u8; STREAM.len() + 1];
    let deadline = tokio::time::Instant::now() + FIRST_BYTES;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        let seen = &first[..n];
        if n == 0 || !STREAM.starts_with(&seen[..n.min(STREAM.len())]) {
            return false;
        }
        if n > STREAM.len() {
            return matches!(seen[STREAM.len()], b' ' | b'?');
        }
        // Only part of the line so far: wait for more (peek returns at once
        // while the bytes it saw are unread).
        tokio::time::sleep(Duration::from_millis(5)).await;
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
    }
}

/// Reads one request head, runs it through `app` and writes the response.
async fn serve_stream(stream: TcpStream, addr: SocketAddr, app: Router) {
    let (mut reader, mut writer) = stream.into_split();
    let response = match tokio::time::timeout(HEAD_TIMEOUT, read_request(&mut reader, addr)).await {
        Ok(Ok(request)) => {
            let Ok(response) = app.oneshot(request).await;
            response
        }
        Ok(Err(status)) => unreadable(status),
        Err(_) => unreadable(StatusCode::REQUEST_TIMEOUT),
    };
    let _ = write_response(&mut reader, &mut writer, response).await;
    let _ = writer.shutdown().await;
}

/// The request head, as the router takes it; a status to answer when it is
/// not one this connection can serve.
async fn read_request(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    addr: SocketAddr,
) -> Result<Request<Body>, StatusCode> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => return to_request(&parsed, addr),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            Err(_) => return Err(StatusCode::BAD_REQUEST),
        }
        if buf.len() >= MAX_HEAD {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        let mut chunk = [0u8; 1024];
        let n = reader.read(&mut chunk).await.map_err(|_| StatusCode::BAD_REQUEST)?;
        if n == 0 {
            return Err(StatusCode::BAD_REQUEST);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn to_request(parsed: &httparse::Request<'_, '_>, addr: SocketAddr) -> Result<Request<Body>, StatusCode> {
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut request = Request::builder()
        .method(parsed.method.unwrap_or("GET"))
        .uri(parsed.path.unwrap_or("/"))
        .version(version)
        .body(Body::empty())
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| StatusCode::BAD_REQUEST)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| StatusCode::BAD_REQUEST)?;
        request.headers_mut().append(name, value);
    }
    // A GET with a body is nothing this connection reads: refuse it rather
    // than leave its bytes to be taken for another request.
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        return Err(StatusCode::BAD_REQUEST);
    }
    request.extensions_mut().insert(ConnectInfo(addr));
    Ok(request)
}

/// Writes the head, then the body: whole with its length when it is already
/// complete (an error's JSON), else frame by frame until it ends or the
/// client closes its side.
async fn write_response(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    response: Response<Body>,
) -> std::io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let mut head = format!("HTTP/1.1 {} {}\r\n", parts.status.as_u16(), parts.status.canonical_reason().unwrap_or(""))
        .into_bytes();
    for (name, value) in &parts.headers {
        if matches!(*name, header::CONNECTION | header::CONTENT_LENGTH | header::TRANSFER_ENCODING) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n");
    let streaming =
        parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        head.extend_from_slice(format!("content-length: {}\r\n\r\n", bytes.len()).as_bytes());
        writer.write_all(&head).await?;
        return writer.write_all(&bytes).await;
    }
    head.extend_from_slice(b"\r\n");
    writer.write_all(&head).await?;
    drop(head);
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        writer.write_all(&data).await?;
                    }
                }
                Some(Err(_)) | None => return Ok(()),
            },
            // The client sends nothing on a stream: a read returns when it leaves.
            read = reader.read(&mut probe) => if !matches!(read, Ok(n) if n > 0) {
                return Ok(());
            },
        }
    }
}

/// The API's usual error for a stream request this connection cannot read.
fn unreadable(status: StatusCode) -> Response<Body> {
    let code = match status {
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request_header_fields_too_large",
        _ => "bad_request",
    };
    ApiError::new(status, code, "The live stream's request could not be read.").into_response()
}
