//! Integration tests: result.
