//! One module per page: the component and the server fns it calls.

pub mod auth;
pub mod dashboard;
pub mod designer;
pub mod events;
pub mod not_found;
pub mod runs;
pub mod settings;
pub mod sources;
pub mod workflows;
