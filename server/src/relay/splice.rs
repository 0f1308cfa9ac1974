//! Splicing an engineer's channel to the agent's channel for the device.
//!
//! Each direction is a loop that takes one message from one channel and
//! writes it to the other, waiting for the receiver's SSH window: data is
//! never read faster than the far side takes it. EOF is passed on as a
//! half-close; a close on either side ends the session. The session also
//! ends when it is killed (grant ended, API) or idle too long.
//!
//! Back-pressure is per channel. Between the relay and the agent, where
//! one connection carries every session to the agent's devices, it is the
//! tunnel's flow credit ([`outpost_protocol::tunnel`]): the device's
//! channel is read at once into its own queue, which holds at most the
//! credit given, and credit goes back to the agent only for what the
//! engineer's channel took. A session whose engineer stops reading so
//! stops its own data only, and the other sessions on the tunnel go on.
//!
//! Towards the engineer it is SSH's window, which the OpenSSH client opens
//! as it reads. The other way, russh 0.65 opens the engineer's window as
//! soon as data arrives, so the only brake on an engineer who sends faster
//! than the device takes is to stop reading the engineer's channel, which
//! stops their whole connection (an `ssh -J` session is a connection of its
//! own), window adjustments included. So the engineer's channel is read
//! into a queue of its own: up to [`QUEUE`] bytes ahead of the device, and
//! beyond that only while data for the engineer is waiting for their
//! window (else the window adjustment that would release it could never be
//! read: an engineer who pastes into a device that echoes, while not
//! reading, would deadlock the session). An engineer who sends more than
//! `max_buffer` ahead while reading nothing back loses the session, with a
//! reason that says so. Nothing is cut for being slow otherwise (only the
//! idle timeout ends a session where nothing moves).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use outpost_protocol::tunnel::flow::{Event, FlowRx, FlowTx};
use russh::server::Msg;
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::{mpsc, watch, Notify};

/// How far the engineer's channel is read ahead of the device, unless data
/// for the engineer waits for their window.
pub const QUEUE: u64 = 4 << 20;

/// A write to the engineer that has not completed after this long counts
/// as waiting for their window.
const WINDOW_WAIT: Duration = Duration::from_millis(50);

/// After the agent closed the device's channel, how long an engineer who
/// reads nothing may keep the session.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub to_device: u64,
    pub from_device: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The sender half-closed: no more data this way.
    Eof,
    /// The channel closed (or the connection went away).
    Closed,
    /// The agent broke the tunnel's flow credit.
    Violation(String),
}

/// Why reading the engineer's channel stopped the session.
enum ReadEnd {
    /// The engineer closed (or the connection went away) and what they
    /// sent before did not reach the device within [`CLOSE_GRACE`].
    Closed,
    /// The engineer sent more than the buffer allows while reading
    /// nothing (the bytes queued).
    Flooded(u64),
}

/// The engineer's channel, read ahead of the device.
struct Ahead {
    /// Bytes read from the engineer and not yet sent to the device.
    queued: AtomicU64,
    /// Data for the engineer is waiting for their window.
    engineer_blocked: AtomicBool,
    /// Either of the above changed.
    changed: Notify,
    max: u64,
}

impl Ahead {
    fn may_read(&self) -> bool {
        self.queued.load(Ordering::Acquire) < QUEUE || self.engineer_blocked.load(Ordering::Acquire)
    }
}

