//! The CRD rules: present in the generated schema, enforced by `validate_cel()` (the API server's CEL, run
//! client-side) and by `api::validate_*` (OpenAPI + CEL + checks CEL cannot express).

use std::collections::BTreeMap;

use ballast::api::{
    NodeClaim, NodeClaimSpec, NodeTemplate, NodeTemplateSpec, Provisioner, ProvisionerSpec, Quantity,
    node_template::{BlockDevice, BlockDeviceMapping, MetadataOptions},
    provisioner::{Budget, Consolidation, Disruption, KubeletConfiguration, Limits},
    validate_node_claim, validate_node_template, validate_provisioner,
};
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Taint};
use kube::CustomResourceExt;
use serde_json::Value;

fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn provisioner(spec: ProvisionerSpec) -> Provisioner {
    Provisioner::new("default", spec)
}

/// A Provisioner using every field, valid.
fn full_provisioner() -> Provisioner {
    provisioner(ProvisionerSpec {
        labels: Some(BTreeMap::from([
            ("type".into(), "karpenter".into()),
            ("example.com/team".into(), "a".into()),
            ("node-restriction.kubernetes.io/pool".into(), "x".into()),
        ])),
        requirements: Some(vec![
            requirement("karpenter.sh/capacity-type", "In", &["spot", "on-demand"]),
            requirement("node.kubernetes.io/instance-type", "NotIn", &["t3.nano"]),
            requirement("karpenter.k8s.aws/instance-generation", "Gt", &["2"]),
            requirement("instance.ballast.dev/instance-cpu", "Lt", &["65"]),
            requirement("example.com/team", "Exists", &[]),
            requirement("example.com/legacy", "DoesNotExist", &[]),
        ]),
        taints: Some(vec![Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        }]),
        ttl_seconds_until_expired: Some(2_592_000),
        weight: Some(10),
        limits: Some(Limits {
            resources: Some(BTreeMap::from([
                ("cpu".into(), Quantity::new("1000")),
                ("memory".into(), Quantity::new("1000Gi")),
            ])),
        }),
        consolidation: Some(Consolidation { enabled: Some(true) }),
        kubelet_configuration: Some(KubeletConfiguration {
            max_pods: Some(110),
            eviction_soft: Some(BTreeMap::from([("memory.available".into(), "500Mi".into())])),
            eviction_soft_grace_period: Some(BTreeMap::from([("memory.available".into(), "1m30s".into())])),
            system_reserved: Some(BTreeMap::from([("cpu".into(), Quantity::new("100m"))])),
            ..KubeletConfiguration::default()
        }),
        disruption: Some(Disruption {
            budgets: Some(vec![
                Budget { nodes: "10%".into(), ..Budget::default() },
                Budget {
                    nodes: "0".into(),
                    schedule: Some("0 9 * * mon-fri".into()),
                    duration: Some("8h".into()),
                },
            ]),
            consolidate_after: Some("30s".into()),
            utilization_threshold: Some(50),
            ..Disruption::default()
        }),
        ..ProvisionerSpec::default()
    })
}

fn cel_messages(p: &Provisioner) -> Vec<String> {
    match p.validate_cel() {
        Ok(()) => vec![],
        Err(errors) => errors.as_slice().iter().map(|e| e.message.clone()).collect(),
    }
}

#[test]
fn valid_provisioner_passes_cel_and_full_validation() {
    let p = full_provisioner();
    assert_eq!(cel_messages(&p), Vec::<String>::new());
    assert_eq!(validate_provisioner(&p), Ok(()));
}

/// Asserts `validate_cel()` rejects `p` with exactly the given messages.
#[track_caller]
fn assert_cel_rejects(p: &Provisioner, expected: &[&str]) {
    assert_eq!(cel_messages(p), expected, "CEL messages for {:?}", p.spec);
    let error = validate_provisioner(p).expect_err("full validation rejects too");
    let text = error.to_string();
    assert!(text.starts_with("failed to validate Provisioner \"default\": "), "{text}");
    for message in expected {
        assert!(text.contains(message), "{text} lacks {message}");
    }
}

fn with(mutate: impl FnOnce(&mut ProvisionerSpec)) -> Provisioner {
    let mut p = full_provisioner();
    mutate(&mut p.spec);
    p
}

