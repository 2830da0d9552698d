//! A recording fake provider for loop tests: records calls, injects failures.
