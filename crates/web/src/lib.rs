//! HTTP services of a Front End: Prometheus metrics at `/metrics`, a health check
//! at `/health`, SIP over WebSocket (RFC 7118, subprotocol `sip`) at `/`, and
//! Persistent Chat history search at `/chat/search` (HTTP Basic, signed-in users),
//! and the browser client for users at `/client/` (static files; see [`client`]).
//!
//! HTTPS with the server's certificate by default (HSTS on every answer); plain
//! HTTP only when the operator turns TLS off (`[web] tls = false`, e.g. behind a
//! reverse proxy). Other services (the Control Panel) add their routes through
//! [`WebOptions::extra`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderValue;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use confab_frontend::{Dest, Metrics, Transport};
use confab_sip::Message;
use confab_transport::{Connections, Event};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tracing::{debug, info};

pub mod access;
pub mod chat_search;
pub mod client;
pub mod http;
use http::{DeadlineListener, PeerInfo};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct WebState {
    pub metrics: Arc<Metrics>,
    pub conns: Arc<Connections>,
    /// Persistent Chat history search (`GET /chat/search`); `None`: not served.
    pub chat_search: Option<Arc<dyn chat_search::ChatSearch>>,
    /// Who may read `/metrics`; empty: everyone.
    pub metrics_allow: Arc<Vec<access::Net>>,
}

/// How the web port is served.
#[derive(Default)]
pub struct WebOptions {
    /// HTTPS with this configuration; `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `Strict-Transport-Security: max-age=` on HTTPS answers; 0: no header.
    pub hsts_max_age_secs: u64,
    /// More routes (with their own state), merged into the router.
    pub extra: Option<Router>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot bind HTTP on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(ws_upgrade))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/chat/search", get(chat_search::handler))
        .merge(client::router())
        .with_state(state)
}

