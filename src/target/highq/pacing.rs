//! Issue 13, item 3: HighQ's allowance used fully and no more. HighQ labels its answers with
//! `X-Ratelimit-Limit`, `X-Ratelimit-Remaining` and `X-Ratelimit-Reset` (the end of the window, in
//! epoch seconds). The [`Pacer`] every call of one adapter goes through
//!
//! - spends the window's budget as fast as calls come, counting the calls it let out itself (the
//!   answers' `Remaining` lags behind the calls in flight) and taking the target's word whenever
//!   it says less is left;
//! - once the budget is spent, holds calls until the reset (plus a margin for clock skew) instead
//!   of sending them into a 429;
//! - keeps a cap on the calls in flight that grows while answers come back untroubled (by one per
//!   answer until the first 429, then by one per cap's worth of answers) and halves on a 429
//!   (AIMD), never above `max_in_flight`. Until the first answer, one call probes alone: the
//!   budget is not known before.
//!
//! A target that sends no such headers is paced by the cap alone; a 429 is still waited out by the
//! client until its reset.

use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use tokio::sync::Notify;

/// How far past a window's reset time the first call of the next window waits at first; every 429
/// that arrives for a window we believed over adds to it (our clock runs ahead of the target's).
const FIRST_MARGIN: Duration = Duration::from_millis(50);
const MAX_MARGIN: Duration = Duration::from_secs(2);

/// The rate-limit labels of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Allowance {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// Epoch seconds.
    pub reset: Option<u64>,
}

impl Allowance {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        Self {
            limit: number("x-ratelimit-limit").map(|v| v as u32),
            remaining: number("x-ratelimit-remaining").map(|v| v as u32),
            reset: number("x-ratelimit-reset").map(|v| v.ceil() as u64),
        }
    }
}

/// The window the target counts our calls in, as far as we know it.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// When it ends (epoch seconds); `None` right after we rolled over to a window no answer has
    /// described yet.
    reset: Option<u64>,
    /// The reset of the window before, so late answers about it are not taken for this one.
    previous: u64,
    limit: u32,
    /// Calls counted against it: ours let out, or the target's count if higher.
    used: u32,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    cap: usize,
    /// Untroubled answers since the cap last grew.
    answers: usize,
    /// Whether a 429 was seen: the cap then grows slowly (congestion avoidance).
    throttled_once: bool,
    /// Whether any answer came back: until then one call at a time.
    probed: bool,
    window: Option<Window>,
    /// A 429 said to wait until then (epoch seconds), whether or not the answers announce a
    /// budget.
    blocked_until: Option<u64>,
    margin: Duration,
}

/// What the next call must wait for.
enum Hold {
    /// A call in flight to come back.
    Answer,
    /// The window to reset, this long from now.
    Reset(Duration),
}

/// Paces one adapter's calls (see the module documentation).
#[derive(Debug)]
pub(crate) struct Pacer {
    max_in_flight: usize,
    state: Mutex<State>,
    wake: Notify,
    /// Times a call was held until a window reset instead of being sent into a 429.
    held: AtomicU32,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Pacer {
    pub fn new(initial_in_flight: usize, max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self {
            max_in_flight,
            state: Mutex::new(State {
                in_flight: 0,
                cap: initial_in_flight.clamp(1, max_in_flight),
                answers: 0,
                throttled_once: false,
                probed: false,
                window: None,
                blocked_until: None,
                margin: FIRST_MARGIN,
            }),
            wake: Notify::new(),
            held: AtomicU32::new(0),
        }
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Calls held until a window reset so far.
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Relaxed)
    }

    /// The calls allowed in flight now.
    #[cfg(test)]
    fn cap(&self) -> usize {
        self.lock().cap
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("pacer lock")
    }