/// Reads the engineer's channel into `queue` (see the module
/// documentation for how far).
async fn read_engineer(
    from: &mut ChannelReadHalf,
    queue: mpsc::UnboundedSender<ChannelMsg>,
    ahead: &Ahead,
) -> ReadEnd {
    loop {
        while !ahead.may_read() {
            let changed = ahead.changed.notified();
            if ahead.may_read() {
                break;
            }
            changed.await;
        }
        let Some(msg) = from.wait().await else {
            let _ = queue.send(ChannelMsg::Close);
            tokio::time::sleep(CLOSE_GRACE).await;
            return ReadEnd::Closed;
        };
        if let ChannelMsg::Data { data } = &msg {
            let queued =
                ahead.queued.fetch_add(data.len() as u64, Ordering::AcqRel) + data.len() as u64;
            if queued > ahead.max {
                return ReadEnd::Flooded(queued);
            }
        }
        match msg {
            ChannelMsg::Close => {
                // The up direction passes on what came before, if the
                // device takes it soon.
                let _ = queue.send(msg);
                tokio::time::sleep(CLOSE_GRACE).await;
                return ReadEnd::Closed;
            }
            ChannelMsg::Eof => {
                let _ = queue.send(msg);
                // Nothing may follow but the close.
                loop {
                    match from.wait().await {
                        Some(ChannelMsg::Close) | None => {
                            let _ = queue.send(ChannelMsg::Close);
                            tokio::time::sleep(CLOSE_GRACE).await;
                            return ReadEnd::Closed;
                        }
                        Some(_) => {}
                    }
                }
            }
            msg => {
                if queue.send(msg).is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Engineer to device: each message waits for the agent's credit.
async fn up<S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static>(
    from: &mut mpsc::UnboundedReceiver<ChannelMsg>,
    to: &FlowTx<S>,
    ahead: &Ahead,
    count: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> End {
    while let Some(msg) = from.recv().await {
        match msg {
            ChannelMsg::Data { data } => {
                let n = data.len() as u64;
                count.fetch_add(n, Ordering::Relaxed);
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                if to.send(data).await.is_err() {
                    return End::Closed;
                }
                ahead.queued.fetch_sub(n, Ordering::AcqRel);
                ahead.changed.notify_one();
            }
            ChannelMsg::Eof => {
                let _ = to.eof().await;
                return End::Eof;
            }
            ChannelMsg::Close => return End::Closed,
            _ => {}
        }
    }
    End::Closed
}

/// Device to engineer: each message waits for the engineer's SSH window,
/// then its credit goes back to the agent.
async fn down<S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static>(
    from: &mut FlowRx,
    credit: &FlowTx<S>,
    to: &ChannelWriteHalf<Msg>,
    ahead: &Ahead,
    count: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> End {
    let mut closed = from.ended();
    loop {
        match from.recv().await {
            Event::Data(data) => {
                let n = data.len();
                count.fetch_add(n as u64, Ordering::Relaxed);
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                let send = to.data_bytes(data);
                tokio::pin!(send);
                let sent = match tokio::time::timeout(WINDOW_WAIT, &mut send).await {
                    Ok(sent) => sent,
                    Err(_) => {
                        ahead.engineer_blocked.store(true, Ordering::Release);
                        ahead.changed.notify_one();
                        let sent = tokio::select! {
                            sent = &mut send => Some(sent),
                            () = closed.grace_passed(CLOSE_GRACE) => None,
                        };
                        ahead.engineer_blocked.store(false, Ordering::Release);
                        match sent {
                            Some(sent) => sent,
                            None => return End::Closed,
                        }
                    }
                };
                if sent.is_err() {
                    return End::Closed;
                }
                if credit.passed_on(n).await.is_err() {
                    return End::Closed;
                }
            }
            Event::Eof => {
                let _ = to.eof().await;
                return End::Eof;
            }
            Event::Closed => return End::Closed,
            Event::Violation(why) => return End::Violation(why),
        }
    }
}

/// Splices `engineer` and `device` until one closes, both half-close, the
/// session is killed (the reason arrives on `kill`) or nothing moves for
/// `idle`.
pub async fn splice<S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static>(
    engineer: Channel<Msg>,
    device: (FlowRx, FlowTx<S>),
    mut kill: watch::Receiver<Option<String>>,
    idle: Duration,
    max_buffer: u64,
) -> Outcome {
    let (mut e_rx, e_tx) = engineer.split();
    let (mut d_rx, d_tx) = device;
    let to_device = AtomicU64::new(0);
    let from_device = AtomicU64::new(0);
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let reason = {
        let ahead = Ahead {
            queued: AtomicU64::new(0),
            engineer_blocked: AtomicBool::new(false),
            changed: Notify::new(),
            max: max_buffer,
        };
        let (queue, mut queued) = mpsc::unbounded_channel();
        let read = read_engineer(&mut e_rx, queue, &ahead);
        let up = up(&mut queued, &d_tx, &ahead, &to_device, &last, start);
        let down = down(&mut d_rx, &d_tx, &e_tx, &ahead, &from_device, &last, start);
        tokio::pin!(read, up, down);
        let (mut up_done, mut down_done) = (false, false);
        let mut check = tokio::time::interval(Duration::from_secs(1));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                end = &mut read => break match end {
                    ReadEnd::Flooded(n) => format!(
                        "the engineer sent {} MiB more than the device took, while reading nothing back",
                        n >> 20
                    ),
                    ReadEnd::Closed => "closed by the engineer".to_string(),
                },
                end = &mut up, if !up_done => {
                    up_done = true;
                    match end {
                        End::Eof => {}
                        End::Closed => break "closed by the engineer".to_string(),
                        End::Violation(why) => break why,
                    }
                }
                end = &mut down, if !down_done => {
                    down_done = true;
                    match end {
                        End::Eof => {}
                        End::Closed => break "closed by the device".to_string(),
                        End::Violation(why) => break format!("the agent broke the flow credit: {why}"),
                    }
                }
                changed = kill.changed() => {
                    let why = kill.borrow().clone();
                    match (changed, why) {
                        (_, Some(why)) => break why,
                        (Err(_), None) => break "relay stopped".to_string(),
                        (Ok(()), None) => {}
                    }
                }
                _ = check.tick() => {
                    let quiet = start.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                    if quiet >= idle {
                        break format!("idle for {}", humantime::format_duration(idle));
                    }
                }
            }
            if up_done && down_done {
                break "closed".to_string();
            }
        }
    };
    let _ = e_tx.close().await;
    d_tx.close().await;
    Outcome {
        to_device: to_device.load(Ordering::Relaxed),
        from_device: from_device.load(Ordering::Relaxed),
        reason,
    }
}
