//! Reusable pieces of UI.

pub mod caller;
pub mod canvas;
pub mod chart;
pub mod forms;
pub mod graph;
pub mod live;
pub mod shell;
