//! End-to-end tests of noex-client against the real noex server started in-process:
//! the typed store API ([`store`]), rules ([`rules`]), procedures ([`procedures`]), auth
//! ([`auth`]), identity ([`identity`]) and connection loss / server restart
//! ([`reconnect`]). One test binary so the server links once.
#![cfg(feature = "native")]

mod auth;
mod common;
mod identity;
mod procedures;
mod reconnect;
mod rules;
mod store;
