//! The flow credit of [`super`] on a russh channel, the same on both ends.
//!
//! [`start`] splits a channel and spawns a task that reads russh's queue
//! for it at once, whatever the consumer is doing, into an unbounded queue
//! whose size the credit bounds ([`FlowRx`]); credit messages from the peer
//! refill the send credit on the way. [`FlowTx::send`] waits for credit
//! before it writes; [`FlowTx::passed_on`] returns credit once the consumer
//! has passed data on.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use super::{decode_credit, encode_credit, Inbound, Overrun, CREDIT_EXT, MAX_CHUNK, WINDOW};

/// What arrives on a channel, in order.
#[derive(Debug)]
pub enum Event {
    /// Data, within the credit given.
    Data(Bytes),
    /// The peer half-closed its side.
    Eof,
    /// The channel closed, or the connection went away.
    Closed,
    /// The peer broke the flow credit (sent beyond it, or a malformed
    /// credit message); the channel should be closed.
    Violation(String),
}

/// The channel is gone: nothing can be sent on it any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the channel is closed")
    }
}

impl std::error::Error for Gone {}

/// The receiving half of a channel with flow credit.
pub struct FlowRx {
    events: mpsc::UnboundedReceiver<Event>,
    ended: watch::Receiver<bool>,
    reader: JoinHandle<()>,
}

/// Tells a consumer, blocked passing data on, that the channel has ended
/// ([`FlowRx::ended`]).
#[derive(Debug, Clone)]
pub struct Ended(watch::Receiver<bool>);

impl Ended {
    /// Completes `grace` after the channel closed (or the connection went
    /// away, or the peer broke the credit): a consumer still blocked on a
    /// far side that takes nothing may give up then, and one that makes
    /// progress has that long to pass on what arrived before the close.
    pub async fn grace_passed(&mut self, grace: std::time::Duration) {
        if self.0.wait_for(|ended| *ended).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    }
}

/// The sending half of a channel with flow credit; it also returns the
/// credit for what the receiving half's consumer passed on.
pub struct FlowTx<S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static> {
    write: Arc<ChannelWriteHalf<S>>,
    /// Bytes this side may still send.
    credit: Arc<Semaphore>,
    inbound: Arc<Mutex<Inbound>>,
}

fn lock(inbound: &Mutex<Inbound>) -> MutexGuard<'_, Inbound> {
    inbound
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts reading `channel` (on the current tokio runtime) and splits it.
pub fn start<S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static>(
    channel: Channel<S>,
) -> (FlowRx, FlowTx<S>) {
    let (read, write) = channel.split();
    let write = Arc::new(write);
    let (tx, events) = mpsc::unbounded_channel();
    let (ended_tx, ended) = watch::channel(false);
    let credit = Arc::new(Semaphore::new(WINDOW as usize));
    let inbound = Arc::new(Mutex::new(Inbound::default()));
    let reader = tokio::spawn(read_channel(
        read,
        Arc::clone(&write),
        tx,
        ended_tx,
        Arc::clone(&credit),
        Arc::clone(&inbound),
    ));
    (
        FlowRx {
            events,
            ended,
            reader,
        },
        FlowTx {
            write,
            credit,
            inbound,
        },
    )
}

impl FlowRx {
    /// The next event; [`Event::Closed`] once the channel is gone (and
    /// from then on).
    pub async fn recv(&mut self) -> Event {
        self.events.recv().await.unwrap_or(Event::Closed)
    }

    /// A signal that the channel has ended, for a consumer blocked
    /// elsewhere.
    pub fn ended(&self) -> Ended {
        Ended(self.ended.clone())
    }
}

impl Drop for FlowRx {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static> FlowTx<S> {
    /// Sends `data`, in pieces of at most [`MAX_CHUNK`] bytes, each once
    /// the peer has given credit for it.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), Gone> {
        let mut rest = data.into();
        while !rest.is_empty() {
            let piece = rest.split_to(rest.len().min(MAX_CHUNK));
            let permits = u32::try_from(piece.len()).map_err(|_| Gone)?;
            self.credit
                .acquire_many(permits)
                .await
                .map_err(|_| Gone)?
                .forget();
            self.write.data_bytes(piece).await.map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// Records that `n` received bytes were passed on, returning credit to
    /// the peer when enough is owed.
    pub async fn passed_on(&self, n: usize) -> Result<(), Gone> {
        let give = lock(&self.inbound).passed_on(n);
        match give {
            Some(give) => self
                .write
                .extended_data_bytes(CREDIT_EXT, Bytes::copy_from_slice(&encode_credit(give)))
                .await
                .map_err(|_| Gone),
            None => Ok(()),
        }
    }

    /// Half-closes this side.
    pub async fn eof(&self) -> Result<(), Gone> {
        self.write.eof().await.map_err(|_| Gone)
    }

    /// Closes the channel.
    pub async fn close(&self) {
        let _ = self.write.close().await;
    }
}

/// Moves everything russh delivers for the channel into `events` at once,
/// counting data against the credit given and adding returned credit to
/// `credit`. A peer that breaks the credit has its channel closed here at
/// once.
async fn read_channel<S: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static>(
    mut read: ChannelReadHalf,
    write: Arc<ChannelWriteHalf<S>>,
    events: mpsc::UnboundedSender<Event>,
    ended: watch::Sender<bool>,
    credit: Arc<Semaphore>,
    inbound: Arc<Mutex<Inbound>>,
) {
    let last = loop {
        let event = match read.wait().await {
            Some(ChannelMsg::Data { data }) => match lock(&inbound).received(data.len()) {
                Ok(()) => Event::Data(data),
                Err(Overrun { held }) => break Event::Violation(Overrun { held }.to_string()),
            },
            Some(ChannelMsg::ExtendedData { data, ext }) if ext == CREDIT_EXT => {
                match decode_credit(&data) {
                    Some(n) if credit.available_permits() + n as usize <= WINDOW as usize => {
                        credit.add_permits(n as usize);
                        continue;
                    }
                    Some(n) => {
                        break Event::Violation(format!(
                            "the peer returned {n} bytes of credit, more than was used"
                        ))
                    }
                    None => {
                        break Event::Violation(format!(
                            "a malformed credit message ({} bytes)",
                            data.len()
                        ))
                    }
                }
            }
            Some(ChannelMsg::Eof) => Event::Eof,
            Some(ChannelMsg::Close) | None => break Event::Closed,
            // Other extended data, window adjustments, requests: nothing
            // for a forwarded TCP connection.
            Some(_) => continue,
        };
        if events.send(event).is_err() {
            return;
        }
    };
    drop(read);
    if matches!(last, Event::Violation(_)) {
        let _ = write.close().await;
    }
    // Senders waiting for credit give up: none will come.
    credit.close();
    let _ = ended.send(true);
    let _ = events.send(last);
}