#[test]
fn consolidation_and_ttl_after_empty_are_mutually_exclusive() {
    assert_cel_rejects(
        &with(|s| s.ttl_seconds_after_empty = Some(30)),
        &["consolidation.enabled and ttlSecondsAfterEmpty are mutually exclusive"],
    );
    // Either alone is fine, and so is a TTL next to disabled consolidation.
    let ttl_only = with(|s| {
        s.consolidation = None;
        s.ttl_seconds_after_empty = Some(30);
    });
    assert_eq!(cel_messages(&ttl_only), Vec::<String>::new());
    let disabled = with(|s| {
        s.consolidation = Some(Consolidation { enabled: Some(false) });
        s.ttl_seconds_after_empty = Some(30);
    });
    assert_eq!(cel_messages(&disabled), Vec::<String>::new());
}

#[test]
fn operators_and_their_values_are_checked() {
    let bad = |r: NodeSelectorRequirement| with(|s| s.requirements = Some(vec![r]));
    assert_cel_rejects(
        &bad(requirement("example.com/a", "Matches", &["x"])),
        &["operator must be one of In, NotIn, Exists, DoesNotExist, Gt, Lt"],
    );
    assert_cel_rejects(
        &bad(requirement("example.com/a", "In", &[])),
        &["requirements with operator 'In' must have a value defined"],
    );
    assert_cel_rejects(
        &bad(requirement("example.com/a", "Exists", &["x"])),
        &["requirements with operator 'Exists' or 'DoesNotExist' must not have values"],
    );
    let gt_message = "requirements with operator 'Gt' or 'Lt' must have a single integer value";
    assert_cel_rejects(&bad(requirement("karpenter.k8s.aws/instance-cpu", "Gt", &["2", "4"])), &[gt_message]);
    assert_cel_rejects(&bad(requirement("karpenter.k8s.aws/instance-cpu", "Lt", &["four"])), &[gt_message]);
    assert_cel_rejects(&bad(requirement("karpenter.k8s.aws/instance-cpu", "Gt", &[])), &[gt_message]);
    // NotIn with no values is allowed (it excludes nothing), as in Karpenter.
    assert_eq!(cel_messages(&bad(requirement("example.com/a", "NotIn", &[]))), Vec::<String>::new());
}

#[test]
fn negative_ttls_are_rejected() {
    let p = with(|s| {
        s.consolidation = None;
        s.ttl_seconds_after_empty = Some(-1);
        s.ttl_seconds_until_expired = Some(-5);
    });
    assert_cel_rejects(
        &p,
        &["ttlSecondsAfterEmpty must be non-negative", "ttlSecondsUntilExpired must be non-negative"],
    );
    let problems = validate_provisioner(&p).unwrap_err();
    let fields: Vec<&str> = problems.problems().iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"spec.ttlSecondsAfterEmpty"), "{fields:?}");
}

#[test]
fn restricted_label_domains_are_rejected_in_labels() {
    for (key, domain) in [
        ("kubernetes.io/role", "kubernetes.io"),
        ("node.kubernetes.io/instance-type", "kubernetes.io"),
        ("karpenter.sh/capacity-type", "karpenter.sh"),
        ("karpenter.k8s.aws/instance-family", "karpenter.k8s.aws"),
        ("ballast.dev/provisioner", "ballast.dev"),
        ("sub.k8s.io/x", "k8s.io"),
    ] {
        let p = with(|s| {
            s.labels.get_or_insert_default().insert(key.into(), "v".into());
        });
        assert_cel_rejects(&p, &[&format!("label domain \"{domain}\" is restricted")]);
    }
    let allowed = with(|s| {
        let labels = s.labels.get_or_insert_default();
        labels.insert("kops.k8s.io/instancegroup".into(), "nodes".into());
        labels.insert("node-restriction.kubernetes.io/pool".into(), "x".into());
    });
    assert_eq!(cel_messages(&allowed), Vec::<String>::new());
}

