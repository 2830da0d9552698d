//! A lower bound on the $/h needed to host a set of pods: no schedule, however clever, is cheaper.
//!
//! Pods are grouped into classes: identical requests and the same candidate instance types (types some pool
//! the pods tolerate launches, whose labels do not contradict the pods' node requirements). The bound is the
//! LP relaxation of assigning pods to nodes. With `x_{c,t}` pods of class `c` on nodes of type `t` and
//! `y_t` nodes of type `t`, both fractional:
//!
//! ```text
//! minimise Σ_t price_t · y_t  subject to
//!   Σ_t x_{c,t} = n_c                              every pod is hosted
//!   Σ_c req_{c,r} · x_{c,t} ≤ alloc_{t,r} · y_t    for every resource r (cpu, memory, pods, GPUs, …)
//!   x_{c,t} ≤ fit_{c,t} · y_t                      a node of t holds at most fit_{c,t} pods of c
//! ```
//!
//! where `x_{c,t}` exists only for candidates `t` of `c` that hold at least one pod of `c` (`fit_{c,t}` is
//! how many fit alone). Every real schedule is an integer point of this polytope, so the optimum bounds its
//! cost. What it relaxes: integrality (nodes are bought fractionally, so a pod shape only pays its share of
//! a node), how shapes mix on a node beyond these inequalities, and every placement constraint other than
//! taints and node labels (topology, zones, limits, daemonsets, existing nodes). Since some node must host
//! each pod, the bound is also at least the price of the cheapest type one pod of any class fits.
//!
//! The LP is solved on its dual with `microlp` (a maintained pure-Rust simplex; the hand-written dense
//! tableau this module used before does not scale to a row per class × type pair):
//!
//! ```text
//! maximise Σ_c n_c · u_c  subject to
//!   u_c ≤ Σ_r req_{c,r} · w_{t,r} + v_{c,t}                   every pair (c, t)
//!   Σ_r alloc_{t,r} · w_{t,r} + Σ_c fit_{c,t} · v_{c,t} ≤ price_t   every type t,     w, v ≥ 0
//! ```
//!
//! Any `w, v ≥ 0` yield a bound by weak duality once each type's row is scaled down to hold and `u_c` is the
//! minimum of its pairs' right-hand sides. We recompute exactly that from the solver's `w, v`, so solver
//! inaccuracy can only make the bound weaker, never wrong; a relative margin of [`ROUNDING_MARGIN`] covers
//! the rounding of those last sums. Types another type dominates (no dearer, at least as much of every
//! resource, a candidate for every class it is) are left out: copying the dominator's `w, v` keeps their
//! rows feasible, so the bound stays valid and the LP shrinks several-fold on real catalogs.
//!
//! The certified `u` then seeds the configuration-LP bound of [`patterns`], which also charges for whole
//! nodes (pods of 0.6 cpu on 1-cpu nodes pay a node each); the larger of the two is returned.

use std::{collections::HashMap, sync::Arc};

use microlp::{ComparisonOp, OptimizationDirection, Problem, Variable};

use crate::{
    model::{Pod, Taint},
    resources::{CPU, Resources},
};

mod patterns;

use super::{
    classes::pod_alternatives, requirements::Requirements, taints::first_untolerated,
    template::NodePoolTemplate,
};

/// Relative amount the certified bound is lowered by, for floating-point rounding in the sums that
/// certify it (each is exact to ~1e-13 relative).
pub const ROUNDING_MARGIN: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("failed to solve the lower-bound LP: {0}")]
    Solver(String),
}

/// One instance type as the bound sees it: what pods may use on it and its cheapest allowed price.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub allocatable: Resources,
    /// $/h.
    pub price: f64,
}

/// `count` pods with identical `requests` that may run on the candidates at these indices.
#[derive(Debug, Clone, PartialEq)]
pub struct PodClass {
    pub requests: Resources,
    pub count: usize,
    pub candidates: Vec<usize>,
}

