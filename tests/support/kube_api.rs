//! A stateful fake kube API server on 127.0.0.1 for running the `ballast` binary: it stores objects per
//! resource, serves list and watch (a history replayed from the requested resourceVersion, then live events),
//! names POSTed objects with `generateName`, applies merge, apply and JSON patches (status subresource included),
//! honours finalizers on delete, and accepts Events.

use std::{collections::BTreeMap, convert::Infallible, net::SocketAddr, sync::Arc};

use axum::{body::Body, extract::Request, http::Method, response::Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// One change, as a watch sends it.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    resource: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Store {
    rv: u64,
    next_name: u64,
    /// resource (`nodes`, `nodeclaims`…) → name (`namespace/name` when namespaced) → object.
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    history: Vec<Change>,
}

pub struct FakeKube {
    store: Mutex<Store>,
    changes: broadcast::Sender<Change>,
    /// `METHOD /path` of every request (`WATCH` for watches), in order.
    requests: Mutex<Vec<String>>,
}

/// What a request path names: `/api/v1/namespaces/ns/pods/name/status` → resource, namespace, name, subresource.
type Target = (String, Option<String>, Option<String>, Option<String>);

fn parse(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    match rest {
        [resource] => Some((resource.to_string(), namespace, None, None)),
        [resource, name] => Some((resource.to_string(), namespace, Some(name.to_string()), None)),
        [resource, name, sub] => {
            Some((resource.to_string(), namespace, Some(name.to_string()), Some(sub.to_string())))
        }
        _ => None,
    }
}

fn key(namespace: Option<&str>, name: &str) -> String {
    namespace.map_or(name.to_string(), |ns| format!("{ns}/{name}"))
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn respond(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn status(code: u16, reason: &str, message: String) -> Response {
    respond(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message}),
    )
}

