//! All CRDs as YAML, for `ballast crds` and `crdgen`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{NodeClaim, NodeTemplate, Provisioner};

/// Every CRD ballast defines, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Provisioner::crd(), NodeTemplate::crd(), NodeClaim::crd()]
}

/// `(file name, CRD)` pairs, each named `<group>_<plural>.yaml` (e.g. `ballast.dev_provisioners.yaml`).
pub fn crd_files() -> Vec<(String, CustomResourceDefinition)> {
    crds()
        .into_iter()
        .map(|crd| (format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural), crd))
        .collect()
}

/// One CRD as a YAML document.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    serde_yaml_ng::to_string(crd).expect("a CRD serializes to YAML")
}

/// Every CRD ballast defines, as one multi-document YAML string.
pub fn crds_yaml() -> String {
    crds().iter().map(crd_yaml).collect::<Vec<_>>().join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_group_and_plural() {
        let names: Vec<String> = crd_files().into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "ballast.dev_provisioners.yaml",
                "ballast.dev_nodetemplates.yaml",
                "ballast.dev_nodeclaims.yaml"
            ]
        );
    }

    #[test]
    fn yaml_holds_three_documents_that_parse_back() {
        let yaml = crds_yaml();
        let docs: Vec<CustomResourceDefinition> = serde_yaml_ng::Deserializer::from_str(&yaml)
            .map(|doc| serde::Deserialize::deserialize(doc).expect("CRD YAML parses"))
            .collect();
        assert_eq!(docs, crds());
    }
}
