//! The loop guard's bookkeeping: a sliding window of call fingerprints per run,
//! a call budget per run, and counters per tool. Decisions are made before a
//! call runs; every attempt that reaches the window (admitted or refused)
//! enters it, while only admitted calls count against the budget.

use std::collections::{HashMap, VecDeque};

use crate::error::{Error, Result};

/// Why a call was refused; the index into [`REASONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Recursion = 0,
    Budget = 1,
    Repeat = 2,
    Cycle = 3,
    DelegationCycle = 4,
}

/// Reason names, in the order counters report them.
pub const REASONS: [&str; 5] = ["recursion", "budget", "repeat", "cycle", "delegation_cycle"];

impl Reason {
    pub fn name(self) -> &'static str {
        REASONS[self as usize]
    }

    pub fn from_name(name: &str) -> Result<Reason> {
        match name {
            "recursion" => Ok(Reason::Recursion),
            "budget" => Ok(Reason::Budget),
            "repeat" => Ok(Reason::Repeat),
            "cycle" => Ok(Reason::Cycle),
            "delegation_cycle" => Ok(Reason::DelegationCycle),
            other => Err(Error::InvalidArgument(format!("unknown refusal reason {other:?}; known: {REASONS:?}"))),
        }
    }
}

/// The guard's limits.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardConfig {
    /// How many admitted calls per run the window remembers.
    pub loop_window: usize,
    /// Identical calls allowed inside the window; the next one is refused.
    pub max_repeats: usize,
    /// Full repetitions of a short cycle allowed; the call starting the next one is refused.
    pub cycle_repeats: usize,
    /// Longest cycle looked for (2 finds A,B,A,B; 3 also A,B,C,A,B,C).
    pub max_cycle_length: usize,
    /// Admitted calls allowed per run, or no budget.
    pub max_calls: Option<u64>,
    /// Runs remembered at once; the oldest is forgotten beyond this.
    pub max_runs: usize,
}

impl GuardConfig {
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("loop_window", self.loop_window),
            ("max_repeats", self.max_repeats),
            ("cycle_repeats", self.cycle_repeats),
            ("max_runs", self.max_runs),
        ];
        for (name, value) in positive {
            if value < 1 {
                return Err(Error::InvalidArgument(format!("{name} must be at least 1, got {value}")));
            }
        }
        if self.max_calls == Some(0) {
            return Err(Error::InvalidArgument("max_calls must be at least 1 or None".into()));
        }
        Ok(())
    }
}

/// Calls, refusals by reason and seconds spent, for one tool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCounters {
    pub calls: u64,
    pub refusals: [u64; 5],
    pub seconds: f64,
}

#[derive(Default)]
struct RunState {
    window: VecDeque<String>,
    calls: u64,
}

/// Window bookkeeping for many runs plus per-tool counters.
pub struct Guard {
    config: GuardConfig,
    runs: HashMap<String, RunState>,
    run_order: VecDeque<String>,
    tool_index: HashMap<String, usize>,
    tools: Vec<(String, ToolCounters)>,
}

impl Guard {
    pub fn new(config: GuardConfig) -> Result<Guard> {
        config.validate()?;
        Ok(Guard {
            config,
            runs: HashMap::new(),
            run_order: VecDeque::new(),
            tool_index: HashMap::new(),
            tools: Vec::new(),
        })
    }

    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    fn counters_mut(&mut self, tool: &str) -> &mut ToolCounters {
        let index = match self.tool_index.get(tool) {
            Some(&i) => i,
            None => {
                self.tools.push((tool.to_owned(), ToolCounters::default()));
                self.tool_index.insert(tool.to_owned(), self.tools.len() - 1);
                self.tools.len() - 1
            }
        };
        &mut self.tools[index].1
    }

    fn run_mut(&mut self, run: &str) -> &mut RunState {
        if !self.runs.contains_key(run) {
            while self.run_order.len() >= self.config.max_runs {
                if let Some(old) = self.run_order.pop_front() {
                    self.runs.remove(&old);
                }
            }
            self.run_order.push_back(run.to_owned());
            self.runs.insert(run.to_owned(), RunState::default());
        }
        self.runs.get_mut(run).expect("run state was just ensured")
    }

    /// The reason `fingerprint` must be refused in `run`, without recording anything.
    fn decide(&self, state: &RunState, fingerprint: &str) -> Option<Reason> {
        if let Some(max) = self.config.max_calls {
            if state.calls >= max {
                return Some(Reason::Budget);
            }
        }
        let seen = state.window.iter().filter(|f| f.as_str() == fingerprint).count();
        if seen >= self.config.max_repeats {
            return Some(Reason::Repeat);
        }
        let window = &state.window;
        for period in 2..=self.config.max_cycle_length {
            let needed = self.config.cycle_repeats * period + 1;
            if window.len() + 1 < needed {
                continue;
            }
            let start = window.len() + 1 - needed;
            let at = |i: usize| -> &str {
                let pos = start + i;
                if pos < window.len() {
                    window[pos].as_str()
                } else {
                    fingerprint
                }
            };
            let periodic = (0..needed - period).all(|i| at(i) == at(i + period));
            let varied = (1..period).any(|i| at(needed - period + i) != at(needed - period));
            if periodic && varied {
                return Some(Reason::Cycle);
            }
        }
        None
    }

