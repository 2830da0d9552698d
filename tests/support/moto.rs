//! Starts moto (an EC2 API server) on 127.0.0.1 on a free port, shared by the tests of one binary that run at
//! the same time, and stopped by PID when the last of them drops it. `scripts/test` installs moto and sets
//! `BALLAST_MOTO_SERVER`; without it the tests fail loudly rather than skip.

use std::{
    collections::BTreeMap,
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use parking_lot::Mutex;

pub const REGION: &str = "us-east-1";

pub struct Moto {
    child: Mutex<Child>,
    pub endpoint: String,
}

static SHARED: Mutex<Weak<Moto>> = Mutex::new(Weak::new());

/// The running server, started when no test holds one.
pub fn shared() -> Arc<Moto> {
    let mut shared = SHARED.lock();
    if let Some(moto) = shared.upgrade() {
        return moto;
    }
    let moto = Arc::new(Moto::start());
    *shared = Arc::downgrade(&moto);
    moto
}

impl Moto {
    fn start() -> Self {
        let server = std::env::var("BALLAST_MOTO_SERVER").unwrap_or_else(|_| {
            panic!(
                "BALLAST_MOTO_SERVER is not set: the cloud::aws tests need moto, an EC2 API server. Run \
                 ./scripts/test (it installs moto into ${{XDG_CACHE_HOME:-$HOME/.cache}}/ballast/venv), or \
                 `python3 -m venv <dir> && <dir>/bin/pip install 'moto[server]>=5,<6'` and export \
                 BALLAST_MOTO_SERVER=<dir>/bin/moto_server"
            )
        });
        // Bind port 0 to get a free port, release it, and hand it to moto.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start moto at BALLAST_MOTO_SERVER={server}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("moto at {server} exited with {status} before listening on 127.0.0.1:{port}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("moto at {server} did not listen on 127.0.0.1:{port} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child: Mutex::new(child), endpoint: format!("http://127.0.0.1:{port}") }
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The zones [`seed_network`] puts discoverable subnets in.
pub const ZONES: [&str; 2] = ["us-east-1a", "us-east-1b"];

/// A cluster's network in moto: a VPC with subnets tagged `karpenter.sh/discovery=<cluster>` in [`ZONES`] (plus a
/// smaller one in the first zone and an undiscoverable one in a third), a discoverable security group (and an
/// undiscoverable one), and an x86_64 AMI.
pub struct Network {
    pub cluster: String,
    /// zone → the subnet ballast should pick there.
    pub subnets: BTreeMap<String, String>,
    pub small_subnet: String,
    pub security_group: String,
    pub ami: String,
}

pub async fn seed_network(ec2: &aws_sdk_ec2::Client, cluster: &str) -> Network {
    static NEXT_VPC: AtomicU64 = AtomicU64::new(0);
    let octet = NEXT_VPC.fetch_add(1, Ordering::Relaxed) % 250;
    let discovery = [("karpenter.sh/discovery", cluster)];
    let vpc = ec2.create_vpc().cidr_block(format!("10.{octet}.0.0/16")).send().await.unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = |cidr: String, zone: &str, tags: &[(&str, &str)]| {
        let req = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(cidr)
            .availability_zone(zone)
            .tag_specifications(tagged(ResourceType::Subnet, tags));
        async move { req.send().await.unwrap().subnet.unwrap().subnet_id.unwrap() }
    };
    let mut subnets = BTreeMap::new();
    for (i, zone) in ZONES.iter().enumerate() {
        subnets.insert(zone.to_string(), subnet(format!("10.{octet}.{i}.0/24"), zone, &discovery).await);
    }
    let small_subnet = subnet(format!("10.{octet}.10.0/28"), ZONES[0], &discovery).await;
    subnet(format!("10.{octet}.11.0/24"), "us-east-1c", &[("other", "x")]).await;
    let security_group = ec2
        .create_security_group()
        .group_name(format!("{cluster}-nodes"))
        .description("nodes")
        .vpc_id(&vpc_id)
        .tag_specifications(tagged(ResourceType::SecurityGroup, &discovery))
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    ec2.create_security_group()
        .group_name(format!("{cluster}-other"))
        .description("not for nodes")
        .vpc_id(&vpc_id)
        .send()
        .await
        .unwrap();
    let images = ec2
        .describe_images()
        .owners("amazon")
        .filters(Filter::builder().name("architecture").values("x86_64").build())
        .send()
        .await
        .unwrap();
    let ami = images.images()[0].image_id().unwrap().to_string();
    Network { cluster: cluster.to_string(), subnets, small_subnet, security_group, ami }
}

/// A tag specification for a resource about to be created.
pub fn tagged(kind: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    let tags = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags)).build()
}
