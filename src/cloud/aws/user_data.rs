//! User data per AMI family, carrying the cluster's name, endpoint and CA, the node's labels and taints and the
//! kubelet settings, merged with the NodeTemplate's own `userData`:
//! AL2 / Ubuntu: MIME multipart, the template's parts first, then `/etc/eks/bootstrap.sh`;
//! AL2023: MIME multipart with a nodeadm `NodeConfig` part; Bottlerocket: the template's TOML with ballast's
//! `settings.kubernetes` keys written over it; Custom: the template's user data unchanged.

use std::collections::BTreeMap;

use serde_json::json;

use super::template::AmiFamily;
use crate::{
    api::provisioner::KubeletConfiguration,
    model::{Labels, Taint, TaintEffect},
};

/// The cluster a node joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    pub name: String,
    pub endpoint: String,
    /// Base64 PEM bundle, as in the kubeconfig.
    pub ca_bundle: Option<String>,
    /// Service CIDR; nodeadm (AL2023) needs it.
    pub service_cidr: Option<String>,
}

/// Everything node-specific that goes into user data.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBootstrap<'a> {
    pub labels: &'a Labels,
    /// Taints and startup taints, registered with the node.
    pub taints: &'a [Taint],
    pub kubelet: Option<&'a KubeletConfiguration>,
    /// The NodeTemplate's `userData`.
    pub custom: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to merge spec.userData: {0}")]
pub struct UserDataError(pub String);

const BOUNDARY: &str = "//";

pub fn render(
    family: AmiFamily,
    cluster: &ClusterInfo,
    node: &NodeBootstrap<'_>,
) -> Result<String, UserDataError> {
    match family {
        AmiFamily::Al2 | AmiFamily::Ubuntu => Ok(mime(
            mime_parts(node.custom)?,
            "text/x-shellscript; charset=\"us-ascii\"",
            &bootstrap_sh(cluster, node),
        )),
        AmiFamily::Al2023 => {
            Ok(mime(mime_parts(node.custom)?, "application/node.eks.aws", &node_config(cluster, node)))
        }
        AmiFamily::Bottlerocket => bottlerocket(cluster, node),
        AmiFamily::Custom => Ok(node.custom.unwrap_or_default().to_string()),
    }
}

/// Labels the kubelet may set on its own Node: not in the `kubernetes.io` / `k8s.io` domains, except the
/// kubelet's own well-known labels and the `kubelet.` / `node.` subdomains (NodeRestriction admission).
fn kubelet_may_set(key: &str) -> bool {
    const KUBELET_LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
    ];
    let Some((domain, _)) = key.split_once('/') else { return true };
    let restricted =
        ["kubernetes.io", "k8s.io"].iter().any(|d| domain == *d || domain.ends_with(&format!(".{d}")));
    !restricted
        || KUBELET_LABELS.contains(&key)
        || ["kubelet.kubernetes.io", "node.kubernetes.io"]
            .iter()
            .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
}

fn node_labels(labels: &Labels) -> BTreeMap<&str, &str> {
    labels.iter().filter(|(k, _)| kubelet_may_set(k)).map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn effect(e: TaintEffect) -> &'static str {
    match e {
        TaintEffect::NoSchedule => "NoSchedule",
        TaintEffect::PreferNoSchedule => "PreferNoSchedule",
        TaintEffect::NoExecute => "NoExecute",
    }
}

fn quantities(map: &BTreeMap<String, crate::api::Quantity>) -> String {
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn eviction(map: &BTreeMap<String, String>) -> String {
    map.iter().map(|(k, v)| format!("{k}<{v}")).collect::<Vec<_>>().join(",")
}

/// The parts of a custom user data: its MIME parts (with their headers) or, for a plain script, one part.
fn mime_parts(custom: Option<&str>) -> Result<Vec<String>, UserDataError> {
    let Some(custom) = custom.filter(|c| !c.trim().is_empty()) else { return Ok(Vec::new()) };
    if !custom.starts_with("MIME-Version:") {
        let kind = if custom.trim_start().starts_with("apiVersion: node.eks.aws") {
            "application/node.eks.aws"
        } else {
            "text/x-shellscript; charset=\"us-ascii\""
        };
        return Ok(vec![format!("Content-Type: {kind}\n\n{}", custom.trim_end())]);
    }
    let boundary = custom
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.split_once("boundary=").map(|(_, b)| b.trim().trim_matches('"').to_string()))
        .ok_or_else(|| UserDataError("a MIME multipart user data needs a boundary in its headers".into()))?;
    let delimiter = format!("--{boundary}");
    let body = custom.split_once(&delimiter).map(|(_, rest)| rest).unwrap_or_default();
    Ok(body
        .split(&delimiter)
        .map(|part| part.trim_matches(['\r', '\n']))
        .filter(|part| !part.is_empty() && !part.starts_with("--"))
        .map(str::to_string)
        .collect())
}

