//! Kubernetes resource quantities, parsed once at the edge into integer units.
//!
//! CPU is kept in millicores, memory, ephemeral storage and hugepages in bytes, and pods and extended resources
//! (`nvidia.com/gpu`, `aws.amazon.com/neuron`, …) in whole units. Rounding follows the API server: CPU uses
//! `MilliValue()` and everything else `Value()`, both of which round up.

use std::{collections::BTreeMap, fmt, ops};

use serde::{Deserialize, Serialize};

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";
pub const AMD_GPU: &str = "amd.com/gpu";
pub const AWS_NEURON: &str = "aws.amazon.com/neuron";
pub const AWS_NEURON_CORE: &str = "aws.amazon.com/neuroncore";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid quantity {value:?} for {field}: {reason}")]
    InvalidQuantity { field: String, value: String, reason: &'static str },
    #[error("negative quantity {value:?} for {field}: requests and capacities must be >= 0")]
    Negative { field: String, value: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// === Quantity parsing ===

/// An exactly parsed quantity: `sign * digits * 10^exp10 * 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    digits: u128,
    exp10: i32,
    exp2: u32,
}

/// Parses a Kubernetes quantity with the API server's grammar:
/// `<sign>?<digits>(.<digits>)?(<binarySI>|<decimalSI>|[eE]<sign>?<digits>)`.
fn parse_exact(s: &str) -> Result<Parsed, &'static str> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty quantity");
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if bytes[0] == b'+' || bytes[0] == b'-' {
        negative = bytes[0] == b'-';
        i = 1;
    }
    let mut digits: u128 = 0;
    let mut exp10: i32 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                seen_digit = true;
                // Keep the significant digits exact; past u128 precision, drop trailing digits (they only
                // matter below the API server's own precision).
                if digits < u128::MAX / 100 {
                    digits = digits * 10 + u128::from(bytes[i] - b'0');
                    if seen_dot {
                        exp10 -= 1;
                    }
                } else if !seen_dot {
                    exp10 += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return Err("expected a number");
    }
    let suffix = &s[i..];
    let exp2 = match suffix {
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        "Ti" => 40,
        "Pi" => 50,
        "Ei" => 60,
        _ => 0,
    };
    if exp2 == 0 {
        exp10 += match suffix {
            "" => 0,
            "n" => -9,
            "u" => -6,
            "m" => -3,
            "k" => 3,
            "M" => 6,
            "G" => 9,
            "T" => 12,
            "P" => 15,
            "E" => 18,
            s if s.starts_with(['e', 'E']) => {
                let exp: i32 = s[1..].parse().map_err(|_| "unknown suffix")?;
                if exp.abs() > 1000 {
                    return Err("exponent out of range");
                }
                exp
            }
            _ => return Err("unknown suffix"),
        };
    }
    Ok(Parsed { negative, digits, exp10, exp2 })
}

impl Parsed {
    /// `ceil(value * scale)` as an integer, or an error when it does not fit in i64.
    fn ceil_scaled(self, scale: i64) -> Result<i64, &'static str> {
        const OVERFLOW: &str = "value out of range";
        if self.digits == 0 {
            return Ok(0);
        }
        let mut num = i128::try_from(self.digits).map_err(|_| OVERFLOW)?;
        num = num.checked_mul(i128::from(scale)).ok_or(OVERFLOW)?;
        num = num.checked_mul(1i128.checked_shl(self.exp2).ok_or(OVERFLOW)?).ok_or(OVERFLOW)?;
        let mut den: i128 = 1;
        if self.exp10 >= 0 {
            let p = 10i128.checked_pow(self.exp10 as u32).ok_or(OVERFLOW)?;
            num = num.checked_mul(p).ok_or(OVERFLOW)?;
        } else {
            // A denominator past 10^38 makes any value we keep (< 10^36 digits) round to 0 or ±1.
            match 10i128.checked_pow((-self.exp10) as u32) {
                Some(p) => den = p,
                None => return Ok(if self.negative { 0 } else { 1 }),
            }
        }
        let q = num / den;
        let r = num % den;
        let v = if self.negative {
            -q // ceil of a negative value truncates toward zero
        } else if r > 0 {
            q + 1
        } else {
            q
        };
        i64::try_from(v).map_err(|_| OVERFLOW)
    }
}

fn invalid(field: &str, value: &str, reason: &'static str) -> Error {
    Error::InvalidQuantity { field: field.to_string(), value: value.to_string(), reason }
}

