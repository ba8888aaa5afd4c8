//! Reusable pieces of UI.

pub mod forms;
pub mod live;
pub mod shell;
