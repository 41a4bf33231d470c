//! Tools (placeholder: being written).
