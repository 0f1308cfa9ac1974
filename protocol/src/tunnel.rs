//! Per-channel flow credit on the remote-login tunnel between the agent and
//! the server's relay.
//!
//! One SSH connection from the agent carries every engineer session to the
//! devices behind it, each as a `forwarded-tcpip` channel. SSH's own window
//! would keep one channel from holding up the others, but russh re-opens a
//! channel's window as soon as data *arrives*, not when the application has
//! passed it on, and hands the data to a bounded queue whose fullness stops
//! the whole connection. So both ends add their own window on top, per
//! channel and per direction:
//!
//! * A sender may have at most [`WINDOW`] bytes of data sent on a channel
//!   that the receiver has not yet passed on (to the target, or to the
//!   engineer). It starts with [`WINDOW`] bytes of credit.
//! * The receiver reads each channel at once into its own queue (so russh's
//!   queue never fills), passes data on as fast as the far side takes it,
//!   and returns credit for what it passed on in an extended-data message of
//!   type [`CREDIT_EXT`] carrying the byte count as a big-endian `u32`
//!   ([`encode_credit`]). It returns credit once at least [`WINDOW`]/4 is
//!   owed ([`Inbound::passed_on`]).
//! * Data beyond the credit given is a protocol violation: the receiver
//!   closes that channel ([`Inbound::received`]).
//!
//! A channel whose far side stops reading so stops after [`WINDOW`] bytes,
//! and the other channels of the connection go on.
//!
//! Both ends must speak it: the agent asks for the forwarding with the
//! address [`FORWARD_ADDRESS`], and the relay answers with the bound port
//! [`FLOW_CREDIT_VERSION`]. A relay refuses other addresses; an agent
//! refuses a relay that answers otherwise (an older server).

#[cfg(feature = "flow")]
pub mod flow;

/// The address the agent sends with its `tcpip-forward` request.
pub const FORWARD_ADDRESS: &str = "outpost/flow-credit";

/// The relay's answer to the forwarding request (in place of a bound port):
/// the flow-credit version it speaks.
pub const FLOW_CREDIT_VERSION: u32 = 1;

/// The extended-data type code of a credit message ("OPCR"). Type 1 is
/// stderr; this one never carries payload for the far side.
pub const CREDIT_EXT: u32 = 0x4f50_4352;

/// Unacknowledged bytes allowed per channel and direction.
pub const WINDOW: u32 = 1 << 20;

/// Credit is returned once this much is owed.
pub const RETURN_AT: u32 = WINDOW / 4;

/// The largest data message a sender writes at once (so that one message
/// never needs more credit than a returned batch gives).
pub const MAX_CHUNK: usize = 32 * 1024;

/// The body of a credit message for `bytes`.
pub fn encode_credit(bytes: u32) -> [u8; 4] {
    bytes.to_be_bytes()
}

/// The credit a message of type [`CREDIT_EXT`] returns, or `None` when it
/// is not a well-formed credit message (exactly four bytes, not zero).
pub fn decode_credit(body: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = body.try_into().ok()?;
    match u32::from_be_bytes(bytes) {
        0 => None,
        n => Some(n),
    }
}

/// More data arrived than the credit allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    /// Bytes held (received and not yet passed on), this message included.
    pub held: u64,
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the peer sent {} bytes beyond its flow credit of {WINDOW}",
            self.held.saturating_sub(u64::from(WINDOW))
        )
    }
}

impl std::error::Error for Overrun {}

/// The receiving side's account of one channel: what it holds, and what it
/// owes back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Received bytes not yet passed on.
    held: u64,
    /// Passed-on bytes whose credit has not yet been returned.
    owed: u64,
}

impl Inbound {
    /// Counts `n` bytes received; an error when the sender had no credit
    /// for them.
    pub fn received(&mut self, n: usize) -> Result<(), Overrun> {
        let held = self.held + self.owed + n as u64;
        if held > u64::from(WINDOW) {
            return Err(Overrun { held });
        }
        self.held += n as u64;
        Ok(())
    }

    /// Counts `n` bytes passed on; the credit to return now, if enough is
    /// owed.
    pub fn passed_on(&mut self, n: usize) -> Option<u32> {
        let n = (n as u64).min(self.held);
        self.held -= n;
        self.owed += n;
        if self.owed >= u64::from(RETURN_AT) {
            let give = u32::try_from(self.owed).unwrap_or(WINDOW);
            self.owed -= u64::from(give);
            Some(give)
        } else {
            None
        }
    }

    /// Bytes received and not yet passed on.
    pub fn held(&self) -> u64 {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_messages_round_trip_and_malformed_ones_are_none() {
        assert_eq!(decode_credit(&encode_credit(4096)), Some(4096));
        assert_eq!(decode_credit(&encode_credit(0)), None);
        assert_eq!(decode_credit(&[0, 0, 1]), None);
        assert_eq!(decode_credit(&[0, 0, 0, 1, 0]), None);
    }

    #[test]
    fn a_sender_within_its_window_is_accepted_and_credit_returns_in_batches() {
        let mut inbound = Inbound::default();
        // The whole window may arrive before anything is passed on.
        for _ in 0..(WINDOW as usize / MAX_CHUNK) {
            assert_eq!(inbound.received(MAX_CHUNK), Ok(()));
        }
        assert_eq!(inbound.held(), u64::from(WINDOW));
        // One byte more is an overrun, and is not counted.
        assert_eq!(
            inbound.received(1),
            Err(Overrun {
                held: u64::from(WINDOW) + 1
            })
        );
        // Passing on returns credit once a quarter window is owed.
        let mut returned = 0u64;
        for _ in 0..(WINDOW as usize / MAX_CHUNK) {
            if let Some(give) = inbound.passed_on(MAX_CHUNK) {
                assert!(give >= RETURN_AT);
                returned += u64::from(give);
            }
        }
        assert_eq!(returned, u64::from(WINDOW));
        assert_eq!(inbound.held(), 0);
    }

    #[test]
    fn credit_not_yet_returned_still_counts_against_the_sender() {
        let mut inbound = Inbound::default();
        assert_eq!(inbound.received(1000), Ok(()));
        // Passed on, but under the return threshold: still owed.
        assert_eq!(inbound.passed_on(1000), None);
        // So the sender still has WINDOW - 1000 only.
        assert!(inbound.received(WINDOW as usize - 1000).is_ok());
        assert!(inbound.received(1).is_err());
    }

    #[test]
    fn passing_on_more_than_held_is_clamped() {
        let mut inbound = Inbound::default();
        assert_eq!(inbound.received(10), Ok(()));
        assert_eq!(inbound.passed_on(100), None);
        assert_eq!(inbound.held(), 0);
    }
}
