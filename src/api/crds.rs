//! All CRDs as YAML, for `ballast crds` and `crdgen`.

/// Every CRD ballast defines, as one multi-document YAML string.
pub fn crds_yaml() -> String {
    String::new()
}
