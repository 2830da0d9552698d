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
//! integer knapsack "best pattern at prices `u`" yields new violated patterns. The knapsack is solved by
//! branch and bound, pruned by a surrogate bound (the resources weighed together at the knapsack LP's dual
//! prices) besides each resource alone, seeded with the LP's solution rounded down, and searching only
//! above the type's price (a pattern below it improves nothing). When its node budget runs out `V_t` falls
//! back to the Lagrangian (LP) upper bound, which keeps the certificate valid; once no pattern improves the
//! master, searches cut short run once more with a larger budget. Fixed round and node budgets keep it
//! bounded and deterministic.
//!
//! The same column generation serves the packer ([`bought_patterns`]): there it starts from the packer's
//! own per-class prices and the greedy's patterns, skips the certification, takes a few patterns per knapsack
//! and round, and ends with the restricted LP's primal (how many nodes of each pattern to buy).

use std::collections::HashSet;

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::{AssignmentLp, Error, non_negative, solve_lp};

/// Master LP solves (and so `u` vectors certified) at most, for the bound: on the bench's generic mix it
/// converges in 10–20 (40 gains nothing there and costs diverse 20k 2 s more).
const MAX_ROUNDS: usize = 20;
/// Branch-and-bound nodes one knapsack may visit before `V_t` falls back to the Lagrangian bound...
const NODES_PER_KNAPSACK: usize = 1_000;
/// ... and in the last sweep at the final `u` (generic 5k: 1.058 × the bound with 1,000, 1.028 with 10,000).
const FINAL_NODES_PER_KNAPSACK: usize = 10_000;
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

impl Item {
    /// How many of it fit in `room` (not capped at `most`; `i64::MAX` when it requests nothing).
    fn fits_in(&self, room: &[i64]) -> i64 {
        self.requests.iter().zip(room).filter(|(q, _)| **q > 0).map(|(q, r)| r / q).min().unwrap_or(i64::MAX)
    }

    /// What its requests cost at `unit_prices` per unit of each resource: its surrogate weight.
    fn priced_at(&self, unit_prices: &[f64]) -> f64 {
        self.requests.iter().zip(unit_prices).map(|(q, p)| *q as f64 * p).sum()
    }
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
    /// ... and once no pattern improves the master, when some search was cut short.
    pub final_nodes_per_knapsack: usize,
    /// Whether the bound is wanted: knapsacks whose search was cut short then pay for an upper bound (an
    /// LP each) to keep the certificate valid.
    pub certify: bool,
    /// Patterns one knapsack may add per round: its best and the best incumbents it replaced (more columns
    /// per round converge in fewer master solves).
    pub columns_per_type: usize,
}

