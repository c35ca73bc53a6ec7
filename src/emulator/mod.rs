//! Local stand-ins for the services dirsync talks to, for tests, the demo and `dirsync emulate`.

pub mod highq;
