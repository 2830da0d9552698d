//! The batching window (Karpenter's batcher): provisioning waits until pending pods stop arriving for
//! `idle`, or `max` after the first one, so a deployment scaled to 100 replicas gets one plan, not 100.

use jiff::{SignedDuration, Timestamp};

pub const DEFAULT_IDLE: SignedDuration = SignedDuration::from_secs(1);
pub const DEFAULT_MAX: SignedDuration = SignedDuration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Batcher {
    idle: SignedDuration,
    max: SignedDuration,
    /// First and latest trigger of the open batch.
    open: Option<(Timestamp, Timestamp)>,
}

impl Default for Batcher {
    fn default() -> Self {
        Self::new(DEFAULT_IDLE, DEFAULT_MAX)
    }
}

impl Batcher {
    pub fn new(idle: SignedDuration, max: SignedDuration) -> Self {
        Self { idle, max, open: None }
    }

    /// A pending pod appeared (or changed) at `now`: opens a batch or extends the open one.
    pub fn trigger(&mut self, now: Timestamp) {
        self.open = Some(match self.open {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
    }

    /// True when the open batch is complete at `now`; closes it.
    pub fn take_ready(&mut self, now: Timestamp) -> bool {
        match self.open {
            Some((first, last)) if now >= last + self.idle || now >= first + self.max => {
                self.open = None;
                true
            }
            _ => false,
        }
    }

    /// When the open batch completes if nothing else arrives.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.open.map(|(first, last)| (last + self.idle).min(first + self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(secs)
    }

    #[test]
    fn closes_after_one_idle_second() {
        let mut b = Batcher::default();
        assert!(!b.take_ready(t(0)), "nothing open");
        b.trigger(t(0));
        b.trigger(t(0));
        assert_eq!(b.deadline(), Some(t(1)));
        assert!(!b.take_ready(t(0)));
        assert!(b.take_ready(t(1)));
        assert!(!b.take_ready(t(2)), "closed");
    }

    #[test]
    fn a_steady_stream_closes_at_the_max_window() {
        let mut b = Batcher::default();
        for s in 0..10 {
            b.trigger(t(s));
            assert!(!b.take_ready(t(s)), "at {s}s");
        }
        b.trigger(t(10));
        assert!(b.take_ready(t(10)));
    }
}
