//! One TLS connection for the whole test: the TLS stage's handshake (and its
//! inspection) is followed by every API call of the authentication and
//! authorization stages on the same connection, as HTTP/1.1 requests one after
//! the other. A test then costs one TCP and TLS handshake, not one per client
//! and per concurrent review.
//!
//! The kube [`Client`]s built here keep kube's own layers (base URI, the auth
//! layer of the credentials) around a service that sends each request on the
//! shared connection; several clients (anonymous and with the credentials) can
//! share it.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use kube::client::{Body, ClientBuilder, ConfigExt as _};
use kube::{Client, Config};
use tokio::sync::Mutex;

use super::tls::ApiStream;

/// The shared connection: requests wait their turn.
#[derive(Clone)]
pub(crate) struct Connection {
    sender: Arc<Mutex<SendRequest<Body>>>,
}

impl Connection {
    /// HTTP/1.1 over the TLS stage's stream; the connection is driven by a task
    /// that ends when the last client using it is dropped.
    pub(crate) async fn open(stream: ApiStream) -> Result<Connection, hyper::Error> {
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // An error here reaches the request waiting on it.
            let _ = conn.await;
        });
        Ok(Connection {
            sender: Arc::new(Mutex::new(sender)),
        })
    }

    /// A kube client for `config` (URL and credentials; its TLS settings are
    /// the connection's) that sends every request on this connection.
    pub(crate) fn client(&self, config: &Config) -> Result<Client, kube::Error> {
        let service = tower::ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .option_layer(config.auth_layer()?)
            .map_err(tower::BoxError::from)
            .service(self.clone());
        Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
    }
}

impl tower::Service<http::Request<Body>> for Connection {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = BoxFuture<'static, Result<Self::Response, hyper::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let sender = self.sender.clone();
        Box::pin(async move {
            // Origin form and a Host header, as an HTTP/1.1 client sends them.
            if let Some(authority) = req.uri().authority().cloned() {
                if !req.headers().contains_key(http::header::HOST) {
                    if let Ok(v) = http::HeaderValue::from_str(authority.as_str()) {
                        req.headers_mut().insert(http::header::HOST, v);
                    }
                }
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".to_string());
                if let Ok(uri) = path.parse() {
                    *req.uri_mut() = uri;
                }
            }
            let mut sender = sender.lock().await;
            // Waits until the previous response's body has been read.
            sender.ready().await?;
            sender.send_request(req).await
        })
    }
}