#[test]
fn restricted_label_domains_are_rejected_for_custom_requirement_keys_only() {
    for (key, domain) in [
        ("kubernetes.io/hostname", "kubernetes.io"),
        ("karpenter.sh/provisioner-name", "karpenter.sh"),
        ("karpenter.k8s.aws/custom", "karpenter.k8s.aws"),
        ("ballast.dev/nodeclaim", "ballast.dev"),
    ] {
        let p = with(|s| s.requirements = Some(vec![requirement(key, "Exists", &[])]));
        assert_cel_rejects(&p, &[&format!("label domain \"{domain}\" is restricted")]);
    }
    let well_known = with(|s| {
        s.requirements = Some(vec![
            requirement("topology.kubernetes.io/zone", "In", &["us-east-1a"]),
            requirement("kubernetes.io/arch", "In", &["arm64"]),
            requirement("karpenter.k8s.aws/instance-category", "In", &["c", "m"]),
            requirement("instance.ballast.dev/instance-size", "NotIn", &["nano"]),
        ])
    });
    assert_eq!(cel_messages(&well_known), Vec::<String>::new());
}

#[test]
fn budget_schedule_requires_duration() {
    let p = with(|s| {
        s.disruption.get_or_insert_default().budgets =
            Some(vec![Budget { nodes: "1".into(), schedule: Some("@daily".into()), duration: None }]);
    });
    assert_cel_rejects(&p, &["'schedule' must be set with 'duration'"]);
}

#[test]
fn weight_and_kubelet_rules_are_enforced_by_cel() {
    assert_cel_rejects(&with(|s| s.weight = Some(0)), &["weight must be between 1 and 100"]);
    assert_cel_rejects(&with(|s| s.weight = Some(101)), &["weight must be between 1 and 100"]);
    assert_cel_rejects(
        &with(|s| s.kubelet_configuration.get_or_insert_default().eviction_soft_grace_period = None),
        &["every evictionSoft signal needs an evictionSoftGracePeriod"],
    );
    assert_cel_rejects(
        &with(|s| s.kubelet_configuration.get_or_insert_default().eviction_soft = None),
        &["every evictionSoftGracePeriod signal needs an evictionSoft threshold"],
    );
    assert_cel_rejects(
        &with(|s| {
            s.kubelet_configuration.get_or_insert_default().eviction_hard =
                Some(BTreeMap::from([("memory.free".into(), "1Gi".into())]))
        }),
        &["keys must be one of memory.available, nodefs.available, nodefs.inodesFree, imagefs.available, \
           imagefs.inodesFree, pid.available"],
    );
    assert_cel_rejects(
        &with(|s| {
            s.provider = Some(serde_json::json!({"subnetSelector": {"a": "b"}}));
            s.provider_ref =
                Some(ballast::api::provisioner::ProviderRef { name: "default".into(), ..Default::default() });
        }),
        &["provider and providerRef are mutually exclusive"],
    );
}

#[track_caller]
fn assert_problem(p: &Provisioner, field: &str, reason_part: &str) {
    let error = validate_provisioner(p).expect_err("rejected");
    assert!(
        error.problems().iter().any(|problem| problem.field == field && problem.reason.contains(reason_part)),
        "no problem at {field} containing {reason_part:?}: {error}"
    );
}

#[test]
fn openapi_constraints_and_rust_checks_reject_what_cel_does_not_cover() {
    let effect = with(|s| s.taints.get_or_insert_default()[0].effect = "Sometimes".into());
    assert_problem(&effect, "spec.taints[0].effect", "Unsupported value: \"Sometimes\"");
    let nodes = with(|s| {
        s.disruption.get_or_insert_default().budgets.get_or_insert_default()[0].nodes = "150%".into()
    });
    assert_problem(&nodes, "spec.disruption.budgets[0].nodes", "should match");
    let duration =
        with(|s| s.disruption.get_or_insert_default().consolidate_after = Some("5 minutes".into()));
    assert_problem(&duration, "spec.disruption.consolidateAfter", "should match");
    let cron = with(|s| {
        s.disruption.get_or_insert_default().budgets.get_or_insert_default()[1].schedule =
            Some("0 25 * * *".into())
    });
    assert_problem(&cron, "spec.disruption.budgets[1].schedule", "invalid hour field");
    let quantity = with(|s| {
        s.limits
            .get_or_insert_default()
            .resources
            .get_or_insert_default()
            .insert("memory".into(), Quantity::new("lots"));
    });
    assert_problem(&quantity, "spec.limits.resources[memory]", "lots");
    let huge = with(|s| {
        s.requirements =
            Some(vec![requirement("karpenter.k8s.aws/instance-cpu", "Gt", &["99999999999999999999"])])
    });
    assert_problem(&huge, "spec.requirements[0].values", "not a 64-bit integer");
    let key = with(|s| s.requirements = Some(vec![requirement("Example.com/a b", "Exists", &[])]));
    assert_problem(&key, "spec.requirements[0].key", "DNS-1123");
    let value = with(|s| {
        s.labels.get_or_insert_default().insert("team".into(), "not ok!".into());
    });
    assert_problem(&value, "spec.labels[team]", "should match");
}