/// Parses `value` and returns `ceil(value * 1000)`: CPU in millicores.
pub fn parse_milli(field: &str, value: &str) -> Result<i64> {
    parse_exact(value).and_then(|p| p.ceil_scaled(1000)).map_err(|r| invalid(field, value, r))
}

/// Parses `value` and returns `ceil(value)`: bytes, pods, GPUs.
pub fn parse_units(field: &str, value: &str) -> Result<i64> {
    parse_exact(value).and_then(|p| p.ceil_scaled(1)).map_err(|r| invalid(field, value, r))
}

/// Parses a quantity for the named resource into its canonical unit (millicores for `cpu`, else units).
pub fn parse_resource(resource: &str, field: &str, value: &str) -> Result<i64> {
    let v = if resource == CPU { parse_milli(field, value)? } else { parse_units(field, value)? };
    if v < 0 {
        return Err(Error::Negative { field: field.to_string(), value: value.to_string() });
    }
    Ok(v)
}

// === Resources ===

/// A set of resource amounts in canonical integer units. Missing means zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// Millicores.
    pub cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Bytes.
    pub ephemeral_storage: i64,
    pub pods: i64,
    /// Everything else (GPUs, neuron devices, hugepages, pod ENIs…), by resource name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extended: BTreeMap<String, i64>,
}

impl Resources {
    pub fn new(cpu_millis: i64, memory_bytes: i64) -> Self {
        Self { cpu: cpu_millis, memory: memory_bytes, ..Self::default() }
    }

    pub fn with(mut self, name: &str, amount: i64) -> Self {
        self.set(name, amount);
        self
    }

    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.pods,
            _ => self.extended.get(name).copied().unwrap_or(0),
        }
    }

    pub fn set(&mut self, name: &str, amount: i64) {
        match name {
            CPU => self.cpu = amount,
            MEMORY => self.memory = amount,
            EPHEMERAL_STORAGE => self.ephemeral_storage = amount,
            PODS => self.pods = amount,
            _ if amount == 0 => {
                self.extended.remove(name);
            }
            _ => {
                self.extended.insert(name.to_string(), amount);
            }
        }
    }

    /// Parses a Kubernetes `ResourceList` (name → quantity string). `field` names where it came from,
    /// e.g. `spec.containers[0].resources.requests`, for error messages.
    pub fn parse<'a>(field: &str, list: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut out = Self::default();
        for (name, value) in list {
            let amount = parse_resource(name, &format!("{field}.{name}"), value)?;
            out.set(name, amount);
        }
        Ok(out)
    }

    /// Names and amounts of every non-zero resource, well-known ones first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        [
            (CPU, self.cpu),
            (MEMORY, self.memory),
            (EPHEMERAL_STORAGE, self.ephemeral_storage),
            (PODS, self.pods),
        ]
        .into_iter()
        .chain(self.extended.iter().map(|(k, v)| (k.as_str(), *v)))
        .filter(|(_, v)| *v != 0)
    }

    pub fn is_zero(&self) -> bool {
        self.iter().next().is_none()
    }

    /// True when every amount in `self` is at most the same amount in `available`.
    pub fn fits_in(&self, available: &Self) -> bool {
        self.cpu <= available.cpu
            && self.memory <= available.memory
            && self.ephemeral_storage <= available.ephemeral_storage
            && self.pods <= available.pods
            && self.extended.iter().all(|(k, v)| *v <= available.extended.get(k).copied().unwrap_or(0))
    }

    /// The first resource of `self` that exceeds `available`, if any (for "why not" messages).
    pub fn first_exceeding(&self, available: &Self) -> Option<(&str, i64, i64)> {
        self.iter().map(|(k, v)| (k, v, available.get(k))).find(|(_, v, a)| v > a)
    }

    /// Element-wise maximum.
    pub fn max_each(&self, other: &Self) -> Self {
        let mut out = Self {
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
            ephemeral_storage: self.ephemeral_storage.max(other.ephemeral_storage),
            pods: self.pods.max(other.pods),
            extended: self.extended.clone(),
        };
        for (k, v) in &other.extended {
            let e = out.extended.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
        out
    }

    /// Subtraction that stops at zero for every resource.
    pub fn saturating_sub(&self, other: &Self) -> Self {
        let mut out = self.clone() - other;
        out.cpu = out.cpu.max(0);
        out.memory = out.memory.max(0);
        out.ephemeral_storage = out.ephemeral_storage.max(0);
        out.pods = out.pods.max(0);
        out.extended.retain(|_, v| *v > 0);
        out
    }

    /// Renders as a Kubernetes `ResourceList` with canonical quantity strings (`1500m`, `512Mi`).
    pub fn to_quantity_map(&self) -> BTreeMap<String, String> {
        self.iter().map(|(k, v)| (k.to_string(), format_quantity(k, v))).collect()
    }
}

