//! Pure ingestion logic shared by browser and server: where a source's fields
//! live in a payload (mapping) and reading them out. No I/O, no clock.

pub mod mapping;
