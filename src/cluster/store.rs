//! The object store: every byte of every index, as immutable objects
//! (`object_store`: [`LocalFileSystem`] for a directory, [`AmazonS3`] for an
//! `s3://bucket/prefix` URL), behind blocking calls for the storage layer.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// Runs futures to completion from blocking code, on any thread (a
/// runtime's worker included: the future runs on the cluster's own
/// runtime, and the caller waits on a channel).
#[derive(Clone, Debug)]
pub struct Blocking {
    handle: tokio::runtime::Handle,
}

impl Blocking {
    /// Futures spawned on `handle`'s runtime.
    pub fn new(handle: tokio::runtime::Handle) -> Blocking {
        Blocking { handle }
    }

    /// Runs `future` on the runtime, not waiting for it.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(future);
    }

    /// Waits for `future`, run on the runtime.
    pub fn wait<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| io::Error::other("the cluster's runtime stopped"))
    }
}

/// Deletes `locations` one by one; one already gone is no failure, and a
/// failure is only reported (a leftover object costs space, never
/// correctness).
async fn delete_all(store: &dyn ObjectStore, locations: Vec<ObjectPath>) {
    for location in locations {
        match store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => eprintln!("pushdex serve: deleting {location} from the store: {e}"),
        }
    }
}

/// An object store of immutable objects.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    blocking: Blocking,
    /// `--store` as given, for messages.
    described: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("store", &self.described).finish()
    }
}

/// An object store error as an I/O error of the same kind.
fn io_error(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("object store: {e}"))
}

impl Store {
    /// `--store`: a local directory (created if missing), or an
    /// `s3://bucket/prefix` URL (credentials, region and endpoint from the
    /// usual `AWS_*` variables: `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true`
    /// for a local S3 server).
    pub fn open(location: &str, blocking: Blocking) -> io::Result<Store> {
        let inner: Arc<dyn ObjectStore> = if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("--store {location}: no bucket")));
            }
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--store {location}: {e}")))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            }
        } else {
            std::fs::create_dir_all(location)?;
            Arc::new(LocalFileSystem::new_with_prefix(location).map_err(io_error)?)
        };
        Ok(Store { inner, blocking, described: location.to_string() })
    }

    /// Stores `bytes` as the new object `key`; an error if it exists.
    pub fn put_new(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        let (inner, path) = (self.inner.clone(), ObjectPath::from(key));
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        self.blocking
            .wait(async move { inner.put_opts(&path, PutPayload::from(bytes), options).await })?
            .map_err(io_error)?;
        Ok(())
    }

    /// The bytes of object `key`.
    pub fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        let (inner, path) = (self.inner.clone(), ObjectPath::from(key));
        let bytes = self.blocking.wait(async move { inner.get(&path).await?.bytes().await })?.map_err(io_error)?;
        Ok(bytes.to_vec())
    }

    /// After `delay`, in the background, deletes every object under
    /// `prefix` whose key `garbage` accepts: objects that no published view
    /// names any more (`delay` leaves a reader of an older view, e.g. a
    /// search replica being made, time to finish; one that comes later
    /// finds the object gone and reads the newer view). A failure is only
    /// reported: a leftover object costs space, never correctness.
    pub fn sweep_later(&self, prefix: String, delay: Duration, garbage: impl Fn(&str) -> bool + Send + 'static) {
        let inner = self.inner.clone();
        self.blocking.spawn(async move {
            tokio::time::sleep(delay).await;
            let mut listed = inner.list(Some(&ObjectPath::from(prefix.as_str())));
            let mut doomed = Vec::new();
            while let Some(meta) = std::future::poll_fn(|cx| listed.as_mut().poll_next(cx)).await {
                match meta {
                    Ok(meta) if garbage(meta.location.as_ref()) => doomed.push(meta.location),
                    Ok(_) => {}
                    Err(e) => return eprintln!("pushdex serve: listing {prefix} in the store: {e}"),
                }
            }
            delete_all(inner.as_ref(), doomed).await;
        });
    }

    /// After `delay`, in the background, deletes objects `keys`
    /// ([`Store::sweep_later`]'s rules).
    pub fn delete_later(&self, keys: Vec<String>, delay: Duration) {
        let inner = self.inner.clone();
        self.blocking.spawn(async move {
            tokio::time::sleep(delay).await;
            delete_all(inner.as_ref(), keys.iter().map(|key| ObjectPath::from(key.as_str())).collect()).await;
        });
    }

    /// Where the objects are (`--store`).
    pub fn describe(&self) -> &str {
        &self.described
    }
}