#[test]
fn every_rule_is_present_in_the_generated_schema() {
    let crd = serde_json::to_value(Provisioner::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let rules = |v: &Value| -> Vec<String> {
        v["x-kubernetes-validations"]
            .as_array()
            .map(|rules| rules.iter().map(|r| r["message"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let props = &spec["properties"];
    assert_eq!(
        rules(spec),
        [
            "consolidation.enabled and ttlSecondsAfterEmpty are mutually exclusive",
            "provider and providerRef are mutually exclusive"
        ]
    );
    assert_eq!(props["ttlSecondsAfterEmpty"]["minimum"], 0.0);
    assert_eq!(rules(&props["ttlSecondsAfterEmpty"]), ["ttlSecondsAfterEmpty must be non-negative"]);
    assert_eq!(props["ttlSecondsUntilExpired"]["minimum"], 0.0);
    assert_eq!(
        (props["weight"]["minimum"].clone(), props["weight"]["maximum"].clone()),
        (1.0.into(), 100.0.into())
    );
    let item = &props["requirements"]["items"];
    assert_eq!(
        item["properties"]["operator"]["enum"],
        serde_json::json!(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"])
    );
    assert_eq!(
        rules(item),
        [
            "operator must be one of In, NotIn, Exists, DoesNotExist, Gt, Lt",
            "requirements with operator 'In' must have a value defined",
            "requirements with operator 'Exists' or 'DoesNotExist' must not have values",
            "requirements with operator 'Gt' or 'Lt' must have a single integer value",
        ]
    );
    let domain_messages: Vec<String> =
        ["kubernetes.io", "k8s.io", "karpenter.sh", "karpenter.k8s.aws", "ballast.dev"]
            .iter()
            .map(|d| format!("label domain \"{d}\" is restricted"))
            .collect();
    assert_eq!(rules(&item["properties"]["key"]), domain_messages);
    assert_eq!(rules(&props["labels"]), domain_messages);
    assert_eq!(
        props["taints"]["items"]["properties"]["effect"]["enum"],
        serde_json::json!(["NoSchedule", "PreferNoSchedule", "NoExecute"])
    );
    assert_eq!(
        props["startupTaints"]["items"]["properties"]["effect"]["enum"],
        props["taints"]["items"]["properties"]["effect"]["enum"]
    );
    let budget = &props["disruption"]["properties"]["budgets"]["items"];
    assert_eq!(rules(budget), ["'schedule' must be set with 'duration'"]);
    assert_eq!(budget["properties"]["nodes"]["pattern"], "^((100|[0-9]{1,2})%|[0-9]+)$");
    assert_eq!(budget["properties"]["duration"]["pattern"], "^([0-9]+(s|m|h))+$");
    assert_eq!(props["disruption"]["properties"]["consolidateAfter"]["pattern"], "^([0-9]+(s|m|h))+$");

    let crd = serde_json::to_value(NodeTemplate::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let props = &spec["properties"];
    assert_eq!(spec["required"], serde_json::json!(["securityGroupSelector", "subnetSelector"]));
    assert_eq!(props["subnetSelector"]["minProperties"], 1);
    assert_eq!(rules(&props["subnetSelector"]), ["subnetSelector must not be empty"]);
    assert_eq!(props["securityGroupSelector"]["minProperties"], 1);
    assert_eq!(
        props["amiFamily"]["enum"],
        serde_json::json!([
            "AL2",
            "AL2023",
            "Bottlerocket",
            "Ubuntu",
            "Windows2019",
            "Windows2022",
            "Custom"
        ])
    );
    let metadata = &props["metadataOptions"]["properties"];
    assert_eq!(metadata["httpTokens"]["enum"], serde_json::json!(["required", "optional"]));
    assert_eq!(metadata["httpEndpoint"]["enum"], serde_json::json!(["enabled", "disabled"]));
    assert_eq!(
        (
            metadata["httpPutResponseHopLimit"]["minimum"].clone(),
            metadata["httpPutResponseHopLimit"]["maximum"].clone()
        ),
        (1.0.into(), 64.0.into())
    );
    let ebs = &props["blockDeviceMappings"]["items"]["properties"]["ebs"]["properties"];
    assert_eq!(
        ebs["volumeType"]["enum"],
        serde_json::json!(["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"])
    );

    let crd = serde_json::to_value(NodeClaim::crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    let props = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(props["provisioner"]["minLength"], 1);
    assert_eq!(rules(&props["provisioner"]), ["provisioner must not be empty"]);
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Type", "Zone", "Capacity", "Node", "Ready", "Age"]);
}

#[test]
fn printer_columns_and_status_subresources() {
    let columns = |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
        version.additional_printer_columns.iter().flatten().map(|c| (c.name.clone(), c.json_path.clone())).collect::<Vec<_>>()
    };
    assert_eq!(
        columns(Provisioner::crd()),
        [
            ("Weight".to_string(), ".spec.weight".to_string()),
            ("Consolidation".into(), ".spec.consolidation.enabled".into()),
            ("Age".into(), ".metadata.creationTimestamp".into())
        ]
    );
    assert_eq!(
        columns(NodeTemplate::crd()),
        [
            ("AMIFamily".to_string(), ".spec.amiFamily".to_string()),
            ("Age".into(), ".metadata.creationTimestamp".into())
        ]
    );
    let claim = columns(NodeClaim::crd());
    assert_eq!(
        claim[4],
        ("Ready".to_string(), ".status.conditions[?(@.type==\"Initialized\")].status".to_string())
    );
}

fn node_template(spec: NodeTemplateSpec) -> NodeTemplate {
    NodeTemplate::new("default", spec)
}

fn valid_template_spec() -> NodeTemplateSpec {
    NodeTemplateSpec {
        subnet_selector: BTreeMap::from([("karpenter.sh/discovery".into(), "demo".into())]),
        security_group_selector: BTreeMap::from([("karpenter.sh/discovery".into(), "demo".into())]),
        ami_family: Some("Bottlerocket".into()),
        metadata_options: Some(MetadataOptions {
            http_endpoint: Some("enabled".into()),
            http_put_response_hop_limit: Some(2),
            http_tokens: Some("required".into()),
            ..MetadataOptions::default()
        }),
        block_device_mappings: Some(vec![BlockDeviceMapping {
            device_name: Some("/dev/xvda".into()),
            ebs: Some(BlockDevice {
                volume_size: Some(Quantity::new("20Gi")),
                volume_type: Some("gp3".into()),
                ..BlockDevice::default()
            }),
        }]),
        tags: Some(BTreeMap::from([("team".into(), "a".into())])),
        ..NodeTemplateSpec::default()
    }
}

#[test]
fn node_template_rules() {
    assert_eq!(validate_node_template(&node_template(valid_template_spec())), Ok(()));

    let empty = node_template(NodeTemplateSpec { subnet_selector: BTreeMap::new(), ..valid_template_spec() });
    let messages: Vec<String> =
        empty.validate_cel().unwrap_err().as_slice().iter().map(|e| e.message.clone()).collect();
    assert_eq!(messages, ["subnetSelector must not be empty"]);
    let error = validate_node_template(&empty).unwrap_err();
    assert!(
        error.to_string().contains("spec.subnetSelector: Invalid value: should have at least 1 properties"),
        "{error}"
    );

    let mut bad = valid_template_spec();
    bad.ami_family = Some("Gentoo".into());
    bad.metadata_options.as_mut().unwrap().http_tokens = Some("sometimes".into());
    bad.metadata_options.as_mut().unwrap().http_put_response_hop_limit = Some(65);
    bad.block_device_mappings.as_mut().unwrap()[0].ebs.as_mut().unwrap().volume_type = Some("ssd".into());
    bad.block_device_mappings.as_mut().unwrap()[0].ebs.as_mut().unwrap().volume_size =
        Some(Quantity::new("big"));
    bad.tags.as_mut().unwrap().insert("kubernetes.io/cluster/demo".into(), "owned".into());
    let error = validate_node_template(&node_template(bad)).unwrap_err();
    let fields: Vec<&str> = error.problems().iter().map(|p| p.field.as_str()).collect();
    for field in [
        "spec.amiFamily",
        "spec.metadataOptions.httpTokens",
        "spec.metadataOptions.httpPutResponseHopLimit",
        "spec.blockDeviceMappings[0].ebs.volumeType",
        "spec.blockDeviceMappings[0].ebs.volumeSize",
        "spec.tags",
    ] {
        assert!(fields.contains(&field), "{field} not rejected: {error}");
    }

    let custom =
        node_template(NodeTemplateSpec { ami_family: Some("Custom".into()), ..valid_template_spec() });
    assert!(
        validate_node_template(&custom)
            .unwrap_err()
            .to_string()
            .contains("amiFamily Custom requires an amiSelector")
    );
    let launch_template =
        node_template(NodeTemplateSpec { launch_template: Some("lt".into()), ..valid_template_spec() });
    assert!(
        validate_node_template(&launch_template)
            .unwrap_err()
            .to_string()
            .contains("launchTemplate is mutually exclusive")
    );
}

#[test]
fn node_claim_rules() {
    let claim = |provisioner: &str, op: &str| {
        NodeClaim::new(
            "default-abcde",
            NodeClaimSpec {
                provisioner: provisioner.into(),
                // Claims carry pod requirements too, so restricted domains are fine here.
                requirements: vec![requirement("kubernetes.io/hostname", op, &["a"])],
                ..NodeClaimSpec::default()
            },
        )
    };
    assert_eq!(validate_node_claim(&claim("default", "In")), Ok(()));
    let messages: Vec<String> =
        claim("", "Near").validate_cel().unwrap_err().as_slice().iter().map(|e| e.message.clone()).collect();
    assert_eq!(
        messages,
        ["provisioner must not be empty", "operator must be one of In, NotIn, Exists, DoesNotExist, Gt, Lt"]
    );
    let mut bad_request = claim("default", "In");
    bad_request.spec.resources.requests.insert("cpu".into(), Quantity::new("1x"));
    assert!(
        validate_node_claim(&bad_request).unwrap_err().to_string().contains("spec.resources.requests[cpu]")
    );
}

/// Every rule compiles and stays within the API server's cost budget
/// by kube-cel's static estimate (lists and maps that rules iterate carry maxItems / maxProperties bounds).
#[test]
fn every_rule_compiles_and_stays_within_the_cost_budget() {
    use kube::core::cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};

    fn visit(node: &Value, path: &str, seen: &mut usize) {
        if let Some(rules) = node.get("x-kubernetes-validations").and_then(Value::as_array) {
            let compiled = compile_schema(node);
            for result in &compiled.validations {
                assert!(result.is_ok(), "rule at {path} fails to compile: {result:?}");
            }
            for rule in rules {
                let rule = rule["rule"].as_str().unwrap();
                let warnings: Vec<_> = analyze_rule(rule, &compiled, ScopeContext::CrdValidation)
                    .into_iter()
                    // Scope warnings are skipped: kube-cel reports comprehension variables (`k` in
                    // `self.all(k, …)`) as out of scope.
                    .filter(|w| w.kind == WarningKind::CostExceeded)
                    .collect();
                assert!(warnings.is_empty(), "rule at {path}: {warnings:?}");
                *seen += 1;
            }
        }
        match node {
            Value::Object(map) => map.iter().for_each(|(k, v)| visit(v, &format!("{path}/{k}"), seen)),
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, v)| visit(v, &format!("{path}/{i}"), seen))
            }
            _ => {}
        }
    }
    let mut seen = 0;
    for (name, crd) in ballast::api::crds::crd_files() {
        let crd = serde_json::to_value(crd).unwrap();
        visit(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], &name, &mut seen);
    }
    assert!(seen >= 30, "only {seen} rules found");
}

#[test]
fn oversized_lists_and_maps_are_rejected() {
    let p = with(|s| {
        s.requirements =
            Some((0..101).map(|i| requirement(&format!("example.com/k{i}"), "Exists", &[])).collect())
    });
    assert_problem(&p, "spec.requirements", "must have at most 100 items");
    let p = with(|s| s.labels = Some((0..101).map(|i| (format!("k{i}"), "v".to_string())).collect()));
    assert_problem(&p, "spec.labels", "must have at most 100 items");
}
