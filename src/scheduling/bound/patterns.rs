//! The configuration LP (Gilmore–Gomory) bound: what integrality of nodes adds to the assignment LP.
//!
//! A *pattern* is an integer multiset of pods that fits one node of type `t`. The configuration LP buys
//! patterns fractionally; its dual is
//!
//! ```text
//! maximise Σ_c n_c · u_c  subject to  Σ_c a_{c,p} · u_c ≤ price_t(p)  for every pattern p,  u ≥ 0
//! ```
//!
//! Farley's bound makes any `u ≥ 0` a certificate: with `V_t(u)` at least the best pattern's worth
//! `max_p Σ_c a_{c,p} · u_c` on type `t` and `ρ = max(1, max_t V_t(u) / price_t)`, `u / ρ` is feasible for
//! that dual, so `Σ_c n_c · u_c / ρ` bounds every schedule (each is an integer configuration solution). The
//! assignment LP relaxes the same patterns further (fractional pods within a node), so its dual `u` gives
//! `ρ ≤ 1` and this bound is never below it. Starting there, `u` is improved by row generation: the
//! restricted dual above over the patterns found so far is solved with `microlp`, and for each type the
//! integer knapsack "best pattern at prices `u`" yields new violated patterns. The knapsack is solved
//! exactly by branch and bound when small (most nodes hold a few pods); when its node budget runs out `V_t`
//! falls back to a Lagrangian upper bound, which keeps the certificate valid. Fixed round and node budgets
//! keep it bounded and deterministic.
//!
//! The same column generation serves the packer ([`bought_patterns`]): there it starts from the packer's
//! own per-class prices and the greedy's patterns, skips the certification, takes a few patterns per knapsack
//! and round, and ends with the restricted LP's primal (how many nodes of each pattern to buy).

use std::collections::HashSet;

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::{AssignmentLp, Error, non_negative, solve_lp};

/// Master LP solves (and so `u` vectors certified) at most, for the bound.
const MAX_ROUNDS: usize = 8;
/// Branch-and-bound nodes one knapsack may visit before `V_t` falls back to the Lagrangian bound.
const NODES_PER_KNAPSACK: usize = 1_000;
/// A pattern is added to the master when it is worth this much more than its type's price (relative): the
/// solver's tolerance is far below it, so patterns already in the master are never re-added.
const VIOLATION: f64 = 1e-7;

/// One class a type can host: its worth, at most how many pods of it one node holds, and its requests.
struct Item {
    class: usize,
    worth: f64,
    most: i64,
    requests: Vec<i64>,
}

/// The best pattern found for one type at prices `u` and an upper bound on every pattern's worth.
struct Knapsack {
    /// (class, pods) with at least one pod.
    pattern: Vec<(usize, i64)>,
    worth: f64,
    upper: f64,
    /// Next-best patterns the search met (with their worth), best first, as many as the budget asks.
    runners_up: Vec<(Vec<(usize, i64)>, f64)>,
}

/// A pattern: the type it fills and (class, pods) with at least one pod, by class.
pub(super) type Pattern = (usize, Vec<(usize, i64)>);

/// What one column-generation run found.
struct Generation {
    /// Every pattern priced in: the one-class patterns, then what the knapsacks found.
    patterns: Vec<Pattern>,
    /// The best Farley bound over the `u` vectors tried, in $/h.
    bound: f64,
}

/// How long one column-generation run may search.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Master LP solves (and so `u` vectors tried) at most.
    pub rounds: usize,
    /// Branch-and-bound nodes one knapsack may visit.
    pub nodes_per_knapsack: usize,
    /// Whether the bound is wanted: knapsacks whose search was cut short then pay for an upper bound (an
    /// LP each) to keep the certificate valid.
    pub certify: bool,
    /// Patterns one knapsack may add per round: its best and the best incumbents it replaced (more columns
    /// per round converge in fewer master solves).
    pub columns_per_type: usize,
}

