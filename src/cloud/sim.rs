//! Simulated EC2 in virtual time.
