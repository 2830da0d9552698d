//! Starts moto (an EC2 API server) on 127.0.0.1 on a free port, shared by the tests of one binary that run at
//! the same time, and stopped by PID when the last of them drops it. `scripts/test` installs moto and sets
//! `BALLAST_MOTO_SERVER`; without it the tests fail loudly rather than skip.

use std::{
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

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
