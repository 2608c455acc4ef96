//! The `iopt` command-line tool.
fn main() {}
