//! `pushdex serve --cluster`: this node's part in a cluster
//! (`../shared/CLUSTER.md`).
//!
//! Every request for an index goes first through [`route`]. A search is
//! served here, from the published manifest (`super::replicas`). Anything
//! else is served here when this node owns the index with a live lease (or
//! takes it: a new index placed here, an orphan whose owner's lease
//! expired), and forwarded to the owner otherwise (proxied: the client sees
//! the owner's answer). A node that was paused past its lease reads the
//! ownership from etcd at its next request, learns that it lost the index,
//! closes it (nothing it wrote since is ever published: its publishes are
//! fenced) and forwards. An index this node owns runs on the replicating
//! storage (`crate::cluster::replicated`): Synced is uploaded and
//! published, and what no published view names any more is deleted.
//!
//! A background thread ([`watch`]) takes orphaned indexes (the live node
//! with the fewest indexes, then the smallest id, takes each), re-opens at
//! the next epoch what etcd says this node owns but it has not open (a
//! restart), and hands indexes over one at a time to a node with fewer.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::indexes::{Backend, Indexes};
use super::replicas::Replicas;
use super::{AppState, ClusterConfig};
use crate::cluster::etcd::{keep_alive_forever, Coordinator, NodeInfo, Owned, Published};
use crate::cluster::replicated::{restore, Remote, Replicated, ReplicatedStorage, View};
use crate::cluster::store::{Blocking, Store};
use crate::storage::FsStorage;
use crate::{Create, Error, Index, Options};

/// What the watch read last.
#[derive(Debug, Default)]
struct Known {
    nodes: Vec<NodeInfo>,
    indexes: HashMap<String, Owned>,
}

/// The header that marks a request forwarded by another node, with the
/// number of hops so far: a node forwards it again only while the index's
/// owner changes under it, at most [`MAX_HOPS`] times.
const FORWARDED: &str = "x-pushdex-forwarded";
/// How long a starting node waits for etcd to answer.
const ETCD_PATIENCE: Duration = Duration::from_secs(30);
/// The most times one request is forwarded.
const MAX_HOPS: u32 = 3;

/// This node's view of the cluster.
pub(crate) struct Cluster {
    coordinator: Arc<Coordinator>,
    store: Store,
    /// `DATA/indexes`: each owned index's local copy.
    dir: PathBuf,
    /// This node's `host:port`.
    address: String,
    /// The indexes this process opened, with the ownership it claimed.
    owned: Mutex<HashMap<String, Owned>>,
    /// Addresses of every node seen alive (the dead keep theirs here).
    seen: Mutex<HashMap<String, String>>,
    /// The live nodes and the owners, as the watch last read them (at most
    /// a third of the TTL old): where requests are forwarded without
    /// asking etcd each time.
    known: Mutex<Known>,

    /// The read-only copies searches read (`DATA/replicas`).
    replicas: Replicas,
    /// Set (and signalled) when a node joined or left: the watch runs at
    /// once instead of at its next tick.
    wake: (Mutex<bool>, std::sync::Condvar),

    client: reqwest::Client,
    /// The runtime of the etcd and object store clients.
    _runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.coordinator.node()).field("store", &self.store).finish()
    }
}

fn io_other(message: String) -> Error {
    Error::Io(io::Error::other(message))
}

