//! SLA: business calendars, policies, the clocks computed from them, and the
//! durable timer service that fires deadlines.

pub mod calendar;
pub mod clock;
pub mod engine;
pub mod policy;
pub mod registry;
pub mod settings;
pub mod timers;
