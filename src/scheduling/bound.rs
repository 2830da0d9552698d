//! A lower bound on the $/h needed to host a set of pods: no schedule, however clever, is cheaper.
//!
//! It is the LP relaxation of "buy nodes whose total allocatable covers the total demand": minimise
//! `Σ price_t · x_t` subject to `Σ allocatable_t,r · x_t ≥ demand_r` for every resource `r` the pods request
//! (cpu, memory, pods, ephemeral storage, GPUs, …) with fractional `x_t ≥ 0`. Relaxing integrality, bin
//! packing and every placement constraint can only lower the optimum, so it bounds any real solution. It is
//! tighter than the per-resource bound `max_r demand_r × min_t price_t / allocatable_t,r` because one node
//! type must supply cpu and memory together.
//!
//! We solve the LP's dual, `max Σ demand_r · y_r` s.t. `Σ_r allocatable_t,r · y_r ≤ price_t`, with a dense
//! simplex (one row per type, one column per requested resource; the origin is feasible since prices are
//! ≥ 0). Any dual-feasible `y` is a valid bound (weak duality), so after solving we scale `y` down until it
//! satisfies every row exactly, which keeps floating-point error from ever overstating the bound.

use std::collections::BTreeMap;

use crate::{
    cloud::{Catalog, InstanceType, Offering},
    resources::Resources,
};

use super::allocatable::{KubeletSettings, allocatable};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("failed to bound the cost: no allowed instance type offers {resource}")]
    Unhostable { resource: String },
}

/// One instance type as the bound sees it: what pods may use on it and its cheapest allowed price.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub allocatable: Resources,
    /// $/h.
    pub price: f64,
}

/// Candidates from `catalog`: types with at least one available offering that `allow` accepts (e.g. a
/// Provisioner's requirements), priced at the cheapest such offering, with allocatable after `kubelet`
/// and `vm_overhead_percent`, minus `daemon_overhead` (daemonset pods every node runs).
pub fn candidates(
    catalog: &Catalog,
    kubelet: &KubeletSettings,
    vm_overhead_percent: f64,
    daemon_overhead: &Resources,
    allow: impl Fn(&InstanceType, &Offering) -> bool,
) -> Vec<Candidate> {
    catalog
        .instance_types
        .iter()
        .filter_map(|t| {
            let offering = t.cheapest_offering(|o| allow(t, o))?;
            let room = allocatable(t, kubelet, vm_overhead_percent).saturating_sub(daemon_overhead);
            Some(Candidate { name: t.name.clone(), allocatable: room, price: offering.price })
        })
        .collect()
}

/// The LP lower bound in $/h on hosting pods whose requests sum to `demand` on `candidates`.
pub fn lower_bound(demand: &Resources, candidates: &[Candidate]) -> Result<f64, Error> {
    let prices = dual_prices(demand, candidates)?;
    Ok(prices.iter().map(|(r, y)| demand.get(r) as f64 * y).sum::<f64>().max(0.0))
}

