//! Splicing an engineer's channel to the agent's channel for the device.
//!
//! Each direction is a loop that takes one message from one channel and
//! writes it to the other, waiting for the receiver's SSH window: data is
//! never read faster than the far side takes it. EOF is passed on as a
//! half-close; a close on either side ends the session. The session also
//! ends when it is killed (grant ended, API) or idle too long.
//!
//! Known limit (russh 0.65): russh replenishes a channel's receive window
//! as soon as data arrives and hands it to a bounded queue per channel; when
//! that queue is full its connection loop waits. So an engineer who stops
//! reading would stall, once that queue (100 messages) fills, the other
//! channels of the same agent tunnel too. Each write therefore has
//! [`STALL_TIMEOUT`]: a side that takes no data for that long ends its
//! session, which drops the queue and frees the tunnel. The agent does the
//! same towards its targets. Per-channel credit between relay and agent,
//! which would make even that pause unnecessary, is the planned fix.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::watch;

/// A write that makes no progress for this long ends the session.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub to_device: u64,
    pub from_device: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The sender half-closed: no more data this way.
    Eof,
    /// The channel closed (or the connection went away).
    Closed,
    /// The receiving side took nothing for [`STALL_TIMEOUT`].
    Stalled,
}

async fn pump(
    from: &mut ChannelReadHalf,
    to: &ChannelWriteHalf<Msg>,
    count: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> End {
    while let Some(msg) = from.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                count.fetch_add(data.len() as u64, Ordering::Relaxed);
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                match tokio::time::timeout(STALL_TIMEOUT, to.data_bytes(data)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return End::Closed,
                    Err(_) => return End::Stalled,
                }
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

/// Splices `engineer` and `device` until one closes, both half-close, the
/// session is killed (the reason arrives on `kill`) or nothing moves for
/// `idle`.
pub async fn splice(
    engineer: Channel<Msg>,
    device: Channel<Msg>,
    mut kill: watch::Receiver<Option<String>>,
    idle: Duration,
) -> Outcome {
    let (mut e_rx, e_tx) = engineer.split();
    let (mut d_rx, d_tx) = device.split();
    let to_device = AtomicU64::new(0);
    let from_device = AtomicU64::new(0);
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let reason = {
        let up = pump(&mut e_rx, &d_tx, &to_device, &last, start);
        let down = pump(&mut d_rx, &e_tx, &from_device, &last, start);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        let mut check = tokio::time::interval(Duration::from_secs(1));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                end = &mut up, if !up_done => {
                    up_done = true;
                    match end {
                        End::Eof => {}
                        End::Closed => break "closed by the engineer".to_string(),
                        End::Stalled => break "the device took no data for 15 s".to_string(),
                    }
                }
                end = &mut down, if !down_done => {
                    down_done = true;
                    match end {
                        End::Eof => {}
                        End::Closed => break "closed by the device".to_string(),
                        End::Stalled => break "the engineer took no data for 15 s".to_string(),
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
    let _ = d_tx.close().await;
    Outcome {
        to_device: to_device.load(Ordering::Relaxed),
        from_device: from_device.load(Ordering::Relaxed),
        reason,
    }
}