/// The budget of the bound: the quality of the certificate is what counts.
const BOUND_BUDGET: Budget =
    Budget { rounds: MAX_ROUNDS, nodes_per_knapsack: NODES_PER_KNAPSACK, certify: true, columns_per_type: 1 };

/// The configuration-LP bound in $/h, from the assignment LP's certified per-class values `start` (not yet
/// lowered by the rounding margin).
pub(super) fn configuration_bound(lp: &AssignmentLp, start: &[f64]) -> Result<f64, Error> {
    Ok(generate(lp, start, &[], BOUND_BUDGET)?.bound)
}

/// The configuration LP's primal solution over the patterns column generation finds from per-class values
/// `start` and `seeds` (see [`generate`]): `(pattern, whole nodes ⌊x_p⌋, whether x_p has a fractional part
/// too)` for every pattern bought, most bought first.
pub(super) fn bought_patterns(
    lp: &AssignmentLp,
    start: &[f64],
    seeds: &[Vec<(usize, i64)>],
    budget: Budget,
) -> Result<Vec<(Pattern, i64, bool)>, Error> {
    let patterns = generate(lp, start, seeds, budget)?.patterns;
    let bought = solve_primal(lp, &patterns)?;
    // The tolerance keeps 2.9999999 from rounding down to 2 and 2.0000001 from asking for a third node.
    const TOLERANCE: f64 = 1e-6;
    let mut out: Vec<(usize, i64, bool, f64)> = bought
        .iter()
        .enumerate()
        .filter(|&(_, &x)| x > TOLERANCE)
        .map(|(i, &x)| {
            let whole = (x + TOLERANCE).floor();
            (i, whole as i64, x - whole > TOLERANCE, x)
        })
        .collect();
    out.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(&b.0)));
    Ok(out.into_iter().map(|(i, whole, fraction, _)| (patterns[i].clone(), whole, fraction)).collect())
}

/// Column generation from per-class values `start` and the patterns `seeds` ((class, pods) by class): the
/// restricted master over the patterns so far gives `u`, each type's knapsack at `u` the patterns that
/// improve it.
fn generate(
    lp: &AssignmentLp,
    start: &[f64],
    seeds: &[Vec<(usize, i64)>],
    budget: Budget,
) -> Result<Generation, Error> {
    // Per type, the classes it holds and how many of each one node holds (no more than there are pods).
    let mut hosts: Vec<Vec<(usize, i64)>> = vec![Vec::new(); lp.prices.len()];
    for p in &lp.pairs {
        let pods = lp.counts[p.class] as i64;
        hosts[p.ty].push((p.class, (p.fit as i64).min(pods)));
    }
    let types: Vec<usize> = (0..hosts.len()).filter(|&t| !hosts[t].is_empty()).collect();
    // Start the master with the one-class patterns (they bound every u_c).
    let mut patterns: Vec<Pattern> = Vec::new();
    let mut seen: HashSet<Pattern> = HashSet::new();
    for &t in &types {
        for &(c, most) in &hosts[t] {
            let pattern = (t, vec![(c, most)]);
            if seen.insert(pattern.clone()) {
                patterns.push(pattern);
            }
        }
    }
    // Each seed goes on the cheapest type that holds it.
    for pattern in seeds {
        let holds = |t: usize| {
            let room = &lp.allocatable_units[t];
            pattern.iter().all(|(c, k)| *k > 0 && hosts[t].iter().any(|(h, _)| h == c))
                && (0..room.len()).all(|r| {
                    pattern.iter().map(|&(c, k)| k * lp.requests_units[c][r]).sum::<i64>() <= room[r]
                })
        };
        let cheapest = types
            .iter()
            .copied()
            .filter(|&t| holds(t))
            .min_by(|&a, &b| lp.prices[a].total_cmp(&lp.prices[b]));
        if let Some(t) = cheapest
            && seen.insert((t, pattern.clone()))
        {
            patterns.push((t, pattern.clone()));
        }
    }
    let demand = |u: &[f64]| -> f64 { u.iter().zip(&lp.counts).map(|(u, n)| u * n).sum() };
    let mut u: Vec<f64> = start.iter().copied().map(non_negative).collect();
    let mut best = 0.0f64;
    for round in 0.. {
        let mut ratio = 1.0f64;
        let mut added = false;
        for &t in &types {
            let knapsack = best_pattern(lp, &hosts[t], t, &u, budget);
            let price = lp.prices[t];
            ratio = ratio.max(if price > 0.0 { knapsack.upper / price } else { f64::INFINITY });
            // The start `u` is no master's optimum: its best patterns seed the master even when none is
            // violated.
            let wanted =
                knapsack.worth > price * (1.0 + VIOLATION) || (round == 0 && !knapsack.pattern.is_empty());
            if wanted && seen.insert((t, knapsack.pattern.clone())) {
                patterns.push((t, knapsack.pattern));
                added = true;
            }
            for (pattern, worth) in knapsack.runners_up {
                if worth > price * (1.0 + VIOLATION) && seen.insert((t, pattern.clone())) {
                    patterns.push((t, pattern));
                    added = true;
                }
            }
        }
        if ratio.is_finite() {
            best = best.max(demand(&u) / ratio);
        }
        if !added || round + 1 >= budget.rounds {
            break;
        }
        u = solve_master(lp, &patterns)?;
    }
    Ok(Generation { patterns, bound: best })
}

