//! RLS policy compilation and decisions: being written (issue 4).
