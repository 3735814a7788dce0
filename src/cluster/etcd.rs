//! What the nodes agree on, in etcd (`../shared/CLUSTER.md`): which nodes
//! are alive (`nodes/<id>` on a lease), which node owns each index
//! (`indexes/<name>` → `{owner, epoch}`, changed only by transactions on
//! the key's revision) and each index's commit point (`manifests/<name>`,
//! published only by a transaction that checks the ownership is unchanged).

use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};
use serde::{Deserialize, Serialize};

use super::replicated::{fenced, View};
use super::store::Blocking;

/// `indexes/<name>`: who writes the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// The owner's node id.
    pub owner: String,
    /// Incremented by every change of owner (and every re-claim).
    pub epoch: u64,
}

/// `manifests/<name>`: the index's commit point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The epoch of the owner that published it.
    pub epoch: u64,
    /// The index's Synced serial as published: every operation up to it
    /// is in the view's log ([`View::serial`]).
    pub serial: u64,
    /// The index's durable files.
    pub view: View,
}

/// A node as `nodes/` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `--node-id`.
    pub id: String,
    /// Where its HTTP server listens (`host:port`).
    pub address: String,
}

/// An index's ownership with the revision a claim must compare against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    /// The ownership record.
    pub ownership: Ownership,
    /// The key's `mod_revision`.
    pub revision: i64,
}

/// One node's connection to etcd.
pub struct Coordinator {
    client: Client,
    prefix: String,
    node: String,
    ttl: Duration,
    lease: AtomicI64,
    /// Until when this node's lease is surely alive (the last keep-alive
    /// answered, sent at `t`, gives `t + ttl`).
    alive_until: Mutex<Instant>,
    blocking: Blocking,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("prefix", &self.prefix).field("node", &self.node).finish()
    }
}

fn etcd_error(e: etcd_client::Error) -> io::Error {
    io::Error::other(format!("etcd: {e}"))
}

fn json_error(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("etcd: a malformed value: {e}"))
}