/// The lower bound in $/h on hosting `classes` on nodes of `candidates`. Classes no candidate can hold a
/// pod of are left out: no schedule hosts them either.
pub fn lower_bound(classes: &[PodClass], candidates: &[Candidate]) -> Result<f64, Error> {
    let lp = AssignmentLp::new(classes, candidates);
    if lp.pairs.is_empty() {
        return Ok(0.0);
    }
    let (w, v) = lp.solve_dual()?;
    let values = lp.certify(&w, &v);
    let assignment: f64 = values.iter().zip(&lp.counts).map(|(u, n)| u * n).sum();
    let configuration = patterns::configuration_bound(&lp, &values)?;
    Ok((assignment.max(configuration) * (1.0 - ROUNDING_MARGIN)).max(lp.cheapest_single_node()))
}

/// Nodes of one pattern the configuration LP buys: `nodes` whole nodes of candidate `candidate`, each
/// holding `pods` (class index, pods of it), and a fraction of one more when `fraction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternNodes {
    pub candidate: usize,
    pub pods: Vec<(usize, i64)>,
    pub nodes: i64,
    pub fraction: bool,
}

/// A cheap fleet for `classes` on `candidates`, for a packer to round: the configuration LP's primal over
/// the patterns column generation finds in `rounds` master solves (starting from per-class values `start`,
/// e.g. each class's price per pod on nodes of its own, and with the patterns `seeds` ((class, pods) by
/// class, on the cheapest candidate that holds them) in the master from the start), most bought first.
/// Deterministic. When the LP's optimum is close to the bound, so is this fleet rounded up: at most one
/// node more per pattern, and there are no more fractional patterns than classes.
pub fn pattern_nodes(
    classes: &[PodClass],
    candidates: &[Candidate],
    start: &[f64],
    seeds: &[Vec<(usize, i64)>],
    rounds: usize,
) -> Result<Vec<PatternNodes>, Error> {
    let lp = AssignmentLp::new(classes, candidates);
    if lp.pairs.is_empty() {
        return Ok(Vec::new());
    }
    let budget = patterns::Budget {
        rounds,
        nodes_per_knapsack: PACKER_NODES_PER_KNAPSACK,
        final_nodes_per_knapsack: PACKER_NODES_PER_KNAPSACK,
        certify: false,
        columns_per_type: PACKER_COLUMNS_PER_TYPE,
    };
    Ok(patterns::bought_patterns(&lp, start, seeds, budget)?
        .into_iter()
        .map(|((candidate, pods), nodes, fraction)| PatternNodes { candidate, pods, nodes, fraction })
        .collect())
}

/// Knapsack nodes per type and round for [`pattern_nodes`]: it runs inside `solve`, and a pattern
/// that is good rather than best still improves the fleet.
const PACKER_NODES_PER_KNAPSACK: usize = 200;
/// Patterns per type and round for [`pattern_nodes`].
const PACKER_COLUMNS_PER_TYPE: usize = 4;

/// [`lower_bound`] for hosting `pods` on new nodes of `pools` (see [`PoolCandidates`]).
pub fn lower_bound_on_pools(pods: &[Arc<Pod>], pools: &[NodePoolTemplate]) -> Result<f64, Error> {
    let candidates = PoolCandidates::new(pools);
    lower_bound(&candidates.classes(pods), &candidates.candidates)
}

/// The candidates of a set of pools, as `solve` would launch them: each pool type at its cheapest
/// offering the pool's zone and capacity-type requirements allow, with the allocatable the pool gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolCandidates {
    pub candidates: Vec<Candidate>,
    /// Per candidate, the taints of its pool.
    taints: Vec<Vec<Taint>>,
    /// Per candidate, what its nodes are known to carry: the pool's requirements and the type's labels.
    nodes: Vec<Requirements>,
}

impl PoolCandidates {
    pub fn new(pools: &[NodePoolTemplate]) -> Self {
        let mut out = Self { candidates: Vec::new(), taints: Vec::new(), nodes: Vec::new() };
        for pool in pools {
            for t in &pool.instance_types {
                let it = &t.instance_type;
                let offering =
                    it.cheapest_offering(|o| pool.requirements.allows_offering_at(&o.zone, o.capacity_type));
                let Some(offering) = offering else { continue };
                out.candidates.push(Candidate {
                    name: it.name.clone(),
                    allocatable: t.allocatable.clone(),
                    price: offering.price,
                });
                out.taints.push(pool.taints.clone());
                out.nodes.push(pool.requirements.intersect(&Requirements::from_labels(&it.labels)));
            }
        }
        out
    }