/// The budget of the bound: the quality of the certificate is what counts.
const BOUND_BUDGET: Budget = Budget {
    rounds: MAX_ROUNDS,
    nodes_per_knapsack: NODES_PER_KNAPSACK,
    final_nodes_per_knapsack: FINAL_NODES_PER_KNAPSACK,
    certify: true,
    columns_per_type: 1,
};

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
    let mut nodes = budget.nodes_per_knapsack;
    let mut round = 0;
    loop {
        let sweep = Budget { nodes_per_knapsack: nodes, ..budget };
        let mut ratio = 1.0f64;
        let mut added = false;
        for &t in &types {
            let price = lp.prices[t];
            // Only patterns worth more than the type's price improve the master (and the bound needs to
            // know only whether there are any): the search prunes below it, except in round 0, whose best
            // patterns seed the master.
            let floor = if round == 0 { 0.0 } else { price * (1.0 + VIOLATION) };
            let knapsack = best_pattern(lp, &hosts[t], t, &u, floor, sweep);
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
        if !added && ratio > 1.0 + 2.0 * VIOLATION && nodes < budget.final_nodes_per_knapsack {
            // No pattern found, but some searches were cut short and left the bound at their upper bounds
            // (a search that proved nothing beats the floor reports the floor, 1 + VIOLATION): search
            // again, longer (the floor makes such proofs cheap).
            nodes = budget.final_nodes_per_knapsack;
            continue;
        }
        round += 1;
        if !added || round >= budget.rounds {
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
fn best_pattern(
    lp: &AssignmentLp,
    hosts: &[(usize, i64)],
    t: usize,
    u: &[f64],
    floor: f64,
    budget: Budget,
) -> Knapsack {
    let room = &lp.allocatable_units[t];
    let mut items: Vec<Item> = hosts
        .iter()
        .filter(|&&(c, most)| u[c] > 0.0 && most > 0)
        .map(|&(c, most)| Item { class: c, worth: u[c], most, requests: lp.requests_units[c].clone() })
        .collect();
    // Densest first at the knapsack LP's resource prices (else per share of the node's scarcest
    // resource): the first leaf is then close to the LP's rounding, and good incumbents prune early.
    let unit_prices = lagrangian_unit_prices(&items, room);
    let weight = |item: &Item| -> f64 {
        match &unit_prices {
            Some(prices) => item.priced_at(prices),
            None => item
                .requests
                .iter()
                .zip(room)
                .filter(|(_, r)| **r > 0)
                .map(|(q, r)| *q as f64 / *r as f64)
                .fold(0.0, f64::max),
        }
    };
    items.sort_by(|a, b| {
        (b.worth / weight(b).max(f64::MIN_POSITIVE))
            .total_cmp(&(a.worth / weight(a).max(f64::MIN_POSITIVE)))
            .then(a.class.cmp(&b.class))
    });
    let bounds = Bounds::new(&items, room.len(), unit_prices);
    let mut search = Search {
        items: &items,
        bounds: &bounds,
        room: room.clone(),
        counts: vec![0; items.len()],
        best: vec![0; items.len()],
        best_worth: floor,
        nodes: 0,
        budget: budget.nodes_per_knapsack,
        runners_up: Vec::new(),
    };
    if let Some(surrogate) = &bounds.surrogate {
        let (counts, worth) = rounded_lp_pattern(&items, room, surrogate);
        if worth > search.best_worth {
            search.best = counts;
            search.best_worth = worth;
        }
    }
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
        let lagrangian =
            bounds.surrogate.as_ref().map_or(f64::INFINITY, |s| lagrangian_upper(&items, room, s));
        lagrangian.min(bounds.upper(&items, 0, room)).max(search.best_worth)
    };
    // Below the floor the search found nothing: no pattern.
    let worth = if pattern.is_empty() { 0.0 } else { search.best_worth };
    Knapsack { pattern, worth, upper, runners_up }
}

/// Depth-first branch and bound over item counts, most pods first.
struct Search<'a> {
    items: &'a [Item],
    bounds: &'a Bounds,
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
            if self.best.iter().any(|&k| k > 0) {
                self.runners_up.push((self.best_worth, std::mem::take(&mut self.best)));
            }
            self.best_worth = worth;
            self.best.clone_from(&self.counts);
        }
        if i == self.items.len() {
            return true;
        }
        // The margin keeps float rounding in the bound from pruning a strictly better pattern.
        if worth + self.bounds.upper(self.items, i, &self.room) * (1.0 + 1e-12) <= self.best_worth {
            return true;
        }
        let item = &self.items[i];
        for k in (0..=item.fits_in(&self.room).min(item.most)).rev() {
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

/// Upper bounds on what the items from some index on are worth in what room is left, computed once per
/// knapsack: for each resource alone, and for the resources weighed together at the knapsack LP's prices.
struct Bounds {
    /// Per resource, the items that request it, densest (worth per unit) first (stable, so the sums are
    /// the same at every node).
    orders: Vec<Vec<usize>>,
    surrogate: Option<Surrogate>,
}

/// The surrogate constraint `Σ_r p_r · used_r ≤ Σ_r p_r · room_r` every pattern satisfies for prices
/// `p ≥ 0`: one knapsack constraint instead of several, whose fractional bound is close to the LP's when
/// `p` is the LP's dual (most branch-and-bound nodes of a multi-resource knapsack are pruned by it and by
/// none of the single-resource bounds).
struct Surrogate {
    /// Per resource, the price of one unit.
    unit_prices: Vec<f64>,
    /// Per item, the price of its requests.
    weights: Vec<f64>,
    /// Items by worth per weight, densest first.
    order: Vec<usize>,
}

impl Bounds {
    fn new(items: &[Item], resources: usize, unit_prices: Option<Vec<f64>>) -> Self {
        let orders = (0..resources)
            .map(|r| {
                let mut order: Vec<usize> = (0..items.len()).filter(|&i| items[i].requests[r] > 0).collect();
                let density = |i: usize| items[i].worth / items[i].requests[r] as f64;
                order.sort_by(|&a, &b| density(b).total_cmp(&density(a)));
                order
            })
            .collect();
        let surrogate = unit_prices.map(|unit_prices| {
            let weights: Vec<f64> = items.iter().map(|i| i.priced_at(&unit_prices)).collect();
            let mut order: Vec<usize> = (0..items.len()).collect();
            let density = |i: usize| items[i].worth / weights[i].max(f64::MIN_POSITIVE);
            order.sort_by(|&a, &b| density(b).total_cmp(&density(a)));
            Surrogate { unit_prices, weights, order }
        });
        Self { orders, surrogate }
    }

    /// An upper bound on what `items[from..]` are worth in `room`: the least of the fractional knapsacks
    /// (densest items first, each capped at its count) over each resource alone and over the surrogate.
    fn upper(&self, items: &[Item], from: usize, room: &[i64]) -> f64 {
        let rest = &items[from..];
        let mut upper: f64 = rest.iter().map(|i| i.worth * i.most as f64).sum();
        for (r, &left) in room.iter().enumerate() {
            let weight = |i: usize| items[i].requests[r] as f64;
            let free: f64 = rest.iter().filter(|i| i.requests[r] == 0).map(|i| i.worth * i.most as f64).sum();
            upper = upper.min(fractional(items, from, &self.orders[r], weight, left.max(0) as f64, free));
        }
        if let Some(s) = &self.surrogate {
            let capacity: f64 =
                room.iter().zip(&s.unit_prices).map(|(left, p)| (*left).max(0) as f64 * p).sum();
            upper = upper.min(fractional(items, from, &s.order, |i| s.weights[i], capacity, 0.0));
        }
        upper
    }
}

/// `free` plus the fractional knapsack of `items[from..]` in `order` (densest first) with `weight` each in
/// `capacity`, each item capped at its count.
fn fractional(
    items: &[Item],
    from: usize,
    order: &[usize],
    weight: impl Fn(usize) -> f64,
    mut capacity: f64,
    free: f64,
) -> f64 {
    let mut worth = free;
    for &i in order.iter().filter(|&&i| i >= from) {
        let w = weight(i);
        if w <= 0.0 {
            worth += items[i].worth * items[i].most as f64;
            continue;
        }
        if capacity <= 0.0 {
            continue;
        }
        let take = (capacity / w).min(items[i].most as f64);
        worth += take * items[i].worth;
        capacity -= take * w;
    }
    worth
}

/// The knapsack LP's dual prices per unit of each resource: the Lagrangian prices `λ ≥ 0` (as a share of
/// the node) that minimise `Σ_r λ_r + Σ_c most_c · max(0, u_c − Σ_r λ_r · share_{c,r})`, from `microlp`;
/// `None` when it fails.
fn lagrangian_unit_prices(items: &[Item], room: &[i64]) -> Option<Vec<f64>> {
    if items.is_empty() {
        return None;
    }
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
    let solution = solve_lp(&problem).ok()?;
    let mut unit_prices = vec![0.0; room.len()];
    for (&r, &l) in resources.iter().zip(&lambda) {
        unit_prices[r] = non_negative(solution.var_value(l)) / room[r] as f64;
    }
    Some(unit_prices)
}

/// The knapsack LP's optimum rounded down and then filled greedily in `items` order (densest first), with
/// its worth: a pattern close to the LP's value that seeds the search. Its first leaf alone takes the items
/// in order, each as many times as fit, and so can fill one resource while stranding the others; the LP
/// mixes the items its prices value at their weight (the "tied" ones) to fill them all.
fn rounded_lp_pattern(items: &[Item], room: &[i64], surrogate: &Surrogate) -> (Vec<i64>, f64) {
    const TIE: f64 = 1e-9;
    let mut counts = vec![0i64; items.len()];
    let mut left = room.to_vec();
    let take = |i: usize, wanted: i64, counts: &mut Vec<i64>, left: &mut Vec<i64>| {
        let item = &items[i];
        let k = wanted.min(item.most - counts[i]).min(item.fits_in(left)).max(0);
        counts[i] += k;
        for (l, q) in left.iter_mut().zip(&item.requests) {
            *l -= k * q;
        }
    };
    // Items the prices value above their weight are at their count in the LP.
    for (i, (item, weight)) in items.iter().zip(&surrogate.weights).enumerate() {
        if item.worth > weight * (1.0 + TIE) {
            take(i, item.most, &mut counts, &mut left);
        }
    }
    // The tied ones share what is left as the LP over them alone shares it.
    let tied: Vec<usize> = (0..items.len())
        .filter(|&i| counts[i] == 0 && (items[i].worth - surrogate.weights[i]).abs() <= TIE * items[i].worth)
        .collect();
    if tied.len() > 1 {
        let resources: Vec<usize> = (0..room.len()).filter(|&r| room[r] > 0).collect();
        let mut problem = Problem::new(OptimizationDirection::Maximize);
        let vars: Vec<_> =
            tied.iter().map(|&i| problem.add_var(items[i].worth, (0.0, items[i].most as f64))).collect();
        for &r in &resources {
            let row: Vec<_> = tied
                .iter()
                .zip(&vars)
                .filter(|(i, _)| items[**i].requests[r] > 0)
                .map(|(&i, &x)| (x, items[i].requests[r] as f64 / room[r] as f64))
                .collect();
            if !row.is_empty() {
                problem.add_constraint(row, ComparisonOp::Le, left[r].max(0) as f64 / room[r] as f64);
            }
        }
        if let Ok(solution) = solve_lp(&problem) {
            for (&i, &x) in tied.iter().zip(&vars) {
                let k = (non_negative(solution.var_value(x)) + 1e-9).floor() as i64;
                take(i, k, &mut counts, &mut left);
            }
        }
    }
    for (i, item) in items.iter().enumerate() {
        take(i, item.most, &mut counts, &mut left);
    }
    let worth = items.iter().zip(&counts).map(|(item, k)| item.worth * *k as f64).sum();
    (counts, worth)
}

/// An upper bound on any pattern's worth from the surrogate's prices: `Σ_r λ_r + Σ_c most_c · max(0, u_c −
/// Σ_r λ_r · share_{c,r})` holds for every `λ ≥ 0`, so the solver's inaccuracy can only loosen it.
fn lagrangian_upper(items: &[Item], room: &[i64], surrogate: &Surrogate) -> f64 {
    let unlimited: f64 = items.iter().map(|i| i.worth * i.most as f64).sum();
    let mut upper: f64 = room.iter().zip(&surrogate.unit_prices).map(|(r, p)| (*r).max(0) as f64 * p).sum();
    for (item, weight) in items.iter().zip(&surrogate.weights) {
        upper += item.most as f64 * (item.worth - weight).max(0.0);
    }
    upper.min(unlimited)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{
        super::{Candidate, PodClass},
        *,
    };
    use crate::resources::Resources;

    const EXACT: Budget = Budget {
        rounds: 1,
        nodes_per_knapsack: 10_000_000,
        final_nodes_per_knapsack: 10_000_000,
        certify: true,
        columns_per_type: 1,
    };

    /// The knapsack of one node type of `cpu` millicores and `memory` bytes for `classes` of (cpu, memory,
    /// pods, worth per pod), and the classes' requests.
    fn knapsack(
        cpu: i64,
        memory: i64,
        classes: &[(i64, i64, usize, f64)],
        floor: f64,
        budget: Budget,
    ) -> (Knapsack, Vec<Vec<i64>>) {
        let cands = [Candidate { name: "t".into(), allocatable: Resources::new(cpu, memory), price: 1.0 }];
        let pod_classes: Vec<PodClass> = classes
            .iter()
            .map(|&(c, m, count, _)| PodClass { requests: Resources::new(c, m), count, candidates: vec![0] })
            .collect();
        let lp = AssignmentLp::new(&pod_classes, &cands);
        let hosts: Vec<(usize, i64)> =
            lp.pairs.iter().map(|p| (p.class, (p.fit as i64).min(lp.counts[p.class] as i64))).collect();
        let u: Vec<f64> = classes.iter().map(|c| c.3).collect();
        (best_pattern(&lp, &hosts, 0, &u, floor, budget), lp.requests_units.clone())
    }

    #[test]
    fn a_cut_short_search_still_mixes_pods_to_fill_every_resource() {
        // 10 cpu / 10 GiB; pods of 1 cpu / 0.25 GiB and of 0.25 cpu / 1 GiB, worth 1 each. Taking the first
        // kind as often as it fits fills the cpu with 10 pods; 8 of each fill both resources.
        let (cpu_heavy, memory_heavy) = ((1000, 1 << 28, 20, 1.0), (250, 1 << 30, 20, 1.0));
        let one_node = Budget { nodes_per_knapsack: 1, ..EXACT };
        let (cut, _) = knapsack(10_000, 10 << 30, &[cpu_heavy, memory_heavy], 0.0, one_node);
        assert_eq!(cut.pattern, [(0, 8), (1, 8)]);
        assert_eq!(cut.worth, 16.0);
        assert!(cut.upper >= 16.0, "{}", cut.upper);
        let (exact, _) = knapsack(10_000, 10 << 30, &[cpu_heavy, memory_heavy], 0.0, EXACT);
        assert_eq!((exact.pattern, exact.worth, exact.upper), (vec![(0, 8), (1, 8)], 16.0, 16.0));
    }

    /// The best worth over every pattern, by enumeration.
    fn brute_force(cpu: i64, memory: i64, classes: &[(i64, i64, usize, f64)]) -> f64 {
        fn go(i: usize, cpu: i64, memory: i64, classes: &[(i64, i64, usize, f64)]) -> f64 {
            let Some(&(c, m, count, worth)) = classes.get(i) else { return 0.0 };
            (0..=count as i64)
                .take_while(|k| k * c <= cpu && k * m <= memory)
                .map(|k| k as f64 * worth + go(i + 1, cpu - k * c, memory - k * m, classes))
                .fold(0.0, f64::max)
        }
        go(0, cpu, memory, classes)
    }

    proptest! {
        #[test]
        fn the_knapsack_is_exact_and_its_upper_bound_holds_when_cut_short(
            cpu in 1_000i64..16_000,
            memory_gi in 1i64..32,
            classes in prop::collection::vec((100i64..4_000, 1i64..8_192, 1usize..12, 0.01f64..1.0), 1..5),
            nodes in 1usize..50,
            floor_share in 0.5f64..1.5,
        ) {
            let memory = memory_gi << 30;
            let classes: Vec<_> = classes.into_iter().map(|(c, m, n, w)| (c, m << 20, n, w)).collect();
            let best = brute_force(cpu, memory, &classes);
            let (exact, requests) = knapsack(cpu, memory, &classes, 0.0, EXACT);
            prop_assert!((exact.worth - best).abs() <= 1e-9 * best.max(1.0), "{} vs {best}", exact.worth);
            let (cut, _) = knapsack(cpu, memory, &classes, 0.0, Budget { nodes_per_knapsack: nodes, ..EXACT });
            prop_assert!(cut.worth <= best + 1e-9 && cut.upper >= best - 1e-9, "{} / {} vs {best}", cut.worth, cut.upper);
            // Above a floor it finds the best pattern when that beats the floor, and none otherwise.
            let floor = best * floor_share;
            let (above, _) = knapsack(cpu, memory, &classes, floor, EXACT);
            if best > floor * (1.0 + 1e-9) {
                prop_assert!((above.worth - best).abs() <= 1e-9 * best.max(1.0), "{} vs {best}", above.worth);
            } else if best < floor * (1.0 - 1e-9) {
                prop_assert!(above.pattern.is_empty() && above.upper >= best, "{:?}", above.pattern);
            }
            // Whatever it returns fits one node.
            for pattern in [&exact.pattern, &cut.pattern] {
                let used = |r: usize| pattern.iter().map(|&(c, k)| k * requests[c][r]).sum::<i64>();
                prop_assert!(used(0) <= cpu && used(1) <= memory);
            }
        }
    }
}