/// The restricted configuration LP's primal over `patterns`: how many nodes of each to buy so every pod of
/// a class some pattern holds is covered, at least cost.
fn solve_primal(lp: &AssignmentLp, patterns: &[Pattern]) -> Result<Vec<f64>, Error> {
    let mut problem = Problem::new(OptimizationDirection::Minimize);
    let bought: Vec<_> =
        patterns.iter().map(|(t, _)| problem.add_var(lp.prices[*t], (0.0, f64::INFINITY))).collect();
    let mut rows: Vec<Vec<(microlp::Variable, f64)>> = vec![Vec::new(); lp.counts.len()];
    for ((_, pattern), &x) in patterns.iter().zip(&bought) {
        for &(c, a) in pattern {
            rows[c].push((x, a as f64));
        }
    }
    for (row, &n) in rows.into_iter().zip(&lp.counts) {
        if !row.is_empty() {
            problem.add_constraint(row, ComparisonOp::Ge, n);
        }
    }
    let solution = solve_lp(&problem)?;
    Ok(bought.iter().map(|&x| solution.var_value(x)).map(non_negative).collect())
}

/// The restricted configuration dual over `patterns`: per class its `u_c` (0 for classes in none).
fn solve_master(lp: &AssignmentLp, patterns: &[Pattern]) -> Result<Vec<f64>, Error> {
    let mut problem = Problem::new(OptimizationDirection::Maximize);
    let mut vars = vec![None; lp.counts.len()];
    for (_, pattern) in patterns {
        for &(c, _) in pattern {
            vars[c].get_or_insert_with(|| problem.add_var(lp.counts[c], (0.0, f64::INFINITY)));
        }
    }
    for (t, pattern) in patterns {
        let row = pattern.iter().map(|&(c, a)| (vars[c].expect("set above"), a as f64)).collect::<Vec<_>>();
        problem.add_constraint(row, ComparisonOp::Le, lp.prices[*t]);
    }
    let solution = solve_lp(&problem)?;
    Ok(vars.iter().map(|v| v.map_or(0.0, |v| solution.var_value(v))).map(non_negative).collect())
}

