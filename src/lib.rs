//! lastcall: one static binary that is a container's ENTRYPOINT and makes stopping a
//! container lose nothing — no dropped HTTP request, no lost background job.
//!
//! # Layout
//!
//! Modules are named after what users learn about a container stop:
//!
//! - [`budget`]: the stop timeline — stop timeout, kill margin, phase caps, signal plan.
//!   One model shared by `run` (its deadlines), `drill` and `check` (what they check).
//! - [`drain`]: the phase machine (starting → serving → unready → closing → stopping →
//!   exited) that everything serving traffic consults; `drain::probers` decides when the
//!   load balancer has let go.
//! - [`supervise`]: PID 1 duties — spawn, reap, forward signals, run the plan, escalate.
//! - [`health`]: the health endpoint that turns 503 when a stop begins.
//! - [`proxy`] and [`admin`]: the HTTP drain proxy and its admin API.
//! - [`run`]: `lastcall run`, which wires the above together.
//! - [`drill`]: `lastcall drill`, a rehearsed stop under load behind a simulated LB.
//! - [`check`]: `lastcall check`, a linter for shutdown mistakes in deployment files.
//! - [`sys`]: the only `unsafe` code (what runs between fork and exec).
//! - [`duration`], [`addr`], [`net`], [`log`], [`cli`]: plumbing.

pub mod addr;
pub mod admin;
pub mod budget;
pub mod check;
pub mod cli;
pub mod drain;
pub mod drill;
pub mod duration;
pub mod health;
pub mod log;
pub mod net;
pub mod proxy;
pub mod run;
pub mod supervise;
pub mod sys;