impl ops::AddAssign<&Resources> for Resources {
    fn add_assign(&mut self, rhs: &Resources) {
        self.cpu += rhs.cpu;
        self.memory += rhs.memory;
        self.ephemeral_storage += rhs.ephemeral_storage;
        self.pods += rhs.pods;
        for (k, v) in &rhs.extended {
            *self.extended.entry(k.clone()).or_insert(0) += v;
        }
    }
}

impl ops::SubAssign<&Resources> for Resources {
    fn sub_assign(&mut self, rhs: &Resources) {
        self.cpu -= rhs.cpu;
        self.memory -= rhs.memory;
        self.ephemeral_storage -= rhs.ephemeral_storage;
        self.pods -= rhs.pods;
        for (k, v) in &rhs.extended {
            *self.extended.entry(k.clone()).or_insert(0) -= v;
        }
        self.extended.retain(|_, v| *v != 0);
    }
}

impl ops::Add<&Resources> for Resources {
    type Output = Resources;
    fn add(mut self, rhs: &Resources) -> Resources {
        self += rhs;
        self
    }
}

impl ops::Sub<&Resources> for Resources {
    type Output = Resources;
    fn sub(mut self, rhs: &Resources) -> Resources {
        self -= rhs;
        self
    }
}

impl<'a> std::iter::Sum<&'a Resources> for Resources {
    fn sum<I: Iterator<Item = &'a Resources>>(iter: I) -> Self {
        iter.fold(Resources::default(), |acc, r| acc + r)
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={}", format_quantity(k, v))?;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Formats an amount in canonical units as a short Kubernetes quantity.
pub fn format_quantity(resource: &str, amount: i64) -> String {
    if resource == CPU {
        return if amount % 1000 == 0 { (amount / 1000).to_string() } else { format!("{amount}m") };
    }
    if matches!(resource, MEMORY | EPHEMERAL_STORAGE) || resource.starts_with("hugepages-") {
        // Prefer the largest exact unit, binary before decimal at the same scale.
        let units: [(&str, i64); 7] = [
            ("Ti", 1 << 40),
            ("T", 1_000_000_000_000),
            ("Gi", 1 << 30),
            ("G", 1_000_000_000),
            ("Mi", 1 << 20),
            ("M", 1_000_000),
            ("Ki", 1 << 10),
        ];
        if let Some((suffix, unit)) = units.iter().find(|(_, unit)| amount != 0 && amount % unit == 0) {
            return format!("{}{suffix}", amount / unit);
        }
    }
    amount.to_string()
}

/// Container-level inputs to the pod request formula, in canonical units.
#[derive(Debug, Clone, Default)]
pub struct ContainerRequests {
    pub requests: Resources,
    /// An init container with `restartPolicy: Always` (a native sidecar) runs alongside the app containers.
    pub sidecar: bool,
}

/// What the scheduler reserves for a pod, exactly as Kubernetes' `PodRequests`:
/// `max(sum(containers) + sum(sidecars), max over init containers of (init + sidecars started before it))
/// + overhead`, plus one `pods` slot.
pub fn pod_requests(containers: &[Resources], init: &[ContainerRequests], overhead: &Resources) -> Resources {
    let mut sum: Resources = containers.iter().sum();
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in init {
        let effective = if c.sidecar {
            sum += &c.requests;
            sidecars += &c.requests;
            sidecars.clone()
        } else {
            c.requests.clone() + &sidecars
        };
        init_max = init_max.max_each(&effective);
    }
    let mut out = sum.max_each(&init_max) + overhead;
    out.pods = 1;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: i64 = 1 << 30;
    const MI: i64 = 1 << 20;

    #[test]
    fn parses_the_api_server_grammar() {
        assert_eq!(parse_milli("cpu", "1").unwrap(), 1000);
        assert_eq!(parse_milli("cpu", "500m").unwrap(), 500);
        assert_eq!(parse_milli("cpu", "0.5").unwrap(), 500);
        assert_eq!(parse_milli("cpu", ".5").unwrap(), 500);
        assert_eq!(parse_milli("cpu", "1.").unwrap(), 1000);
        assert_eq!(parse_milli("cpu", "+2").unwrap(), 2000);
        assert_eq!(parse_milli("cpu", "1e3").unwrap(), 1_000_000);
        assert_eq!(parse_milli("cpu", "2k").unwrap(), 2_000_000);
        assert_eq!(parse_milli("cpu", "100u").unwrap(), 1, "rounds up like MilliValue()");
        assert_eq!(parse_milli("cpu", "1n").unwrap(), 1);
        assert_eq!(parse_units("memory", "512Mi").unwrap(), 512 * MI);
        assert_eq!(parse_units("memory", "1.5Gi").unwrap(), 3 * GI / 2);
        assert_eq!(parse_units("memory", "100M").unwrap(), 100_000_000);
        assert_eq!(parse_units("memory", "1E").unwrap(), 1_000_000_000_000_000_000);
        assert_eq!(parse_units("memory", "1e-3").unwrap(), 1, "Value() rounds up");
        assert_eq!(parse_units("memory", "12E-1").unwrap(), 2);
        assert_eq!(parse_units("memory", "1Ki").unwrap(), 1024);
        assert_eq!(parse_units("memory", "0").unwrap(), 0);
        assert_eq!(parse_units("memory", "-1").unwrap(), -1);
        assert_eq!(parse_units("memory", " 3 ").unwrap(), 3);
    }

    #[test]
    fn bad_quantities_name_field_and_value() {
        for bad in ["", "abc", "1x", "1.2.3", "Mi", "1 Mi", "--1", "1e", "1e1000000", "1Ei0", "9999999999Ei"]
        {
            let err = parse_units("spec.containers[0].resources.requests.memory", bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("spec.containers[0].resources.requests.memory"), "{msg}");
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        }
        let err = parse_resource("cpu", "requests.cpu", "-1").unwrap_err();
        assert!(matches!(err, Error::Negative { .. }), "{err}");
    }

    #[test]
    fn parses_resource_lists() {
        let r = Resources::parse(
            "requests",
            [("cpu", "1500m"), ("memory", "1Gi"), ("nvidia.com/gpu", "2"), ("ephemeral-storage", "10G")],
        )
        .unwrap();
        assert_eq!(r.cpu, 1500);
        assert_eq!(r.memory, GI);
        assert_eq!(r.get(NVIDIA_GPU), 2);
        assert_eq!(r.ephemeral_storage, 10_000_000_000);
        assert_eq!(r.to_string(), "cpu=1500m, memory=1Gi, ephemeral-storage=10G, nvidia.com/gpu=2");
        let err = Resources::parse("spec.containers[1].resources.requests", [("cpu", "1q")]).unwrap_err();
        assert!(err.to_string().contains("spec.containers[1].resources.requests.cpu"));
    }

    #[test]
    fn pod_requests_take_max_of_sum_and_init_plus_overhead() {
        let c = |cpu, mem| Resources::new(cpu, mem);
        let init = |cpu, mem| ContainerRequests { requests: c(cpu, mem), sidecar: false };
        // sum of containers wins on cpu, the big init container wins on memory.
        let r = pod_requests(&[c(500, 100), c(500, 100)], &[init(200, 1000), init(800, 50)], &c(100, 10));
        assert_eq!((r.cpu, r.memory, r.pods), (1100, 1010, 1));
        // A sidecar adds to the running sum and to every later init container.
        let sidecar = ContainerRequests { requests: c(300, 0), sidecar: true };
        let r = pod_requests(&[c(100, 0)], &[sidecar, init(900, 0)], &Resources::default());
        assert_eq!(r.cpu, 1200, "max(100 + 300, 900 + 300)");
        // No containers at all still takes a pod slot.
        assert_eq!(pod_requests(&[], &[], &Resources::default()).pods, 1);
    }

    #[test]
    fn arithmetic_and_fit() {
        let a = Resources::new(1000, GI).with(NVIDIA_GPU, 1);
        let b = Resources::new(2000, 2 * GI);
        assert!(!a.fits_in(&b), "b has no GPU");
        assert_eq!(a.first_exceeding(&b), Some((NVIDIA_GPU, 1, 0)));
        let sum = a.clone() + &b;
        assert_eq!((sum.cpu, sum.memory, sum.get(NVIDIA_GPU)), (3000, 3 * GI, 1));
        assert_eq!(sum.clone() - &a, b);
        assert_eq!(b.saturating_sub(&sum), Resources::default());
        assert_eq!(format_quantity(CPU, 1500), "1500m");
        assert_eq!(format_quantity(MEMORY, 3 * GI / 2), "1536Mi");
    }
}
