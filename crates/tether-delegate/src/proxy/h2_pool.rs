//! HTTP/2 connections to one API server, many requests on each.
//!
//! Over HTTP/1.1 every open watch or `logs -f` holds a TLS connection of its
//! own to the API server, with its buffers: with 1,000 watches that is most of
//! a delegate's memory, and 1,000 connections the API server has to keep.
//! kubectl and client-go speak HTTP/2 to the API server for the same reason.
//! hyper's pooled client shares one HTTP/2 connection per host and queues
//! requests once the server's `SETTINGS_MAX_CONCURRENT_STREAMS` is reached (Go's
//! default, which kube-apiserver keeps unless `--http2-max-streams-per-connection`
//! says otherwise, is 250), so a 251st watch would wait for another to end.
//! This pool opens another connection instead: each carries at most
//! [`STREAMS_PER_CONNECTION`] (or fewer if the server says so) requests at once.
//!
//! Upgraded requests (exec, attach, port-forward) are not for this pool: they
//! need HTTP/1.1's `Upgrade`, and the caller sends them over HTTP/1.1.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http2;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// At most this many requests at once on one connection, below Go's default
/// stream limit so a server's own limit is rarely what queues a request.
pub(crate) const STREAMS_PER_CONNECTION: usize = 100;
/// DATA frames the API server may send us: a large list then comes in 256 KiB
/// pieces, each one chunk through hyper, the tunnel and the manager, instead of
/// sixteen times as many at HTTP/2's default 16 KiB. A frame of another stream
/// waits at most one such frame on the connection.
const MAX_FRAME: u32 = 256 * 1024;
/// A connection that does not answer a ping within this is closed, so a
/// watch on a dead connection ends instead of hanging.
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why a request did not go out on HTTP/2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// The server did not choose `h2` in the TLS handshake: use HTTP/1.1.
    #[error("the API server does not speak HTTP/2")]
    NotHttp2,
    #[error("cannot connect to the API server: {0}")]
    Connect(BoxError),
    /// A new connection had no room: the server allows no streams at all.
    #[error("the API server allows no HTTP/2 requests on a new connection (SETTINGS_MAX_CONCURRENT_STREAMS is 0); check its --http2-max-streams-per-connection")]
    NoStreams,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