    /// `pods` as classes over these candidates: a candidate is allowed to a pod that tolerates its pool's
    /// taints and whose node requirements its labels and pool requirements do not contradict. Pods with
    /// invalid requirements are left out (nothing hosts them).
    pub fn classes(&self, pods: &[Arc<Pod>]) -> Vec<PodClass> {
        // Pods that see the same candidates: same requests, tolerations and node requirements.
        let mut shapes: Vec<(&Pod, usize)> = Vec::new();
        for pod in pods {
            let same = |rep: &Pod| {
                rep.requests == pod.requests
                    && rep.tolerations == pod.tolerations
                    && rep.node_selector == pod.node_selector
                    && rep.affinity.node.required == pod.affinity.node.required
            };
            match shapes.iter_mut().find(|(rep, _)| same(rep)) {
                Some((_, count)) => *count += 1,
                None => shapes.push((pod, 1)),
            }
        }
        let mut classes: Vec<PodClass> = Vec::new();
        let mut index: HashMap<(Resources, Vec<usize>), usize> = HashMap::new();
        for (pod, count) in shapes {
            let Ok(alternatives) = pod_alternatives(pod, &[]) else { continue };
            let allowed: Vec<usize> = (0..self.candidates.len())
                .filter(|&i| {
                    first_untolerated(&pod.tolerations, &self.taints[i], false).is_none()
                        && alternatives.iter().any(|alt| !contradicts(alt, &self.nodes[i]))
                })
                .collect();
            let key = (pod.requests.clone(), allowed);
            match index.get(&key) {
                Some(&c) => classes[c].count += count,
                None => {
                    index.insert(key.clone(), classes.len());
                    classes.push(PodClass { requests: key.0, count, candidates: key.1 });
                }
            }
        }
        classes
    }
}

/// True when a pod requirement certainly excludes the node: a key both define with no value in common.
/// Keys only the pod names are assumed satisfiable (that can only lower the bound).
fn contradicts(pod: &Requirements, node: &Requirements) -> bool {
    pod.iter().any(|(k, want)| node.get(k).is_some_and(|have| want.intersect(have).is_unsatisfiable()))
}

/// One class that can be hosted, one candidate that can hold its pods, how many fit alone.
struct Pair {
    class: usize,
    ty: usize,
    fit: f64,
}

/// The LP's data in solver units: each resource divided by its largest allocatable, so coefficients are of
/// similar magnitude whatever the unit (millicores, bytes, pod slots).
struct AssignmentLp {
    /// Pods per class.
    counts: Vec<f64>,
    /// Per class, its request of each resource.
    requests: Vec<Vec<f64>>,
    /// Per candidate, its allocatable of each resource.
    allocatable: Vec<Vec<f64>>,
    prices: Vec<f64>,
    /// Pairs of non-dominated candidates, by class then candidate.
    pairs: Vec<Pair>,
    /// `requests` and `allocatable` in their own units (exact, for deciding what fits one node).
    requests_units: Vec<Vec<i64>>,
    allocatable_units: Vec<Vec<i64>>,
}