/// Headers every answer carries: no sniffing, no framing, no referrer, and with
/// HTTPS the HSTS policy.
fn security_headers(
    hsts: Option<HeaderValue>,
) -> impl Fn(Response) -> std::future::Ready<Response> + Clone {
    move |mut r: Response| {
        let h = r.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        if let Some(v) = &hsts {
            h.insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
        std::future::ready(r)
    }
}

/// Binds the web listener (HTTPS unless `opts.tls` is `None`) and serves until
/// `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: WebState,
    mut opts: WebOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebError> {
    let timeout = state.conns.limits().header_timeout;
    let mut app = router(state);
    if let Some(extra) = opts.extra.take() {
        app = app.merge(extra);
    }
    bind_and_serve(
        addr,
        app,
        timeout,
        opts,
        "metrics, SIP over WebSocket, Control Panel",
        shutdown,
    )
    .await
}

/// The web port of a machine without a front end (a stand-alone Mediation
/// server): only `/metrics` (with `state.metrics_allow`, as the front end's) and
/// `/health`, with the same TLS and headers as the front end's web port.
pub async fn serve_metrics(
    addr: SocketAddr,
    state: WebState,
    opts: WebOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebError> {
    let timeout = state.conns.limits().header_timeout;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(state);
    bind_and_serve(addr, app, timeout, opts, "metrics", shutdown).await
}

async fn bind_and_serve(
    addr: SocketAddr,
    app: Router,
    timeout: std::time::Duration,
    opts: WebOptions,
    what: &'static str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let https = opts.tls.is_some();
    let listener = match opts.tls {
        Some(tls) => {
            // HTTP/1.1 only: WebSocket upgrades need it, and pages are small.
            let mut tls = (*tls).clone();
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            DeadlineListener::tls(listener, timeout, Arc::new(tls))
        }
        None => DeadlineListener::plain(listener, timeout),
    }
    .map_err(|source| WebError::Bind { addr, source })?;
    let local = axum::serve::Listener::local_addr(&listener).unwrap_or(addr);
    if https {
        info!(%local, "HTTPS listening ({what})");
    } else {
        info!(%local, "plain HTTP listening ([web] tls = false): {what}");
    }
    let hsts = (https && opts.hsts_max_age_secs > 0)
        .then(|| HeaderValue::from_str(&format!("max-age={}", opts.hsts_max_age_secs)).ok())
        .flatten();
    let app = app
        .layer(axum::middleware::map_response(security_headers(hsts)))
        .into_make_service_with_connect_info::<PeerInfo>();
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok((local, handle))
}

async fn metrics(
    State(st): State<WebState>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
) -> Response {
    if !st.metrics_allow.is_empty() && !st.metrics_allow.iter().any(|n| n.contains(peer.ip())) {
        return (
            StatusCode::FORBIDDEN,
            "metrics are not served to this address ([web] metrics_allow)\n",
        )
            .into_response();
    }
    let body = metrics_text(&st.metrics, &st.conns);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The Prometheus text of `/metrics` (also read by the Control Panel's status page).
pub fn metrics_text(metrics: &Metrics, conns: &Connections) -> String {
    let st = (metrics, conns);
    let mut body = st.0.render();
    body.push_str("# HELP confab_connections Open SIP connections (TCP, TLS, WebSocket).\n");
    body.push_str("# TYPE confab_connections gauge\n");
    body.push_str(&format!("confab_connections {}\n", st.1.count()));
    let (per_ip, total) = st.1.refused();
    body.push_str(
        "# HELP confab_connections_refused_total SIP connections refused by a connection limit.\n",
    );
    body.push_str("# TYPE confab_connections_refused_total counter\n");
    body.push_str(&format!(
        "confab_connections_refused_total{{limit=\"per_ip\"}} {per_ip}\nconfab_connections_refused_total{{limit=\"total\"}} {total}\n"
    ));
    let (idle, slow) = st.1.timed_out();
    body.push_str("# HELP confab_connections_timed_out_total SIP connections closed by the idle timeout or the header deadline.\n");
    body.push_str("# TYPE confab_connections_timed_out_total counter\n");
    body.push_str(&format!(
        "confab_connections_timed_out_total{{reason=\"idle\"}} {idle}\nconfab_connections_timed_out_total{{reason=\"header\"}} {slow}\n"
    ));
    body
}

async fn ws_upgrade(
    State(st): State<WebState>,
    ConnectInfo(PeerInfo { peer, deadline }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return (
            StatusCode::OK,
            "confab: SIP over WebSocket lives here (subprotocol \"sip\")\n",
        )
            .into_response();
    };
    let wants_sip = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !wants_sip {
        return (
            StatusCode::BAD_REQUEST,
            "WebSocket subprotocol \"sip\" required (RFC 7118)\n",
        )
            .into_response();
    }
    // The SIP message limit bounds frames and (fragmented) messages alike: a
    // larger one closes the connection before it is buffered (RFC 7118 puts one
    // SIP message in one WebSocket message).
    let max = st.conns.limits().sip.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .protocols(["sip"])
        .on_upgrade(move |socket| run_ws(socket, peer, st, deadline))
}

async fn run_ws(socket: WebSocket, peer: SocketAddr, st: WebState, deadline: Arc<http::Deadline>) {
    // From here the SIP idle clock applies, not the HTTP request deadline.
    deadline.disarm();
    let Ok(reg) = st.conns.register(Transport::Ws, peer) else {
        // Counted and logged by `register`.
        return;
    };
    let id = reg.id;
    let mut rx = reg.rx;
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            let msg = match String::from_utf8(data.to_vec()) {
                Ok(text) => WsMessage::Text(text.into()),
                Err(_) => WsMessage::Binary(data),
            };
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let limits = st.conns.limits().sip;
    let dest = Dest {
        transport: Transport::Ws,
        addr: peer,
        conn: Some(id),
    };
    let closed = reg.closed.clone();
    let mut live = st.conns.liveness(reg.flow.clone());
    let timer = tokio::time::sleep_until(live.deadline());
    tokio::pin!(timer);
    loop {
        let frame = tokio::select! {
            f = stream.next() => f,
            _ = closed.notified() => {
                debug!(%peer, "WebSocket closed by the server");
                break;
            }
            _ = &mut timer => {
                match live.check(tokio::time::Instant::now()) {
                    Ok(next) => {
                        timer.as_mut().reset(next);
                        continue;
                    }
                    Err(why) => {
                        st.conns.note_timeout(why, Transport::Ws, peer);
                        break;
                    }
                }
            }
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // A frame or message over the SIP message limit, or a protocol
                // error: the connection ends.
                debug!(%peer, error = %e, "closing WebSocket");
                break;
            }
            None => break,
        };
        let data: Bytes = match frame {
            WsMessage::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
            WsMessage::Binary(b) => b,
            WsMessage::Close(_) => break,
            _ => continue,
        };
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue;
        }
        live.on_message(tokio::time::Instant::now());
        // RFC 7118 §5: one frame carries exactly one message.
        let ev = match Message::parse(data, &limits) {
            Ok(m) => Event::Message(m, dest),
            Err(e) => Event::Malformed(e, dest),
        };
        if st.conns.events().send(ev).await.is_err() {
            break;
        }
    }
    drop(reg.tx);
    st.conns.unregister(id);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
}
