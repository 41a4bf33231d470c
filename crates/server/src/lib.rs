//! Gongji as a service (in progress).

pub mod answers;