impl AssignmentLp {
    fn new(classes: &[PodClass], candidates: &[Candidate]) -> Self {
        let mut resources: Vec<&str> = Vec::new();
        for class in classes.iter().filter(|c| c.count > 0) {
            for (r, amount) in class.requests.iter() {
                if amount > 0 && !resources.contains(&r) {
                    resources.push(r);
                }
            }
        }
        if resources.is_empty() {
            // Pods that request nothing still need a node: count them against cpu (they request none).
            resources.push(CPU);
        }
        let scale: Vec<f64> = resources
            .iter()
            .map(|r| candidates.iter().map(|c| c.allocatable.get(r)).max().unwrap_or(0).max(1) as f64)
            .collect();
        let fits = |class: &PodClass, cand: &Candidate| -> i64 {
            resources
                .iter()
                .map(|r| (class.requests.get(r).max(0), cand.allocatable.get(r).max(0)))
                .filter(|(need, _)| *need > 0)
                .map(|(need, room)| room / need)
                .min()
                .unwrap_or(i64::MAX)
        };
        let mut pairs: Vec<Pair> = Vec::new();
        for (ci, class) in classes.iter().enumerate().filter(|(_, c)| c.count > 0) {
            let mut tys: Vec<usize> =
                class.candidates.iter().copied().filter(|&t| t < candidates.len()).collect();
            tys.sort_unstable();
            tys.dedup();
            for ty in tys {
                let fit = fits(class, &candidates[ty]);
                if fit >= 1 && candidates[ty].price.is_finite() {
                    // A pod requesting nothing fits any number of times; pod slots cap it in practice.
                    pairs.push(Pair { class: ci, ty, fit: fit.min(1 << 40) as f64 });
                }
            }
        }
        let allocatable: Vec<Vec<f64>> = candidates
            .iter()
            .map(|c| {
                resources.iter().zip(&scale).map(|(r, s)| c.allocatable.get(r).max(0) as f64 / s).collect()
            })
            .collect();
        let prices: Vec<f64> = candidates.iter().map(|c| c.price.max(0.0)).collect();
        let dominated = dominated_types(&pairs, &allocatable, &prices, candidates.len());
        pairs.retain(|p| !dominated[p.ty]);
        Self {
            counts: classes.iter().map(|c| c.count as f64).collect(),
            requests: classes
                .iter()
                .map(|c| {
                    resources.iter().zip(&scale).map(|(r, s)| c.requests.get(r).max(0) as f64 / s).collect()
                })
                .collect(),
            allocatable,
            prices,
            pairs,
            requests_units: classes
                .iter()
                .map(|c| resources.iter().map(|r| c.requests.get(r).max(0)).collect())
                .collect(),
            allocatable_units: candidates
                .iter()
                .map(|c| resources.iter().map(|r| c.allocatable.get(r).max(0)).collect())
                .collect(),
        }
    }

    /// The dual's `w` (per candidate, per resource) and `v` (per pair), as the solver found them.
    fn solve_dual(&self) -> Result<(Vec<Vec<f64>>, Vec<f64>), Error> {
        let resources = self.requests.first().map_or(0, Vec::len);
        let mut problem = Problem::new(OptimizationDirection::Maximize);
        let mut u: Vec<Option<Variable>> = vec![None; self.counts.len()];
        let mut w: Vec<Option<Vec<Variable>>> = vec![None; self.prices.len()];
        for p in &self.pairs {
            u[p.class].get_or_insert_with(|| problem.add_var(self.counts[p.class], (0.0, f64::INFINITY)));
            w[p.ty].get_or_insert_with(|| {
                (0..resources).map(|_| problem.add_var(0.0, (0.0, f64::INFINITY))).collect()
            });
        }
        let v: Vec<Variable> =
            self.pairs.iter().map(|_| problem.add_var(0.0, (0.0, f64::INFINITY))).collect();
        for (p, &vp) in self.pairs.iter().zip(&v) {
            let mut row = vec![(u[p.class].expect("set above"), 1.0), (vp, -1.0)];
            let wt = w[p.ty].as_ref().expect("set above");
            row.extend(
                wt.iter().zip(&self.requests[p.class]).filter(|(_, q)| **q > 0.0).map(|(&x, q)| (x, -q)),
            );
            problem.add_constraint(row, ComparisonOp::Le, 0.0);
        }
        for (ty, wt) in w.iter().enumerate() {
            let Some(wt) = wt else { continue };
            let mut row: Vec<(Variable, f64)> =
                wt.iter().zip(&self.allocatable[ty]).map(|(&x, a)| (x, *a)).collect();
            row.extend(self.pairs.iter().zip(&v).filter(|(p, _)| p.ty == ty).map(|(p, &vp)| (vp, p.fit)));
            problem.add_constraint(row, ComparisonOp::Le, self.prices[ty]);
        }
        let solution = solve_lp(&problem)?;
        let w_values = w
            .iter()
            .map(|wt| {
                wt.as_ref().map_or_else(Vec::new, |wt| wt.iter().map(|&x| solution.var_value(x)).collect())
            })
            .collect();
        Ok((w_values, v.iter().map(|&x| solution.var_value(x)).collect()))
    }