/// The most valuable pattern on type `t` at prices `u`, exact unless the node budget runs out (then `upper`
/// is only an upper bound when `budget.certify`).
fn best_pattern(lp: &AssignmentLp, hosts: &[(usize, i64)], t: usize, u: &[f64], budget: Budget) -> Knapsack {
    let room = &lp.allocatable_units[t];
    // Densest first (worth per share of the node's scarcest resource): the first leaf is the greedy
    // pattern and good incumbents prune early.
    let mut items: Vec<Item> = hosts
        .iter()
        .filter(|&&(c, most)| u[c] > 0.0 && most > 0)
        .map(|&(c, most)| Item { class: c, worth: u[c], most, requests: lp.requests_units[c].clone() })
        .collect();
    let share = |item: &Item| -> f64 {
        item.requests
            .iter()
            .zip(room)
            .filter(|(_, r)| **r > 0)
            .map(|(q, r)| *q as f64 / *r as f64)
            .fold(0.0, f64::max)
    };
    items.sort_by(|a, b| {
        (b.worth / share(b).max(f64::MIN_POSITIVE))
            .total_cmp(&(a.worth / share(a).max(f64::MIN_POSITIVE)))
            .then(a.class.cmp(&b.class))
    });
    let orders = density_orders(&items, room.len());
    let mut search = Search {
        items: &items,
        orders: &orders,
        room: room.clone(),
        counts: vec![0; items.len()],
        best: vec![0; items.len()],
        best_worth: 0.0,
        nodes: 0,
        budget: budget.nodes_per_knapsack,
        runners_up: Vec::new(),
    };
    let exact = search.explore(0, 0.0);
    let as_pattern = |counts: &[i64]| -> Vec<(usize, i64)> {
        let mut p: Vec<(usize, i64)> =
            items.iter().zip(counts).filter(|(_, k)| **k > 0).map(|(i, k)| (i.class, *k)).collect();
        p.sort_unstable();
        p
    };
    let pattern = as_pattern(&search.best);
    let runners_up = search
        .runners_up
        .iter()
        .rev()
        .take(budget.columns_per_type.saturating_sub(1))
        .map(|(worth, counts)| (as_pattern(counts), *worth))
        .collect();
    let upper = if exact || !budget.certify {
        search.best_worth
    } else {
        lagrangian_upper(&items, room).min(fractional_upper(&items, 0, room, &orders)).max(search.best_worth)
    };
    Knapsack { pattern, worth: search.best_worth, upper, runners_up }
}

/// Depth-first branch and bound over item counts, most pods first.
struct Search<'a> {
    items: &'a [Item],
    /// [`density_orders`] of `items`.
    orders: &'a [Vec<usize>],
    room: Vec<i64>,
    counts: Vec<i64>,
    best: Vec<i64>,
    best_worth: f64,
    nodes: usize,
    /// Nodes it may visit.
    budget: usize,
    /// Earlier incumbents (worth, counts), least valuable first.
    runners_up: Vec<(f64, Vec<i64>)>,
}

impl Search<'_> {
    /// Explores counts of `items[i..]` given the counts before; false when the node budget ran out.
    fn explore(&mut self, i: usize, worth: f64) -> bool {
        self.nodes += 1;
        if self.nodes > self.budget {
            return false;
        }
        // Every node is a pattern that fits (counts only ever take what room is left).
        if worth > self.best_worth {
            if self.best_worth > 0.0 {
                self.runners_up.push((self.best_worth, std::mem::take(&mut self.best)));
            }
            self.best_worth = worth;
            self.best.clone_from(&self.counts);
        }
        if i == self.items.len() {
            return true;
        }
        // The margin keeps float rounding in the bound from pruning a strictly better pattern.
        if worth + fractional_upper(self.items, i, &self.room, self.orders) * (1.0 + 1e-12) <= self.best_worth
        {
            return true;
        }
        let item = &self.items[i];
        let most = item
            .requests
            .iter()
            .zip(&self.room)
            .filter(|(q, _)| **q > 0)
            .map(|(q, r)| r / q)
            .fold(item.most, i64::min);
        for k in (0..=most).rev() {
            for (r, q) in self.room.iter_mut().zip(&item.requests) {
                *r -= k * q;
            }
            self.counts[i] = k;
            let complete = self.explore(i + 1, worth + k as f64 * item.worth);
            self.counts[i] = 0;
            for (r, q) in self.room.iter_mut().zip(&item.requests) {
                *r += k * q;
            }
            if !complete {
                return false;
            }
        }
        true
    }
}