impl FakeKube {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            store: Mutex::default(),
            changes: broadcast::channel(1024).0,
            requests: Mutex::default(),
        })
    }

    /// `METHOD /path` of every request so far (`WATCH` for watches).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().clone()
    }

    /// Stores an object as if created by someone else (`resource` is the plural, e.g. `pods`).
    pub fn insert(&self, resource: &str, mut object: Value) {
        let mut store = self.store.lock();
        let k = key(object["metadata"]["namespace"].as_str(), object["metadata"]["name"].as_str().unwrap());
        self.record(&mut store, resource, &k, &mut object, "ADDED");
    }

    pub fn list(&self, resource: &str) -> Vec<Value> {
        self.store.lock().objects.get(resource).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    fn record(&self, store: &mut Store, resource: &str, k: &str, object: &mut Value, kind: &'static str) {
        store.rv += 1;
        object["metadata"]["resourceVersion"] = json!(store.rv.to_string());
        if object["metadata"].get("uid").is_none() {
            object["metadata"]["uid"] = json!(format!("uid-{}", store.rv));
        }
        if object["metadata"].get("creationTimestamp").is_none() {
            object["metadata"]["creationTimestamp"] =
                json!(jiff::Timestamp::now().round(jiff::Unit::Second).unwrap().to_string());
        }
        let objects = store.objects.entry(resource.to_string()).or_default();
        if kind == "DELETED" {
            objects.remove(k);
        } else {
            objects.insert(k.to_string(), object.clone());
        }
        let change = Change { rv: store.rv, resource: resource.to_string(), kind, object: object.clone() };
        store.history.push(change.clone());
        let _ = self.changes.send(change);
    }

    /// Serves on a free port until the test ends.
    pub async fn serve(self: &Arc<Self>) -> SocketAddr {
        let fake = self.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let fake = fake.clone();
            async move { fake.handle(request).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    async fn handle(self: Arc<Self>, request: Request) -> Response {
        let path = request.uri().path().to_string();
        let query: BTreeMap<String, String> = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let method = request.method().clone();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(request.into_body(), 1 << 22).await.unwrap();
        let watching = query.get("watch").is_some_and(|w| w == "true");
        self.requests.lock().push(format!("{} {path}", if watching { "WATCH" } else { method.as_str() }));
        if path == "/version" {
            return respond(
                200,
                &json!({"major": "1", "minor": "30", "gitVersion": "v1.30.0", "gitCommit": "x", "gitTreeState": "clean",
                        "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64"}),
            );
        }
        let Some((resource, namespace, name, sub)) = parse(&path) else {
            return status(404, "NotFound", format!("{path} not found"));
        };
        match (method, name) {
            (Method::GET, None) if watching => {
                let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
                self.watch(resource, namespace, from)
            }
            (Method::GET, None) => {
                let store = self.store.lock();
                let items: Vec<Value> = store
                    .objects
                    .get(&resource)
                    .map(|m| {
                        m.values()
                            .filter(|o| {
                                namespace.is_none()
                                    || o["metadata"]["namespace"].as_str() == namespace.as_deref()
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                respond(
                    200,
                    &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
                )
            }
            (Method::POST, None) => {
                let mut object: Value = serde_json::from_slice(&body).unwrap();
                let mut store = self.store.lock();
                if object["metadata"].get("name").is_none_or(Value::is_null) {
                    store.next_name += 1;
                    let prefix = object["metadata"]["generateName"].as_str().unwrap_or_default().to_string();
                    object["metadata"]["name"] = json!(format!("{prefix}{:05}", store.next_name));
                }
                if let Some(ns) = &namespace {
                    object["metadata"]["namespace"] = json!(ns);
                }
                let k = key(namespace.as_deref(), object["metadata"]["name"].as_str().unwrap());
                if store.objects.get(&resource).is_some_and(|m| m.contains_key(&k)) {
                    return status(409, "AlreadyExists", format!("{resource} {k} already exists"));
                }
                self.record(&mut store, &resource, &k, &mut object, "ADDED");
                respond(201, &object)
            }
            (method, Some(name)) => {
                let k = key(namespace.as_deref(), &name);
                let mut store = self.store.lock();
                let Some(mut object) = store.objects.get(&resource).and_then(|m| m.get(&k)).cloned() else {
                    return status(404, "NotFound", format!("{resource} {k} not found"));
                };
                match method {
                    Method::GET => respond(200, &object),
                    Method::PATCH => {
                        let patch: Value = serde_json::from_slice(&body).unwrap();
                        if content_type.starts_with("application/json-patch") {
                            // As the API server does, a missing field tests equal to null.
                            let ops: Vec<Value> = patch
                                .as_array()
                                .unwrap()
                                .iter()
                                .filter(|op| {
                                    !(op["op"] == "test"
                                        && op["value"].is_null()
                                        && object.pointer(op["path"].as_str().unwrap_or_default()).is_none())
                                })
                                .cloned()
                                .collect();
                            let ops: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
                            if let Err(e) = json_patch::patch(&mut object, &ops) {
                                return status(422, "Invalid", e.to_string());
                            }
                        } else if sub.as_deref() == Some("status") {
                            merge(&mut object["status"], &patch["status"]);
                        } else {
                            merge(&mut object, &patch);
                        }
                        self.record(&mut store, &resource, &k, &mut object, "MODIFIED");
                        respond(200, &object)
                    }
                    Method::DELETE => {
                        let finalized =
                            object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
                        if finalized {
                            if object["metadata"].get("deletionTimestamp").is_none() {
                                object["metadata"]["deletionTimestamp"] = json!(
                                    jiff::Timestamp::now().round(jiff::Unit::Second).unwrap().to_string()
                                );
                                self.record(&mut store, &resource, &k, &mut object, "MODIFIED");
                            }
                        } else {
                            self.record(&mut store, &resource, &k, &mut object, "DELETED");
                        }
                        respond(200, &object)
                    }
                    other => status(405, "MethodNotAllowed", format!("{other} {path}")),
                }
            }
            (other, None) => status(405, "MethodNotAllowed", format!("{other} {path}")),
        }
    }

    /// Replays the history after `from`, then streams live changes of `resource`.
    fn watch(&self, resource: String, namespace: Option<String>, from: u64) -> Response {
        let live = self.changes.subscribe();
        let past: Vec<Change> = self.store.lock().history.iter().filter(|c| c.rv > from).cloned().collect();
        let last = past.last().map_or(from, |c| c.rv);
        let wanted = move |c: &Change| {
            c.resource == resource
                && (namespace.is_none() || c.object["metadata"]["namespace"].as_str() == namespace.as_deref())
        };
        let line = |c: &Change| {
            Ok::<_, Infallible>(format!("{}\n", json!({"type": c.kind, "object": c.object})).into_bytes())
        };
        let replay: Vec<_> = past.iter().filter(|c| wanted(c)).map(line).collect();
        let stream = futures::stream::unfold(live, move |mut rx| {
            let wanted = wanted.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(c) if c.rv > last && wanted(&c) => return Some((line(&c), rx)),
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        let body = Body::from_stream(futures::StreamExt::chain(futures::stream::iter(replay), stream));
        Response::builder().header("content-type", "application/json").body(body).unwrap()
    }
}
