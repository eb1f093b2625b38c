//! RLS differential tests: being written (issue 4).