impl Cluster {
    /// Connects to etcd and the store; registers this node at `address`.
    pub fn join(config: &ClusterConfig, data: &std::path::Path, address: String) -> io::Result<Arc<Cluster>> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let blocking = Blocking::new(runtime.handle().clone());
        // etcd may be starting beside this node: it gets a while to answer.
        let started = Instant::now();
        let coordinator = loop {
            let joined =
                Coordinator::connect(&config.etcd, &config.prefix, &config.node_id, config.lease_ttl, blocking.clone())
                    .and_then(|coordinator| coordinator.register(&address).map(|()| coordinator));
            match joined {
                Ok(coordinator) => break Arc::new(coordinator),
                Err(e) if started.elapsed() < ETCD_PATIENCE => {
                    eprintln!("pushdex serve: waiting for etcd at {} ({e})", config.etcd);
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        };
        let store = Store::open(&config.store, blocking)?;
        let dir = data.join("indexes");
        std::fs::create_dir_all(&dir)?;
        let replicas = Replicas::new(data.join("replicas"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| io::Error::other(format!("an HTTP client for forwarding: {e}")))?;
        Ok(Arc::new(Cluster {
            coordinator,
            store,
            dir,
            address,
            owned: Mutex::default(),
            seen: Mutex::default(),
            known: Mutex::default(),
            replicas,
            wake: Default::default(),
            client,
            _runtime: runtime,
        }))
    }

    /// The index a search of `name` reads on this node: the replica of
    /// its latest published manifest, brought up to date first.
    /// An object of the view it read may be gone meanwhile (a newer view
    /// replaced it, and its grace ran out): it reads the view again.
    pub fn searched(&self, name: &str) -> ApiResult<Index> {
        let mut attempts = 0;
        loop {
            let published = self.coordinator.published_at(name).map_err(Error::Io)?;
            let view = published.as_ref().map(|(p, revision)| (&p.view, *revision));
            match self.replicas.index(name, view, &|key| self.store.get(key)) {
                Ok(replica) => return replica.ok_or_else(|| ApiError::not_found(format!("no index named {name:?}"))),
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// How long an object no published view names stays in the store
    /// before it is deleted: time for readers of an older view to finish.
    fn grace(&self) -> Duration {
        self.coordinator.ttl() * 2
    }

    fn me(&self) -> &str {
        self.coordinator.node()
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owned>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cluster's token: `fresh`, unless a node stored one first.
    pub fn token(&self, fresh: &str) -> io::Result<String> {
        self.coordinator.shared_token(fresh)
    }

    /// Leaves the cluster at a graceful stop, once every index is closed
    /// (and so published): the lease is revoked, so that other nodes take
    /// the indexes at once rather than after the TTL.
    pub fn leave(&self) {
        if let Err(e) = self.coordinator.revoke() {
            eprintln!("pushdex serve: revoking the etcd lease: {e}");
        }
    }

    /// Keeps the lease alive and watches for orphans and imbalance.
    pub fn start(self: &Arc<Self>, indexes: Arc<Indexes>) {
        let on_lost = {
            let (cluster, indexes) = (self.clone(), indexes.clone());
            move || {
                // Whatever this node owned may be another's now: closed
                // here (their publishes would be refused anyway), taken
                // back from the store if etcd still says this node.
                eprintln!("pushdex serve: node {}: the etcd lease had expired; registering again", cluster.me());
                let names: Vec<String> = cluster.owned().keys().cloned().collect();
                for name in names {
                    cluster.forget(&indexes, &name);
                }
            }
        };
        keep_alive_forever(self.coordinator.clone(), self.address.clone(), on_lost);
        let woken = self.clone();
        self.coordinator.watch_nodes(move || woken.wake_up());
        let cluster = self.clone();
        std::thread::Builder::new()
            .name("pushdex-cluster".into())
            .spawn(move || loop {
                if let Err(e) = cluster.watch_once(&indexes) {
                    eprintln!("pushdex serve: watching the cluster: {e}");
                }
                cluster.sleep(cluster.coordinator.ttl() / 3);
            })
            .expect("a thread for the cluster");
    }

    /// Runs the watch now (a node joined or left).
    fn wake_up(&self) {
        let (woken, signal) = &self.wake;
        *woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        signal.notify_all();
    }

    /// Waits `tick`, or less when woken.
    fn sleep(&self, tick: Duration) {
        let (woken, signal) = &self.wake;
        let guard = woken.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) = signal.wait_timeout_while(guard, tick, |woken| !*woken).unwrap_or_else(|e| e.into_inner());
        *guard = false;
    }

    fn live_nodes(&self) -> io::Result<Vec<NodeInfo>> {
        let nodes = self.coordinator.nodes()?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for node in &nodes {
            seen.insert(node.id.clone(), node.address.clone());
        }
        Ok(nodes)
    }

    /// The live node that takes a new or orphaned index: the fewest
    /// indexes owned by live nodes, then the smallest id.
    fn placement(nodes: &[NodeInfo], indexes: &[(String, Owned)]) -> Option<NodeInfo> {
        nodes
            .iter()
            .min_by_key(|node| (indexes.iter().filter(|(_, o)| o.ownership.owner == node.id).count(), node.id.clone()))
            .cloned()
    }

    /// The live node that takes an orphaned index: [`Cluster::placement`]
    /// counting only the indexes of live owners.
    fn orphan_taker(nodes: &[NodeInfo], all: &[(String, Owned)]) -> Option<NodeInfo> {
        let live: Vec<(String, Owned)> =
            all.iter().filter(|(_, o)| nodes.iter().any(|n| n.id == o.ownership.owner)).cloned().collect();
        Cluster::placement(nodes, &live)
    }

    /// One round of [`Cluster::start`]'s watch.
    fn watch_once(&self, indexes: &Indexes) -> io::Result<()> {
        let nodes = self.live_nodes()?;
        let all = self.coordinator.indexes()?;
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) =
            Known { nodes: nodes.clone(), indexes: all.iter().cloned().collect() };
        let alive = |id: &str| nodes.iter().any(|n| n.id == id);
        let mut handed_over = false;
        for (name, owned) in &all {
            let owner = &owned.ownership.owner;
            let mine = self.owned().get(name).cloned();
            if owner == self.me() {
                if mine.as_ref().is_none_or(|m| m.revision != owned.revision) {
                    // Owned by this node's id but not open in this process
                    // (a restart, a hand-over to it), or open as a stale
                    // copy: taken (back) from the store at the next epoch.
                    if mine.is_some() {
                        self.forget(indexes, name);
                    }
                    self.open_quietly(indexes, name);
                } else if !handed_over {
                    handed_over = self.maybe_hand_over(indexes, name, owned, &nodes, &all);
                }
            } else {
                if mine.is_some() {
                    // Another node owns it now: whatever is open here is stale.
                    self.forget(indexes, name);
                }
                if !alive(owner) && Cluster::orphan_taker(&nodes, &all).is_some_and(|n| n.id == self.me()) {
                    self.open_quietly(indexes, name);
                }
            }
        }
        Ok(())
    }

    fn open_quietly(&self, indexes: &Indexes, name: &str) {
        if let Err(e) = indexes.get(name) {
            eprintln!("pushdex serve: taking index {name}: {}", e.message);
        }
    }

    fn forget(&self, indexes: &Indexes, name: &str) {
        self.owned().remove(name);
        indexes.evict(name);
    }

    /// Gives `name` to a live node that owns at least two fewer indexes
    /// than this one, the most loaded: closes it here (publishing everything, even what was
    /// only Pushed), then moves the ownership with the next epoch.
    fn maybe_hand_over(
        &self,
        indexes: &Indexes,
        name: &str,
        owned: &Owned,
        nodes: &[NodeInfo],
        all: &[(String, Owned)],
    ) -> bool {
        let count = |id: &str| all.iter().filter(|(_, o)| o.ownership.owner == id).count();
        let mine = count(self.me());
        // One hand-over at a time in the whole cluster: only the most
        // loaded live node (then the smallest id) gives one away.
        let busiest = nodes.iter().max_by_key(|n| (count(&n.id), std::cmp::Reverse(n.id.clone())));
        if busiest.is_none_or(|n| n.id != self.me()) {
            return false;
        }
        let Some(target) = nodes.iter().filter(|n| n.id != self.me()).min_by_key(|n| (count(&n.id), n.id.clone()))
        else {
            return false;
        };
        if count(&target.id) + 2 > mine {
            return false;
        }
        self.forget(indexes, name);
        match self.coordinator.hand_over(name, owned, &target.id) {
            Ok(Some(_)) => {
                eprintln!("pushdex serve: handed index {name} over to node {}", target.id);
                true
            }
            Ok(None) => false,
            Err(e) => {
                eprintln!("pushdex serve: handing index {name} over: {e}");
                false
            }
        }
    }

    /// Where a request for index `name` is served: here (`None`) or at
    /// the owner's address. `hops`: how many times it was forwarded
    /// already. Waits (at most twice the lease TTL) while the index's owner
    /// is dead and another node is the one to take it.
    fn decide(&self, indexes: &Indexes, name: &str, hops: u32) -> ApiResult<Option<String>> {
        // Fast: an index this process claimed, while its lease is surely
        // alive, is still its own (others take it only once the lease
        // expired; a hand-over or a lost lease takes it out of `owned`
        // first). An index the watch saw owned by another live node goes
        // there (which forwards it on if it moved since).
        if self.owned().contains_key(name) && self.coordinator.lease_alive() {
            return Ok(None);
        }
        if hops < MAX_HOPS {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            let owner = known.indexes.get(name).map(|o| o.ownership.owner.clone());
            if let Some(node) = owner.and_then(|id| known.nodes.iter().find(|n| n.id == id && n.id != self.me())) {
                return Ok(Some(node.address.clone()));
            }
        }
        let deadline = Instant::now() + self.coordinator.ttl() * 2 + Duration::from_secs(1);
        loop {
            let record = self.coordinator.ownership(name).map_err(Error::Io)?;
            if let Some(owned) = record.as_ref().filter(|o| o.ownership.owner == self.me()) {
                if self.owned().get(name).is_some_and(|mine| mine.revision != owned.revision) {
                    // Given back to this node while it held a stale copy
                    // (paused, say): reopened from the store.
                    self.forget(indexes, name);
                }
                return Ok(None);
            }
            if record.is_some() && self.owned().contains_key(name) {
                // Another node owns it now: what is open here is stale.
                self.forget(indexes, name);
            }
            let nodes = self.live_nodes().map_err(Error::Io)?;
            let target = match &record {
                Some(owned) => match nodes.iter().find(|n| n.id == owned.ownership.owner) {
                    Some(owner) => Some(owner.clone()),
                    None => {
                        // Its owner is dead: the node to take it, if it is this one.
                        let all = self.coordinator.indexes().map_err(Error::Io)?;
                        Cluster::orphan_taker(&nodes, &all).filter(|node| node.id == self.me())
                    }
                },
                // A new index, sent here by the node that placed it.
                None if hops > 0 => return Ok(None),
                // A new index: placed on the least-loaded live node.
                None => Cluster::placement(&nodes, &self.coordinator.indexes().map_err(Error::Io)?),
            };
            match target {
                Some(node) if node.id == self.me() => return Ok(None),
                Some(node) if hops < MAX_HOPS => return Ok(Some(node.address)),
                _ if Instant::now() >= deadline => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        format!("index {name} has no live owner yet: retry"),
                    ))
                }
                _ => std::thread::sleep(self.coordinator.ttl() / 10),
            }
        }
    }

    /// `GET /v1/cluster`.
    fn status(&self) -> io::Result<serde_json::Value> {
        let nodes = self.live_nodes()?;
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        status_of(&self.coordinator, &nodes, &seen)
    }
}

/// `pushdex cluster status`: what `GET /v1/cluster` answers, read from the
/// etcd at `endpoints` (no node needed). Dead nodes are listed only when
/// they own an index (their address is not known then).
pub fn status_from_etcd(endpoints: &str, prefix: &str) -> io::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let blocking = Blocking::new(runtime.handle().clone());
    let coordinator = Coordinator::connect(endpoints, prefix, "", Duration::from_secs(3), blocking)?;
    let nodes = coordinator.nodes()?;
    let status = status_of(&coordinator, &nodes, &HashMap::new());
    runtime.shutdown_background();
    status
}