impl Coordinator {
    /// Connects to `endpoints` (comma-separated); keys go under `prefix`.
    pub fn connect(
        endpoints: &str,
        prefix: &str,
        node: &str,
        ttl: Duration,
        blocking: Blocking,
    ) -> io::Result<Coordinator> {
        let endpoints: Vec<String> = endpoints.split(',').map(|e| e.trim().to_string()).collect();
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2));
        let client =
            blocking.wait(async move { Client::connect(endpoints, Some(options)).await })?.map_err(etcd_error)?;
        Ok(Coordinator {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
            node: node.to_string(),
            ttl,
            lease: AtomicI64::new(0),
            alive_until: Mutex::new(Instant::now()),
            blocking,
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}/{kind}/{name}", self.prefix)
    }

    fn wait<T: Send + 'static>(&self, future: impl std::future::Future<Output = T> + Send + 'static) -> io::Result<T> {
        self.blocking.wait(future)
    }

    /// Grants a new lease and puts `nodes/<id>` → `info` on it.
    pub fn register(&self, address: &str) -> io::Result<()> {
        let mut client = self.client.clone();
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let key = self.key("nodes", &self.node);
        let value = serde_json::to_string(&NodeInfo { id: self.node.clone(), address: address.to_string() })?;
        let sent = Instant::now();
        let lease = self
            .wait(async move {
                let lease = client.lease_grant(ttl, None).await?.id();
                client.put(key, value, Some(PutOptions::new().with_lease(lease))).await?;
                Ok::<_, etcd_client::Error>(lease)
            })?
            .map_err(etcd_error)?;
        self.lease.store(lease, Ordering::SeqCst);
        *self.alive_until.lock().unwrap_or_else(|e| e.into_inner()) = sent + self.ttl;
        Ok(())
    }

    /// Revokes the lease: `nodes/<id>` goes at once (a graceful stop).
    pub fn revoke(&self) -> io::Result<()> {
        let mut client = self.client.clone();
        let lease = self.lease.load(Ordering::SeqCst);
        self.wait(async move { client.lease_revoke(lease).await })?.map_err(etcd_error)?;
        Ok(())
    }

    /// Renews the lease once: `Ok(false)` when it had expired (the node was
    /// gone, for the others, and must register again).
    pub fn keep_alive(&self) -> io::Result<bool> {
        let mut client = self.client.clone();
        let lease = self.lease.load(Ordering::SeqCst);
        let sent = Instant::now();
        let ttl = self
            .wait(async move {
                let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                Ok::<_, etcd_client::Error>(stream.message().await?.map_or(0, |m| m.ttl()))
            })?
            .map_err(etcd_error)?;
        if ttl <= 0 {
            return Ok(false);
        }
        *self.alive_until.lock().unwrap_or_else(|e| e.into_inner()) = sent + self.ttl;
        Ok(true)
    }

    /// Whether this node's lease is surely still alive now.
    pub fn lease_alive(&self) -> bool {
        Instant::now() < *self.alive_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every live node, by id.
    pub fn nodes(&self) -> io::Result<Vec<NodeInfo>> {
        let mut nodes: Vec<NodeInfo> = self
            .list("nodes")?
            .into_iter()
            .map(|(_, value, _)| serde_json::from_slice(&value).map_err(json_error))
            .collect::<io::Result<_>>()?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Every index's ownership, by name.
    pub fn indexes(&self) -> io::Result<Vec<(String, Owned)>> {
        self.list("indexes")?
            .into_iter()
            .map(|(name, value, revision)| {
                let ownership = serde_json::from_slice(&value).map_err(json_error)?;
                Ok((name, Owned { ownership, revision }))
            })
            .collect()
    }

    /// Every index's published commit point, by name.
    pub fn manifests(&self) -> io::Result<Vec<(String, Published)>> {
        self.list("manifests")?
            .into_iter()
            .map(|(name, value, _)| Ok((name, serde_json::from_slice(&value).map_err(json_error)?)))
            .collect()
    }

    /// The keys under `kind/`: name, value, mod_revision.
    fn list(&self, kind: &str) -> io::Result<Vec<(String, Vec<u8>, i64)>> {
        let mut client = self.client.clone();
        let prefix = format!("{}/{kind}/", self.prefix);
        let start = prefix.clone();
        let response = self
            .wait(async move { client.get(start, Some(GetOptions::new().with_prefix())).await })?
            .map_err(etcd_error)?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| {
                let name = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
                (name, kv.value().to_vec(), kv.mod_revision())
            })
            .collect())
    }

    /// The ownership of index `name`, if it has an owner record.
    pub fn ownership(&self, name: &str) -> io::Result<Option<Owned>> {
        let mut client = self.client.clone();
        let key = self.key("indexes", name);
        let response = self.wait(async move { client.get(key, None).await })?.map_err(etcd_error)?;
        match response.kvs().first() {
            None => Ok(None),
            Some(kv) => Ok(Some(Owned {
                ownership: serde_json::from_slice(kv.value()).map_err(json_error)?,
                revision: kv.mod_revision(),
            })),
        }
    }

    /// The published commit point of index `name`.
    pub fn published(&self, name: &str) -> io::Result<Option<Published>> {
        Ok(self.published_at(name)?.map(|(published, _)| published))
    }

    /// The published commit point of index `name`, with the etcd revision
    /// that published it (a later publish has a higher one).
    pub fn published_at(&self, name: &str) -> io::Result<Option<(Published, i64)>> {
        let mut client = self.client.clone();
        let key = self.key("manifests", name);
        let response = self.wait(async move { client.get(key, None).await })?.map_err(etcd_error)?;
        let Some(kv) = response.kvs().first() else { return Ok(None) };
        Ok(Some((serde_json::from_slice(kv.value()).map_err(json_error)?, kv.mod_revision())))
    }

    /// Takes index `name` for this node with the next epoch, if its record
    /// is still `previous` (`None`: it has none yet, a new index). The new
    /// ownership, or `None` when another change came first.
    pub fn claim(&self, name: &str, previous: Option<&Owned>) -> io::Result<Option<Owned>> {
        let epoch = previous.map_or(1, |p| p.ownership.epoch + 1);
        let ownership = Ownership { owner: self.node.clone(), epoch };
        let key = self.key("indexes", name);
        let compare = match previous {
            Some(p) => Compare::mod_revision(key.clone(), CompareOp::Equal, p.revision),
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new().when([compare]).and_then([TxnOp::put(key, serde_json::to_vec(&ownership)?, None)]);
        let mut client = self.client.clone();
        let response = self.wait(async move { client.txn(txn).await })?.map_err(etcd_error)?;
        if !response.succeeded() {
            return Ok(None);
        }
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(Some(Owned { ownership, revision }))
    }

    /// Publishes `published` as index `name`'s commit point if `owned` is
    /// still its ownership: a [`fenced`] error otherwise.
    pub fn publish(&self, name: &str, owned: &Owned, published: &Published) -> io::Result<()> {
        let index_key = self.key("indexes", name);
        let txn = Txn::new()
            .when([Compare::mod_revision(index_key, CompareOp::Equal, owned.revision)])
            .and_then([TxnOp::put(self.key("manifests", name), serde_json::to_vec(published)?, None)]);
        let mut client = self.client.clone();
        let response = self.wait(async move { client.txn(txn).await })?.map_err(etcd_error)?;
        if !response.succeeded() {
            return Err(fenced(format!("index {name} has a new owner (epoch {} was ours)", owned.ownership.epoch)));
        }
        Ok(())
    }

    /// Gives index `name`, owned as `owned`, to node `to` with the next
    /// epoch (a hand-over, after the owner published everything): the new
    /// ownership, or `None` when another change came first.
    pub fn hand_over(&self, name: &str, owned: &Owned, to: &str) -> io::Result<Option<Owned>> {
        let ownership = Ownership { owner: to.to_string(), epoch: owned.ownership.epoch + 1 };
        let key = self.key("indexes", name);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, owned.revision)])
            .and_then([TxnOp::put(key, serde_json::to_vec(&ownership)?, None)]);
        let mut client = self.client.clone();
        let response = self.wait(async move { client.txn(txn).await })?.map_err(etcd_error)?;
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(response.succeeded().then_some(Owned { ownership, revision }))
    }

    /// Removes index `name` (its ownership and commit point) if `owned` is
    /// still its ownership: a [`fenced`] error otherwise.
    pub fn remove(&self, name: &str, owned: &Owned) -> io::Result<()> {
        let index_key = self.key("indexes", name);
        let txn = Txn::new()
            .when([Compare::mod_revision(index_key.clone(), CompareOp::Equal, owned.revision)])
            .and_then([TxnOp::delete(index_key, None), TxnOp::delete(self.key("manifests", name), None)]);
        let mut client = self.client.clone();
        let response = self.wait(async move { client.txn(txn).await })?.map_err(etcd_error)?;
        if !response.succeeded() {
            return Err(fenced(format!("index {name} has a new owner")));
        }
        Ok(())
    }

    /// The cluster's API token: `fresh` stored under `token` unless a node
    /// stored one first; the stored one.
    pub fn shared_token(&self, fresh: &str) -> io::Result<String> {
        let key = format!("{}/token", self.prefix);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), fresh, None)])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.client.clone();
        let response = self.wait(async move { client.txn(txn).await })?.map_err(etcd_error)?;
        if response.succeeded() {
            return Ok(fresh.to_string());
        }
        for op in response.op_responses() {
            if let etcd_client::TxnOpResponse::Get(get) = op {
                if let Some(kv) = get.kvs().first() {
                    return Ok(String::from_utf8_lossy(kv.value()).into_owned());
                }
            }
        }
        Err(io::Error::other("etcd: the cluster's token could not be read"))
    }

    /// Calls `changed` whenever a node joins or leaves (a key under
    /// `nodes/` is put, or deleted: its lease expired or was revoked), on
    /// the cluster's runtime, until the process ends. A broken watch is
    /// started again a second later.
    pub fn watch_nodes(&self, changed: impl Fn() + Send + Sync + 'static) {
        let mut client = self.client.clone();
        let key = format!("{}/nodes/", self.prefix);
        self.blocking.spawn(async move {
            loop {
                match client.watch(key.clone(), Some(WatchOptions::new().with_prefix())).await {
                    Ok(mut stream) => loop {
                        match stream.message().await {
                            Ok(Some(message)) if !message.events().is_empty() => changed(),
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(e) => {
                                eprintln!("pushdex serve: watching the nodes in etcd: {e}");
                                break;
                            }
                        }
                    },
                    Err(e) => eprintln!("pushdex serve: watching the nodes in etcd: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The lease, for tests that revoke it.
    pub fn lease(&self) -> i64 {
        self.lease.load(Ordering::SeqCst)
    }
}

/// Keeps `coordinator`'s lease alive (a third of the TTL apart) until the
/// process ends; registers again (a new lease) when it had expired, and
/// calls `lost` then: whatever this node owned may be someone else's now.
pub fn keep_alive_forever(coordinator: Arc<Coordinator>, address: String, lost: impl Fn() + Send + 'static) {
    std::thread::Builder::new()
        .name("pushdex-lease".into())
        .spawn(move || loop {
            std::thread::sleep(coordinator.ttl() / 3);
            match coordinator.keep_alive() {
                Ok(true) => {}
                Ok(false) => {
                    lost();
                    if let Err(e) = coordinator.register(&address) {
                        eprintln!("pushdex serve: registering again in etcd: {e}");
                    }
                }
                Err(e) => eprintln!("pushdex serve: keeping the etcd lease alive: {e}"),
            }
        })
        .expect("a thread for the etcd lease");
}
