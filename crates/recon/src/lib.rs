//! Reconciliation (placeholder: being written).