    /// Per class, the `u_c` the dual values `w, v` prove: each type's row scaled down until it holds, `u_c`
    /// the least a pod of `c` is worth on any of its candidates (0 for classes without one).
    fn certify(&self, w: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
        let mut worth = vec![0.0f64; self.prices.len()];
        for (ty, wt) in w.iter().enumerate() {
            worth[ty] = wt.iter().zip(&self.allocatable[ty]).map(|(x, a)| non_negative(*x) * a).sum();
        }
        for (p, x) in self.pairs.iter().zip(v) {
            worth[p.ty] += non_negative(*x) * p.fit;
        }
        let scale: Vec<f64> = worth
            .iter()
            .zip(&self.prices)
            .map(|(worth, price)| if *worth > *price { price / worth } else { 1.0 })
            .collect();
        let mut value = vec![f64::INFINITY; self.counts.len()];
        for (p, x) in self.pairs.iter().zip(v) {
            let wt = &w[p.ty];
            let on_type: f64 =
                wt.iter().zip(&self.requests[p.class]).map(|(x, q)| non_negative(*x) * q).sum::<f64>()
                    + non_negative(*x);
            value[p.class] = value[p.class].min(on_type * scale[p.ty]);
        }
        value.into_iter().map(|u| if u.is_finite() { u } else { 0.0 }).collect()
    }

    /// The most, over classes, of the cheapest candidate one pod of the class fits.
    fn cheapest_single_node(&self) -> f64 {
        let mut cheapest = vec![f64::INFINITY; self.counts.len()];
        for p in &self.pairs {
            cheapest[p.class] = cheapest[p.class].min(self.prices[p.ty]);
        }
        cheapest.into_iter().filter(|c| c.is_finite()).fold(0.0, f64::max)
    }
}

/// `problem`'s optimum, as a bound error when there is none.
fn solve_lp(problem: &Problem) -> Result<microlp::Solution, Error> {
    problem
        .solve()
        .map_err(|e| Error::Solver(e.to_string()))?
        .into_solution()
        .map_err(|_| Error::Solver("interrupted".into()))
}

/// A solver value as a usable non-negative number (NaN and infinities count as 0).
fn non_negative(x: f64) -> f64 {
    if x.is_finite() { x.max(0.0) } else { 0.0 }
}