    /// Admit the call (recording it) or return why it is refused (counting the refusal).
    pub fn admit(&mut self, run: &str, fingerprint: &str, tool: &str) -> Option<Reason> {
        let loop_window = self.config.loop_window;
        self.run_mut(run);
        let reason = self.decide(&self.runs[run], fingerprint);
        let state = self.run_mut(run);
        // Refused attempts enter the window too: an agent that keeps trying the
        // refused call of a cycle stays in the cycle.
        state.window.push_back(fingerprint.to_owned());
        while state.window.len() > loop_window {
            state.window.pop_front();
        }
        if reason.is_none() {
            state.calls += 1;
        }
        let counters = self.counters_mut(tool);
        match reason {
            Some(r) => counters.refusals[r as usize] += 1,
            None => counters.calls += 1,
        }
        reason
    }

    /// Count a refusal decided outside the window (recursion depth, delegation cycle).
    pub fn note_refusal(&mut self, tool: &str, reason: Reason) {
        self.counters_mut(tool).refusals[reason as usize] += 1;
    }

    /// Add time spent running `tool`.
    pub fn add_time(&mut self, tool: &str, seconds: f64) {
        self.counters_mut(tool).seconds += seconds;
    }

    /// Admitted calls so far in `run`.
    pub fn run_calls(&self, run: &str) -> u64 {
        self.runs.get(run).map_or(0, |s| s.calls)
    }

    /// Forget one run's window and budget.
    pub fn forget_run(&mut self, run: &str) {
        if self.runs.remove(run).is_some() {
            self.run_order.retain(|r| r != run);
        }
    }

    /// Forget every run and every counter.
    pub fn reset(&mut self) {
        self.runs.clear();
        self.run_order.clear();
        self.tool_index.clear();
        self.tools.clear();
    }

    /// Counters per tool, in the order tools were first seen.
    pub fn counters(&self) -> &[(String, ToolCounters)] {
        &self.tools
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_calls: Option<u64>) -> Guard {
        Guard::new(GuardConfig {
            loop_window: 10,
            max_repeats: 3,
            cycle_repeats: 2,
            max_cycle_length: 3,
            max_calls,
            max_runs: 4,
        })
        .unwrap()
    }

    #[test]
    fn repeats_are_refused_after_the_limit() {
        let mut g = guard(None);
        for _ in 0..3 {
            assert_eq!(g.admit("r", "a", "t"), None);
        }
        assert_eq!(g.admit("r", "a", "t"), Some(Reason::Repeat));
        assert_eq!(g.admit("other", "a", "t"), None, "runs do not share windows");
        assert_eq!(g.counters()[0].1.calls, 4);
        assert_eq!(g.counters()[0].1.refusals[Reason::Repeat as usize], 1);
    }

    #[test]
    fn cycles_are_refused_when_a_third_round_starts() {
        let mut g = guard(None);
        for fp in ["a", "b", "a", "b"] {
            assert_eq!(g.admit("r", fp, "t"), None);
        }
        assert_eq!(g.admit("r", "a", "t"), Some(Reason::Cycle));
        assert_eq!(g.admit("r", "b", "t"), Some(Reason::Cycle), "retrying the cycle stays refused");
        let mut g = guard(None);
        for fp in ["a", "b", "c", "a", "b", "c"] {
            assert_eq!(g.admit("r", fp, "t"), None);
        }
        assert_eq!(g.admit("r", "a", "t"), Some(Reason::Cycle));
    }

    #[test]
    fn varied_calls_pass_and_budget_stops() {
        let mut g = guard(Some(15));
        for i in 0..15 {
            assert_eq!(g.admit("r", &format!("call{i}"), "t"), None);
        }
        assert_eq!(g.admit("r", "call99", "t"), Some(Reason::Budget));
        assert_eq!(g.run_calls("r"), 15);
    }

    #[test]
    fn old_runs_are_forgotten() {
        let mut g = guard(Some(1));
        for run in ["a", "b", "c", "d", "e"] {
            assert_eq!(g.admit(run, "x", "t"), None);
        }
        assert_eq!(g.run_calls("a"), 0);
        assert_eq!(g.admit("e", "y", "t"), Some(Reason::Budget));
    }

    #[test]
    fn bad_config_is_rejected() {
        let mut config = guard(None).config().clone();
        config.max_repeats = 0;
        assert!(Guard::new(config).is_err());
    }
}