    /// Waits until a call may be sent; the permit gives the slot back when dropped.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let mut woken = pin!(self.wake.notified());
            woken.as_mut().enable();
            let hold = {
                let mut s = self.lock();
                match s.try_take(now_secs()) {
                    None => return Permit { pacer: self },
                    Some(hold) => hold,
                }
            };
            match hold {
                Hold::Answer => woken.await,
                Hold::Reset(wait) => {
                    self.held.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        wait_ms = wait.as_millis() as u64,
                        "HighQ allowance spent for this window, holding calls until it resets"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Learns from an answer: its rate-limit labels, and whether it was a 429.
    pub fn answered(&self, allowance: Allowance, throttled: bool) {
        self.lock()
            .learn(allowance, throttled, now_secs(), self.max_in_flight);
        self.wake.notify_waiters();
    }
}

impl State {
    /// Takes a slot for a call now, or says what to wait for.
    fn try_take(&mut self, now: f64) -> Option<Hold> {
        self.roll_over(now);
        if let Some(until) = self.blocked_until {
            let wait = until as f64 + self.margin.as_secs_f64() - now;
            if wait > 0.0 {
                return Some(Hold::Reset(Duration::from_secs_f64(wait)));
            }
            self.blocked_until = None;
        }
        let cap = if self.probed { self.cap } else { 1 };
        if self.in_flight >= cap {
            return Some(Hold::Answer);
        }
        if let Some(window) = &mut self.window {
            if window.used >= window.limit {
                match window.reset {
                    Some(reset) => {
                        let wait = (reset as f64 + self.margin.as_secs_f64() - now).max(0.0);
                        return Some(Hold::Reset(Duration::from_secs_f64(wait)));
                    }
                    // A new window no answer has described: the calls in flight will, unless
                    // there are none.
                    None if self.in_flight > 0 => return Some(Hold::Answer),
                    None => window.used = 0,
                }
            }
            window.used += 1;
        }
        self.in_flight += 1;
        None
    }

    /// Past the reset (and the margin), the window is a new one: only calls still in flight may
    /// count against it (the target may have counted them after its reset).
    fn roll_over(&mut self, now: f64) {
        let margin = self.margin.as_secs_f64();
        if let Some(window) = &mut self.window {
            if let Some(reset) = window.reset.filter(|reset| now >= *reset as f64 + margin) {
                window.previous = reset;
                window.reset = None;
                window.used = u32::try_from(self.in_flight).unwrap_or(u32::MAX);
            }
        }
    }

    fn learn(&mut self, allowance: Allowance, throttled: bool, now: f64, max_in_flight: usize) {
        self.probed = true;
        self.roll_over(now);
        if throttled {
            self.cap = (self.cap / 2).max(1);
            self.answers = 0;
            self.throttled_once = true;
            if let Some(reset) = allowance.reset {
                // A 429 for a window our clock says is over: the target's clock is behind ours.
                if (reset as f64) <= now {
                    self.margin = (self.margin * 2 + Duration::from_millis(100)).min(MAX_MARGIN);
                }
                self.blocked_until = Some(reset);
                if let Some(limit) = allowance.limit.or(self.window.map(|w| w.limit)) {
                    self.window = Some(Window {
                        reset: Some(reset),
                        previous: reset,
                        limit,
                        used: limit,
                    });
                }
            }
            return;
        }
        if let (Some(limit), Some(remaining), Some(reset)) =
            (allowance.limit, allowance.remaining, allowance.reset)
        {
            let counted = limit.saturating_sub(remaining);
            match &mut self.window {
                Some(window) if window.reset == Some(reset) => {
                    window.limit = limit;
                    window.used = window.used.max(counted);
                }
                // About a window already over (an answer that took its time).
                Some(window)
                    if window.reset.is_some_and(|r| reset < r) || reset <= window.previous => {}
                Some(window) => {
                    window.previous = window.reset.unwrap_or(window.previous);
                    window.reset = Some(reset);
                    window.limit = limit;
                    window.used = window.used.max(counted);
                }
                None => {
                    self.window = Some(Window {
                        reset: Some(reset),
                        previous: 0,
                        limit,
                        used: counted.max(u32::try_from(self.in_flight).unwrap_or(u32::MAX)),
                    });
                }
            }
        }
        self.answers += 1;
        let grow_after = if self.throttled_once { self.cap } else { 1 };
        let headroom = self
            .window
            .is_none_or(|w| w.limit.saturating_sub(w.used) as usize > self.in_flight);
        if self.answers >= grow_after && headroom && self.cap < max_in_flight {
            self.cap += 1;
            self.answers = 0;
        }
    }
}

/// A call's slot in flight.
pub(crate) struct Permit<'a> {
    pacer: &'a Pacer,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        {
            let mut s = self.pacer.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.pacer.wake.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(limit: u32, remaining: u32, reset: u64) -> Allowance {
        Allowance {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(reset),
        }
    }

    fn state(cap: usize) -> State {
        State {
            in_flight: 0,
            cap,
            answers: 0,
            throttled_once: false,
            probed: true,
            window: None,
            blocked_until: None,
            margin: FIRST_MARGIN,
        }
    }

    #[test]
    fn calls_are_let_out_until_the_windows_budget_is_spent_then_held_until_its_reset() {
        let mut s = state(100);
        s.learn(labels(5, 4, 1_000), false, 999.0, 100);

        let taken = (0..10).take_while(|_| s.try_take(999.5).is_none()).count();

        // One call was counted by the answer; four are left.
        assert_eq!(taken, 4);
        match s.try_take(999.5) {
            Some(Hold::Reset(wait)) => {
                assert!((wait.as_secs_f64() - 0.55).abs() < 1e-6, "{wait:?}")
            }
            _ => panic!("the call must wait for the reset"),
        }
    }

    #[test]
    fn a_new_window_counts_the_calls_still_in_flight_against_itself() {
        let mut s = state(100);
        s.learn(labels(5, 5, 1_000), false, 999.0, 100);
        for _ in 0..5 {
            assert!(s.try_take(999.1).is_none());
        }
        s.in_flight = 2;

        let taken = (0..10)
            .take_while(|_| s.try_take(1_000.1).is_none())
            .count();

        assert_eq!(taken, 3, "two of the five may land in the new window");
    }

    #[test]
    fn the_target_saying_less_is_left_wins_and_a_late_answer_about_an_old_window_is_ignored() {
        let mut s = state(100);
        s.learn(labels(10, 9, 1_000), false, 999.0, 100);
        s.learn(labels(10, 2, 1_000), false, 999.0, 100);
        assert_eq!(s.window.unwrap().used, 8);
        s.learn(labels(10, 9, 999), false, 999.0, 100);
        assert_eq!(s.window.unwrap().used, 8);
        assert_eq!(s.window.unwrap().reset, Some(1_000));
    }

    #[test]
    fn the_cap_grows_while_answers_come_back_and_halves_on_a_429_never_above_the_maximum() {
        let pacer = Pacer::new(2, 6);
        for _ in 0..20 {
            pacer.answered(Allowance::default(), false);
        }
        assert_eq!(pacer.cap(), 6);

        pacer.answered(labels(10, 0, 1), true);
        assert_eq!(pacer.cap(), 3);
        // After a 429, one step per cap's worth of answers.
        for _ in 0..3 {
            pacer.answered(Allowance::default(), false);
        }
        assert_eq!(pacer.cap(), 4);
    }

    #[test]
    fn the_first_call_probes_alone() {
        let pacer = Pacer::new(4, 8);
        let mut s = pacer.lock();
        assert!(s.try_take(0.0).is_none());
        assert!(matches!(s.try_take(0.0), Some(Hold::Answer)));
    }

    #[test]
    fn a_429_for_a_window_our_clock_thinks_over_widens_the_margin() {
        let mut s = state(4);
        s.learn(labels(5, 0, 1_000), true, 1_000.2, 8);
        assert!(s.margin > FIRST_MARGIN);
        assert!(matches!(s.try_take(1_000.1), Some(Hold::Reset(_))));
    }

    #[test]
    fn a_429_without_a_budget_holds_calls_until_its_reset_and_no_longer() {
        let mut s = state(4);
        let reset_only = Allowance {
            reset: Some(1_000),
            ..Allowance::default()
        };
        s.learn(reset_only, true, 999.0, 8);
        assert!(matches!(s.try_take(999.5), Some(Hold::Reset(_))));

        let taken = (0..10)
            .take_while(|_| s.try_take(1_000.1).is_none())
            .count();

        assert_eq!(taken, 2, "the halved cap, not one call at a time");
    }

    #[tokio::test]
    async fn a_held_call_goes_out_once_a_slot_is_given_back() {
        let pacer = Pacer::new(1, 1);
        pacer.answered(Allowance::default(), false);
        let first = pacer.acquire().await;
        let second = async { pacer.acquire().await };
        let release = async {
            tokio::task::yield_now().await;
            drop(first);
        };
        let (_, _second) = tokio::join!(release, second);
    }
}
