//! The live cluster as a plan input: the watches `run` uses fill a fresh index until every kind has listed
//! once, then the watches stop. Besides lists and watches, the only requests are GETs of the proportional
//! targets' `/scale`.

use std::{collections::BTreeSet, time::Duration};

use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};

use super::{Error, Input, proportional_loop};
use crate::{
    actuator::ScaleTarget,
    client::{self, ClientMetrics},
    config::PlanArgs,
    proportional::{ScaleRead, TargetKind},
    state::{
        Cluster, Kind,
        watch::{self, WatchOptions},
    },
};

pub(super) async fn load(args: &PlanArgs, config_maps: BTreeSet<String>) -> Result<Input, Error> {
    let client = client::build(&args.client, ClientMetrics::default()).await?;
    let index = Cluster::new();
    let mut changes = index.subscribe();
    let watches = watch::spawn(client.clone(), &index, &WatchOptions { config_maps });
    let timeout = Duration::from_secs(args.sync_timeout_seconds);
    let synced = tokio::time::timeout(timeout, async {
        while !index.synced() {
            if changes.changed(&Kind::ALL).await.is_err() {
                return;
            }
        }
    })
    .await;
    for (_, task) in watches {
        task.abort();
    }
    if synced.is_err() || !index.synced() {
        return Err(Error::SyncTimeout(timeout));
    }
    let snapshot = index.snapshot();

    let mut replicas = std::collections::BTreeMap::new();
    for target in proportional_loop(&args.proportional).targets(&snapshot) {
        let read = read_scale(&client, &target).await;
        replicas.insert(target, read);
    }
    let source = match (&args.client.kubeconfig, &args.client.kube_context) {
        (Some(path), _) => format!("cluster of kubeconfig {}", path.display()),
        (None, Some(context)) => format!("cluster of kubeconfig context {context}"),
        (None, None) => "cluster".to_string(),
    };
    Ok(Input { source, snapshot, replicas, skipped: Vec::new(), ignored_kinds: Default::default() })
}

/// GET `/scale` of a proportional target.
async fn read_scale(client: &kube::Client, target: &ScaleTarget) -> ScaleRead {
    let Some(kind) = TargetKind::from_name(&target.kind) else {
        return ScaleRead::Failed(format!("{} is not a kind proportional scaling supports", target.kind));
    };
    let (api_version, kind_name) = kind.api_version_and_kind();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind_name));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &target.namespace, &resource);
    match api.get_scale(&target.name).await {
        Ok(scale) => ScaleRead::Replicas(scale.spec.and_then(|s| s.replicas).unwrap_or(0)),
        Err(kube::Error::Api(status)) if status.code == 404 => ScaleRead::NotFound,
        Err(error) => ScaleRead::Failed(error.to_string()),
    }
}