/// The cluster's nodes (live ones, then dead ones seen or owning an
/// index), and its indexes with owner, epoch and published serial.
fn status_of(
    coordinator: &Coordinator,
    nodes: &[NodeInfo],
    seen: &HashMap<String, String>,
) -> io::Result<serde_json::Value> {
    let indexes = coordinator.indexes()?;
    let manifests: HashMap<String, Published> = coordinator.manifests()?.into_iter().collect();
    let mut listed: Vec<serde_json::Value> =
        nodes.iter().map(|n| json!({ "id": n.id, "address": n.address, "alive": true })).collect();
    // The dead: every node this one saw alive, and every owner.
    let mut dead: Vec<&String> = seen.keys().chain(indexes.iter().map(|(_, o)| &o.ownership.owner)).collect();
    dead.retain(|id| !nodes.iter().any(|n| &n.id == *id));
    dead.sort();
    dead.dedup();
    for id in dead {
        listed.push(json!({ "id": id, "address": seen.get(id).cloned().unwrap_or_default(), "alive": false }));
    }
    let indexes: Vec<serde_json::Value> = indexes
        .iter()
        .map(|(name, o)| {
            json!({
                "name": name,
                "owner": o.ownership.owner,
                "epoch": o.ownership.epoch,
                "published_serial": manifests.get(name).map_or(0, |m| m.serial),
            })
        })
        .collect();
    Ok(json!({ "node": coordinator.node(), "nodes": listed, "indexes": indexes }))
}

