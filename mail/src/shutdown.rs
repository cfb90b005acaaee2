//! One shutdown signal fanned out to every task: whoever stops things holds the `Trigger`;
//! each task holds a cheap `Shutdown` and awaits it first thing in its loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Fires the signal every `Shutdown` made from it waits for.
pub struct Trigger(watch::Sender<bool>);

/// A task's view of the signal; clone one per task.
#[derive(Clone)]
pub struct Shutdown {
    signal: watch::Receiver<bool>,
    /// Keeps the sender of a signal nobody fires alive (`Shutdown::never`): a dropped
    /// trigger counts as fired.
    _never: Option<Arc<watch::Sender<bool>>>,
}

impl Trigger {
    /// A new signal, not fired yet, and a first view of it.
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        let shutdown = Shutdown {
            signal: rx,
            _never: None,
        };
        (Trigger(tx), shutdown)
    }

    /// Another view of the signal.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            signal: self.0.subscribe(),
            _never: None,
        }
    }

    /// Signals every view; firing twice changes nothing.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// A signal that never fires: for tools and tests that run until their input ends.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown {
            signal: rx,
            _never: Some(Arc::new(tx)),
        }
    }

    /// Completes once the signal is fired, or once its trigger is gone.
    pub async fn wait(&mut self) {
        let _ = self.signal.wait_for(|fired| *fired).await;
    }

    /// `wait`, consuming this view: for APIs that take the shutdown as a future.
    pub async fn until_fired(mut self) {
        self.wait().await
    }

    /// Whether the signal has been fired.
    pub fn is_fired(&self) -> bool {
        *self.signal.borrow()
    }
}

/// A periodic task's clock: a tick every period until the shutdown fires. A tick that comes
/// late (the task's work took longer) delays the next ones rather than bunching them up.
pub struct Every {
    tick: tokio::time::Interval,
    stop: Shutdown,
}

impl Every {
    /// Ticks every `period`, the first at once.
    pub fn new(period: Duration, stop: Shutdown) -> Every {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Every { tick, stop }
    }

    /// Waits for the next tick: true then, false once the shutdown has fired.
    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => true,
            _ = self.stop.wait() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_view_wakes_once_fired_or_dropped() {
        let (trigger, mut first) = Trigger::new();
        let mut second = trigger.subscribe();
        assert!(!first.is_fired());
        trigger.fire();
        first.wait().await;
        second.wait().await;
        assert!(second.is_fired());

        let (trigger, mut orphan) = Trigger::new();
        drop(trigger);
        orphan.wait().await;

        let never = Shutdown::never();
        let mut waiting = never.clone();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), waiting.wait()).await;
        assert!(waited.is_err(), "a never-fired signal does not complete");
    }

    #[tokio::test(start_paused = true)]
    async fn a_period_ticks_until_its_shutdown_fires() {
        let (trigger, stop) = Trigger::new();
        let mut every = Every::new(Duration::from_secs(30), stop);
        let started = tokio::time::Instant::now();
        assert!(every.tick().await, "the first tick comes at once");
        assert!(every.tick().await);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        trigger.fire();
        assert!(!every.tick().await, "no tick once the shutdown fired");
    }
}
