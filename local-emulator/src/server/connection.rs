//! One AMQP connection: protocol headers, SASL, `open`/`close`, heartbeats and the frame loop.
//! Sessions and links live in [`super::session`]; this file only moves frames.

use super::cbs::Grant;
use super::context::Context;
use super::frame::{self, read_frame, FrameError, AMQP, EMPTY_FRAME, SASL};
use super::session::ConnectionState;
use crate::tls::TLS_HANDSHAKE;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

const AMQP_HEADER: &[u8; 8] = b"AMQP\x00\x01\x00\x00";
const SASL_HEADER: &[u8; 8] = b"AMQP\x03\x01\x00\x00";

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Bad frame.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (ctx, sd) = (ctx.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        // The administration clients speak HTTPS to the same host and port.
                        let mut first = [0u8; 1];
                        let tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE);
                        if tls {
                            if let Some(https) = &ctx.https {
                                https.serve(stream, sd).await;
                            }
                            return;
                        }
                        if let Err(e) = run(stream, ctx, sd).await {
                            tracing::debug!(%peer, error = %e, "connection ended");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn handshake(s: &mut TcpStream, ctx: &Context) -> Result<Vec<Grant>, ConnectionError> {
    let mut head = [0u8; 8];
    s.read_exact(&mut head).await?;
    let mut grants = Vec::new();
    if &head == SASL_HEADER {
        let mut out = SASL_HEADER.to_vec();
        frame::write_frame(&mut out, SASL, 0, &frame::sasl_mechanisms(), &[]);
        s.write_all(&out).await?;
        let init = read_frame(s, 65_536).await?;
        let body = init
            .body
            .ok_or_else(|| ConnectionError::Protocol("empty SASL frame".into()))?;
        let mechanism = body.field(0).as_str().unwrap_or_default().to_owned();
        let mut ok = mechanism == "ANONYMOUS" || mechanism == "PLAIN";
        if mechanism == "PLAIN" {
            let resp = body.field(1).as_bytes().unwrap_or_default();
            let parts: Vec<&[u8]> = resp.split(|b| *b == 0).collect();
            let (user, pass) = match parts.as_slice() {
                [_, u, p] => (*u, *p),
                _ => (&b""[..], &b""[..]),
            };
            ok = ctx
                .policies
                .iter()
                .any(|p| p.name.as_bytes() == user && p.key.as_bytes() == pass);
            if ok {
                grants.push(Grant {
                    path: String::new(),
                    expires_s: i64::MAX,
                });
            }
        }
        let mut out = Vec::new();
        frame::write_frame(
            &mut out,
            SASL,
            0,
            &frame::sasl_outcome(if ok { 0 } else { 1 }),
            &[],
        );
        s.write_all(&out).await?;
        if !ok {
            return Err(ConnectionError::Protocol(format!(
                "SASL {mechanism} refused"
            )));
        }
        s.read_exact(&mut head).await?;
    }
    if &head != AMQP_HEADER {
        s.write_all(AMQP_HEADER).await?;
        return Err(ConnectionError::Protocol(format!(
            "unsupported protocol header {head:?}"
        )));
    }
    s.write_all(AMQP_HEADER).await?;
    Ok(grants)
}

async fn run(
    mut stream: TcpStream,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let grants = handshake(&mut stream, &ctx).await?;
    let (mut rd, mut wr) = stream.into_split();
    let max_frame = ctx.max_frame;
    let (tx, mut rx) = mpsc::channel::<Result<frame::Frame, FrameError>>(64);
    let reader = tokio::spawn(async move {
        loop {
            let r = read_frame(&mut rd, max_frame).await;
            let stop = r.is_err();
            if tx.send(r).await.is_err() || stop {
                return;
            }
        }
    });
    let result = frames(&mut wr, &mut rx, ctx, grants, &mut shutdown).await;
    reader.abort();
    let _ = wr.shutdown().await;
    result
}

/// The condition a connection is closed with for a frame that could not be read.
fn frame_condition(e: &FrameError) -> &'static str {
    match e {
        FrameError::Decode(_) => "amqp:decode-error",
        _ => "amqp:connection:framing-error",
    }
}