/// The store and commit point of one owned index.
#[derive(Debug)]
struct IndexRemote {
    cluster: Arc<Cluster>,
    name: String,
    owned: Owned,
}

impl Remote for IndexRemote {
    fn upload(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        self.cluster.store.put_new(key, bytes)
    }

    fn publish(&self, view: &View) -> io::Result<()> {
        let published = Published { epoch: self.owned.ownership.epoch, serial: view.serial, view: view.clone() };
        self.cluster.coordinator.publish(&self.name, &self.owned, &published)
    }

    fn discard(&self, keys: Vec<String>) {
        self.cluster.store.delete_later(keys, self.cluster.grace());
    }
}

/// The claim revision in an object key `indexes/<name>/r<revision>-e…/<n>`
/// (`None` for any other key: never swept).
fn claim_revision(key: &str) -> Option<i64> {
    let (_, rest) = key.strip_prefix("indexes/")?.split_once('/')?;
    rest.strip_prefix('r')?.split('-').next()?.parse().ok()
}

/// The cluster as the server's [`Backend`].
pub(crate) struct ClusterBackend(pub Arc<Cluster>);

impl Backend for ClusterBackend {
    fn open(&self, name: &str, options: Options) -> crate::Result<Index> {
        let cluster = &self.0;
        let record = cluster.coordinator.ownership(name)?;
        if record.is_none() && options.create_mode() == Create::Never {
            return Err(Error::NoIndex { path: cluster.dir.join(name) });
        }
        if let Some(owned) = &record {
            let owner = &owned.ownership.owner;
            if owner != cluster.me() && cluster.live_nodes()?.iter().any(|n| &n.id == owner) {
                return Err(io_other(format!("index {name} is owned by node {owner}")));
            }
        }
        let owned = cluster
            .coordinator
            .claim(name, record.as_ref())?
            .ok_or_else(|| io_other(format!("index {name} changed owner meanwhile: retry")))?;
        let published = match &record {
            Some(_) => cluster.coordinator.published(name)?.unwrap_or_default(),
            None => Published::default(),
        };
        let epoch = owned.ownership.epoch;
        let base = cluster.dir.join(name);
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join(format!("e{epoch}"));
        let local = FsStorage::new(&dir)?;
        restore(&published.view, &local, &|key| cluster.store.get(key))?;
        let remote = IndexRemote { cluster: cluster.clone(), name: name.to_string(), owned: owned.clone() };
        // The claim's etcd revision is unique to it (an index deleted and
        // created again starts over at epoch 1).
        let prefix = format!("indexes/{name}/r{}-e{epoch}-{}/", owned.revision, cluster.me());
        // What earlier owners uploaded and no longer need: every object of
        // an earlier claim that the view taken over does not name (pieces
        // merged or cut away, files removed, uploads never published).
        // They can publish nothing more, so nothing will name those again.
        if record.is_some() {
            let named: std::collections::HashSet<String> = published.view.keys().map(str::to_string).collect();
            let revision = owned.revision;
            cluster.store.sweep_later(format!("indexes/{name}"), cluster.grace(), move |key| {
                claim_revision(key).is_some_and(|r| r < revision) && !named.contains(key)
            });
        }
        let replicated = Replicated::new(Arc::new(local), Arc::new(remote), prefix, &published.view);
        // A copy restored from the store is an index whenever the store
        // had one: it may be created here only when etcd had no record.
        let options = if record.is_some() { options.create(Create::IfEmpty) } else { options };
        let index = Index::open_on(Arc::new(ReplicatedStorage(Arc::new(replicated))), options)?;
        cluster.owned().insert(name.to_string(), owned);
        Ok(index)
    }

