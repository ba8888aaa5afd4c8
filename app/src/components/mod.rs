//! Reusable pieces of UI.

pub mod forms;
pub mod shell;
