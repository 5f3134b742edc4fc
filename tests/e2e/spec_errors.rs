//! Spec errors through the binary.