fn mime(mut parts: Vec<String>, kind: &str, body: &str) -> String {
    parts.push(format!("Content-Type: {kind}\n\n{}", body.trim_end()));
    let mut out = format!("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\n\n");
    for part in parts {
        out.push_str(&format!("--{BOUNDARY}\n{part}\n\n"));
    }
    out.push_str(&format!("--{BOUNDARY}--\n"));
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn bootstrap_sh(cluster: &ClusterInfo, node: &NodeBootstrap<'_>) -> String {
    let mut args =
        vec![shell_quote(&cluster.name), "--apiserver-endpoint".into(), shell_quote(&cluster.endpoint)];
    if let Some(ca) = &cluster.ca_bundle {
        args.extend(["--b64-cluster-ca".into(), shell_quote(ca)]);
    }
    let mut extra = Vec::new();
    let labels = node_labels(node.labels);
    if !labels.is_empty() {
        let list = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        extra.push(format!("--node-labels={list}"));
    }
    if !node.taints.is_empty() {
        let list = node
            .taints
            .iter()
            .map(|t| format!("{}={}:{}", t.key, t.value, effect(t.effect)))
            .collect::<Vec<_>>();
        extra.push(format!("--register-with-taints={}", list.join(",")));
    }
    if let Some(k) = node.kubelet {
        if let Some(dns) = k.cluster_dns.as_ref().and_then(|d| d.first()) {
            args.extend(["--dns-cluster-ip".into(), shell_quote(dns)]);
        }
        if let Some(max) = k.max_pods {
            args.extend(["--use-max-pods".into(), "false".into()]);
            extra.push(format!("--max-pods={max}"));
        }
        if let Some(ppc) = k.pods_per_core {
            extra.push(format!("--pods-per-core={ppc}"));
        }
        if let Some(m) = k.system_reserved.as_ref().filter(|m| !m.is_empty()) {
            extra.push(format!("--system-reserved={}", quantities(m)));
        }
        if let Some(m) = k.kube_reserved.as_ref().filter(|m| !m.is_empty()) {
            extra.push(format!("--kube-reserved={}", quantities(m)));
        }
        if let Some(m) = k.eviction_hard.as_ref().filter(|m| !m.is_empty()) {
            extra.push(format!("--eviction-hard={}", eviction(m)));
        }
    }
    if !extra.is_empty() {
        args.extend(["--kubelet-extra-args".into(), shell_quote(&extra.join(" "))]);
    }
    format!(
        "#!/bin/bash -xe\nexec > >(tee /var/log/user-data.log|logger -t user-data -s 2>/dev/console) 2>&1\n\
         /etc/eks/bootstrap.sh {}\n",
        args.join(" ")
    )
}

fn node_config(cluster: &ClusterInfo, node: &NodeBootstrap<'_>) -> String {
    let mut config = serde_json::Map::new();
    if !node.taints.is_empty() {
        let taints: Vec<_> = node
            .taints
            .iter()
            .map(|t| json!({"key": t.key, "value": t.value, "effect": effect(t.effect)}))
            .collect();
        config.insert("registerWithTaints".into(), taints.into());
    }
    if let Some(k) = node.kubelet {
        if let Some(max) = k.max_pods {
            config.insert("maxPods".into(), max.into());
        }
        if let Some(ppc) = k.pods_per_core {
            config.insert("podsPerCore".into(), ppc.into());
        }
        if let Some(dns) = &k.cluster_dns {
            config.insert("clusterDNS".into(), json!(dns));
        }
        for (key, map) in [("systemReserved", &k.system_reserved), ("kubeReserved", &k.kube_reserved)] {
            if let Some(map) = map {
                let map: BTreeMap<_, _> = map.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
                config.insert(key.into(), json!(map));
            }
        }
        if let Some(m) = &k.eviction_hard {
            config.insert("evictionHard".into(), json!(m));
        }
    }
    let labels = node_labels(node.labels);
    let mut flags = Vec::new();
    if !labels.is_empty() {
        flags.push(format!(
            "--node-labels={}",
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        ));
    }
    let mut cluster_spec = json!({"name": cluster.name, "apiServerEndpoint": cluster.endpoint});
    if let Some(ca) = &cluster.ca_bundle {
        cluster_spec["certificateAuthority"] = ca.clone().into();
    }
    if let Some(cidr) = &cluster.service_cidr {
        cluster_spec["cidr"] = cidr.clone().into();
    }
    let doc = json!({
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {"cluster": cluster_spec, "kubelet": {"config": config, "flags": flags}},
    });
    serde_yaml_ng::to_string(&doc).expect("a JSON value always serializes to YAML")
}

fn bottlerocket(cluster: &ClusterInfo, node: &NodeBootstrap<'_>) -> Result<String, UserDataError> {
    use toml_edit::{Array, DocumentMut, Item, Table, value};
    let mut doc: DocumentMut = node
        .custom
        .unwrap_or_default()
        .parse()
        .map_err(|e: toml_edit::TomlError| UserDataError(format!("invalid TOML: {e}")))?;
    let k8s = doc
        .entry("settings")
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| UserDataError("`settings` must be a table".into()))?
        .entry("kubernetes")
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| UserDataError("`settings.kubernetes` must be a table".into()))?;
    k8s.insert("cluster-name", value(&cluster.name));
    k8s.insert("api-server", value(&cluster.endpoint));
    if let Some(ca) = &cluster.ca_bundle {
        k8s.insert("cluster-certificate", value(ca));
    }
    let table = |entries: Vec<(String, Item)>| {
        let mut t = Table::new();
        for (k, v) in entries {
            t.insert(&k, v);
        }
        Item::Table(t)
    };
    let labels = node_labels(node.labels);
    if !labels.is_empty() {
        k8s.insert("node-labels", table(labels.iter().map(|(k, v)| (k.to_string(), value(*v))).collect()));
    }
    if !node.taints.is_empty() {
        let mut by_key: BTreeMap<&str, Array> = BTreeMap::new();
        for t in node.taints {
            by_key.entry(&t.key).or_default().push(format!("{}:{}", t.value, effect(t.effect)));
        }
        k8s.insert(
            "node-taints",
            table(by_key.into_iter().map(|(k, v)| (k.to_string(), value(v))).collect()),
        );
    }
    if let Some(k) = node.kubelet {
        if let Some(max) = k.max_pods {
            k8s.insert("max-pods", value(i64::from(max)));
        }
        if let Some(dns) = k.cluster_dns.as_ref().and_then(|d| d.first()) {
            k8s.insert("cluster-dns-ip", value(dns));
        }
        for (key, map) in [("system-reserved", &k.system_reserved), ("kube-reserved", &k.kube_reserved)] {
            if let Some(map) = map {
                k8s.insert(key, table(map.iter().map(|(k, v)| (k.clone(), value(v.to_string()))).collect()));
            }
        }
        if let Some(m) = &k.eviction_hard {
            k8s.insert("eviction-hard", table(m.iter().map(|(k, v)| (k.clone(), value(v))).collect()));
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Quantity;

    fn cluster() -> ClusterInfo {
        ClusterInfo {
            name: "demo".into(),
            endpoint: "https://example.eks.amazonaws.com".into(),
            ca_bundle: Some("Q0E=".into()),
            service_cidr: Some("10.100.0.0/16".into()),
        }
    }

    fn labels() -> Labels {
        Labels::from([
            ("team".to_string(), "a".to_string()),
            ("ballast.dev/provisioner".to_string(), "default".to_string()),
            ("node-role.kubernetes.io/worker".to_string(), "".to_string()),
            ("node.kubernetes.io/lifecycle".to_string(), "spot".to_string()),
        ])
    }

    fn taints() -> Vec<Taint> {
        vec![Taint { key: "dedicated".into(), value: "gpu".into(), effect: TaintEffect::NoSchedule }]
    }

    fn kubelet() -> KubeletConfiguration {
        KubeletConfiguration {
            max_pods: Some(20),
            system_reserved: Some(BTreeMap::from([("cpu".to_string(), Quantity::new("100m"))])),
            eviction_hard: Some(BTreeMap::from([("memory.available".to_string(), "5%".to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn al2_appends_bootstrap_after_custom_script() {
        let (labels, taints, kubelet) = (labels(), taints(), kubelet());
        let node = NodeBootstrap {
            labels: &labels,
            taints: &taints,
            kubelet: Some(&kubelet),
            custom: Some("#!/bin/bash\necho hi"),
        };
        let out = render(AmiFamily::Al2, &cluster(), &node).unwrap();
        let custom_at = out.find("echo hi").unwrap();
        let bootstrap_at = out.find("/etc/eks/bootstrap.sh 'demo' --apiserver-endpoint 'https://example.eks.amazonaws.com' --b64-cluster-ca 'Q0E=' --use-max-pods false").unwrap();
        assert!(custom_at < bootstrap_at, "{out}");
        assert!(
            out.contains(
                "--node-labels=ballast.dev/provisioner=default,node.kubernetes.io/lifecycle=spot,team=a "
            ),
            "{out}"
        );
        assert!(!out.contains("node-role.kubernetes.io"), "the kubelet may not set node-role labels: {out}");
        assert!(out.contains("--register-with-taints=dedicated=gpu:NoSchedule --max-pods=20 --system-reserved=cpu=100m --eviction-hard=memory.available<5%'"), "{out}");
        assert!(out.starts_with("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"//\""));
        assert!(out.ends_with("--//--\n"));
    }

    #[test]
    fn al2_keeps_custom_mime_parts() {
        let custom = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BOUNDARY\"\n\n--BOUNDARY\nContent-Type: text/x-shellscript\n\necho one\n--BOUNDARY\nContent-Type: text/cloud-config\n\npackages: [jq]\n--BOUNDARY--\n";
        let labels = Labels::new();
        let node = NodeBootstrap { labels: &labels, custom: Some(custom), taints: &[], kubelet: None };
        let out = render(AmiFamily::Al2, &cluster(), &node).unwrap();
        assert_eq!(out.matches("--//\n").count(), 3, "{out}");
        assert!(out.contains("--//\nContent-Type: text/x-shellscript\n\necho one\n"), "{out}");
        assert!(out.contains("--//\nContent-Type: text/cloud-config\n\npackages: [jq]\n"), "{out}");
        assert!(!out.contains("BOUNDARY"));
        let bad = NodeBootstrap {
            labels: &labels,
            custom: Some("MIME-Version: 1.0\n\nno boundary"),
            taints: &[],
            kubelet: None,
        };
        assert!(render(AmiFamily::Al2, &cluster(), &bad).unwrap_err().to_string().contains("spec.userData"));
    }

    #[test]
    fn al2023_writes_a_node_config() {
        let (labels, taints, kubelet) = (labels(), taints(), kubelet());
        let node = NodeBootstrap { labels: &labels, taints: &taints, kubelet: Some(&kubelet), custom: None };
        let out = render(AmiFamily::Al2023, &cluster(), &node).unwrap();
        let yaml = out
            .split("Content-Type: application/node.eks.aws\n\n")
            .nth(1)
            .unwrap()
            .split("\n--//--")
            .next()
            .unwrap();
        let doc: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(doc["kind"], "NodeConfig");
        assert_eq!(doc["spec"]["cluster"]["name"], "demo");
        assert_eq!(doc["spec"]["cluster"]["cidr"], "10.100.0.0/16");
        assert_eq!(doc["spec"]["kubelet"]["config"]["maxPods"], 20);
        assert_eq!(doc["spec"]["kubelet"]["config"]["registerWithTaints"][0]["effect"], "NoSchedule");
        assert_eq!(doc["spec"]["kubelet"]["config"]["systemReserved"]["cpu"], "100m");
        assert!(doc["spec"]["kubelet"]["flags"][0].as_str().unwrap().contains("team=a"));
    }

    #[test]
    fn bottlerocket_merges_toml_with_ballast_keys_winning() {
        let (labels, taints, kubelet) = (labels(), taints(), kubelet());
        let custom = "[settings.kubernetes]\ncluster-name = \"wrong\"\nimage-gc-high-threshold-percent = 85\n[settings.host-containers.admin]\nenabled = true\n";
        let node =
            NodeBootstrap { labels: &labels, taints: &taints, kubelet: Some(&kubelet), custom: Some(custom) };
        let out = render(AmiFamily::Bottlerocket, &cluster(), &node).unwrap();
        let doc: toml_edit::DocumentMut = out.parse().unwrap();
        let k8s = &doc["settings"]["kubernetes"];
        assert_eq!(k8s["cluster-name"].as_str(), Some("demo"));
        assert_eq!(k8s["image-gc-high-threshold-percent"].as_integer(), Some(85));
        assert_eq!(k8s["max-pods"].as_integer(), Some(20));
        assert_eq!(k8s["node-labels"]["team"].as_str(), Some("a"));
        assert_eq!(k8s["node-taints"]["dedicated"][0].as_str(), Some("gpu:NoSchedule"));
        assert_eq!(doc["settings"]["host-containers"]["admin"]["enabled"].as_bool(), Some(true));
        let bad = NodeBootstrap { labels: &labels, custom: Some("not = [toml"), taints: &[], kubelet: None };
        assert!(render(AmiFamily::Bottlerocket, &cluster(), &bad).is_err());
    }

    #[test]
    fn custom_passes_user_data_through() {
        let labels = Labels::new();
        let node =
            NodeBootstrap { labels: &labels, custom: Some("#cloud-config\n"), taints: &[], kubelet: None };
        assert_eq!(render(AmiFamily::Custom, &cluster(), &node).unwrap(), "#cloud-config\n");
    }
}
