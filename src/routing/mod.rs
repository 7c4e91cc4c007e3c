//! Choosing who answers a request: the server block (by listen address and host) and,
//! within it, the location (by nginx's precedence rules).

pub mod locations;
pub mod servers;
