//! Using a secret is a permission of its own (issue 10, items 1 and 3), through
//! the real binary: use grants and host binding on every path a connector is
//! saved or tested by, the delegate route (a hand-written delegate speaking
//! the protocol), and no secret value in any report, history row or log.

mod common;

// Shared with the delegate tests; this binary uses part of it.
#[allow(dead_code)]
#[path = "delegates/support.rs"]
mod support;

#[path = "secret_use/grants.rs"]
mod grants;
#[path = "secret_use/handwritten.rs"]
mod handwritten;
#[path = "secret_use/scrub.rs"]
mod scrub;