    fn remove(&self, name: &str) -> crate::Result<()> {
        let owned = self.0.owned().remove(name);
        if let Some(owned) = owned {
            self.0.coordinator.remove(name, &owned)?;
            // Every object of this index's claims so far (one created again
            // later claims at a higher revision).
            let revision = owned.revision;
            self.0.store.sweep_later(format!("indexes/{name}"), self.0.grace(), move |key| {
                claim_revision(key).is_some_and(|r| r <= revision)
            });
        }
        let _ = std::fs::remove_dir_all(self.0.dir.join(name));
        Ok(())
    }

    /// The indexes this node owns (`GET /v1/indexes` asks every node).
    fn names(&self) -> crate::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .0
            .coordinator
            .indexes()?
            .into_iter()
            .filter(|(_, owned)| owned.ownership.owner == self.0.me())
            .map(|(name, _)| name)
            .collect();
        names.sort();
        Ok(names)
    }

    fn dir_of(&self, name: &str) -> PathBuf {
        match self.0.owned().get(name) {
            Some(owned) => self.0.dir.join(name).join(format!("e{}", owned.ownership.epoch)),
            None => self.0.dir.join(name),
        }
    }
}

/// The index a request is for, from its path: `/v1/indexes/{name}/…`,
/// `/papi/4/connectors/{name}/…`, and the live sources' `default`.
fn index_of(path: &str) -> Option<String> {
    let segment = |rest: &str| rest.split('/').next().filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(rest) = path.strip_prefix("/v1/indexes/") {
        return segment(rest)
            .and_then(|name| percent_encoding::percent_decode_str(&name).decode_utf8().ok().map(|n| n.into_owned()));
    }
    if let Some(rest) = path.strip_prefix("/papi/4/connectors/") {
        return segment(rest)
            .and_then(|name| percent_encoding::percent_decode_str(&name).decode_utf8().ok().map(|n| n.into_owned()));
    }
    if path == "/layar" || path.starts_with("/layar/") {
        return Some(super::layar::LIVE_SOURCE_INDEX.to_string());
    }
    None
}