struct Conn<B> {
    send: http2::SendRequest<B>,
    /// Requests whose response body is still open.
    streams: Arc<AtomicUsize>,
    /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS`, as last seen.
    server_limit: Arc<AtomicUsize>,
}

impl<B> Conn<B> {
    fn has_room(&self) -> bool {
        let limit = STREAMS_PER_CONNECTION.min(self.server_limit.load(Ordering::SeqCst));
        !self.send.is_closed() && self.streams.load(Ordering::SeqCst) < limit
    }
}

/// The HTTP/2 connections of one upstream, for request bodies of type `B`.
pub(crate) struct H2Pool<B> {
    connector: HttpsConnector,
    conns: Mutex<Vec<Conn<B>>>,
    /// Serialises dialing, so a burst of requests fills one new connection
    /// instead of each dialing its own.
    dialing: tokio::sync::Mutex<()>,
}

impl<B> H2Pool<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// `connector` must offer `h2` by ALPN.
    pub(crate) fn new(connector: HttpsConnector) -> Self {
        H2Pool {
            connector,
            conns: Mutex::new(Vec::new()),
            dialing: tokio::sync::Mutex::new(()),
        }
    }

    /// Open connections.
    #[cfg(test)]
    pub(crate) fn connections(&self) -> usize {
        let mut conns = self.conns.lock().unwrap();
        conns.retain(|c| !c.send.is_closed());
        conns.len()
    }

    /// A connection with room for one more request, counted as taken.
    fn take(&self) -> Option<Slot<B>> {
        let mut conns = self.conns.lock().unwrap();
        conns.retain(|c| !c.send.is_closed());
        let c = conns.iter().find(|c| c.has_room())?;
        c.streams.fetch_add(1, Ordering::SeqCst);
        Some(Slot {
            send: c.send.clone(),
            guard: StreamGuard(c.streams.clone()),
        })
    }

    async fn dial(&self, uri: &Uri) -> Result<(), PoolError> {
        let io = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(PoolError::Connect)?;
        if !io.connected().is_negotiated_h2() {
            return Err(PoolError::NotHttp2);
        }
        let (send, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT)
            .max_frame_size(MAX_FRAME)
            .handshake(io)
            .await?;
        let server_limit = Arc::new(AtomicUsize::new(STREAMS_PER_CONNECTION));
        let limit = server_limit.clone();
        let mut conn = Box::pin(conn);
        // Driving the connection is also where its settings change: note the
        // server's stream limit each time.
        tokio::spawn(std::future::poll_fn(move |cx| {
            let r = conn.as_mut().poll(cx);
            limit.store(conn.current_max_send_streams(), Ordering::SeqCst);
            if let Poll::Ready(Err(e)) = &r {
                tracing::debug!(error = %e, "an HTTP/2 connection to the API server ended");
            }
            r.map(|_| ())
        }));
        self.conns.lock().unwrap().push(Conn {
            send,
            streams: Arc::new(AtomicUsize::new(0)),
            server_limit,
        });
        Ok(())
    }

    /// A place for one request to `uri` on a connection with room, dialing
    /// one if none has. [`PoolError::NotHttp2`] says to use HTTP/1.1; the
    /// request is not consumed until then.
    pub(crate) async fn slot(&self, uri: &Uri) -> Result<Slot<B>, PoolError> {
        if let Some(s) = self.take() {
            return Ok(s);
        }
        let _one = self.dialing.lock().await;
        if let Some(s) = self.take() {
            return Ok(s);
        }
        self.dial(uri).await?;
        self.take().ok_or(PoolError::NoStreams)
    }
}

/// One request's place on a connection: it counts against the connection
/// until the response body ends or is dropped.
pub(crate) struct Slot<B> {
    send: http2::SendRequest<B>,
    guard: StreamGuard,
}

impl<B> Slot<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    pub(crate) async fn send(
        mut self,
        req: Request<B>,
    ) -> Result<Response<BoxBody<Bytes, BoxError>>, hyper::Error> {
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let guard = self.guard;
        Ok(resp.map(|body| {
            Counted {
                inner: body,
                _guard: guard,
            }
            .map_err(BoxError::from)
            .boxed()
        }))
    }
}

/// One request on a connection, given back when dropped.
struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds its connection's stream count.
struct Counted {
    inner: Incoming,
    _guard: StreamGuard,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{Empty, StreamBody};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tether_testenv::TestCa;
    use tokio::net::TcpListener;

    use super::*;

    /// An HTTPS server whose answers never end (like watches), allowing
    /// `max_streams` at once per connection, offering `alpn`.
    async fn server(ca: &TestCa, alpn: &[u8], max_streams: u32) -> String {
        let (chain, key) = ca.server_pem();
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            CertificateDer::pem_slice_iter(chain.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap(),
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
        tls.alpn_protocols = vec![alpn.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(|_req| async {
                        let never =
                            futures_util::stream::pending::<Result<Frame<Bytes>, Infallible>>();
                        Ok::<_, Infallible>(Response::new(StreamBody::new(never)))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(max_streams)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        url
    }

    fn pool(ca: &TestCa, url: &str) -> H2Pool<Empty<Bytes>> {
        let mut config = kube::Config::new(url.parse().unwrap());
        config.root_cert = Some(vec![CertificateDer::from_pem_slice(ca.pem.as_bytes())
            .unwrap()
            .to_vec()]);
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        H2Pool::new(super::super::upstream::http2_connector(&config, http).unwrap())
    }

    async fn open(pool: &H2Pool<Empty<Bytes>>, url: &str) -> Response<BoxBody<Bytes, BoxError>> {
        let uri: Uri = format!("{url}/api/v1/pods?watch=true").parse().unwrap();
        let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
        let answer = async { pool.slot(&uri).await.expect("a slot").send(req).await };
        // A request queued behind a full connection would wait for ever.
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("an answer within 10 s, not queued behind open streams")
            .expect("an answer")
    }

    #[tokio::test]
    async fn requests_past_a_connections_stream_limit_get_another_connection() {
        let ca = TestCa::new("h2-pool");
        let url = server(&ca, b"h2", 3).await;
        let pool = pool(&ca, &url);
        let mut open_now = Vec::new();
        for _ in 0..7 {
            // Each answer's body stays open, as a watch's does: without a
            // second connection the fourth would wait for ever.
            open_now.push(open(&pool, &url).await);
        }
        assert_eq!(pool.connections(), 3, "3 + 3 + 1 streams");
        // Ended streams give their room back: no new connection for these.
        open_now.truncate(4);
        for _ in 0..3 {
            open_now.push(open(&pool, &url).await);
        }
        assert_eq!(pool.connections(), 3);
    }

    #[tokio::test]
    async fn a_server_without_http2_is_said_to_be_one() {
        let ca = TestCa::new("h1-only");
        let url = server(&ca, b"http/1.1", 3).await;
        let pool = pool(&ca, &url);
        let uri: Uri = format!("{url}/version").parse().unwrap();
        assert!(matches!(pool.slot(&uri).await, Err(PoolError::NotHttp2)));
        assert_eq!(pool.connections(), 0);
    }
}
