//! THE PURE CORE: a workflow as data (one closed, serde-tagged enum of node
//! kinds), its validation, evaluation and starter templates. No I/O, no
//! clock, no randomness: compiled for the browser and the server alike.

pub mod aggregate;
pub mod describe;
pub mod diff;
pub mod eval;
pub mod funnel;
pub mod model;
pub mod offer;
pub mod profile;
pub mod rules;
pub mod status;
pub mod templates;
pub mod validate;

pub use model::*;
pub use validate::{validate, Issue};