/// Per resource, the items that request it, densest (worth per unit) first: [`fractional_upper`]'s
/// orders, sorted once per knapsack rather than at every node (stable, so the sums are the same).
fn density_orders(items: &[Item], resources: usize) -> Vec<Vec<usize>> {
    (0..resources)
        .map(|r| {
            let mut order: Vec<usize> = (0..items.len()).filter(|&i| items[i].requests[r] > 0).collect();
            let density = |i: usize| items[i].worth / items[i].requests[r] as f64;
            order.sort_by(|&a, &b| density(b).total_cmp(&density(a)));
            order
        })
        .collect()
}

/// An upper bound on what `items[from..]` are worth in `room`: for each resource alone, the fractional
/// knapsack (densest items first, by `orders` from [`density_orders`], each capped at its count); the least
/// of those.
fn fractional_upper(items: &[Item], from: usize, room: &[i64], orders: &[Vec<usize>]) -> f64 {
    let rest = &items[from..];
    let mut upper: f64 = rest.iter().map(|i| i.worth * i.most as f64).sum();
    for (r, &left) in room.iter().enumerate() {
        let mut by_density = orders[r].iter().filter(|&&i| i >= from).map(|&i| &items[i]).peekable();
        if by_density.peek().is_none() {
            continue;
        }
        let mut worth: f64 =
            rest.iter().filter(|i| i.requests[r] == 0).map(|i| i.worth * i.most as f64).sum();
        let mut left = left.max(0) as f64;
        for item in by_density {
            if left <= 0.0 {
                break;
            }
            let take = (left / item.requests[r] as f64).min(item.most as f64);
            worth += take * item.worth;
            left -= take * item.requests[r] as f64;
        }
        upper = upper.min(worth);
    }
    upper
}

/// An upper bound on any pattern's worth from Lagrangian prices `λ ≥ 0` per resource (as a share of the
/// node): `Σ_r λ_r + Σ_c most_c · max(0, u_c − Σ_r λ_r · share_{c,r})` holds for every `λ ≥ 0`, and the `λ`
/// that minimises it (the knapsack's LP relaxation dual) comes from `microlp`. Whatever the solver returns is
/// re-evaluated here, so its inaccuracy can only loosen the bound.
fn lagrangian_upper(items: &[Item], room: &[i64]) -> f64 {
    let unlimited: f64 = items.iter().map(|i| i.worth * i.most as f64).sum();
    let resources: Vec<usize> = (0..room.len()).filter(|&r| room[r] > 0).collect();
    let share = |item: &Item, r: usize| item.requests[r] as f64 / room[r] as f64;
    let mut problem = Problem::new(OptimizationDirection::Minimize);
    let lambda: Vec<_> = resources.iter().map(|_| problem.add_var(1.0, (0.0, f64::INFINITY))).collect();
    for item in items {
        let mu = problem.add_var(item.most as f64, (0.0, f64::INFINITY));
        let mut row = vec![(mu, 1.0)];
        row.extend(resources.iter().zip(&lambda).map(|(&r, &l)| (l, share(item, r))));
        problem.add_constraint(row, ComparisonOp::Ge, item.worth);
    }
    let Ok(Ok(solution)) = problem.solve().map(|s| s.into_solution()) else { return unlimited };
    let prices: Vec<f64> = lambda.iter().map(|&l| solution.var_value(l)).map(non_negative).collect();
    let mut upper: f64 = prices.iter().sum();
    for item in items {
        let paid: f64 = resources.iter().zip(&prices).map(|(&r, p)| p * share(item, r)).sum();
        upper += item.most as f64 * (item.worth - paid).max(0.0);
    }
    upper.min(unlimited)
}
