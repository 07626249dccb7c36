//! The `kxdp` binary's commands ([`cli`]: run, stats, trace, apply, agent,
//! bench, …) and the demo ([`demo`]), which builds its cluster on the netns
//! testbed.

pub mod cli;
pub mod demo;