/// Candidates another candidate dominates: no dearer, at least as much of every resource, and paired with
/// every class the dominated one is (so it fits each at least as many times). Among identical ones the
/// first is kept.
fn dominated_types(pairs: &[Pair], allocatable: &[Vec<f64>], prices: &[f64], types: usize) -> Vec<bool> {
    let mut classes_of: Vec<Vec<usize>> = vec![Vec::new(); types];
    for p in pairs {
        classes_of[p.ty].push(p.class);
    }
    let used: Vec<usize> = (0..types).filter(|&t| !classes_of[t].is_empty()).collect();
    let mut dominated = vec![false; types];
    for &t in &used {
        dominated[t] = used.iter().any(|&d| {
            if d == t || dominated[d] || prices[d] > prices[t] {
                return false;
            }
            let covers = allocatable[d].iter().zip(&allocatable[t]).all(|(a, b)| a >= b);
            let same = prices[d] == prices[t] && allocatable[d] == allocatable[t];
            covers && (!same || d < t) && classes_of[t].iter().all(|c| classes_of[d].contains(c))
        });
    }
    dominated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cloud::{CapacityType, Catalog},
        resources::{NVIDIA_GPU, PODS},
    };

    const GI: i64 = 1 << 30;

    fn candidate(name: &str, cpu: i64, memory_gi: i64, price: f64) -> Candidate {
        Candidate {
            name: name.into(),
            allocatable: Resources::new(cpu, memory_gi * GI).with(PODS, 110),
            price,
        }
    }

    fn class(cpu: i64, memory_gi: i64, count: usize, candidates: &[Candidate]) -> PodClass {
        PodClass {
            requests: Resources::new(cpu, memory_gi * GI).with(PODS, 1),
            count,
            candidates: (0..candidates.len()).collect(),
        }
    }

    fn assert_close(got: f64, want: f64) {
        assert!((got - want).abs() <= 1e-6 * want.max(1.0), "{got} vs {want}");
    }

    #[test]
    fn identical_pods_filling_whole_nodes_are_bounded_exactly() {
        // 4 cpu / 16 GiB nodes at $0.2 hold 4 pods of 1 cpu / 4 GiB: 8 pods need exactly 2 nodes.
        let cands = [candidate("m.xlarge", 4000, 16, 0.2), candidate("m.2xlarge", 8000, 32, 0.4)];
        let bound = lower_bound(&[class(1000, 4, 8, &cands)], &cands).unwrap();
        assert_close(bound, 0.4);
        assert!(bound <= 0.4, "never above the optimum, even by rounding");
    }

    #[test]
    fn types_no_pod_fits_buy_nothing() {
        // A nano type sells cpu for almost nothing but has no room for a pod's memory. The aggregate LP
        // ("allocatable covers total demand") bought cpu from it and memory from a memory-optimised type:
        // 4 × nano ($0.016) + 0.5 × r.large = $0.016 + $0.063 = $0.079. No packing can use that fleet.
        let cands = [
            candidate("nano", 2000, 0, 0.004),
            candidate("r.large", 2000, 16, 0.126),
            candidate("m.large", 2000, 8, 0.096),
        ];
        // 8 pods of 1 cpu / 1 GiB: on m.large 2 per node (cpu-bound) → 4 × $0.096.
        let bound = lower_bound(&[class(1000, 1, 8, &cands)], &cands).unwrap();
        assert_close(bound, 0.384);
    }

    #[test]
    fn pods_that_fit_once_per_node_pay_a_whole_node() {
        // 1.5 cpu pods on 2 cpu nodes: one per node, although cpu alone would allow 1.33.
        let cands = [candidate("c.large", 2000, 4, 0.085)];
        let bound = lower_bound(&[class(1500, 1, 3, &cands)], &cands).unwrap();
        assert_close(bound, 3.0 * 0.085);
    }

    #[test]
    fn nodes_are_bought_whole_even_when_pods_fill_them_fractionally() {
        // 0.6 cpu pods on 1 cpu nodes: the assignment LP pays 0.6 node per pod, but two never share one.
        let cands = [candidate("t.small", 1000, 4, 0.02)];
        let bound = lower_bound(&[class(600, 1, 10, &cands)], &cands).unwrap();
        assert_close(bound, 10.0 * 0.02);
        // Mixed with 0.4 cpu pods: a node holds at most one 0.6 and one 0.4, or two 0.4. Patterns are
        // still bought fractionally, so 5 × (0.6 + 0.4) + 1.5 × (0.4 + 0.4) = 6.5 nodes (7 in truth), where
        // cpu alone says 6.2.
        let bound = lower_bound(&[class(600, 1, 5, &cands), class(400, 1, 8, &cands)], &cands).unwrap();
        assert_close(bound, 6.5 * 0.02);
    }

    #[test]
    fn an_assignment_bound_that_is_already_integral_is_unchanged() {
        // 1 cpu pods on 4 cpu nodes: the assignment LP's 1/4 node per pod is what whole nodes cost too.
        let cands = [candidate("m.xlarge", 4000, 16, 0.2), candidate("c.xlarge", 4000, 8, 0.17)];
        let lp = AssignmentLp::new(&[class(1000, 2, 12, &cands)], &cands);
        let (w, v) = lp.solve_dual().unwrap();
        let values = lp.certify(&w, &v);
        let assignment: f64 = values.iter().zip(&lp.counts).map(|(u, n)| u * n).sum();
        assert_close(assignment, 3.0 * 0.17);
        assert_close(patterns::configuration_bound(&lp, &values).unwrap(), assignment);
    }

    #[test]
    fn one_pod_needs_a_whole_node_of_the_cheapest_type_it_fits() {
        let cands = [candidate("m.large", 2000, 8, 0.1), candidate("m.xlarge", 4000, 16, 0.2)];
        let bound = lower_bound(&[class(100, 1, 1, &cands)], &cands).unwrap();
        assert_close(bound, 0.1);
    }

    #[test]
    fn classes_only_use_their_candidates() {
        let mut gpu = candidate("g.xlarge", 4000, 16, 0.5);
        gpu.allocatable.set(NVIDIA_GPU, 1);
        let cands = [candidate("m.xlarge", 4000, 16, 0.2), gpu];
        let plain = PodClass { candidates: vec![0], ..class(1000, 1, 4, &cands) };
        let mut gpu_pods = class(1000, 1, 2, &cands);
        gpu_pods.requests.set(NVIDIA_GPU, 1);
        let bound = lower_bound(&[plain.clone(), gpu_pods], &cands).unwrap();
        // 2 GPU nodes (one GPU each) + 1 plain node.
        assert_close(bound, 2.0 * 0.5 + 0.2);
        // Classes no candidate can hold are left out.
        let huge = PodClass { requests: Resources::new(64_000, GI).with(PODS, 1), ..plain.clone() };
        assert_close(lower_bound(&[plain, huge], &cands).unwrap(), 0.2);
        assert_eq!(lower_bound(&[], &cands).unwrap(), 0.0);
    }

    #[test]
    fn dominated_types_change_nothing() {
        let cands = [
            candidate("m5.large", 2000, 8, 0.096),
            candidate("m4.large", 2000, 8, 0.1),
            candidate("t.small", 1000, 4, 0.05),
            candidate("m5.large-copy", 2000, 8, 0.096),
        ];
        let classes = [class(500, 1, 7, &cands), class(250, 3, 5, &cands)];
        let all = lower_bound(&classes, &cands).unwrap();
        let undominated = lower_bound(
            &classes.iter().map(|c| PodClass { candidates: vec![0, 2], ..c.clone() }).collect::<Vec<_>>(),
            &cands,
        )
        .unwrap();
        assert_close(all, undominated);
    }

    #[test]
    fn whole_patterns_mix_classes_first_fit_keeps_apart() {
        // 10 pods of 4 cpu and 20 of 3 cpu on 10-cpu nodes at $0.2. First fit, biggest first, buys 5 nodes
        // of 2 × 4 cpu and 7 of up to 3 × 3 cpu = $2.40; 4 + 3 + 3 fills a node, so 10 nodes = $2.00.
        let cands = [candidate("t.x", 10_000, 64, 0.2)];
        let classes = [class(4000, 0, 10, &cands), class(3000, 0, 20, &cands)];
        let own = [0.2 / 2.0, 0.2 / 3.0];
        let fleet = pattern_nodes(&classes, &cands, &own, &[], 8).unwrap();
        assert_eq!(
            fleet,
            [PatternNodes { candidate: 0, pods: vec![(0, 1), (1, 2)], nodes: 10, fraction: false }]
        );
        let cost: f64 = fleet.iter().map(|p| p.nodes as f64 * cands[p.candidate].price).sum();
        assert_close(cost, 2.0);
        assert_eq!(fleet, pattern_nodes(&classes, &cands, &own, &[], 8).unwrap(), "deterministic");
    }

    #[test]
    fn bounded_below_a_real_packing_on_the_bundled_catalog() {
        let catalog = Catalog::bundled();
        let kubelet = super::super::allocatable::KubeletSettings::default();
        let cands: Vec<Candidate> = catalog
            .instance_types
            .iter()
            .filter_map(|t| {
                let o = t.cheapest_offering(|o| o.capacity_type == CapacityType::OnDemand)?;
                Some(Candidate {
                    name: t.name.clone(),
                    allocatable: super::super::allocatable::allocatable(t, &kubelet, 7.5),
                    price: o.price,
                })
            })
            .collect();
        assert!(cands.len() > 800);
        // 12 pods of 1 cpu: 12 × c5.large (one pod each: 1930m allocatable) is a real packing.
        let c5_large = cands.iter().find(|c| c.name == "c5.large").unwrap();
        assert_eq!(c5_large.allocatable.cpu, 1930);
        let twelve = PodClass {
            requests: Resources::new(1000, 0).with(PODS, 1),
            count: 12,
            candidates: (0..cands.len()).collect(),
        };
        let bound = lower_bound(std::slice::from_ref(&twelve), &cands).unwrap();
        assert!(bound > 0.0 && bound <= 12.0 * c5_large.price, "{bound}");
        // Restricted to c5.large alone it is exact: one pod per node.
        let only_c5 =
            PodClass { candidates: vec![cands.iter().position(|c| c.name == "c5.large").unwrap()], ..twelve };
        assert_close(lower_bound(&[only_c5], &cands).unwrap(), 12.0 * c5_large.price);
    }
}
