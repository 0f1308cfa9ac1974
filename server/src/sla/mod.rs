//! SLA: business calendars, policies and the clocks computed from them.
//! (The durable timer service that fires reminders and escalations builds on
//! these; see issue 3.)

pub mod calendar;
pub mod clock;
pub mod policy;