/// Answers a connection whose first frame is unusable as AMQP asks: an `open` of our own,
/// then a `close` carrying the error; the caller then closes the socket.
async fn refuse(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    ctx: &Context,
    condition: &str,
    description: &str,
) -> Result<(), ConnectionError> {
    let mut out = our_open(ctx);
    frame::write_frame(
        &mut out,
        AMQP,
        0,
        &frame::close(Some(frame::error(condition, description))),
        &[],
    );
    wr.write_all(&out).await?;
    Ok(())
}

/// The emulator's own `open` frame.
fn our_open(ctx: &Context) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_frame(
        &mut out,
        AMQP,
        0,
        &frame::open("local-emulator", ctx.max_frame, 65_535),
        &[],
    );
    out
}

async fn frames(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    rx: &mut mpsc::Receiver<Result<frame::Frame, FrameError>>,
    ctx: Arc<Context>,
    grants: Vec<Grant>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let open = match rx.recv().await {
        Some(Ok(f)) => f
            .body
            .filter(|b| b.descriptor_code() == Some(frame::code::OPEN)),
        Some(Err(FrameError::Io(e))) => return Err(e.into()),
        Some(Err(e)) => {
            refuse(wr, &ctx, frame_condition(&e), &e.to_string()).await?;
            return Err(e.into());
        }
        None => return Ok(()),
    };
    let Some(open) = open else {
        let why = "the first frame must be an open";
        refuse(wr, &ctx, "amqp:connection:framing-error", why).await?;
        return Err(ConnectionError::Protocol(why.into()));
    };
    let peer_max_frame = open
        .field(2)
        .as_u64()
        .map_or(u32::MAX, |v| v.clamp(512, u32::MAX.into()) as u32);
    let idle_ms = open.field(4).as_u64().unwrap_or(0);
    let hold_back = super::quirks::holds_back(&open);
    let mut wake = ctx.broker.subscribe();
    let mut engine = ConnectionState::new(ctx.clone(), grants, peer_max_frame);
    wr.write_all(&our_open(&ctx)).await?;
    let beat = Duration::from_millis(if idle_ms > 0 {
        (idle_ms / 2).max(100)
    } else {
        3_600_000
    });
    let mut heartbeat = tokio::time::interval(beat);
    heartbeat.tick().await;
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let mut busy = false;
        let flush = async {
            match flush_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        // A session receiver waiting for the next available session gives up at its deadline.
        let parked = engine.next_deadline();
        let parked_wait = async {
            match parked {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = flush => {
                engine.flush_deferred();
                flush_at = None;
            }
            f = rx.recv() => match f {
                None => return Ok(()),
                Some(Err(FrameError::Io(e))) => return Err(e.into()),
                Some(Err(e)) => {
                    engine.close(Some(frame::error(frame_condition(&e), &e.to_string())));
                }
                Some(Ok(f)) => engine.on_frame(f),
            },
            _ = wake.changed() => {}
            _ = parked_wait => {}
            _ = heartbeat.tick() => engine.out.extend(EMPTY_FRAME),
            _ = shutdown.changed() => engine.close(Some(frame::error("amqp:connection:forced", "the emulator is shutting down"))),
        }
        if engine.dropped {
            tracing::debug!("connection dropped by an armed fault");
            return Ok(());
        }
        if !engine.closed {
            busy = engine.pump();
        }
        if engine.has_deferred() {
            if !hold_back {
                engine.flush_deferred();
            } else if flush_at.is_none() {
                flush_at = Some(tokio::time::Instant::now() + super::quirks::DISPOSITION_DELAY);
            }
        }
        if !engine.out.is_empty() {
            tracing::trace!(bytes = engine.out.len(), "writing");
            wr.write_all(&engine.out).await?;
            tracing::trace!("written");
            engine.out.clear();
        }
        if engine.closed {
            return Ok(());
        }
        if busy {
            tokio::task::yield_now().await;
            wake.mark_changed();
        }
    }
}