/// Whether `request` is a search (`/v1/indexes/{name}/search`): served by
/// any node from the published manifest (`Cluster::searched`), never
/// forwarded.
fn is_search(request: &Request) -> bool {
    let method = request.method();
    let searched = request.uri().path().strip_prefix("/v1/indexes/").and_then(|rest| rest.split_once('/'));
    searched.is_some_and(|(_, route)| route == "search")
        && (method == axum::http::Method::GET || method == axum::http::Method::POST)
}

/// How many times a request was forwarded already (its [`FORWARDED`]
/// header; 0 without one).
fn hops_of(request: &Request) -> u32 {
    request.headers().get(FORWARDED).map_or(0, |v| v.to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_HOPS))
}

/// The middleware of [`Cluster`]: serves here or forwards to the owner.
/// A forward that cannot connect (the owner just died) is decided again,
/// until the index has a new owner (at most twice the lease TTL): the
/// request never reached the dead owner, so it is safe to send again.
pub(crate) async fn route(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cluster) = state.cluster.clone() else { return next.run(request).await };
    if request.uri().path() == "/v1/indexes" && request.method() == axum::http::Method::GET {
        if hops_of(&request) > 0 {
            return next.run(request).await;
        }
        return list_everywhere(&cluster, request, next).await;
    }
    let Some(name) = index_of(request.uri().path()) else { return next.run(request).await };
    if super::indexes::check_name(&name).is_err() {
        return next.run(request).await;
    }
    if is_search(&request) {
        return next.run(request).await;
    }
    let hops = hops_of(&request);
    let deadline = Instant::now() + cluster.coordinator.ttl() * 2 + Duration::from_secs(1);
    let mut body = None;
    let (parts, mut request_body) = request.into_parts();
    loop {
        let decided = {
            let (cluster, indexes, name) = (cluster.clone(), state.indexes.clone(), name.clone());
            super::blocking(move || cluster.decide(&indexes, &name, hops)).await
        };
        let address = match decided {
            Ok(None) => {
                let request = match body.take() {
                    Some(bytes) => Request::from_parts(parts, axum::body::Body::from(bytes)),
                    None => Request::from_parts(parts, request_body),
                };
                return next.run(request).await;
            }
            Ok(Some(address)) => address,
            Err(e) => return e.into_response(),
        };
        let bytes = match body.take() {
            Some(bytes) => bytes,
            None => {
                let taken = std::mem::replace(&mut request_body, axum::body::Body::empty());
                match super::read_body(Request::from_parts(parts.clone(), taken), state.max_body_bytes).await {
                    Ok(bytes) => bytes,
                    Err(e) => return e.into_response(),
                }
            }
        };
        match forward(&cluster, &address, &parts, bytes.clone(), hops + 1).await {
            Err(e) if e.is_connect() && Instant::now() < deadline => {
                body = Some(bytes);
                tokio::time::sleep(cluster.coordinator.ttl() / 10).await;
            }
            Err(e) => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("the index's owner at {address} did not answer ({e}): retry"),
                )
                .into_response()
            }
            Ok(response) => return response,
        }
    }
}

