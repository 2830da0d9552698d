//! A recording fake provider for loop tests (Karpenter's `fake.CloudProvider`): records create and delete
//! calls, launches the first option of each request, and injects failures.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use jiff::Timestamp;
use parking_lot::Mutex;

use super::{Catalog, CloudError, CloudProvider, Instance, InstanceState, LaunchRequest, Result};
use crate::api::labels;

#[derive(Debug, Default)]
struct State {
    create_calls: Vec<LaunchRequest>,
    delete_calls: Vec<String>,
    next_create_error: Option<CloudError>,
    allowed_creates: Option<usize>,
    /// By provider id.
    instances: BTreeMap<String, Instance>,
    launched: u64,
}

/// In-memory [`CloudProvider`] whose launches always succeed on the request's first option unless told
/// otherwise. Instance ids are `i-fake` + a counter, launch times a fixed `now`.
#[derive(Debug)]
pub struct FakeCloud {
    catalog: Arc<Catalog>,
    now: Timestamp,
    state: Mutex<State>,
}

impl FakeCloud {
    pub fn new(catalog: Arc<Catalog>, now: Timestamp) -> Self {
        Self { catalog, now, state: Mutex::new(State::default()) }
    }

    /// Every create request, including failed ones, in call order.
    pub fn create_calls(&self) -> Vec<LaunchRequest> {
        self.state.lock().create_calls.clone()
    }

    /// Provider ids passed to delete, in call order.
    pub fn delete_calls(&self) -> Vec<String> {
        self.state.lock().delete_calls.clone()
    }

    /// The next create fails with `error` (once).
    pub fn set_next_create_error(&self, error: CloudError) {
        self.state.lock().next_create_error = Some(error);
    }

    /// Only `n` more creates succeed; later ones fail with insufficient capacity. `None` removes the cap.
    pub fn set_allowed_creates(&self, n: Option<usize>) {
        self.state.lock().allowed_creates = n;
    }

    /// Forgets calls, instances and injected failures (between test cases).
    pub fn reset(&self) {
        *self.state.lock() = State::default();
    }
}

#[async_trait]
impl CloudProvider for FakeCloud {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn catalog(&self) -> Result<Arc<Catalog>> {
        Ok(self.catalog.clone())
    }

    async fn create(&self, req: &LaunchRequest) -> Result<Instance> {
        let mut state = self.state.lock();
        state.create_calls.push(req.clone());
        if let Some(error) = state.next_create_error.take() {
            return Err(error);
        }
        let Some(option) = req.options.first() else {
            return Err(CloudError::InvalidConfig(format!(
                "failed to launch NodeClaim {}: no launch options",
                req.claim_name
            )));
        };
        if let Some(allowed) = state.allowed_creates.as_mut() {
            if *allowed == 0 {
                return Err(CloudError::InsufficientCapacity {
                    offerings: vec![(
                        option.instance_type.clone(),
                        option.zone.clone(),
                        option.capacity_type,
                    )],
                });
            }
            *allowed -= 1;
        }
        state.launched += 1;
        let id = format!("i-fake{:011}", state.launched);
        let mut tags = req.tags.clone();
        tags.insert(labels::BALLAST_NODE_CLAIM.to_string(), req.claim_name.clone());
        tags.insert(labels::BALLAST_PROVISIONER.to_string(), req.provisioner.clone());
        let instance = Instance {
            provider_id: format!("aws:///{}/{id}", option.zone),
            id,
            instance_type: option.instance_type.clone(),
            zone: option.zone.clone(),
            capacity_type: option.capacity_type,
            price: option.price,
            launched_at: self.now,
            state: InstanceState::Running,
            tags,
        };
        state.instances.insert(instance.provider_id.clone(), instance.clone());
        Ok(instance)
    }

    async fn delete(&self, provider_id: &str) -> Result<()> {
        let mut state = self.state.lock();
        state.delete_calls.push(provider_id.to_string());
        state
            .instances
            .remove(provider_id)
            .map(|_| ())
            .ok_or_else(|| CloudError::NotFound(provider_id.to_string()))
    }

    async fn get(&self, provider_id: &str) -> Result<Instance> {
        self.state
            .lock()
            .instances
            .get(provider_id)
            .cloned()
            .ok_or_else(|| CloudError::NotFound(provider_id.to_string()))
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        Ok(self.state.lock().instances.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{CapacityType, LaunchOption};

    fn request(claim: &str) -> LaunchRequest {
        LaunchRequest {
            claim_name: claim.to_string(),
            provisioner: "default".to_string(),
            node_template: None,
            options: vec![LaunchOption {
                instance_type: "m5.large".to_string(),
                zone: "us-east-1a".to_string(),
                capacity_type: CapacityType::OnDemand,
                price: 0.096,
            }],
            labels: Default::default(),
            taints: vec![],
            startup_taints: vec![],
            tags: Default::default(),
        }
    }

    #[tokio::test]
    async fn records_calls_and_injects_failures() {
        let cloud = FakeCloud::new(Arc::new(Catalog::default()), Timestamp::UNIX_EPOCH);
        let a = cloud.create(&request("a")).await.unwrap();
        assert_eq!(a.provider_id, "aws:///us-east-1a/i-fake00000000001");
        assert_eq!(a.claim_name(), Some("a"));

        cloud.set_next_create_error(CloudError::Throttled("slow down".into()));
        assert!(matches!(cloud.create(&request("b")).await, Err(CloudError::Throttled(_))));
        cloud.set_allowed_creates(Some(1));
        cloud.create(&request("c")).await.unwrap();
        assert!(matches!(cloud.create(&request("d")).await, Err(CloudError::InsufficientCapacity { .. })));
        let claims: Vec<String> = cloud.create_calls().into_iter().map(|r| r.claim_name).collect();
        assert_eq!(claims, ["a", "b", "c", "d"]);

        cloud.delete(&a.provider_id).await.unwrap();
        assert!(matches!(cloud.get(&a.provider_id).await, Err(CloudError::NotFound(_))));
        assert!(matches!(cloud.delete(&a.provider_id).await, Err(CloudError::NotFound(_))));
        assert_eq!(cloud.delete_calls().len(), 2);
        assert_eq!(cloud.list().await.unwrap().len(), 1);

        cloud.reset();
        assert!(cloud.create_calls().is_empty() && cloud.list().await.unwrap().is_empty());
    }
}