/// The LP's dual solution: a price in $/h per unit of each resource `demand` requests, such that no
/// candidate's allocatable is worth more than its price and the demand is worth [`lower_bound`]. The
/// types worth exactly their price are the ones an optimal (fractional) fleet buys.
pub fn dual_prices(demand: &Resources, candidates: &[Candidate]) -> Result<BTreeMap<String, f64>, Error> {
    check_hostable(demand, candidates)?;
    let resources: Vec<(&str, f64)> =
        demand.iter().map(|(r, d)| (r, d as f64)).filter(|(_, d)| *d > 0.0).collect();
    if resources.is_empty() {
        return Ok(BTreeMap::new());
    }
    // Column r of row t: the share of the whole demand for r that one node of t supplies. With z_r = demand_r ·
    // y_r the objective is Σ z_r and all coefficients are of similar magnitude.
    let rows: Vec<(Vec<f64>, f64)> = candidates
        .iter()
        .map(|c| {
            (
                resources.iter().map(|(r, d)| c.allocatable.get(r).max(0) as f64 / d).collect::<Vec<_>>(),
                c.price,
            )
        })
        .filter(|(a, _)| a.iter().any(|v| *v > 0.0))
        .collect();
    let mut z = maximize_unit_objective(&rows, resources.len());
    // Restore exact dual feasibility.
    let worst = rows
        .iter()
        .map(|(a, price)| {
            let used: f64 = a.iter().zip(&z).map(|(a, z)| a * z).sum();
            if *price > 0.0 {
                used / price
            } else if used > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max);
    if worst > 1.0 {
        z.iter_mut().for_each(|v| *v /= worst);
    }
    Ok(resources.iter().zip(&z).map(|((r, d), z)| (r.to_string(), z.max(0.0) / d)).collect())
}

/// The per-resource fractional bounds `demand_r × min_t price_t / allocatable_t,r`: each is at most
/// [`lower_bound`]; they show which resource drives the cost.
pub fn per_resource_bounds(
    demand: &Resources,
    candidates: &[Candidate],
) -> Result<BTreeMap<String, f64>, Error> {
    check_hostable(demand, candidates)?;
    let mut out = BTreeMap::new();
    for (r, d) in demand.iter().filter(|(_, d)| *d > 0) {
        let cheapest = candidates
            .iter()
            .filter(|c| c.allocatable.get(r) > 0)
            .map(|c| c.price / c.allocatable.get(r) as f64)
            .fold(f64::INFINITY, f64::min);
        out.insert(r.to_string(), cheapest * d as f64);
    }
    Ok(out)
}

fn check_hostable(demand: &Resources, candidates: &[Candidate]) -> Result<(), Error> {
    match demand.iter().find(|(r, d)| *d > 0 && !candidates.iter().any(|c| c.allocatable.get(r) > 0)) {
        Some((r, _)) => Err(Error::Unhostable { resource: r.to_string() }),
        None => Ok(()),
    }
}

/// `max Σ z` subject to `a_t · z ≤ b_t` for each row `(a_t, b_t)`, `z ≥ 0`, with `b ≥ 0`: a dense tableau
/// simplex with Bland's rule (no cycling on the many degenerate rows of similar instance types).
fn maximize_unit_objective(rows: &[(Vec<f64>, f64)], columns: usize) -> Vec<f64> {
    const EPS: f64 = 1e-12;
    let m = rows.len();
    let width = columns + m + 1; // structural, slack, right-hand side
    let rhs = width - 1;
    let mut tableau = vec![0.0; m * width];
    for (i, (a, b)) in rows.iter().enumerate() {
        tableau[i * width..i * width + columns].copy_from_slice(a);
        tableau[i * width + columns + i] = 1.0;
        tableau[i * width + rhs] = b.max(0.0);
    }
    // Reduced costs of the objective row (maximisation: a positive entry can still improve).
    let mut reduced = vec![0.0; width];
    reduced[..columns].iter_mut().for_each(|c| *c = 1.0);
    let mut basis: Vec<usize> = (columns..columns + m).collect();
    // Bland's rule terminates; the cap only guards against a numerical pathology.
    for _ in 0..100 * (m + columns) {
        let Some(enter) = (0..rhs).find(|&j| reduced[j] > EPS) else { break };
        let leave = (0..m).filter(|&i| tableau[i * width + enter] > EPS).min_by(|&i, &k| {
            let ri = tableau[i * width + rhs] / tableau[i * width + enter];
            let rk = tableau[k * width + rhs] / tableau[k * width + enter];
            ri.total_cmp(&rk).then(basis[i].cmp(&basis[k]))
        });
        let Some(leave) = leave else { break }; // unbounded: cannot happen once every column has a supplier
        let pivot = tableau[leave * width + enter];
        tableau[leave * width..(leave + 1) * width].iter_mut().for_each(|v| *v /= pivot);
        let pivot_row: Vec<f64> = tableau[leave * width..(leave + 1) * width].to_vec();
        for i in (0..m).filter(|&i| i != leave) {
            let factor = tableau[i * width + enter];
            if factor.abs() > EPS {
                let row = &mut tableau[i * width..(i + 1) * width];
                row.iter_mut().zip(&pivot_row).for_each(|(v, p)| *v -= factor * p);
            }
        }
        let factor = reduced[enter];
        reduced.iter_mut().zip(&pivot_row).for_each(|(v, p)| *v -= factor * p);
        basis[leave] = enter;
    }
    let mut z = vec![0.0; columns];
    for (i, &b) in basis.iter().enumerate() {
        if b < columns {
            z[b] = tableau[i * width + rhs].max(0.0);
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cloud::CapacityType,
        resources::{NVIDIA_GPU, PODS},
    };

    const GI: i64 = 1 << 30;

    fn candidate(name: &str, cpu: i64, memory_gi: i64, price: f64) -> Candidate {
        Candidate {
            name: name.into(),
            allocatable: Resources::new(cpu, memory_gi * GI).with(PODS, 100),
            price,
        }
    }

    #[test]
    fn lp_needs_both_resources_from_the_same_nodes() {
        // A: 4 cpu, 2 GiB, $1; B: 1 cpu, 8 GiB, $1; demand 4 cpu, 8 GiB.
        // Per resource: cpu 4 × $0.25 = $1, memory 8 × $0.125 = $1. The LP must buy both:
        // 4a + b = 4, 2a + 8b = 8 → a = b = 0.8 → $1.6.
        let cands = [candidate("a", 4000, 2, 1.0), candidate("b", 1000, 8, 1.0)];
        let demand = Resources::new(4000, 8 * GI).with(PODS, 10);
        let bound = lower_bound(&demand, &cands).unwrap();
        assert!((bound - 1.6).abs() < 1e-9, "{bound}");
        let per_resource = per_resource_bounds(&demand, &cands).unwrap();
        assert!((per_resource["cpu"] - 1.0).abs() < 1e-9 && (per_resource["memory"] - 1.0).abs() < 1e-9);
        // Both types are worth exactly their price: 4000·y_cpu + 2·y_GiB = 1 = 1000·y_cpu + 8·y_GiB.
        let y = dual_prices(&demand, &cands).unwrap();
        assert!((y["cpu"] - 0.0002).abs() < 1e-12, "{y:?}");
        assert!((y["memory"] * GI as f64 - 0.1).abs() < 1e-9, "{y:?}");
        assert_eq!(y.get(PODS).copied().unwrap_or(0.0), 0.0, "pod slots are not scarce");
    }

    #[test]
    fn a_single_balanced_type_is_bought_fractionally() {
        let cands = [candidate("m", 2000, 8, 0.1), candidate("big", 64_000, 256, 10.0)];
        let demand = Resources::new(3000, 12 * GI).with(PODS, 3);
        let bound = lower_bound(&demand, &cands).unwrap();
        assert!((bound - 0.15).abs() < 1e-9, "1.5 × m: {bound}");
        // Pods can be the binding resource: 300 pods need 3 nodes' worth of pod slots.
        let bound = lower_bound(&Resources::new(3000, 12 * GI).with(PODS, 300), &cands).unwrap();
        assert!((bound - 0.3).abs() < 1e-9, "{bound}");
    }

    #[test]
    fn resources_no_type_offers_are_reported() {
        let demand = Resources::new(1000, GI).with(NVIDIA_GPU, 1);
        let err = lower_bound(&demand, &[candidate("m", 2000, 8, 0.1)]).unwrap_err();
        assert_eq!(err, Error::Unhostable { resource: NVIDIA_GPU.into() });
        assert_eq!(lower_bound(&Resources::default(), &[]).unwrap(), 0.0);
    }

    #[test]
    fn never_above_a_real_packing_on_the_bundled_catalog() {
        let catalog = Catalog::bundled();
        let on_demand =
            candidates(&catalog, &KubeletSettings::default(), 7.5, &Resources::default(), |_, o| {
                o.capacity_type == CapacityType::OnDemand
            });
        assert!(on_demand.len() > 800);
        // 12 pods of 1 cpu (the seed exercise): the bound is at least the cheapest cpu price × 12 cores.
        let demand = Resources::new(12_000, 0).with(PODS, 12);
        let bound = lower_bound(&demand, &on_demand).unwrap();
        let cpu_only = per_resource_bounds(&demand, &on_demand).unwrap()["cpu"];
        assert!(bound >= cpu_only - 1e-9, "{bound} < {cpu_only}");
        let c5_large = on_demand.iter().find(|c| c.name == "c5.large").unwrap();
        assert_eq!(c5_large.allocatable.cpu, 1930);
        // 6 × c5.large (one pod each, 1930m) costs 6 × 0.085: the bound must not exceed it.
        assert!(bound <= 6.0 * 0.085, "{bound}");
        // A filter restricting types narrows the candidates (a Provisioner's instance-type requirement).
        let only_c5 =
            candidates(&catalog, &KubeletSettings::default(), 7.5, &Resources::default(), |t, _| {
                t.name == "c5.large"
            });
        let bound_c5 = lower_bound(&demand, &only_c5).unwrap();
        let expected = 12_000.0 / 1930.0 * only_c5[0].price;
        assert!((bound_c5 - expected).abs() < 1e-9, "{bound_c5} vs {expected}");
    }

    /// With two resources the LP optimum sits on one type or a pair: enumerate them and compare.
    #[test]
    fn simplex_matches_brute_force_on_random_two_resource_instances() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let cands: Vec<Candidate> = (0..rng.random_range(1..12))
                .map(|i| Candidate {
                    name: format!("t{i}"),
                    allocatable: Resources::new(
                        rng.random_range(1..64) * 1000,
                        rng.random_range(1..256) * GI,
                    ),
                    price: rng.random_range(1..1000) as f64 / 100.0,
                })
                .collect();
            let demand = Resources::new(rng.random_range(1..500) * 1000, rng.random_range(1..2000) * GI);
            let (dc, dm) = (demand.cpu as f64, demand.memory as f64);
            let mut best = f64::INFINITY;
            for a in &cands {
                let (ac, am) = (a.allocatable.cpu as f64, a.allocatable.memory as f64);
                best = best.min(a.price * (dc / ac).max(dm / am));
                for b in &cands {
                    let (bc, bm) = (b.allocatable.cpu as f64, b.allocatable.memory as f64);
                    let det = ac * bm - bc * am;
                    if det.abs() > 1e-9 {
                        let (x, y) = ((dc * bm - bc * dm) / det, (ac * dm - dc * am) / det);
                        if x >= 0.0 && y >= 0.0 {
                            best = best.min(a.price * x + b.price * y);
                        }
                    }
                }
            }
            let bound = lower_bound(&demand, &cands).unwrap();
            assert!((bound - best).abs() <= 1e-7 * best.max(1.0), "{bound} vs {best}");
        }
    }
}