/// `GET /v1/indexes` on a cluster: this node's own indexes and every
/// other live node's, by name.
async fn list_everywhere(cluster: &Arc<Cluster>, request: Request, next: Next) -> Response {
    let (parts, _) = request.into_parts();
    let nodes = {
        let cluster = cluster.clone();
        super::blocking(move || cluster.live_nodes().map_err(|e| Error::Io(e).into())).await
    };
    let nodes = match nodes {
        Ok(nodes) => nodes,
        Err(e) => return e.into_response(),
    };
    let mut responses = vec![next.run(Request::from_parts(parts.clone(), axum::body::Body::empty())).await];
    for node in nodes.iter().filter(|n| n.id != cluster.me()) {
        match forward(cluster, &node.address, &parts, axum::body::Bytes::new(), 1).await {
            Ok(response) => responses.push(response),
            // A node that died since: its indexes are being taken over.
            Err(_) => continue,
        }
    }
    let mut all = Vec::new();
    for response in responses {
        if !response.status().is_success() {
            return response;
        }
        let bytes = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
            Ok(bytes) => bytes,
            Err(e) => return ApiError::new(StatusCode::BAD_GATEWAY, "unavailable", e.to_string()).into_response(),
        };
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(&bytes) {
            all.extend(items);
        }
    }
    all.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(serde_json::Value::Array(all)).into_response()
}

/// Proxies a request to the node at `address`; its answer, streamed, is
/// the answer.
async fn forward(
    cluster: &Cluster,
    address: &str,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
    hops: u32,
) -> Result<Response, reqwest::Error> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = cluster.client.request(parts.method.clone(), format!("http://{address}{path}"));
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH && name != FORWARDED {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.header(FORWARDED, HeaderValue::from(hops)).body(body).send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    // Streamed through, not held: an enumeration of a large index passes in
    // pieces. An owner that breaks off its answer breaks off this one.
    let mut response = Response::new(axum::body::Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    let hop =
        [axum::http::header::TRANSFER_ENCODING, axum::http::header::CONNECTION, axum::http::header::CONTENT_LENGTH];
    for (name, value) in &headers {
        if !hop.contains(name) {
            response.headers_mut().append(HeaderName::from(name), value.clone());
        }
    }
    Ok(response)
}

/// `GET /v1/cluster`: nodes, indexes, owners, epochs, published serials.
pub(crate) async fn status(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let Some(cluster) = state.cluster.clone() else {
        return Err(ApiError::not_found("this server is not part of a cluster (started without --cluster)"));
    };
    super::blocking(move || Ok(Json(cluster.status().map_err(Error::Io)?))).await
}
